//! Creating tasks. A request's task is checked (role, dependencies),
//! placed (`queued`, `waiting` for dependencies or its `run_at`, or `todo`),
//! stored, and only then announced and queued.
//!
//! Queue room is taken before anything is stored, so a full queue refuses a
//! task outright instead of storing one that can never run; and the store
//! runs in a task of its own, so a client that goes away mid-request cannot
//! leave a task stored as queued but missing from the queue.

use chrono::Utc;
use vapora_shared::{Event, NewTask, Task, TaskStatus};

use super::TaskService;
use crate::error::AppError;
use crate::queue::Admission;
use crate::storage::{Companion, StorageError, TaskInsert};

impl TaskService {
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
}

#[cfg(test)]
mod tests {
    use vapora_shared::TaskId;
    use vapora_shared::testing::{new_project, new_task};

    use std::time::Duration;

    use vapora_agents::RoleCatalog;

    use super::*;
    use crate::events::EventBus;
    use crate::metrics::Metrics;
    use crate::queue::SharedTaskQueue;
    use crate::services::cancellations::RunningTasks;
    use crate::storage::Database;

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
