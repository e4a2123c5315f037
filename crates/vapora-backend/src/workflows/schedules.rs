//! Recurring schedules: a cron expression (UTC, parsed by `croner`) whose
//! slots each start a task or a workflow run.
//!
//! Every replica ticks every [`TICK`] and fires the schedules that are
//! due. Firing stores what the slot starts and moves the schedule to its
//! next slot in one transaction, conditional on the schedule still being
//! due at that slot (`storage::schedules`): so a slot fires once across
//! replicas, and a replica dying mid-way leaves it due rather than lost.
//!
//! Catch-up: a backend that finds several slots passed (none ran for a
//! while) fires the latest one, once, and counts the others as `skipped`;
//! a schedule resumes, it does not replay an outage. A slot whose start
//! fails for good (its project or template is gone) is skipped with the
//! reason in `last_error`; one refused by a full queue stays due and is
//! tried on the next tick.

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use croner::Cron;
use tokio_util::sync::CancellationToken;
use vapora_shared::{NewSchedule, ProjectId, Schedule, ScheduleId};

use super::WorkflowService;
use crate::error::AppError;
use crate::services::TaskService;
use crate::storage::{Companion, Database, SlotClaim};

/// How often each replica looks for due schedules: the most a slot fires late.
pub const TICK: Duration = Duration::from_millis(100);
/// Missed slots counted, at most, when catching up after a long outage.
const MAX_COUNTED_MISSES: usize = 100_000;

#[derive(Debug, Clone)]
pub struct ScheduleService {
    db: Database,
    tasks: TaskService,
    workflows: WorkflowService,
}

fn parse_cron(expression: &str) -> Result<Cron, AppError> {
    Cron::from_str(expression.trim())
        .map_err(|e| AppError::unprocessable("invalid_cron", format!("cron {expression:?}: {e}")))
}

/// The first slot of `cron` strictly after `after`.
fn next_slot(cron: &Cron, after: DateTime<Utc>) -> Result<DateTime<Utc>, AppError> {
    cron.find_next_occurrence(&after, false).map_err(|e| {
        AppError::unprocessable(
            "invalid_cron",
            format!("cron {:?} has no next slot: {e}", cron.pattern.to_string()),
        )
    })
}

/// The slot to fire when the schedule has been due since `due`: the latest
/// slot not after `now`, and how many earlier ones it passes over.
fn latest_due(cron: &Cron, due: DateTime<Utc>, now: DateTime<Utc>) -> (DateTime<Utc>, u64) {
    let latest = cron
        .find_previous_occurrence(&now, true)
        .ok()
        .filter(|slot| *slot > due)
        .unwrap_or(due);
    let passed = cron
        .iter_from(due, croner::Direction::Forward)
        .take_while(|slot| *slot < latest)
        .take(MAX_COUNTED_MISSES)
        .count();
    (latest, passed as u64)
}

impl ScheduleService {
    pub fn new(db: Database, tasks: TaskService, workflows: WorkflowService) -> Self {
        Self { db, tasks, workflows }
    }

    /// Checks and stores a schedule; its first slot is the first after now.
    pub async fn create(&self, new: NewSchedule) -> Result<Schedule, AppError> {
        let cron = parse_cron(&new.cron)?;
        let project_id = self.check_target(&new).await?;
        if self.db.get_project(project_id).await?.is_none() {
            return Err(AppError::unprocessable(
                "unknown_project",
                format!("project {project_id} does not exist"),
            ));
        }
        let now = Utc::now();
        let name = new.name.clone().unwrap_or_else(|| new.cron.clone());
        vapora_shared::task::validate_text("name", &name, vapora_shared::task::MAX_TITLE_LEN, false)?;
        let schedule = Schedule {
            id: ScheduleId::new(),
            project_id,
            name,
            cron: new.cron.trim().to_owned(),
            task: new.task,
            workflow: new.workflow,
            next_fire_at: next_slot(&cron, now)?,
            last_slot: None,
            last_fired_at: None,
            fired: 0,
            skipped: 0,
            last_error: None,
            created_at: now,
        };
        self.db.insert_schedule(&schedule).await?;
        tracing::info!(schedule = %schedule.id, cron = %schedule.cron, first = %schedule.next_fire_at, "schedule created");
        Ok(schedule)
    }

    /// What each slot starts, checked as a create of it would be; its project.
    async fn check_target(&self, new: &NewSchedule) -> Result<ProjectId, AppError> {
        let refuse = |reason: &str| {
            Err(AppError::Validation(vapora_shared::ValidationError {
                field: "schedule",
                reason: reason.into(),
            }))
        };
        match (&new.task, &new.workflow) {
            (Some(task), None) => {
                if !task.depends_on.is_empty() || task.run_at.is_some() {
                    return refuse(
                        "a scheduled task has no depends_on or run_at: its slot says when it runs",
                    );
                }
                let mut task = task.clone();
                self.tasks.apply_role_defaults(&mut task);
                let built = task.into_task(Utc::now())?;
                self.tasks.check_role(&built.role)?;
                Ok(built.project_id)
            }
            (None, Some(run)) => {
                if run.run_at.is_some() {
                    return refuse("a scheduled workflow has no run_at: its slot says when it runs");
                }
                let template = self
                    .workflows
                    .templates()
                    .get(&run.template)
                    .await?
                    .ok_or_else(|| {
                        AppError::unprocessable(
                            "unknown_template",
                            format!("no workflow template is named {:?}", run.template),
                        )
                    })?;
                template.check_inputs(&run.inputs)?;
                Ok(run.project_id)
            }
            _ => refuse("give exactly one of task and workflow"),
        }
    }

