//! A replica's lease, and the adoption of tasks waiting in the queue of a
//! replica that holds none (why and how: [`crate::replicas`]).

use std::time::Duration;

use vapora_shared::TaskStatus;

use super::TaskService;
use crate::error::AppError;

impl TaskService {
    /// Extends this replica's lease by `ttl`.
    pub async fn renew_lease(&self, ttl: Duration) -> Result<(), AppError> {
        Ok(self.db.renew_lease(&self.replica, ttl).await?)
    }

    /// Ends this replica's lease: what it still queues goes to the others.
    pub async fn release_lease(&self) -> Result<(), AppError> {
        Ok(self.db.release_lease(&self.replica).await?)
    }

    /// Takes over the tasks waiting in the queue of a replica that holds no
    /// lease, and queues them here; returns how many.
    pub async fn adopt_orphans(&self) -> Result<usize, AppError> {
        let ids = self.db.adopt_orphans(&self.replica).await?;
        if ids.is_empty() {
            return Ok(0);
        }
        let mut count = 0;
        for stored in self.db.get_tasks(&ids).await? {
            let task = stored.task;
            // Cancelled or moved since: nothing to queue.
            if task.status != TaskStatus::Queued || task.dispatched_at.is_some() {
                continue;
            }
            self.queue
                .push_recovered(task.id, task.attempt, task.role.clone(), task.priority)
                .await;
            count += 1;
        }
        Ok(count)
    }
}
