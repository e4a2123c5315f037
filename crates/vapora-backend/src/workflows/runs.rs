//! Workflow runs: made from a template, followed as their stages move,
//! cancelled or continued by a person.
//!
//! Making a run builds every stage's task up front, wired with
//! `depends_on`, and stores them with the run in one transaction; from
//! there the tasks' own machinery (waiting, approval, rejection, retries,
//! timeouts) runs the stages. Whoever stores a stage's change, on any
//! replica, recomputes the run ([`follow_stage`]); reading a run does too,
//! so a recomputation lost to a crash heals on the next look.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use vapora_shared::workflow::{Placeholder, render};
use vapora_shared::{
    Event, NewTask, NewWorkflow, StageOf, StageRun, Task, TaskId, TaskStatus, UPSTREAM_FAILED, WorkflowId,
    WorkflowRun, WorkflowStatus, WorkflowTemplate,
};

use super::templates::TemplateCatalog;
use crate::error::AppError;
use crate::events::EventBus;
use crate::services::TaskService;
use crate::storage::{Database, RunFilter, SlotClaim, TaskInsert};

/// Lost compare-and-set races on one run tolerated before giving up.
const MAX_RUN_RACES: usize = 32;

#[derive(Debug, Clone)]
pub struct WorkflowService {
    db: Database,
    tasks: TaskService,
    events: EventBus,
    templates: TemplateCatalog,
}

/// One page of `GET /api/v1/workflows`.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct WorkflowPage {
    pub items: Vec<WorkflowRun>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<WorkflowId>,
}

impl WorkflowService {
    pub fn new(db: Database, tasks: TaskService, events: EventBus, templates: TemplateCatalog) -> Self {
        Self {
            db,
            tasks,
            events,
            templates,
        }
    }

    pub fn templates(&self) -> &TemplateCatalog {
        &self.templates
    }

    /// Instantiates a template: checks everything, then stores the run and
    /// every stage's task together; the first stages are queued.
    pub async fn create(&self, new: NewWorkflow) -> Result<WorkflowRun, AppError> {
        self.create_claiming(new, None)
            .await?
            .ok_or_else(|| AppError::Conflict("the run was not stored".into()))
    }

    /// As [`Self::create`], claiming a schedule's slot in the same
    /// transaction (the run then names its schedule): `None` when the claim
    /// was lost and nothing was stored.
    pub async fn create_claiming(
        &self,
        new: NewWorkflow,
        claim: Option<&SlotClaim>,
    ) -> Result<Option<WorkflowRun>, AppError> {
        let schedule_id = claim.map(|c| c.id);
        let claim = claim.map(SlotClaim::to_value).transpose()?;
        let template = self.templates.get(&new.template).await?.ok_or_else(|| {
            AppError::unprocessable(
                "unknown_template",
                format!("no workflow template is named {:?}", new.template),
            )
        })?;
        template.check_inputs(&new.inputs)?;
        let now = Utc::now();
        let run_id = WorkflowId::new();
        let mut tasks: Vec<Task> = Vec::with_capacity(template.stages.len());
        let mut stages = Vec::with_capacity(template.stages.len());
        let mut ids: HashMap<&str, TaskId> = HashMap::new();
        for index in template.run_order()? {
            let stage = &template.stages[index];
            let mut task = self.stage_task(&template, index, &new, &ids, now)?;
            task.schedule_id = schedule_id;
            task.workflow = Some(StageOf {
                run_id,
                stage: stage.name.clone(),
                dependents: Vec::new(),
            });
            // Its dependencies were made just now, so none is done: a
            // stage with any waits; a first stage is queued (or waits
            // for `run_at`).
            let start = TaskService::place_new(&mut task, &[], true);
            task.move_to(start, now);
            ids.insert(stage.name.as_str(), task.id);
            stages.push(StageRun {
                name: stage.name.clone(),
                role: stage.role.clone(),
                depends_on: stage.depends_on.clone(),
                requires_approval: stage.requires_approval,
                task_id: task.id,
                status: task.status,
            });
            tasks.push(task);
        }
        // Each stage names the stages waiting on it, for their release.
        for task in &mut tasks {
            let name = task
                .workflow
                .as_ref()
                .map(|w| w.stage.clone())
                .unwrap_or_default();
            let dependents = stages
                .iter()
                .filter(|s| s.depends_on.contains(&name))
                .map(|s| s.task_id)
                .collect();
            if let Some(stage) = &mut task.workflow {
                stage.dependents = dependents;
            }
        }
        let run = WorkflowRun {
            id: run_id,
            project_id: new.project_id,
            template: template.name.clone(),
            inputs: new.inputs,
            status: WorkflowStatus::of(stages.iter().map(|s| s.status)),
            stages,
            run_at: new.run_at,
            schedule_id,
            created_at: now,
            updated_at: now,
            finished_at: None,
        };
        // Queue room for the first stages before anything is stored.
        let mut admissions = Vec::new();
        for task in tasks.iter().filter(|t| t.status == TaskStatus::Queued) {
            admissions.push((task.id, self.tasks.admit()?));
        }
        match self
            .db
            .insert_workflow_run(&run, &tasks, self.tasks.replica(), claim)
            .await?
        {
            TaskInsert::Stored => {}
            TaskInsert::SlotTaken => return Ok(None),
            TaskInsert::UnknownProject => {
                return Err(AppError::unprocessable(
                    "unknown_project",
                    format!("project {} does not exist", run.project_id),
                ));
            }
        }
        self.events.publish(&Event::WorkflowCreated(run.clone()));
        for task in tasks {
            let admission = admissions
                .iter()
                .position(|(id, _)| *id == task.id)
                .map(|i| admissions.swap_remove(i).1);
            self.tasks.announce_new(task, admission).await;
        }
        tracing::info!(workflow = %run.id, template = %run.template, stages = run.stages.len(), "workflow run created");
        Ok(Some(run))
    }

