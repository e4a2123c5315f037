//! A task's stored history: its status transitions (kept in the task
//! record, see `storage::tasks`) and the worker reports that were ignored as
//! stale.

use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use vapora_shared::{AgentId, Task, TaskId, TaskStatus};

use super::codec::{from_record, to_content};
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

    /// Records a report the fence turned away; `report` is the whole
    /// report (JSON) when it may still count later (see
    /// `TaskService::apply_report`).
    pub async fn record_stale_report(
        &self,
        task: TaskId,
        attempt: u32,
        kind: &str,
        agent: &AgentId,
        report: Option<String>,
    ) -> Result<(), StorageError> {
        // Through `to_content`: an absent `report` must be left out, as the
        // schema refuses an explicit NULL.
        let content = to_content(&json!({
            "task": task, "attempt": attempt, "kind": kind, "agent": agent, "at": Utc::now(), "report": report,
        }))?;
        self.execute(
            "CREATE stale_report:ulid() CONTENT $content RETURN NONE",
            json!({ "content": content }),
        )
        .await
    }

    /// The result `agent` reported for `attempt` of the task, if the fence
    /// turned it away (as JSON).
    pub async fn turned_away_result(
        &self,
        task: TaskId,
        attempt: u32,
        agent: &AgentId,
    ) -> Result<Option<String>, StorageError> {
        let rows = self
            .fetch_all(
                "SELECT VALUE report FROM stale_report
                 WHERE task = $task AND attempt = $attempt AND agent = $agent AND report IS NOT NONE LIMIT 1",
                json!({ "task": task, "attempt": attempt, "agent": agent }),
            )
            .await?;
        Ok(rows
            .into_iter()
            .next()
            .and_then(|v| v.as_str().map(str::to_owned)))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::tasks::tests::setup;

    #[tokio::test]
    async fn stale_reports_are_recorded_with_or_without_the_whole_report() {
        let (db, queued_task) = setup().await;
        let task = queued_task();
        assert!(db.insert_task(&task, "replica-a").await.unwrap());
        let agent = AgentId::from("late");
        db.record_stale_report(task.id, 1, "started", &agent, None)
            .await
            .unwrap();
        db.record_stale_report(task.id, 1, "succeeded", &agent, Some("{\"whole\":1}".into()))
            .await
            .unwrap();
        let kinds: Vec<String> = db
            .stale_reports(task.id, 10)
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.kind)
            .collect();
        assert_eq!(kinds, ["started", "succeeded"]);
        assert_eq!(
            db.turned_away_result(task.id, 1, &agent)
                .await
                .unwrap()
                .as_deref(),
            Some("{\"whole\":1}")
        );
        assert_eq!(db.turned_away_result(task.id, 2, &agent).await.unwrap(), None);
        assert_eq!(
            db.turned_away_result(task.id, 1, &AgentId::from("other"))
                .await
                .unwrap(),
            None
        );
    }
}
