//! Where a cancellation goes: to the tasks running in this process and, with
//! a broker, to remote workers.
//!
//! A local worker registers a token before it claims a task;
//! `POST /tasks/{id}/cancel` trips it, which drops the in-flight LLM stream
//! (and with it the provider connection). With a broker, the same cancel is
//! also published on `vapora.cancel.<task_id>` naming the attempt, which the
//! worker running it listens on. The token map is behind a
//! `std::sync::Mutex` because every access is a quick insert/remove/lookup
//! with no `.await` while it is held.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use tokio_util::sync::CancellationToken;
use vapora_shared::TaskId;
use vapora_shared::wire::{CancelRequest, cancel_subject};

#[derive(Debug, Clone, Default)]
pub struct RunningTasks {
    tokens: Arc<Mutex<HashMap<TaskId, CancellationToken>>>,
    /// Set when a broker connects.
    broker: Arc<OnceLock<async_nats::Client>>,
}

impl RunningTasks {
    /// A token for `task`, cancelled by [`Self::cancel`].
    pub fn register(&self, task: TaskId) -> CancellationToken {
        let token = CancellationToken::new();
        self.lock().insert(task, token.clone());
        token
    }

    pub fn remove(&self, task: TaskId) {
        self.lock().remove(&task);
    }

    /// Sends cancellations to remote workers too, from now on.
    pub fn reach_remote_workers(&self, client: async_nats::Client) {
        let _ = self.broker.set(client);
    }

    /// Cancels `attempt` of the task wherever it runs. Returns whether it
    /// ran here; a remote worker is told without waiting for an answer
    /// (core NATS, at most once): if it misses the message, its next report
    /// finds the attempt stale and it is told again.
    pub async fn cancel(&self, task: TaskId, attempt: u32) -> bool {
        let local = match self.lock().get(&task) {
            Some(token) => {
                token.cancel();
                true
            }
            None => false,
        };
        if let Some(client) = self.broker.get() {
            let request = CancelRequest {
                task_id: task,
                attempt,
            };
            let payload = serde_json::to_vec(&request).expect("serializable");
            if let Err(e) = client.publish(cancel_subject(task), payload.into()).await {
                tracing::warn!(task = %task, error = %e, "could not publish a cancellation");
            }
        }
        local
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<TaskId, CancellationToken>> {
        // A panic elsewhere cannot leave this map half-updated (every
        // operation is a single call), so a poisoned lock is safe to reuse.
        self.tokens.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
