//! A task's stored history: its status transitions (written by the
//! database's `record_transition` event, see the schema) and the worker
//! reports that were ignored as stale.

use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::json;
use vapora_shared::{AgentId, TaskId, TaskStatus};

use super::codec::from_record;
use super::{Database, StorageError};

/// One status change, in the order it happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transition {
    pub from_status: Option<TaskStatus>,
    pub to_status: TaskStatus,
    pub attempt: u32,
    pub agent: Option<AgentId>,
    pub at: String,
}

/// A worker report the attempt fence refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StaleReport {
    pub attempt: u32,
    pub kind: String,
    pub agent: AgentId,
    pub at: String,
}

impl Database {
    /// Every status change of the task, oldest first (`at` is the task's
    /// `updated_at` of the write that made the change).
    pub async fn task_transitions(&self, task: TaskId) -> Result<Vec<Transition>, StorageError> {
        let rows = self
            .fetch_all(
                "SELECT from_status, to_status, attempt, agent, at, <datetime>at AS ts
                 FROM task_transition WHERE task = $task ORDER BY ts",
                json!({ "task": task }),
            )
            .await?;
        rows.into_iter().map(from_record).collect()
    }

    pub async fn record_stale_report(
        &self,
        task: TaskId,
        attempt: u32,
        kind: &str,
        agent: &AgentId,
    ) -> Result<(), StorageError> {
        self.execute(
            "CREATE stale_report:ulid() CONTENT { task: $task, attempt: $attempt, kind: $kind, agent: $agent, at: $at } RETURN NONE",
            json!({ "task": task, "attempt": attempt, "kind": kind, "agent": agent, "at": Utc::now() }),
        )
        .await
    }

    pub async fn stale_reports(&self, task: TaskId) -> Result<Vec<StaleReport>, StorageError> {
        let rows = self
            .fetch_all(
                "SELECT attempt, kind, agent, at, <datetime>at AS ts FROM stale_report
                 WHERE task = $task ORDER BY ts",
                json!({ "task": task }),
            )
            .await?;
        rows.into_iter().map(from_record).collect()
    }
}
