//! Task records.
//!
//! Every task write is a compare-and-set on the `rev` field: the writer names
//! the revision it read, and the write only happens if nobody else wrote in
//! between. Services retry on a lost race with a fresh read, so the state
//! machine is always checked against the state actually stored.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use vapora_shared::{ProjectId, Role, Task, TaskId, TaskStatus};

use super::codec::{COLUMNS, from_record, to_content};
use super::{Database, StorageError};

/// A task as stored, with the revision a write must name.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredTask {
    #[serde(flatten)]
    pub task: Task,
    pub rev: u64,
}

/// Filters of `GET /api/v1/tasks`.
#[derive(Debug, Clone, Default)]
pub struct TaskFilter {
    pub project_id: Option<ProjectId>,
    pub status: Option<TaskStatus>,
    pub role: Option<Role>,
    /// Only tasks created after this one (ids are time-ordered).
    pub after: Option<TaskId>,
    pub limit: usize,
}

impl Database {
    pub async fn insert_task(&self, task: &Task) -> Result<(), StorageError> {
        let stored = StoredTask {
            task: task.clone(),
            rev: 1,
        };
        self.execute(
            "CREATE type::record('task', $id) CONTENT $content RETURN NONE",
            json!({ "id": task.id, "content": to_content(&stored)? }),
        )
        .await
    }

    pub async fn get_task(&self, id: TaskId) -> Result<Option<StoredTask>, StorageError> {
        let sql = format!("SELECT {COLUMNS} FROM type::record('task', $id)");
        let rows = self.fetch_all(&sql, json!({ "id": id })).await?;
        rows.into_iter().next().map(from_record).transpose()
    }

    /// Several tasks in one round trip (missing ones are left out).
    pub async fn get_tasks(&self, ids: &[TaskId]) -> Result<Vec<StoredTask>, StorageError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM array::map($ids, |$id| type::record('task', $id)) WHERE id IS NOT NONE"
        );
        let rows = self.fetch_all(&sql, json!({ "ids": ids })).await?;
        rows.into_iter().map(from_record).collect()
    }

    /// Stamps `dispatched_at` on every `(task, attempt)` whose task is still
    /// queued on that attempt and not yet marked, in one transaction. The
    /// revision moves on as with any write, so a concurrent compare-and-set
    /// re-reads. Returns how many were marked.
    pub async fn mark_dispatched(
        &self,
        attempts: &[(TaskId, u32)],
        at: DateTime<Utc>,
    ) -> Result<usize, StorageError> {
        let items: Vec<_> = attempts
            .iter()
            .map(|(id, attempt)| json!({ "id": id, "attempt": attempt }))
            .collect();
        let rows = self
            .fetch_all(
                "array::flatten(array::map($items, |$t| (
                    UPDATE type::record('task', $t.id)
                        SET dispatched_at = $at, updated_at = $at, rev += 1
                        WHERE status = 'queued' AND attempt = $t.attempt AND dispatched_at IS NONE
                        RETURN VALUE true
                )))",
                json!({ "items": items, "at": at }),
            )
            .await?;
        Ok(rows.len())
    }

    /// Writes `next` if the stored revision is still `expected_rev`; returns
    /// the stored form on success and `None` when another writer got there
    /// first (or the task is gone).
    pub async fn replace_task(
        &self,
        next: &Task,
        expected_rev: u64,
    ) -> Result<Option<StoredTask>, StorageError> {
        let stored = StoredTask {
            task: next.clone(),
            rev: expected_rev + 1,
        };
        let written = self
            .fetch_all(
                "UPDATE type::record('task', $id) CONTENT $content WHERE rev = $rev RETURN true",
                json!({ "id": next.id, "rev": expected_rev, "content": to_content(&stored)? }),
            )
            .await;
        match written {
            Ok(rows) => Ok((!rows.is_empty()).then_some(stored)),
            // Another writer's transaction touched the record at the same
            // time: the same outcome as a changed `rev`, a lost race.
            Err(StorageError::Database(e)) if is_conflict(&e) => {
                tracing::debug!(task = %next.id, "write conflict; re-reading");
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// One page of tasks in creation order.
    pub async fn list_tasks(&self, filter: &TaskFilter) -> Result<Vec<Task>, StorageError> {
        let mut conditions = Vec::new();
        if filter.project_id.is_some() {
            conditions.push("project_id = $project_id");
        }
        if filter.status.is_some() {
            conditions.push("status = $status");
        }
        if filter.role.is_some() {
            conditions.push("role = $role");
        }
        if filter.after.is_some() {
            conditions.push("id > type::record('task', $after)");
        }
        let where_clause = if conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conditions.join(" AND "))
        };
        // SurrealDB's planner picks a single-field index when both fields are
        // filtered; the composite index is ~5x faster for that case (measured:
        // 0.5 ms against 2.9 ms for a 1,000-task project among 10,000).
        let hint = if filter.project_id.is_some() && filter.status.is_some() {
            "WITH INDEX task_project_status"
        } else {
            ""
        };
        let sql = format!("SELECT {COLUMNS} FROM task {hint} {where_clause} ORDER BY id LIMIT $limit");
        let vars = json!({
            "project_id": filter.project_id,
            "status": filter.status,
            "role": filter.role,
            "after": filter.after,
            "limit": filter.limit,
        });
        let rows = self.fetch_all(&sql, vars).await?;
        rows.into_iter().map(from_record).collect()
    }

    /// Every task of a project, in creation order.
    pub async fn project_tasks(&self, project_id: ProjectId) -> Result<Vec<Task>, StorageError> {
        let sql = format!("SELECT {COLUMNS} FROM task WHERE project_id = $project_id ORDER BY id");
        let rows = self.fetch_all(&sql, json!({ "project_id": project_id })).await?;
        rows.into_iter().map(from_record).collect()
    }

    /// Tasks in any of `statuses`, in creation order (used at start-up to
    /// re-queue interrupted work).
    pub async fn tasks_in_status(&self, statuses: &[TaskStatus]) -> Result<Vec<StoredTask>, StorageError> {
        let sql = format!("SELECT {COLUMNS} FROM task WHERE status IN $statuses ORDER BY id");
        let rows = self.fetch_all(&sql, json!({ "statuses": statuses })).await?;
        rows.into_iter().map(from_record).collect()
    }

    /// Whether the project has tasks that are queued or running.
    pub async fn project_has_active_tasks(&self, project_id: ProjectId) -> Result<bool, StorageError> {
        let rows = self
            .fetch_all(
                "SELECT VALUE true FROM task WHERE project_id = $project_id AND status IN ['queued', 'running'] LIMIT 1",
                json!({ "project_id": project_id }),
            )
            .await?;
        Ok(!rows.is_empty())
    }
}

