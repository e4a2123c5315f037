//! Tasks: creation, board moves, and the worker-side lifecycle.
//!
//! Every change is a read–decide–compare-and-set loop over the stored task
//! ([`TaskService::update_task`]): the decision is made against the state
//! actually stored, and a concurrent writer makes us re-read and decide
//! again rather than overwrite. Side effects (queue, cancellation, events)
//! happen only after the write won.
//!
//! Worker results are fenced by attempt: only the attempt the task is
//! currently on may move it, so a late answer from a superseded attempt is
//! logged and dropped.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use serde::Serialize;
use utoipa::ToSchema;
use vapora_agents::RoleCatalog;
use vapora_shared::lifecycle::UserChange;
use vapora_shared::{Event, NewTask, Task, TaskId, TaskPatch, TaskStatus};

use super::dispatch_times::DispatchTimes;
use crate::error::AppError;
use crate::events::EventBus;
use crate::metrics::Metrics;
use crate::queue::{Admission, SharedTaskQueue};
use crate::services::cancellations::RunningTasks;
use crate::storage::{
    Companion, Database, SlotWrite, StorageError, StoredTask, TaskFilter, TaskInsert, TaskInserts, TaskWrite,
};
use crate::workflows::runs::RunFollower;

/// Lost compare-and-set races tolerated before giving up with a conflict.
pub(super) const MAX_WRITE_RACES: usize = 32;

#[derive(Debug, Clone)]
pub struct TaskService {
    pub(super) db: Database,
    inserts: TaskInserts,
    pub(super) queue: SharedTaskQueue,
    pub(super) events: EventBus,
    roles: RoleCatalog,
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

    pub async fn create(&self, mut new: NewTask) -> Result<Task, AppError> {
        self.apply_role_defaults(&mut new);
        let dispatch = new.dispatch;
        let task = new.into_task(Utc::now())?;
        self.create_task(task, dispatch).await
    }

    /// Fills in the retry policy the task's role sets (`config/roles.toml`)
    /// where the request gives none.
    pub fn apply_role_defaults(&self, new: &mut NewTask) {
        let defaults = self.roles.retry_defaults(&new.role);
        new.max_attempts = new.max_attempts.or(defaults.max_attempts);
        new.retry_backoff_secs = new.retry_backoff_secs.or(defaults.retry_backoff_secs);
    }

    /// Stores a task built from a valid request (its role and dependencies
    /// are checked here), queued, waiting or in `todo` as `dispatch` and
    /// its dependencies say; announced once stored.
    pub async fn create_task(&self, mut task: Task, dispatch: bool) -> Result<Task, AppError> {
        self.check_role(&task.role)?;
        let deps = self.dependencies_of(task.project_id, &task.depends_on).await?;
        let start = Self::place_new(&mut task, &deps, dispatch);
        // Take queue room before storing anything: a full queue refuses the
        // task outright instead of storing one that can never run.
        let admission = if start == TaskStatus::Queued {
            let admission = self.admit()?;
            task.move_to(TaskStatus::Queued, task.created_at);
            Some(admission)
        } else {
            if start != TaskStatus::Todo {
                task.move_to(start, task.created_at);
            }
            None
        };
        // Stored, announced and queued by a task of its own: a client that
        // goes away while its write waits in a batch cannot leave the task
        // stored as queued but missing from the queue.
        let service = self.clone();
        let stored = async move { service.store_new(task, admission).await };
        // In the request's span: the queue entry carries its trace on.
        let task = tokio::spawn(tracing::Instrument::in_current_span(stored))
            .await
            .unwrap_or(Err(AppError::Storage(StorageError::WriterStopped)))?;
        if task.status == TaskStatus::Waiting {
            // A dependency that finished while this was being stored did
            // not see it waiting: look once more.
            let service = self.clone();
            tokio::spawn(async move { service.reevaluate(task.id).await });
        }
        Ok(task)
    }

    /// Stores a new task with no dependencies in a transaction of its own
    /// that also writes `also` (a schedule's slot claim): `None` when the
    /// claim was lost and nothing was stored.
    pub(crate) async fn create_with(
        &self,
        mut task: Task,
        also: &Companion,
    ) -> Result<Option<Task>, AppError> {
        self.check_role(&task.role)?;
        let start = Self::place_new(&mut task, &[], true);
        let admission = if start == TaskStatus::Queued {
            Some(self.admit()?)
        } else {
            None
        };
        task.move_to(start, task.created_at);
        match self
            .db
            .insert_tasks_with(std::slice::from_ref(&task), &self.replica, also)
            .await?
        {
            TaskInsert::Stored => {
                let task = self.announce_new(task, admission).await;
                if task.status == TaskStatus::Waiting {
                    let (service, id) = (self.clone(), task.id);
                    tokio::spawn(async move { service.reevaluate(id).await });
                }
                Ok(Some(task))
            }
            TaskInsert::SlotTaken => Ok(None),
            TaskInsert::UnknownProject => Err(AppError::unprocessable(
                "unknown_project",
                format!("project {} does not exist", task.project_id),
            )),
        }
    }

