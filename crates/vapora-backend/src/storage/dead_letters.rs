//! Attempts JetStream gave up on after its delivery limit (broker mode).
//! Keyed by `<task>.<attempt>`, so handling the same advisory twice stores
//! it once.

use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use vapora_shared::wire::attempt_msg_id;
use vapora_shared::{Role, TaskId};

use super::codec::from_record;
use super::{Database, StorageError};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DeadLetter {
    pub task_id: TaskId,
    pub attempt: u32,
    pub role: Role,
    pub deliveries: u64,
    /// Its sequence number in `VAPORA_TASKS`.
    pub stream_seq: u64,
    pub at: String,
}

impl Database {
    pub async fn record_dead_letter(
        &self,
        task: TaskId,
        attempt: u32,
        role: &Role,
        deliveries: u64,
        stream_seq: u64,
    ) -> Result<(), StorageError> {
        self.execute(
            "UPSERT type::record('dead_letter', $key) CONTENT {
                task_id: $task, attempt: $attempt, role: $role, deliveries: $deliveries,
                stream_seq: $stream_seq, at: $at
            } RETURN NONE",
            json!({
                "key": attempt_msg_id(task, attempt),
                "task": task,
                "attempt": attempt,
                "role": role,
                "deliveries": deliveries,
                "stream_seq": stream_seq,
                "at": Utc::now(),
            }),
        )
        .await
    }

    /// Newest first.
    pub async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>, StorageError> {
        let rows = self
            .fetch_all(
                "SELECT task_id, attempt, role, deliveries, stream_seq, at FROM dead_letter ORDER BY at DESC LIMIT $limit",
                json!({ "limit": limit }),
            )
            .await?;
        rows.into_iter().map(from_record).collect()
    }
}
