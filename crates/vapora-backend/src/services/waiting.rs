//! What a task in `waiting` waits for, and what moves it on.
//!
//! Dependencies: a task created with `depends_on` waits until every task it
//! depends on is done, then is queued with their results for its agent
//! (`Task::upstream`, given as prompt context). If a dependency fails or is
//! cancelled, the task follows its `on_upstream_failure`: `fail` too, with
//! an error starting `upstream_failed`, or `wait` for that dependency to be
//! retried. The graph has no cycles by construction: dependencies are
//! named when a task is created, and must exist by then.
//!
//! Time: a task is not queued before its `run_at`, asked for at creation or
//! set by an automatic retry: a failed attempt with attempts left
//! (`max_attempts`) waits `retry_backoff_secs`, doubled for each attempt,
//! then runs again as the next attempt.
//!
//! Who moves a waiting task: whoever finishes one of its dependencies, right
//! after that write and on the replica that made it; a timer for its
//! `run_at`; and a sweep at start-up and every [`SWEEP_EVERY`], for a move
//! lost to a crash or a restart, or put off by a full queue. Every move is
//! a compare-and-set on the waiting task, so replicas releasing it at once
//! queue it once.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;
use vapora_shared::lifecycle::UserChange;
use vapora_shared::{Event, ProjectId, Task, TaskId, TaskStatus};

use super::TaskService;
use super::readiness::{Readiness, readiness, upstream_error};
use crate::error::AppError;

/// How often every waiting task is looked at again.
pub const SWEEP_EVERY: Duration = Duration::from_secs(5);

