//! Storing new tasks: one transaction, all of them or none, together with
//! what they come with (a workflow run's record, a schedule's slot claim).
//!
//! The transaction is built to fail rather than leave half a state: a task
//! whose project is being deleted conflicts on the project's guard record,
//! and a schedule slot another replica claimed first throws, so nothing of
//! either is stored.

use serde_json::json;
use vapora_shared::{Task, TaskId, TaskStatus};

use super::codec::to_content;
use super::{Database, StorageError, StoredTask, Transaction, Transition};

/// The guard record a task's insert writes: spread by the task id, whose
/// low bits are random (UUIDv7).
fn guard_shard(task: TaskId) -> u64 {
    let bytes = task.0.as_bytes();
    u64::from(u16::from_be_bytes([bytes[14], bytes[15]])) % super::projects::GUARDS
}

/// How a batch of task inserts ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskInsert {
    /// Every task of the batch is stored.
    Stored,
    /// Some task's project does not exist; nothing was stored.
    UnknownProject,
    /// The schedule slot to claim was claimed by another writer (or
    /// moved on); nothing was stored.
    SlotTaken,
}

/// What a task insert writes besides the tasks, in its transaction.
#[derive(Debug, Clone, Default)]
pub struct Companion {
    /// A record to create: `(table, id, content)`.
    pub create: Option<(&'static str, String, serde_json::Value)>,
    /// A schedule slot to claim (see `storage::schedules`).
    pub claim: Option<serde_json::Value>,
}

impl Database {
    /// Stores a new task of an existing project; `Ok(false)` when the
    /// project does not exist. See [`Self::insert_tasks`].
    pub async fn insert_task(&self, task: &Task, replica: &str) -> Result<bool, StorageError> {
        Ok(self.insert_tasks(std::slice::from_ref(task), replica).await? == TaskInsert::Stored)
    }

    /// Stores new tasks in one transaction, all or none: none when some
    /// task's project does not exist. Queued ones are queued on `replica`.
    ///
    /// The transaction writes one guard record of each project involved: a
    /// concurrent project delete writes them all, so one of the two
    /// conflicts instead of leaving an orphan (snapshot isolation would let
    /// a mere existence check pass). The project check rides on the guard's
    /// write, as statements are what SurrealDB charges for. Conflicts with
    /// other inserts on the same guard are retried.
    pub async fn insert_tasks(&self, tasks: &[Task], replica: &str) -> Result<TaskInsert, StorageError> {
        self.insert_tasks_with(tasks, replica, &Companion::default())
            .await
    }

    /// As [`Self::insert_tasks`], with `also` written in the same
    /// transaction: a workflow run stored with its stages, a schedule's
    /// slot claimed with what it starts. All of it or none.
    pub async fn insert_tasks_with(
        &self,
        tasks: &[Task],
        replica: &str,
        also: &Companion,
    ) -> Result<TaskInsert, StorageError> {
        const MAX_CONFLICTS: u32 = 64;
        let mut guards = Vec::new();
        let mut contents = Vec::with_capacity(tasks.len());
        for task in tasks {
            if !guards.iter().any(|(project, _)| *project == task.project_id) {
                guards.push((task.project_id, guard_shard(task.id)));
            }
            let stored = StoredTask {
                task: task.clone(),
                rev: 1,
                history: Transition::between(None, task).into_iter().collect(),
                queued_on: (task.status == TaskStatus::Queued).then(|| replica.to_owned()),
                dispatch_seq: None,
            };
            contents.push(json!({ "id": task.id, "content": to_content(&stored)? }));
        }
        let guards: Vec<_> = guards
            .into_iter()
            .map(|(project, shard)| json!({ "project": project, "key": super::projects::guard_key(project, shard) }))
            .collect();
        let sql = "BEGIN TRANSACTION;
            FOR $g IN $guards {
                UPSERT type::record('project_guard', $g.key) SET writes = IF record::exists(type::record('project', $g.project)) {
                    (writes ?? 0) + 1
                } ELSE {
                    THROW 'unknown_project'
                } RETURN NONE;
            };
            FOR $t IN $tasks {
                CREATE type::record('task', $t.id) CONTENT $t.content RETURN NONE;
            };
            FOR $r IN $also {
                CREATE type::record($r.table, $r.id) CONTENT $r.content RETURN NONE;
            };
            IF $claim {
                LET $claimed = UPDATE type::record('schedule', $claim.id) SET
                        next_fire_at = $claim.next_fire_at, due_ms = $claim.due_ms,
                        last_slot = $claim.slot, last_fired_at = $claim.at,
                        fired += 1, skipped += $claim.skipped, last_error = NONE
                    WHERE due_ms = $claim.expected_due_ms RETURN VALUE id;
                IF array::len($claimed) = 0 { THROW 'slot_taken' };
            };
            COMMIT TRANSACTION;";
        let records: Vec<_> = also
            .create
            .iter()
            .map(|(table, id, content)| json!({ "table": table, "id": id, "content": content }))
            .collect();
        let vars = json!({ "guards": guards, "tasks": contents, "also": records, "claim": also.claim });
        for race in 0..MAX_CONFLICTS {
            match self.transact(sql, vars.clone()).await? {
                Transaction::Committed => return Ok(TaskInsert::Stored),
                Transaction::Thrown(reason) if reason.contains("slot_taken") => {
                    return Ok(TaskInsert::SlotTaken);
                }
                Transaction::Thrown(_) => return Ok(TaskInsert::UnknownProject),
                Transaction::Conflict => super::back_off(race).await,
            }
        }
        Err(StorageError::Conflict)
    }
}
