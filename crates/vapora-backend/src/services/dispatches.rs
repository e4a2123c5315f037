//! The broker side of an attempt before any worker reports on it: which
//! queue entries still wait to go out, the dispatch marks stored once
//! JetStream acknowledged them, and attempts the broker lost after that
//! (see `broker::dispatcher`, `broker::dispatch_marks`, `broker::reconciler`).

use chrono::{DateTime, Utc};
use vapora_shared::{Task, TaskId, TaskStatus};

use super::TaskService;
use super::tasks::MAX_WRITE_RACES;
use crate::error::AppError;

impl TaskService {
    /// The tasks behind queue entries whose attempt still waits to be
    /// dispatched (not cancelled, superseded or already handed over), in
    /// the order asked.
    pub async fn awaiting_dispatch(&self, attempts: &[(TaskId, u32)]) -> Result<Vec<Task>, AppError> {
        let ids: Vec<TaskId> = attempts.iter().map(|(id, _)| *id).collect();
        // A task adopted by another replica (see `crate::replicas`) is that
        // replica's to dispatch now.
        let mut stored: std::collections::HashMap<TaskId, Task> = self
            .db
            .get_tasks(&ids)
            .await?
            .into_iter()
            .filter(|s| s.queued_on.as_deref().is_none_or(|on| on == &*self.replica))
            .map(|s| (s.task.id, s.task))
            .collect();
        Ok(attempts
            .iter()
            .filter_map(|(id, attempt)| stored.remove(id).filter(|t| t.attempt == *attempt))
            .filter(|t| t.status == TaskStatus::Queued && t.dispatched_at.is_none())
            .collect())
    }

    /// The broker acknowledged these attempts at `at`; their marks follow
    /// ([`Self::mark_dispatched`]).
    pub fn note_dispatched(&self, attempts: &[(TaskId, u32)], at: DateTime<Utc>) {
        self.dispatch_times.record(attempts, at);
    }

    /// Stores that the broker acknowledged these attempts at `at` (one
    /// transaction). Attempts a report of which was applied meanwhile (here,
    /// or, as the database tells, by another replica) are skipped, as are
    /// attempts no longer current. The mark is bookkeeping, not a move, so
    /// it is not announced on the WebSocket.
    pub async fn mark_dispatched(
        &self,
        acked: &[(TaskId, u32, u64)],
        at: DateTime<Utc>,
    ) -> Result<(), AppError> {
        let pairs: Vec<(TaskId, u32)> = acked.iter().map(|(id, attempt, _)| (*id, *attempt)).collect();
        let unmarked = self.dispatch_times.unmarked(&pairs);
        if unmarked.is_empty() {
            return Ok(());
        }
        let attempts: Vec<(TaskId, u32, u64)> = acked
            .iter()
            .filter(|(id, attempt, _)| unmarked.contains(&(*id, *attempt)))
            .copied()
            .collect();
        let marked = self.store_marks(&attempts, at).await;
        // Stored or not, the time has served: a report from now on stamps
        // its own.
        self.dispatch_times.forget(&unmarked);
        marked
    }

    async fn store_marks(&self, attempts: &[(TaskId, u32, u64)], at: DateTime<Utc>) -> Result<(), AppError> {
        // Workers' reports race with the mark; a conflict means some of
        // them got there first, and the next try skips those.
        for _ in 0..MAX_WRITE_RACES {
            if self.db.mark_dispatched(attempts, at).await? {
                return Ok(());
            }
        }
        Err(AppError::Conflict("dispatch marks kept conflicting".into()))
    }

    /// Attempts marked dispatched more than `for_at_least` ago whose task is
    /// still queued: `(task, attempt, stream sequence)`.
    pub async fn dispatched_but_waiting(
        &self,
        for_at_least: std::time::Duration,
    ) -> Result<Vec<(TaskId, u32, u64)>, AppError> {
        let before = Utc::now() - chrono::Duration::from_std(for_at_least).unwrap_or(chrono::Duration::MAX);
        Ok(self.db.dispatched_but_waiting(before).await?)
    }

    /// The broker lost `attempt` (see `broker::reconciler`): the task is
    /// queued again here under a new attempt, so that whatever the lost one
    /// might still report is stale.
    pub async fn redispatch_lost(&self, id: TaskId, attempt: u32) -> Result<Option<Task>, AppError> {
        let requeued = self
            .next_attempt(id, attempt, "re-dispatch", |task| {
                task.status == TaskStatus::Queued && task.dispatched_at.is_some()
            })
            .await?;
        if let Some(task) = &requeued {
            self.queue
                .push_recovered(task.id, task.attempt, task.role.clone(), task.priority)
                .await;
        }
        Ok(requeued)
    }
}