impl TaskService {
    /// The dependencies a new task of `project` names: each must be a task
    /// of that project (422 otherwise, before anything is stored).
    pub(super) async fn dependencies_of(
        &self,
        project: ProjectId,
        ids: &[TaskId],
    ) -> Result<Vec<Task>, AppError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let found: HashMap<TaskId, Task> = self
            .db
            .get_task_values(ids)
            .await?
            .into_iter()
            .map(|task| (task.id, task))
            .collect();
        for id in ids {
            match found.get(id) {
                None => {
                    return Err(AppError::unprocessable(
                        "unknown_dependency",
                        format!("depends_on: task {id} does not exist"),
                    ));
                }
                Some(dependency) if dependency.project_id != project => {
                    return Err(AppError::unprocessable(
                        "foreign_dependency",
                        format!("depends_on: task {id} belongs to another project"),
                    ));
                }
                Some(_) => {}
            }
        }
        Ok(found.into_values().collect())
    }

    /// Where a new task with dependencies starts, given them as stored:
    /// `queued` with their results, `waiting`, or `failed` (an upstream
    /// failure it follows). Not dispatched yet (`todo`), it stays there and
    /// only notes what it waits on.
    pub(crate) fn place_new(task: &mut Task, deps: &[Task], dispatch: bool) -> TaskStatus {
        let queued_or_todo = match (dispatch, &task.concurrency) {
            // Queued once it has a slot of its key, which takes a write of
            // its own (`TaskService::update_task`): it waits until then.
            (true, Some(_)) => TaskStatus::Waiting,
            (true, None) => TaskStatus::Queued,
            (false, _) => TaskStatus::Todo,
        };
        if task.depends_on.is_empty() && task.run_at.is_none() {
            return queued_or_todo;
        }
        match readiness(task, deps, task.created_at) {
            Readiness::NotBefore(_) if dispatch => TaskStatus::Waiting,
            Readiness::NotBefore(_) => TaskStatus::Todo,
            Readiness::Ready(upstream) => {
                task.upstream = upstream;
                queued_or_todo
            }
            Readiness::Waiting(unfinished) => {
                task.waiting_on = unfinished;
                if dispatch {
                    TaskStatus::Waiting
                } else {
                    TaskStatus::Todo
                }
            }
            Readiness::UpstreamFailed(dependency, status) if dispatch => {
                task.error = Some(upstream_error(dependency, status));
                TaskStatus::Failed
            }
            Readiness::UpstreamFailed(..) => TaskStatus::Todo,
        }
    }

    /// For a person's change that may queue task `id`: where its
    /// dependencies stand (`None` when it has none, or the change cannot
    /// queue it).
    pub(super) async fn readiness_for_queueing(
        &self,
        id: TaskId,
        change: &UserChange,
    ) -> Result<Option<Readiness>, AppError> {
        let may_queue = match change {
            UserChange::Retry | UserChange::Reject { .. } => true,
            UserChange::Patch(patch) => patch.status == Some(TaskStatus::Queued),
            UserChange::Cancel | UserChange::Approve => false,
        };
        if !may_queue {
            return Ok(None);
        }
        let task = self.get(id).await?;
        let now = Utc::now();
        if task.depends_on.is_empty() && task.run_at.is_none_or(|at| at <= now) {
            return Ok(None);
        }
        let deps: Vec<Task> = self.db.get_task_values(&task.depends_on).await?;
        Ok(Some(readiness(&task, &deps, now)))
    }

    /// A person's move of `task` to `next` (queued), given its
    /// dependencies: queued with their results, or waiting for them
    /// (keeping its attempt number for when it is queued); refused while
    /// one it fails with has failed.
    pub(super) fn queue_or_wait(task: &Task, next: &mut Task, readiness: &Readiness) -> Result<(), AppError> {
        match readiness {
            Readiness::Ready(upstream) => next.upstream = upstream.clone(),
            Readiness::Waiting(unfinished) => {
                next.attempt = task.attempt;
                next.status = TaskStatus::Waiting;
                next.waiting_on = unfinished.clone();
            }
            Readiness::NotBefore(_) => {
                next.attempt = task.attempt;
                next.status = TaskStatus::Waiting;
                next.waiting_on.clear();
            }
            Readiness::UpstreamFailed(dependency, status) => {
                return Err(AppError::Conflict(format!(
                    "task {dependency}, which this task depends on, is {status}: retry it first"
                )));
            }
        }
        Ok(())
    }

    /// After `task` was stored in a new state: its workflow run, if any,
    /// looks at it again; a failure with attempts left waits for its
    /// automatic retry; otherwise, if it finished, the tasks waiting on it
    /// follow. In the background each.
    pub(super) fn release_dependents_of(&self, task: &Task) {
        if let Some(stage) = &task.workflow {
            self.run_follower.follow(stage.run_id);
        }
        if let Some(slot) = &task.concurrency
            && matches!(
                task.status,
                TaskStatus::Todo
                    | TaskStatus::Review
                    | TaskStatus::Done
                    | TaskStatus::Failed
                    | TaskStatus::Cancelled
            )
        {
            // It gave its slot up.
            self.offer_slot(slot.key.clone());
        }
        if let Some(at) = task.automatic_retry_at(Utc::now()) {
            let (service, id, attempt) = (self.clone(), task.id, task.attempt);
            tokio::spawn(async move {
                if let Err(e) = service.schedule_retry(id, attempt, at).await {
                    tracing::debug!(task = %id, error = %e, "automatic retry not scheduled");
                }
            });
            return;
        }
        if !matches!(
            task.status,
            TaskStatus::Done | TaskStatus::Failed | TaskStatus::Cancelled
        ) {
            return;
        }
        let (service, id, stage) = (self.clone(), task.id, task.workflow.clone());
        tokio::spawn(async move {
            // A workflow stage names its dependents; a task's own are found
            // by a scan of the waiting tasks.
            let dependents = match stage {
                Some(stage) => Ok(stage.dependents),
                None => service
                    .db
                    .dependents_waiting_on(id)
                    .await
                    .map(|tasks| tasks.into_iter().map(|t| t.id).collect()),
            };
            match dependents {
                Ok(dependents) => {
                    for dependent in dependents {
                        if let Err(e) = service.reevaluate(dependent).await {
                            tracing::debug!(task = %dependent, error = %e, "dependent not moved; the sweep will retry");
                        }
                    }
                }
                Err(e) => {
                    tracing::debug!(task = %id, error = %e, "dependents not read; the sweep will retry")
                }
            }
        });
    }

    /// A slot of concurrency key `key` may be free: the tasks waiting for
    /// one are looked at, oldest first, until one stays waiting.
    fn offer_slot(&self, key: String) {
        let service = self.clone();
        tokio::spawn(async move {
            let waiting = match service.db.waiting_for_slot(&key).await {
                Ok(waiting) => waiting,
                Err(e) => {
                    return tracing::debug!(key, error = %e, "slot waiters not read; the sweep will look");
                }
            };
            for id in waiting {
                match service.reevaluate(id).await {
                    Ok(Some(task)) if task.status == TaskStatus::Queued => {}
                    Ok(_) => return,
                    Err(e) => {
                        tracing::debug!(task = %id, error = %e, "slot waiter not moved; the sweep will")
                    }
                }
            }
        });
    }

    /// Puts a failed attempt's task in `waiting` until `at`, for its next
    /// attempt; its error stays until then.
    async fn schedule_retry(&self, id: TaskId, attempt: u32, at: DateTime<Utc>) -> Result<(), AppError> {
        let now = Utc::now();
        let waiting = self
            .update_task(id, |task| {
                if task.status != TaskStatus::Failed || task.attempt != attempt {
                    return Ok(None);
                }
                let mut next = task.clone();
                next.move_to(TaskStatus::Waiting, now);
                next.error = task.error.clone();
                next.run_at = Some(at);
                next.updated_at = now;
                Ok(Some(next))
            })
            .await?;
        if let Some(task) = waiting {
            tracing::info!(task = %id, attempt, retry_at = %at, "failed attempt to be retried automatically");
            self.metrics.task_moved(&task);
            self.events.publish(&Event::TaskUpdated(task));
            self.wake_at(id, at);
        }
        Ok(())
    }

    /// Looks at waiting task `id` again at `at` (the sweep covers a restart
    /// in between).
    pub(crate) fn wake_at(&self, id: TaskId, at: DateTime<Utc>) {
        let service = self.clone();
        let delay = (at - Utc::now()).to_std().unwrap_or_default();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            if let Err(e) = service.reevaluate(id).await {
                tracing::debug!(task = %id, error = %e, "waiting task not looked at; the sweep will");
            }
        });
    }

    /// Looks at a waiting task's dependencies again and moves it on if it
    /// can: queued (room permitting), failed, or waiting on fewer.
    pub async fn reevaluate(&self, id: TaskId) -> Result<Option<Task>, AppError> {
        let Some(stored) = self.db.get_task(id).await? else {
            return Ok(None);
        };
        if stored.task.status != TaskStatus::Waiting {
            return Ok(None);
        }
        let deps: Vec<Task> = self.db.get_task_values(&stored.task.depends_on).await?;
        let readiness = readiness(&stored.task, &deps, Utc::now());
        if let Readiness::NotBefore(at) = readiness
            && (at - Utc::now()).to_std().unwrap_or_default() < SWEEP_EVERY
        {
            // Sooner than the next sweep: a timer of its own.
            self.wake_at(id, at);
        }
        let admission = match readiness {
            // A full queue leaves it waiting; the sweep tries again.
            Readiness::Ready(_) => match self.queue.admit() {
                Ok(admission) => Some(admission),
                Err(_) => return Ok(None),
            },
            _ => None,
        };
        let now = Utc::now();
        let moved = self
            .update_task_from(id, Some(stored), |task| {
                if task.status != TaskStatus::Waiting {
                    return Ok(None);
                }
                let mut next = task.clone();
                match &readiness {
                    Readiness::Ready(upstream) => {
                        next.upstream = upstream.clone();
                        next.waiting_on.clear();
                        next.move_to(TaskStatus::Queued, now);
                    }
                    Readiness::Waiting(unfinished) if *unfinished != task.waiting_on => {
                        next.waiting_on = unfinished.clone();
                    }
                    Readiness::Waiting(_) => return Ok(None),
                    Readiness::NotBefore(_) if !task.waiting_on.is_empty() => next.waiting_on.clear(),
                    Readiness::NotBefore(_) => return Ok(None),
                    Readiness::UpstreamFailed(dependency, status) => {
                        next.move_to(TaskStatus::Failed, now);
                        next.error = Some(upstream_error(*dependency, *status));
                    }
                }
                next.updated_at = now;
                Ok(Some(next))
            })
            .await?;
        let Some(task) = moved else { return Ok(None) };
        if task.status == TaskStatus::Queued {
            let admission = admission.expect("admitted before a move to queued");
            self.queue
                .push(task.id, task.attempt, task.role.clone(), task.priority, admission)
                .await;
        }
        if task.status != TaskStatus::Waiting {
            self.metrics.task_moved(&task);
        }
        self.events.publish(&Event::TaskUpdated(task.clone()));
        self.release_dependents_of(&task);
        Ok(Some(task))
    }

    /// Every waiting task looked at again: at start-up, then every
    /// [`SWEEP_EVERY`] until `stop`.
    pub async fn sweep_waiting(self, stop: CancellationToken) {
        loop {
            match self.db.tasks_in_status(&[TaskStatus::Waiting]).await {
                Ok(waiting) => {
                    for stored in waiting {
                        if let Err(e) = self.reevaluate(stored.task.id).await {
                            tracing::debug!(task = %stored.task.id, error = %e, "waiting task not looked at; next sweep");
                        }
                    }
                }
                Err(e) => tracing::debug!(error = %e, "waiting tasks not read; next sweep"),
            }
            tokio::select! {
                () = tokio::time::sleep(SWEEP_EVERY) => {}
                () = stop.cancelled() => return,
            }
        }
    }
}