    async fn store_new(&self, task: Task, admission: Option<Admission>) -> Result<Task, AppError> {
        if !self.inserts.insert(task.clone()).await? {
            return Err(AppError::unprocessable(
                "unknown_project",
                format!("project {} does not exist", task.project_id),
            ));
        }
        Ok(self.announce_new(task, admission).await)
    }

    /// A task just stored: announced, counted, and queued (with the room
    /// `admission` took) or woken at its `run_at`.
    pub(crate) async fn announce_new(&self, task: Task, admission: Option<Admission>) -> Task {
        if task.status == TaskStatus::Waiting
            && let Some(at) = task.run_at
        {
            self.wake_at(task.id, at);
        }
        self.events.publish(&Event::TaskCreated(task.clone()));
        self.metrics.task_created();
        if let Some(admission) = admission {
            self.queue
                .push(task.id, task.attempt, task.role.clone(), task.priority, admission)
                .await;
        }
        task
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

    pub async fn patch(&self, id: TaskId, patch: TaskPatch) -> Result<Task, AppError> {
        if let Some(role) = &patch.role {
            self.check_role(role)?;
        }
        self.apply_user_change(id, UserChange::Patch(patch)).await
    }

    pub async fn cancel(&self, id: TaskId) -> Result<Task, AppError> {
        self.apply_user_change(id, UserChange::Cancel).await
    }

    pub async fn retry(&self, id: TaskId) -> Result<Task, AppError> {
        self.apply_user_change(id, UserChange::Retry).await
    }

    /// Accepts the result of a task in review: it is done.
    pub async fn approve(&self, id: TaskId) -> Result<Task, AppError> {
        self.apply_user_change(id, UserChange::Approve).await
    }

    /// Sends the result of a task in review back with `comment`: it runs
    /// again as a new attempt whose prompt carries the comment and the
    /// rejected output.
    pub async fn reject(&self, id: TaskId, comment: String) -> Result<Task, AppError> {
        self.apply_user_change(id, UserChange::Reject { comment }).await
    }

    async fn apply_user_change(&self, id: TaskId, change: UserChange) -> Result<Task, AppError> {
        let mut admission: Option<Admission> = None;
        let now = Utc::now();
        let mut before: Option<Task> = None;
        let readiness = self.readiness_for_queueing(id, &change).await?;
        let after = self
            .update_task(id, |task| {
                before = Some(task.clone());
                let mut next = change.apply(task, now)?;
                if next.status == TaskStatus::Queued
                    && let Some(readiness) = &readiness
                {
                    Self::queue_or_wait(task, &mut next, readiness)?;
                }
                if next.status == TaskStatus::Queued
                    && task.status != TaskStatus::Queued
                    && admission.is_none()
                {
                    // Room in the queue first: nothing is written if full.
                    admission = Some(self.admit()?);
                }
                Ok(Some(next))
            })
            .await?;
        // No write: the task already waits for a slot of its concurrency key.
        let Some(after) = after else {
            return self.get(id).await;
        };
        let before = before.expect("update_task read the task");
        self.follow_user_change(&before, &after, admission).await;
        if before.status != after.status {
            self.metrics.task_moved(&after);
        }
        self.events.publish(&Event::TaskUpdated(after.clone()));
        self.release_dependents_of(&after);
        Ok(after)
    }

    /// The queue and the workers follow a person's change, once it is stored.
    async fn follow_user_change(&self, before: &Task, after: &Task, admission: Option<Admission>) {
        match (before.status, after.status) {
            (from, TaskStatus::Queued) if from != TaskStatus::Queued => {
                let admission = admission.expect("admitted for a move to queued");
                self.queue
                    .push(
                        after.id,
                        after.attempt,
                        after.role.clone(),
                        after.priority,
                        admission,
                    )
                    .await;
            }
            (TaskStatus::Queued, TaskStatus::Queued)
                if before.role != after.role || before.priority != after.priority =>
            {
                self.queue
                    .requeue_as(after.id, after.role.clone(), after.priority)
                    .await;
            }
            (TaskStatus::Queued, TaskStatus::Queued) => {}
            (TaskStatus::Queued, _) => {
                // Still in our queue, or already handed to a worker that
                // has not reported yet: stop it either way.
                let was_waiting_here = self.queue.remove(after.id).await;
                if !was_waiting_here && before.dispatched_at.is_some() {
                    self.running.cancel(after.id, before.attempt).await;
                }
            }
            (TaskStatus::Running, TaskStatus::Cancelled) => {
                self.running.cancel(after.id, before.attempt).await;
            }
            _ => {}
        }
    }

    /// Puts a running attempt back in `queued` under a new attempt, without
    /// queueing it in memory: used when this process stops mid-task, so the
    /// next start (or another replica) picks it up.
    pub async fn interrupt_attempt(&self, id: TaskId, attempt: u32) -> Result<Option<Task>, AppError> {
        self.next_attempt(id, attempt, "interrupt", |task| {
            task.status == TaskStatus::Running
        })
        .await
    }

    /// Moves the task from `attempt` to a new attempt, `queued`, if it is
    /// still on that attempt and `applies` to it; publishes the change.
    /// `None` when the task has moved on (logged as a stale `what`).
    pub(super) async fn next_attempt(
        &self,
        id: TaskId,
        attempt: u32,
        what: &str,
        applies: impl Fn(&Task) -> bool,
    ) -> Result<Option<Task>, AppError> {
        let now = Utc::now();
        let requeued = self
            .update_task(id, |task| {
                if task.attempt != attempt || !applies(task) {
                    return Ok(None);
                }
                let mut next = task.clone();
                next.move_to(TaskStatus::Queued, now);
                next.updated_at = now;
                Ok(Some(next))
            })
            .await;
        self.publish_worker_change(id, attempt, what, requeued)
    }

    pub(super) fn publish_worker_change(
        &self,
        id: TaskId,
        attempt: u32,
        what: &str,
        change: Result<Option<Task>, AppError>,
    ) -> Result<Option<Task>, AppError> {
        match &change {
            Ok(Some(task)) => {
                self.metrics.task_moved(task);
                self.events.publish(&Event::TaskUpdated(task.clone()));
                self.release_dependents_of(task);
            }
            Ok(None) => tracing::info!(task = %id, attempt, "stale {what} for a superseded attempt ignored"),
            Err(_) => {}
        }
        change
    }

    /// Start-up recovery: work that was queued or running when the process
    /// stopped goes back in the queue.
    ///
    /// With in-process workers, attempts handed to them died with the
    /// process: running ones get a new attempt number (their old worker can
    /// no longer report), and both are queued here again. With remote
    /// workers (`remote_workers`), those attempts go on without us: their
    /// reports wait in the broker. Tasks that never left a queue are adopted
    /// as any orphan is (`crate::replicas`): ours from before the restart,
    /// and those of replicas that are gone.
    pub async fn requeue_interrupted_work(&self, remote_workers: bool) -> Result<usize, AppError> {
        let mut count = 0;
        if !remote_workers {
            let pending = self
                .db
                .tasks_in_status(&[TaskStatus::Queued, TaskStatus::Running])
                .await?;
            for stored in pending {
                let mut task = stored.task;
                if task.status == TaskStatus::Queued && task.dispatched_at.is_none() {
                    continue;
                }
                if task.status == TaskStatus::Running {
                    let attempt = task.attempt;
                    match self.interrupt_attempt(task.id, attempt).await? {
                        Some(requeued) => task = requeued,
                        None => continue,
                    }
                }
                self.queue
                    .push_recovered(task.id, task.attempt, task.role.clone(), task.priority)
                    .await;
                count += 1;
            }
        }
        self.renew_lease(crate::replicas::LEASE_TTL).await?;
        Ok(count + self.adopt_orphans().await?)
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

#[cfg(test)]
mod tests {
    use vapora_shared::testing::{new_project, new_task};

    use super::*;
    use crate::services::cancellations::RunningTasks;

    #[tokio::test]
    async fn a_create_whose_caller_gives_up_is_still_stored_announced_and_queued() {
        let db = Database::connect("mem://").await.unwrap();
        let project = new_project().into_project(Utc::now()).unwrap();
        db.insert_project(&project, None).await.unwrap();
        let queue = SharedTaskQueue::new(16);
        let events = EventBus::new(16, 16);
        let mut announced = events.subscribe();
        let service = TaskService::new(
            db.clone(),
            queue.clone(),
            events,
            RoleCatalog::builtin(),
            RunningTasks::default(),
            Metrics::default(),
            "replica-a".into(),
        );
        let create = service.create(new_task(project.id));
        // Polled once, then dropped, like a handler whose client went away.
        assert!(futures::FutureExt::now_or_never(create).is_none());

        let published = tokio::time::timeout(Duration::from_secs(5), announced.recv())
            .await
            .expect("announced")
            .unwrap();
        let event: serde_json::Value = serde_json::from_str(published.json.as_str()).unwrap();
        let id: TaskId = serde_json::from_value(event["data"]["id"].clone()).expect("a task event");
        assert_eq!(
            db.get_task(id).await.unwrap().unwrap().task.status,
            TaskStatus::Queued
        );
        assert_eq!(queue.depth().await, 1);
    }
}
