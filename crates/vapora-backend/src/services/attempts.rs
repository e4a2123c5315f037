//! New attempts that no worker's report asks for: an attempt interrupted by
//! this process stopping, one dispatched again after its worker went quiet
//! ([`super::dispatches`]), and start-up recovery of the work a stopped
//! process left queued or running. Also how a worker-side change is
//! published, shared with [`super::worker_reports`].
//!
//! A new attempt number fences off the old one: whatever its worker still
//! reports is stale and dropped.

use chrono::Utc;
use vapora_shared::{Event, Task, TaskId, TaskStatus};

use super::TaskService;
use crate::error::AppError;

impl TaskService {
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
}
