//! Tasks: the service every change to a task goes through, and the one way
//! it writes.
//!
//! Every change is a read–decide–compare-and-set loop over the stored task
//! ([`TaskService::update_task`]): the decision is made against the state
//! actually stored, and a concurrent writer makes us re-read and decide
//! again rather than overwrite. Side effects (queue, cancellation, events)
//! happen only after the write won.
//!
//! What decides lives beside this module: creation in
//! [`super::task_creation`], people's moves in [`super::user_moves`],
//! workers' reports in [`super::worker_reports`] (fenced by attempt: only
//! the attempt the task is currently on may move it), new attempts and
//! start-up recovery in [`super::attempts`], and waiting in
//! [`super::waiting`].

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use utoipa::ToSchema;
use vapora_agents::RoleCatalog;
use vapora_shared::{Task, TaskId, TaskStatus};

use super::dispatch_times::DispatchTimes;
use crate::error::AppError;
use crate::events::EventBus;
use crate::metrics::Metrics;
use crate::queue::{Admission, SharedTaskQueue};
use crate::services::cancellations::RunningTasks;
use crate::storage::{Database, SlotWrite, StoredTask, TaskFilter, TaskInserts, TaskWrite};
use crate::workflows::runs::RunFollower;

/// Lost compare-and-set races tolerated before giving up with a conflict.
pub(super) const MAX_WRITE_RACES: usize = 32;

#[derive(Debug, Clone)]
pub struct TaskService {
    pub(super) db: Database,
    pub(super) inserts: TaskInserts,
    pub(super) queue: SharedTaskQueue,
    pub(super) events: EventBus,
    pub(super) roles: RoleCatalog,
    pub(super) running: RunningTasks,
    pub(super) metrics: Metrics,
    pub(super) dispatch_times: DispatchTimes,
    /// Recomputes the workflow runs whose stages this replica moved.
    pub(super) run_follower: RunFollower,
    /// This replica's name: tasks it queues are queued on it (`crate::replicas`).
    pub(super) replica: Arc<str>,
}

/// One page of `GET /api/v1/tasks`.
#[derive(Debug, Serialize, ToSchema)]
pub struct TaskPage {
    pub items: Vec<Task>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<TaskId>,
}

impl TaskService {
    pub fn new(
        db: Database,
        queue: SharedTaskQueue,
        events: EventBus,
        roles: RoleCatalog,
        running: RunningTasks,
        metrics: Metrics,
        replica: Arc<str>,
    ) -> Self {
        Self {
            inserts: TaskInserts::new(db.clone(), replica.clone()),
            run_follower: RunFollower::new(db.clone(), events.clone()),
            db,
            queue,
            events,
            roles,
            running,
            metrics,
            dispatch_times: DispatchTimes::default(),
            replica,
        }
    }

    /// This replica's name in leases and task records.
    pub fn replica(&self) -> &str {
        &self.replica
    }

    pub fn roles(&self) -> &RoleCatalog {
        &self.roles
    }

    /// Where cancellations go.
    pub fn running_tasks(&self) -> &RunningTasks {
        &self.running
    }

    pub(crate) fn check_role(&self, role: &vapora_shared::Role) -> Result<(), AppError> {
        if self.roles.contains(role) {
            return Ok(());
        }
        let known: Vec<&str> = self.roles.roles().map(|r| r.as_str()).collect();
        Err(AppError::unprocessable(
            "unknown_role",
            format!("unknown role {role:?}; known roles: {}", known.join(", ")),
        ))
    }

    pub(crate) fn admit(&self) -> Result<Admission, AppError> {
        self.queue.admit().map_err(|_| AppError::QueueFull {
            capacity: self.queue.capacity(),
            retry_after: Duration::from_secs(1),
        })
    }

    pub async fn get(&self, id: TaskId) -> Result<Task, AppError> {
        Ok(self
            .db
            .get_task(id)
            .await?
            .ok_or_else(|| AppError::not_found("task", id))?
            .task)
    }

    pub async fn list(&self, mut filter: TaskFilter) -> Result<TaskPage, AppError> {
        let limit = filter.limit;
        filter.limit = limit + 1;
        let mut items = self.db.list_tasks(&filter).await?;
        let next_cursor = super::page::cut(&mut items, limit, |t| t.id);
        Ok(TaskPage { items, next_cursor })
    }
    /// Read, let `decide` compute the next state, and write it if nobody
    /// wrote in between; on a lost race, start over from a fresh read.
    /// `decide` returning `Ok(None)` means "nothing to write".
    pub(super) async fn update_task(
        &self,
        id: TaskId,
        decide: impl FnMut(&Task) -> Result<Option<Task>, AppError>,
    ) -> Result<Option<Task>, AppError> {
        self.update_task_from(id, None, decide).await
    }

    /// As [`Self::update_task`], deciding first on `read`, the task as the
    /// caller just read it (a lost race reads it again).
    pub(super) async fn update_task_from(
        &self,
        id: TaskId,
        mut read: Option<StoredTask>,
        mut decide: impl FnMut(&Task) -> Result<Option<Task>, AppError>,
    ) -> Result<Option<Task>, AppError> {
        for _ in 0..MAX_WRITE_RACES {
            let stored = match read.take() {
                Some(stored) => stored,
                None => self
                    .db
                    .get_task(id)
                    .await?
                    .ok_or_else(|| AppError::not_found("task", id))?,
            };
            let Some(mut next) = decide(&stored.task)? else {
                return Ok(None);
            };
            let enters_queue = next.status == TaskStatus::Queued
                && (stored.task.status != TaskStatus::Queued || stored.task.attempt != next.attempt);
            if enters_queue {
                next.waiting_for_slot = false;
            }
            let slot = next.concurrency.clone().filter(|_| enters_queue);
            let mut write = TaskWrite::from_stored(&stored, next);
            if enters_queue {
                write.queued_on = Some(self.replica.to_string());
            }
            let written = match slot {
                None => self.db.replace_task(&write).await?,
                Some(slot) => match self
                    .db
                    .replace_task_in_slot(&write, &slot.key, slot.limit)
                    .await?
                {
                    SlotWrite::Written => true,
                    SlotWrite::Raced => false,
                    // Every slot of its key is held: it waits for one,
                    // keeping its attempt number for when it is queued.
                    SlotWrite::NoSlot if stored.task.waiting_for_slot => return Ok(None),
                    SlotWrite::NoSlot => {
                        let mut waiting = write.next.clone();
                        waiting.status = TaskStatus::Waiting;
                        waiting.attempt = stored.task.attempt;
                        waiting.waiting_for_slot = true;
                        write = TaskWrite::from_stored(&stored, waiting);
                        self.db.replace_task(&write).await?
                    }
                },
            };
            if written {
                return Ok(Some(write.next));
            }
        }
        Err(AppError::Conflict(format!(
            "task {id} is changing too fast; try again"
        )))
    }
}