    /// The task stage `index` of `template` becomes, its inputs filled in
    /// and its dependencies (already made, in `ids`) named.
    fn stage_task(
        &self,
        template: &WorkflowTemplate,
        index: usize,
        new: &NewWorkflow,
        ids: &HashMap<&str, TaskId>,
        now: chrono::DateTime<Utc>,
    ) -> Result<Task, AppError> {
        let stage = &template.stages[index];
        let fill = |placeholder: Placeholder<'_>| match placeholder {
            Placeholder::Input(name) => new.inputs.get(name).map(String::as_str),
            Placeholder::StageOutput(_) => None,
        };
        let title = render(stage.title.as_deref().unwrap_or(&stage.name), fill);
        let mut request = NewTask {
            project_id: new.project_id,
            title,
            description: render(&stage.prompt, fill),
            role: stage.role.clone(),
            priority: new.priority,
            requires_approval: stage.requires_approval,
            dispatch: true,
            timeout_secs: stage.timeout_secs,
            depends_on: stage
                .depends_on
                .iter()
                .filter_map(|d| ids.get(d.as_str()).copied())
                .collect(),
            on_upstream_failure: stage.on_upstream_failure,
            run_at: if stage.depends_on.is_empty() {
                new.run_at
            } else {
                None
            },
            max_attempts: stage.max_attempts,
            retry_backoff_secs: stage.retry_backoff_secs,
            concurrency_key: None,
            concurrency_limit: None,
        };
        self.tasks.apply_role_defaults(&mut request);
        self.tasks.check_role(&request.role)?;
        Ok(request.into_task(now)?)
    }

    /// The run with its stages as they stand now (stored again if that
    /// changed it).
    pub async fn get(&self, id: WorkflowId) -> Result<WorkflowRun, AppError> {
        refresh(&self.db, &self.events, id)
            .await?
            .ok_or_else(|| AppError::not_found("workflow", id))
    }

    pub async fn list(&self, mut filter: RunFilter) -> Result<WorkflowPage, AppError> {
        let limit = filter.limit;
        filter.limit = limit + 1;
        let mut items = self.db.list_workflow_runs(&filter).await?;
        let next_cursor = crate::services::page::cut(&mut items, limit, |r| r.id);
        Ok(WorkflowPage { items, next_cursor })
    }

    /// Cancels every unfinished stage, the last ones first (so that no
    /// stage fails for an upstream cancelled under it). 409 for a finished run.
    pub async fn cancel(&self, id: WorkflowId) -> Result<WorkflowRun, AppError> {
        let run = self.get(id).await?;
        if run.status.is_finished() {
            return Err(AppError::Conflict(format!(
                "workflow {id} is {}; it cannot be cancelled",
                run.status
            )));
        }
        for stage in run.stages.iter().rev() {
            if stage.status.is_terminal() {
                continue;
            }
            match self.tasks.cancel(stage.task_id).await {
                // Finished meanwhile: nothing left to cancel there.
                Ok(_) | Err(AppError::Conflict(_)) => {}
                Err(e) => return Err(e),
            }
        }
        tracing::info!(workflow = %id, "workflow run cancelled");
        self.get(id).await
    }

    /// Runs a failed stage again, and with it the stages that failed only
    /// because it had (`upstream_failed`): they wait for it again. 409
    /// when the stage has not failed.
    pub async fn retry_stage(&self, id: WorkflowId, stage: &str) -> Result<WorkflowRun, AppError> {
        let run = self.get(id).await?;
        let target = run
            .stage(stage)
            .ok_or_else(|| AppError::not_found("stage", stage))?;
        if target.status != TaskStatus::Failed {
            return Err(AppError::Conflict(format!(
                "stage {stage:?} is {}; only a failed stage is retried",
                target.status
            )));
        }
        self.tasks.retry(target.task_id).await?;
        let failed: Vec<TaskId> = run
            .stages
            .iter()
            .filter(|s| s.name != stage && s.status == TaskStatus::Failed)
            .map(|s| s.task_id)
            .collect();
        for stored in self.db.get_tasks(&failed).await? {
            let followed = stored
                .task
                .error
                .as_deref()
                .is_some_and(|e| e.starts_with(UPSTREAM_FAILED));
            if followed {
                self.tasks.retry(stored.task.id).await?;
            }
        }
        self.get(id).await
    }
}

