//! Concurrency keys in storage: the guarded write that puts a keyed task
//! in the queue only while its key has a free slot, and the tasks waiting
//! for one (see `vapora_shared::concurrency`).

use serde_json::json;
use vapora_shared::TaskId;

use super::codec::{from_record, to_content};
use super::tasks::TaskWrite;
use super::{Database, StorageError, Transaction};

/// How a write into a concurrency key's slot ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotWrite {
    Written,
    /// Every slot of the key is held; nothing was written.
    NoSlot,
    /// The task changed meanwhile, or another writer's transaction
    /// touched the same records; nothing was written.
    Raced,
}

impl Database {
    /// The compare-and-set of [`Self::replace_task`] for a write that puts
    /// a task with concurrency key `key` in the queue: made only while fewer
    /// than `limit` other tasks of the key are queued or running.
    ///
    /// Two such writes could each count the other's task as not there yet
    /// (snapshot isolation); both also write the key's guard record, so
    /// the second conflicts and counts again.
    pub async fn replace_task_in_slot(
        &self,
        write: &TaskWrite,
        key: &str,
        limit: u32,
    ) -> Result<SlotWrite, StorageError> {
        let stored = write.stored();
        let sql = "BEGIN TRANSACTION;
            UPSERT type::record('concurrency_guard', $key) SET writes = (writes ?? 0) + 1 RETURN NONE;
            LET $held = array::len(SELECT VALUE id FROM task WITH INDEX task_concurrency
                WHERE concurrency.key = $key AND status IN ['queued', 'running'] AND id != type::record('task', $id));
            IF $held >= $limit { THROW 'no_slot' };
            LET $written = UPDATE type::record('task', $id) CONTENT $content WHERE rev = $rev RETURN VALUE true;
            IF array::len($written) != 1 { THROW 'lost_race' };
            COMMIT TRANSACTION;";
        let vars = json!({
            "key": key, "limit": limit, "id": write.next.id, "rev": write.expected_rev,
            "content": to_content(&stored)?,
        });
        Ok(match self.transact(sql, vars).await? {
            Transaction::Committed => SlotWrite::Written,
            Transaction::Thrown(reason) if reason.contains("no_slot") => SlotWrite::NoSlot,
            Transaction::Thrown(_) | Transaction::Conflict => SlotWrite::Raced,
        })
    }

    /// Tasks waiting for a slot of concurrency key `key`, oldest first.
    pub async fn waiting_for_slot(&self, key: &str) -> Result<Vec<TaskId>, StorageError> {
        let sql = "SELECT VALUE record::id(id) FROM task WITH INDEX task_concurrency
            WHERE concurrency.key = $key AND status = 'waiting' AND waiting_for_slot = true ORDER BY id LIMIT 100";
        let rows = self.fetch_all(sql, json!({ "key": key })).await?;
        rows.into_iter().map(from_record).collect()
    }
}
