//! Task records.
//!
//! Every task write is a compare-and-set on the `rev` field: the writer names
//! the revision it read, and the write only happens if nobody else wrote in
//! between. Services retry on a lost race with a fresh read, so the state
//! machine is always checked against the state actually stored.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use vapora_shared::{ProjectId, Role, ScheduleId, Task, TaskId, TaskStatus};

use super::codec::{COLUMNS, from_record, to_content};
use super::{Database, StorageError, Transaction, Transition};

/// A task as stored: with the revision a write must name, and its status
/// moves so far, oldest first.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredTask {
    #[serde(flatten)]
    pub task: Task,
    pub rev: u64,
    #[serde(default)]
    pub history: Vec<Transition>,
    /// The replica whose queue holds the task while it waits for dispatch.
    #[serde(default)]
    pub queued_on: Option<String>,
    /// The stream sequence of the current attempt in JetStream, once marked.
    #[serde(default)]
    pub dispatch_seq: Option<u64>,
}

/// Columns of a [`Task`] alone (the history is read only where needed).
const TASK_COLUMNS: &str = "*, record::id(id) AS id OMIT history";

/// One compare-and-set: `next` is written if the stored revision is still
/// `expected_rev`, together with the task's `history` including the moves
/// that lead to `next`.
#[derive(Debug, Clone)]
pub struct TaskWrite {
    pub next: Task,
    pub expected_rev: u64,
    pub history: Vec<Transition>,
    /// Kept as stored unless the write queues the task on a replica.
    pub queued_on: Option<String>,
    /// Kept as stored while the attempt stays the same.
    pub dispatch_seq: Option<u64>,
}

impl TaskWrite {
    /// A write that changes nothing yet; [`Self::then`] adds the changes.
    pub fn unchanged(stored: StoredTask) -> Self {
        Self {
            next: stored.task,
            expected_rev: stored.rev,
            history: stored.history,
            queued_on: stored.queued_on,
            dispatch_seq: stored.dispatch_seq,
        }
    }

    /// The write of `next`, decided from `stored`.
    pub fn from_stored(stored: &StoredTask, next: Task) -> Self {
        let mut write = Self::unchanged(stored.clone());
        write.then(next);
        write
    }

    /// The record as the write leaves it: the next revision.
    pub(super) fn stored(&self) -> StoredTask {
        StoredTask {
            task: self.next.clone(),
            rev: self.expected_rev + 1,
            history: self.history.clone(),
            queued_on: self.queued_on.clone(),
            dispatch_seq: self.dispatch_seq,
        }
    }

    /// Moves the write on to `next`, recording the status move if any.
    pub fn then(&mut self, next: Task) {
        self.history.extend(Transition::between(Some(&self.next), &next));
        if next.attempt != self.next.attempt {
            self.dispatch_seq = None;
        }
        self.next = next;
    }
}

/// Most attempts one reconciler round checks in the stream.
pub const RECONCILE_BATCH: usize = 256;

/// Filters of `GET /api/v1/tasks`.
#[derive(Debug, Clone, Default)]
pub struct TaskFilter {
    pub project_id: Option<ProjectId>,
    /// Only tasks of these projects: the caller's scope.
    pub within: Option<Vec<ProjectId>>,
    pub status: Option<TaskStatus>,
    pub role: Option<Role>,
    /// Only the tasks this schedule's slots created.
    pub schedule_id: Option<ScheduleId>,
    /// Only tasks created after this one (ids are time-ordered).
    pub after: Option<TaskId>,
    pub limit: usize,
}

impl Database {
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

    /// Several tasks without their history (what deciding on them needs
    /// and writing does not), missing ones left out.
    pub async fn get_task_values(&self, ids: &[TaskId]) -> Result<Vec<Task>, StorageError> {
        let sql = format!(
            "SELECT {TASK_COLUMNS} FROM array::map($ids, |$id| type::record('task', $id)) WHERE id IS NOT NONE"
        );
        let rows = self.fetch_all(&sql, json!({ "ids": ids })).await?;
        rows.into_iter().map(from_record).collect()
    }