/// How long a run's recomputation waits for more of its stages' moves:
/// a stage moves three or four times in quick succession (queued,
/// running, done), and one read of the run after them does for all.
const FOLLOW_WINDOW: Duration = Duration::from_millis(20);

/// Recomputes runs after their stages move, in the background, at most
/// once per run per [`FOLLOW_WINDOW`] on this replica.
#[derive(Debug, Clone)]
pub struct RunFollower {
    db: Database,
    events: EventBus,
    pending: Arc<Mutex<HashSet<WorkflowId>>>,
}

impl RunFollower {
    pub fn new(db: Database, events: EventBus) -> Self {
        Self {
            db,
            events,
            pending: Arc::default(),
        }
    }

    /// A stage of run `id` moved.
    pub fn follow(&self, id: WorkflowId) {
        if !lock(&self.pending).insert(id) {
            return; // A recomputation is due; it will read this move.
        }
        let follower = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(FOLLOW_WINDOW).await;
            // Out of the set before reading: a move after this read
            // schedules a recomputation of its own.
            lock(&follower.pending).remove(&id);
            if let Err(e) = refresh(&follower.db, &follower.events, id).await {
                tracing::debug!(workflow = %id, error = %e, "workflow run not recomputed; the next look will");
            }
        });
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Reads run `id` and its stages' tasks, and stores (and announces) what
/// changed: `workflow.updated`, or `workflow.finished` for the change that
/// finishes it. `None` when there is no such run.
async fn refresh(db: &Database, events: &EventBus, id: WorkflowId) -> Result<Option<WorkflowRun>, AppError> {
    for _ in 0..MAX_RUN_RACES {
        let Some(stored) = db.get_workflow_run(id).await? else {
            return Ok(None);
        };
        let task_ids: Vec<TaskId> = stored.run.stages.iter().map(|s| s.task_id).collect();
        let statuses: HashMap<TaskId, TaskStatus> = db.task_statuses(&task_ids).await?.into_iter().collect();
        let Some(next) = stored
            .run
            .with_stage_statuses(|task| statuses.get(&task).copied(), Utc::now())
        else {
            return Ok(Some(stored.run));
        };
        if db.replace_workflow_run(&next, stored.rev).await? {
            if next.status.is_finished() && !stored.run.status.is_finished() {
                tracing::info!(workflow = %id, status = %next.status, "workflow run finished");
                events.publish(&Event::WorkflowFinished(next.clone()));
            } else {
                events.publish(&Event::WorkflowUpdated(next.clone()));
            }
            return Ok(Some(next));
        }
        crate::storage::back_off(0).await;
    }
    Err(AppError::Conflict(format!(
        "workflow {id} is changing too fast; try again"
    )))
}
