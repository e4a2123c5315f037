//! Cancellation handles of the tasks running in this process.
//!
//! A worker registers a token before it claims a task; `POST /tasks/{id}/cancel`
//! trips it, which drops the in-flight LLM stream (and with it the provider
//! connection). The map is behind a `std::sync::Mutex` because every access
//! is a quick insert/remove/lookup with no `.await` while it is held.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio_util::sync::CancellationToken;
use vapora_shared::TaskId;

#[derive(Debug, Clone, Default)]
pub struct RunningTasks {
    tokens: Arc<Mutex<HashMap<TaskId, CancellationToken>>>,
}

impl RunningTasks {
    /// A token for `task`, cancelled by [`Self::cancel`] or with `parent`.
    pub fn register(&self, task: TaskId, parent: &CancellationToken) -> CancellationToken {
        let token = parent.child_token();
        self.lock().insert(task, token.clone());
        token
    }

    pub fn remove(&self, task: TaskId) {
        self.lock().remove(&task);
    }

    /// Cancels the task if it runs here; returns whether it did.
    pub fn cancel(&self, task: TaskId) -> bool {
        match self.lock().get(&task) {
            Some(token) => {
                token.cancel();
                true
            }
            None => false,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<TaskId, CancellationToken>> {
        // A panic elsewhere cannot leave this map half-updated (every
        // operation is a single call), so a poisoned lock is safe to reuse.
        self.tokens.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