    /// The status of each of several tasks, missing ones left out.
    pub async fn task_statuses(&self, ids: &[TaskId]) -> Result<Vec<(TaskId, TaskStatus)>, StorageError> {
        #[derive(Deserialize)]
        struct Row {
            id: TaskId,
            status: TaskStatus,
        }
        let sql = "SELECT record::id(id) AS id, status FROM array::map($ids, |$id| type::record('task', $id)) WHERE id IS NOT NONE";
        let rows = self.fetch_all(sql, json!({ "ids": ids })).await?;
        rows.into_iter()
            .map(|row| from_record::<Row>(row).map(|r| (r.id, r.status)))
            .collect()
    }

    /// Stamps `dispatched_at` (and the attempt's stream sequence) on every
    /// `(task, attempt, sequence)` whose task is still queued on that
    /// attempt and not yet marked, in one transaction. The revision moves
    /// on as with any write, so a concurrent compare-and-set re-reads.
    /// `false` when the transaction conflicted with another writer's and
    /// marked nothing.
    pub async fn mark_dispatched(
        &self,
        attempts: &[(TaskId, u32, u64)],
        at: DateTime<Utc>,
    ) -> Result<bool, StorageError> {
        let items: Vec<_> = attempts
            .iter()
            .map(|(id, attempt, seq)| json!({ "id": id, "attempt": attempt, "seq": seq }))
            .collect();
        let sql = "BEGIN TRANSACTION;
            FOR $t IN $items {
                UPDATE type::record('task', $t.id)
                    SET dispatched_at = $at, dispatch_seq = $t.seq, updated_at = $at, rev += 1
                    WHERE status = 'queued' AND attempt = $t.attempt AND dispatched_at IS NONE
                    RETURN NONE;
            };
            COMMIT TRANSACTION;";
        Ok(self.transact(sql, json!({ "items": items, "at": at })).await? == Transaction::Committed)
    }

    /// Makes one compare-and-set write; `false` when another writer got
    /// there first (or the task is gone).
    pub async fn replace_task(&self, write: &TaskWrite) -> Result<bool, StorageError> {
        self.replace_tasks(std::slice::from_ref(write)).await
    }

    /// Makes several compare-and-set writes in one transaction, all or
    /// nothing. Returns whether they were made; `false` means some task
    /// changed meanwhile (or the transaction conflicted with another
    /// writer's), and nothing was written. Each task appears at most once.
    pub async fn replace_tasks(&self, writes: &[TaskWrite]) -> Result<bool, StorageError> {
        let items = writes
            .iter()
            .map(|write| {
                let stored = write.stored();
                Ok(json!({ "id": write.next.id, "rev": write.expected_rev, "content": to_content(&stored)? }))
            })
            .collect::<Result<Vec<_>, StorageError>>()?;
        // Without the explicit transaction every statement would commit on
        // its own, and a conflict half-way would leave half the batch
        // written. The THROW undoes the batch when a revision moved on.
        let sql = "BEGIN TRANSACTION;
            LET $written = array::flatten(array::map($items, |$w| (
                UPDATE type::record('task', $w.id) CONTENT $w.content WHERE rev = $w.rev RETURN VALUE true
            )));
            IF array::len($written) != array::len($items) { THROW 'lost_race' };
            COMMIT TRANSACTION;";
        // A changed revision, or another writer's transaction touched the
        // same records at the same time: a lost race either way.
        match self.transact(sql, json!({ "items": items })).await? {
            Transaction::Committed => Ok(true),
            lost => {
                tracing::debug!(writes = writes.len(), ?lost, "lost a write race");
                Ok(false)
            }
        }
    }