    pub async fn get(&self, id: ScheduleId) -> Result<Schedule, AppError> {
        self.db
            .get_schedule(id)
            .await?
            .ok_or_else(|| AppError::not_found("schedule", id))
    }

    pub async fn list(&self, projects: Option<&[ProjectId]>) -> Result<Vec<Schedule>, AppError> {
        Ok(self.db.list_schedules(projects).await?)
    }

    pub async fn delete(&self, id: ScheduleId) -> Result<(), AppError> {
        if !self.db.delete_schedule(id).await? {
            return Err(AppError::not_found("schedule", id));
        }
        tracing::info!(schedule = %id, "schedule deleted");
        Ok(())
    }

    /// Fires what is due, every [`TICK`], until `stop`.
    pub async fn run(self, stop: CancellationToken) {
        loop {
            match self.db.due_schedules(Utc::now()).await {
                Ok(due) => {
                    for schedule in due {
                        self.fire(schedule).await;
                    }
                }
                Err(e) => tracing::debug!(error = %e, "due schedules not read; next tick"),
            }
            tokio::select! {
                () = tokio::time::sleep(TICK) => {}
                () = stop.cancelled() => return,
            }
        }
    }

    /// Fires the latest due slot of `schedule`, unless another replica
    /// does first.
    async fn fire(&self, schedule: Schedule) {
        let now = Utc::now();
        let Ok(cron) = parse_cron(&schedule.cron) else {
            return;
        };
        let (slot, skipped) = latest_due(&cron, schedule.next_fire_at, now);
        let Ok(next) = next_slot(&cron, now) else {
            return;
        };
        let claim = SlotClaim {
            id: schedule.id,
            slot,
            expected_due_ms: schedule.next_fire_at.timestamp_millis(),
            next_fire_at: next,
            due_ms: next.timestamp_millis(),
            at: now,
            skipped,
        };
        match self.start(&schedule, &claim, now).await {
            Ok(Some(started)) => {
                tracing::info!(schedule = %schedule.id, slot = %slot, skipped, started = %started, "schedule fired")
            }
            Ok(None) => {
                tracing::debug!(schedule = %schedule.id, slot = %slot, "slot fired by another replica")
            }
            Err(AppError::QueueFull { .. }) => {
                tracing::debug!(schedule = %schedule.id, slot = %slot, "queue full; the slot stays due")
            }
            Err(AppError::BadRequest {
                code: "unknown_project",
                ..
            }) => {
                // Its project was deleted (which deletes its schedules) as it fired.
                let _ = self.db.delete_schedule(schedule.id).await;
            }
            Err(e) => {
                tracing::warn!(schedule = %schedule.id, slot = %slot, error = %e, "schedule slot started nothing");
                if let Err(e) = self.db.skip_slot(&claim, &e.to_string()).await {
                    tracing::debug!(schedule = %schedule.id, error = %e, "failed slot not skipped; next tick");
                }
            }
        }
    }

    /// Stores what the slot starts with its claim: the started task's or
    /// run's id, or `None` when the claim was lost.
    async fn start(
        &self,
        schedule: &Schedule,
        claim: &SlotClaim,
        now: DateTime<Utc>,
    ) -> Result<Option<String>, AppError> {
        if let Some(task) = &schedule.task {
            let mut request = task.clone();
            request.dispatch = true;
            self.tasks.apply_role_defaults(&mut request);
            let mut task = request.into_task(now)?;
            task.schedule_id = Some(schedule.id);
            let also = Companion {
                create: None,
                claim: Some(claim.to_value()?),
            };
            return Ok(self
                .tasks
                .create_with(task, &also)
                .await?
                .map(|t| t.id.to_string()));
        }
        if let Some(run) = &schedule.workflow {
            let started = self.workflows.create_claiming(run.clone(), Some(claim)).await?;
            return Ok(started.map(|r| r.id.to_string()));
        }
        Err(AppError::Conflict("the schedule starts nothing".into()))
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn an_outage_fires_the_latest_missed_slot_and_counts_the_others() {
        let every_minute = parse_cron("* * * * *").unwrap();
        let due = Utc.with_ymd_and_hms(2026, 1, 1, 10, 0, 0).unwrap();
        let now = Utc.with_ymd_and_hms(2026, 1, 1, 10, 5, 30).unwrap();
        let (slot, skipped) = latest_due(&every_minute, due, now);
        assert_eq!(slot, Utc.with_ymd_and_hms(2026, 1, 1, 10, 5, 0).unwrap());
        assert_eq!(skipped, 5, "10:00 to 10:04 are passed over");
        let on_time = latest_due(&every_minute, due, due + chrono::Duration::milliseconds(80));
        assert_eq!(on_time, (due, 0));
    }

    #[test]
    fn six_fields_are_seconds_and_nonsense_is_refused() {
        let every_second = parse_cron("* * * * * *").unwrap();
        let t = Utc.with_ymd_and_hms(2026, 1, 1, 10, 0, 0).unwrap();
        assert_eq!(
            next_slot(&every_second, t).unwrap(),
            t + chrono::Duration::seconds(1)
        );
        assert!(parse_cron("every tuesday").is_err());
        assert!(parse_cron("61 * * * *").is_err());
    }
}