/// Whether the database refused a write because a concurrent transaction
/// touched the same keys (safe to retry from a fresh read).
fn is_conflict(e: &surrealdb::Error) -> bool {
    matches!(
        e.query_details(),
        Some(surrealdb::types::QueryError::TransactionConflict)
    ) || e.message().contains("conflict")
}

#[cfg(test)]
mod tests {
    use super::*;
    use vapora_shared::{NewTask, Priority};

    fn queued_task() -> Task {
        let mut task = NewTask {
            project_id: ProjectId::new(),
            title: "t".into(),
            description: String::new(),
            role: Role::parse("developer").unwrap(),
            priority: Priority::Medium,
            requires_approval: false,
            dispatch: true,
        }
        .into_task(Utc::now())
        .unwrap();
        task.status = TaskStatus::Queued;
        task.attempt = 1;
        task
    }

    #[tokio::test]
    async fn batch_reads_and_dispatch_marks_respect_the_attempt() {
        let db = Database::connect("mem://").await.unwrap();
        let (a, b) = (queued_task(), queued_task());
        db.insert_task(&a).await.unwrap();
        db.insert_task(&b).await.unwrap();
        let read = db.get_tasks(&[a.id, b.id, TaskId::new()]).await.unwrap();
        assert_eq!(read.len(), 2);

        // b's attempt is stale: only a is marked, once.
        let at = Utc::now();
        assert_eq!(db.mark_dispatched(&[(a.id, 1), (b.id, 2)], at).await.unwrap(), 1);
        assert_eq!(db.mark_dispatched(&[(a.id, 1)], at).await.unwrap(), 0);
        let a = db.get_task(a.id).await.unwrap().unwrap();
        assert_eq!((a.task.dispatched_at, a.rev), (Some(at), 2));
        assert_eq!(db.get_task(b.id).await.unwrap().unwrap().task.dispatched_at, None);
    }
}
