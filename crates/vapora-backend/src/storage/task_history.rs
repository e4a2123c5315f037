//! A task's stored history: its status transitions (kept in the task
//! record, see `storage::tasks`) and the worker reports that were ignored as
//! stale.

use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use vapora_shared::{AgentId, Task, TaskId, TaskStatus};

use super::codec::from_record;
use super::{Database, StorageError};

/// One status change, in the order it happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Transition {
    pub from_status: Option<TaskStatus>,
    pub to_status: TaskStatus,
    pub attempt: u32,
    pub agent: Option<AgentId>,
    pub at: String,
}

impl Transition {
    /// The move from `before` (`None` for a new task) to `after`, if the
    /// status changed; stamped with `after`'s `updated_at`.
    pub fn between(before: Option<&Task>, after: &Task) -> Option<Self> {
        let from_status = before.map(|task| task.status);
        (from_status != Some(after.status)).then(|| Self {
            from_status,
            to_status: after.status,
            attempt: after.attempt,
            agent: after.assigned_agent.clone(),
            at: after
                .updated_at
                .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
        })
    }
}

/// A worker report the attempt fence refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct StaleReport {
    pub attempt: u32,
    pub kind: String,
    pub agent: AgentId,
    pub at: String,
}

/// A window of a task's status changes.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct HistoryPage {
    pub transitions: Vec<Transition>,
    /// How many changes the task has in all.
    pub total: usize,
}

impl Database {
    /// Up to `limit` status changes of the task from position `from`
    /// (oldest first); `None` when the task does not exist. Only the
    /// window leaves the database, however long the history.
    pub async fn task_history_page(
        &self,
        task: TaskId,
        from: usize,
        limit: usize,
    ) -> Result<Option<HistoryPage>, StorageError> {
        let rows = self
            .fetch_all(
                "SELECT array::slice(history, $from, $to) AS transitions, array::len(history) AS total
                 FROM type::record('task', $id)",
                json!({ "id": task, "from": from, "to": from.saturating_add(limit) }),
            )
            .await?;
        rows.into_iter().next().map(from_record).transpose()
    }

    /// Every status change of the task, oldest first.
    pub async fn task_transitions(&self, task: TaskId) -> Result<Vec<Transition>, StorageError> {
        Ok(self.get_task(task).await?.map(|s| s.history).unwrap_or_default())
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

    /// The first `limit` stale reports of the task, oldest first.
    pub async fn stale_reports(&self, task: TaskId, limit: usize) -> Result<Vec<StaleReport>, StorageError> {
        let rows = self
            .fetch_all(
                "SELECT attempt, kind, agent, at, <datetime>at AS ts FROM stale_report
                 WHERE task = $task ORDER BY ts LIMIT $limit",
                json!({ "task": task, "limit": limit }),
            )
            .await?;
        rows.into_iter().map(from_record).collect()
    }
}
