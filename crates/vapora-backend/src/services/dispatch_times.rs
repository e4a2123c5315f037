//! When the broker acknowledged recent attempts, until their dispatch mark
//! is stored.
//!
//! Dispatch marks are written a moment late (see `broker::dispatch_marks`),
//! and usually a worker's `started` is applied first. That report stamps
//! the task's `dispatched_at` with the time kept here, so the stored time is
//! still the broker's acknowledgement and not the worker's start.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use vapora_shared::TaskId;

/// Per task: the attempt acknowledged, and when.
type Acked = HashMap<TaskId, (u32, DateTime<Utc>)>;

#[derive(Debug, Clone, Default)]
pub struct DispatchTimes {
    // Held only for a map operation, never across an await.
    acked: Arc<Mutex<Acked>>,
}

impl DispatchTimes {
    pub fn record(&self, attempts: &[(TaskId, u32)], at: DateTime<Utc>) {
        let mut acked = self.acked.lock().unwrap_or_else(|e| e.into_inner());
        acked.extend(attempts.iter().map(|(id, attempt)| (*id, (*attempt, at))));
    }

    /// When `attempt` of the task was acknowledged, if it is still here.
    pub fn get(&self, id: TaskId, attempt: u32) -> Option<DateTime<Utc>> {
        let acked = self.acked.lock().unwrap_or_else(|e| e.into_inner());
        acked.get(&id).filter(|(a, _)| *a == attempt).map(|(_, at)| *at)
    }

    /// Those of `attempts` still waiting for their mark.
    pub fn unmarked(&self, attempts: &[(TaskId, u32)]) -> Vec<(TaskId, u32)> {
        let acked = self.acked.lock().unwrap_or_else(|e| e.into_inner());
        attempts
            .iter()
            .filter(|(id, attempt)| acked.get(id).is_some_and(|(a, _)| a == attempt))
            .copied()
            .collect()
    }

    /// Forgets attempts whose mark is stored, or no longer needed (a
    /// worker's report stored the time).
    pub fn forget(&self, attempts: &[(TaskId, u32)]) {
        let mut acked = self.acked.lock().unwrap_or_else(|e| e.into_inner());
        for (id, attempt) in attempts {
            if acked.get(id).is_some_and(|(a, _)| a == attempt) {
                acked.remove(id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_per_attempt_and_go_once_forgotten() {
        let times = DispatchTimes::default();
        let (a, b) = (TaskId::new(), TaskId::new());
        let at = Utc::now();
        times.record(&[(a, 1), (b, 1)], at);
        assert_eq!(times.get(a, 1), Some(at));
        assert_eq!(times.get(a, 2), None, "another attempt's time is not ours");

        // A report stored a's time: only b still needs a mark.
        times.forget(&[(a, 1)]);
        assert_eq!(times.unmarked(&[(a, 1), (b, 1)]), [(b, 1)]);
        // Forgetting a superseded attempt leaves the current one alone.
        times.record(&[(b, 2)], at);
        times.forget(&[(b, 1)]);
        assert_eq!(times.get(b, 2), Some(at));
    }
}
