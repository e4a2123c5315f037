//! Moves people make on a task: edit, cancel, retry, approve, reject.
//!
//! The rules for each move are [`vapora_shared::lifecycle::UserChange`];
//! this module applies them through the compare-and-set write, takes queue
//! room before a move into `queued` is written (a full queue refuses the
//! move, nothing changes), and afterwards makes the queue and the workers
//! follow: queue, requeue with a new role or priority, or stop the attempt.

use chrono::Utc;
use vapora_shared::lifecycle::UserChange;
use vapora_shared::{Event, Task, TaskId, TaskPatch, TaskStatus};

use super::TaskService;
use crate::error::AppError;
use crate::queue::Admission;

impl TaskService {
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
}