    /// One page of tasks in creation order.
    pub async fn list_tasks(&self, filter: &TaskFilter) -> Result<Vec<Task>, StorageError> {
        let mut conditions = Vec::new();
        if filter.project_id.is_some() {
            conditions.push("project_id = $project_id");
        }
        if filter.within.is_some() {
            conditions.push("project_id IN $within");
        }
        if filter.status.is_some() {
            conditions.push("status = $status");
        }
        if filter.role.is_some() {
            conditions.push("role = $role");
        }
        if filter.schedule_id.is_some() {
            conditions.push("schedule_id = $schedule_id");
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
        let sql = format!("SELECT {TASK_COLUMNS} FROM task {hint} {where_clause} ORDER BY id LIMIT $limit");
        let vars = json!({
            "project_id": filter.project_id,
            "within": filter.within,
            "status": filter.status,
            "role": filter.role,
            "schedule_id": filter.schedule_id,
            "after": filter.after,
            "limit": filter.limit,
        });
        let rows = self.fetch_all(&sql, vars).await?;
        rows.into_iter().map(from_record).collect()
    }

    /// Attempts marked dispatched before `before` whose task is still
    /// queued, the longest waiting first, at most [`RECONCILE_BATCH`]:
    /// `(task, attempt, stream sequence)`. (Behind a backlog most are
    /// simply waiting their turn; a round looks at the oldest.)
    pub async fn dispatched_but_waiting(
        &self,
        before: DateTime<Utc>,
    ) -> Result<Vec<(TaskId, u32, u64)>, StorageError> {
        let sql = format!(
            "SELECT record::id(id) AS id, attempt, dispatch_seq, dispatched_at FROM task
            WHERE status = 'queued' AND dispatch_seq IS NOT NONE AND <datetime>dispatched_at < <datetime>$before
            ORDER BY dispatched_at LIMIT {RECONCILE_BATCH}"
        );
        let rows = self.fetch_all(&sql, json!({ "before": before })).await?;
        #[derive(Deserialize)]
        struct Row {
            id: TaskId,
            attempt: u32,
            dispatch_seq: u64,
        }
        rows.into_iter()
            .map(|row| from_record::<Row>(row).map(|r| (r.id, r.attempt, r.dispatch_seq)))
            .collect()
    }

    /// Tasks in any of `statuses`, in creation order (used at start-up to
    /// re-queue interrupted work).
    /// Tasks waiting on `id` (among others, maybe).
    pub async fn dependents_waiting_on(&self, id: TaskId) -> Result<Vec<Task>, StorageError> {
        let sql = format!(
            "SELECT {TASK_COLUMNS} FROM task WITH INDEX task_status WHERE status = 'waiting' AND depends_on CONTAINS $id"
        );
        let rows = self.fetch_all(&sql, json!({ "id": id })).await?;
        rows.into_iter().map(from_record).collect()
    }

    pub async fn tasks_in_status(&self, statuses: &[TaskStatus]) -> Result<Vec<StoredTask>, StorageError> {
        let sql = format!("SELECT {COLUMNS} FROM task WHERE status IN $statuses ORDER BY id");
        let rows = self.fetch_all(&sql, json!({ "statuses": statuses })).await?;
        rows.into_iter().map(from_record).collect()
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use vapora_shared::testing::{new_project, new_task};

    /// A database with one project, and a maker of queued tasks in it.
    pub(in crate::storage) async fn setup() -> (Database, impl Fn() -> Task) {
        let db = Database::connect("mem://").await.unwrap();
        let project = new_project().into_project(Utc::now()).unwrap();
        db.insert_project(&project, None).await.unwrap();
        let queued_task = move || {
            let mut task = new_task(project.id).into_task(Utc::now()).unwrap();
            task.status = TaskStatus::Queued;
            task.attempt = 1;
            task
        };
        (db, queued_task)
    }

    fn moved(stored: &StoredTask, to: TaskStatus) -> TaskWrite {
        let mut next = stored.task.clone();
        next.status = to;
        next.updated_at = Utc::now();
        TaskWrite::from_stored(stored, next)
    }

    #[tokio::test]
    async fn a_task_of_an_unknown_project_is_not_stored() {
        let (db, queued_task) = setup().await;
        let mut orphan = queued_task();
        orphan.project_id = ProjectId::new();
        assert!(!db.insert_task(&orphan, "replica-a").await.unwrap());
        assert!(db.get_task(orphan.id).await.unwrap().is_none());
        assert!(db.task_transitions(orphan.id).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn batch_reads_and_dispatch_marks_respect_the_attempt() {
        let (db, queued_task) = setup().await;
        let (a, b) = (queued_task(), queued_task());
        assert!(db.insert_task(&a, "replica-a").await.unwrap());
        assert!(db.insert_task(&b, "replica-a").await.unwrap());
        let read = db.get_tasks(&[a.id, b.id, TaskId::new()]).await.unwrap();
        assert_eq!(read.len(), 2);

        // b's attempt is stale: only a is marked, once.
        let at = Utc::now();
        assert!(
            db.mark_dispatched(&[(a.id, 1, 7), (b.id, 2, 8)], at)
                .await
                .unwrap()
        );
        assert!(db.mark_dispatched(&[(a.id, 1, 9)], Utc::now()).await.unwrap());
        let stored = db.get_task(a.id).await.unwrap().unwrap();
        assert_eq!(
            (stored.task.dispatched_at, stored.rev, stored.dispatch_seq),
            (Some(at), 2, Some(7))
        );
        assert_eq!(db.get_task(b.id).await.unwrap().unwrap().task.dispatched_at, None);

        // Still queued a while after its mark: a candidate for the
        // reconciler; not before.
        let later = at + chrono::Duration::seconds(1);
        assert_eq!(
            db.dispatched_but_waiting(later).await.unwrap(),
            vec![(a.id, 1, 7)]
        );
        assert!(db.dispatched_but_waiting(at).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_batch_of_writes_is_all_or_nothing_and_records_each_move() {
        let (db, queued_task) = setup().await;
        let (a, b) = (queued_task(), queued_task());
        db.insert_task(&a, "replica-a").await.unwrap();
        db.insert_task(&b, "replica-a").await.unwrap();
        let stored_a = db.get_task(a.id).await.unwrap().unwrap();
        let stored_b = db.get_task(b.id).await.unwrap().unwrap();

        // b changes behind the batch's back: nothing of the batch is written.
        assert!(
            db.replace_task(&moved(&stored_b, TaskStatus::Cancelled))
                .await
                .unwrap()
        );
        let batch = [
            moved(&stored_a, TaskStatus::Running),
            moved(&stored_b, TaskStatus::Running),
        ];
        assert!(!db.replace_tasks(&batch).await.unwrap());
        assert_eq!(db.get_task(a.id).await.unwrap().unwrap().rev, 1);
        assert_eq!(db.task_transitions(a.id).await.unwrap().len(), 1);

        // Two moves in one write: both are in the history, in order.
        let mut write = moved(&stored_a, TaskStatus::Running);
        let mut done = write.next.clone();
        done.status = TaskStatus::Done;
        done.updated_at = Utc::now();
        write.then(done);
        assert!(db.replace_tasks(&[write]).await.unwrap());
        let stored = db.get_task(a.id).await.unwrap().unwrap();
        assert_eq!((stored.task.status, stored.rev), (TaskStatus::Done, 2));
        let history: Vec<_> = db
            .task_transitions(a.id)
            .await
            .unwrap()
            .into_iter()
            .map(|t| (t.from_status, t.to_status))
            .collect();
        assert_eq!(
            history,
            [
                (None, TaskStatus::Queued),
                (Some(TaskStatus::Queued), TaskStatus::Running),
                (Some(TaskStatus::Running), TaskStatus::Done)
            ]
        );
    }
}
