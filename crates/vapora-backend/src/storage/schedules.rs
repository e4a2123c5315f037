//! Schedule records, and the claim of a slot.
//!
//! A slot is claimed by moving the schedule's `due_ms` on from the slot's,
//! conditionally, in the same transaction that stores what the slot starts
//! (see [`Database::insert_tasks_with`]): of two replicas firing one slot,
//! one stores its task and the other's transaction throws `slot_taken` and
//! stores nothing; a replica that dies mid-way stored nothing either, and
//! the slot is still due for the next to look.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use vapora_shared::{ProjectId, Schedule, ScheduleId};

use super::codec::{COLUMNS, from_record, to_content};
use super::{Database, StorageError};

/// A schedule as stored: with the due time the tick queries on.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredSchedule {
    #[serde(flatten)]
    schedule: Schedule,
    due_ms: i64,
}

/// Moving a schedule from the slot it is due at to its next one.
#[derive(Debug, Clone, Serialize)]
pub struct SlotClaim {
    pub id: ScheduleId,
    /// The slot being fired (the latest due one).
    pub slot: DateTime<Utc>,
    /// The `next_fire_at` the claimer read, in Unix milliseconds.
    pub expected_due_ms: i64,
    pub next_fire_at: DateTime<Utc>,
    pub due_ms: i64,
    pub at: DateTime<Utc>,
    /// Missed slots passed over to catch up.
    pub skipped: u64,
}

impl SlotClaim {
    /// As the companion of the transaction that stores what it starts.
    pub fn to_value(&self) -> Result<Value, StorageError> {
        Ok(serde_json::to_value(self)?)
    }
}

impl Database {
    pub async fn insert_schedule(&self, schedule: &Schedule) -> Result<(), StorageError> {
        let stored = StoredSchedule {
            schedule: schedule.clone(),
            due_ms: schedule.next_fire_at.timestamp_millis(),
        };
        let sql = "CREATE type::record('schedule', $id) CONTENT $content RETURN NONE";
        self.execute(sql, json!({ "id": schedule.id, "content": to_content(&stored)? }))
            .await
    }

    pub async fn get_schedule(&self, id: ScheduleId) -> Result<Option<Schedule>, StorageError> {
        let sql = format!("SELECT {COLUMNS} FROM type::record('schedule', $id)");
        let rows = self.fetch_all(&sql, json!({ "id": id })).await?;
        rows.into_iter()
            .next()
            .map(|row| from_record::<StoredSchedule>(row).map(|s| s.schedule))
            .transpose()
    }

    /// The schedules of `projects` (all when `None`), oldest first.
    pub async fn list_schedules(
        &self,
        projects: Option<&[ProjectId]>,
    ) -> Result<Vec<Schedule>, StorageError> {
        let filter = if projects.is_some() {
            "WHERE project_id IN $projects"
        } else {
            ""
        };
        let sql = format!("SELECT {COLUMNS} FROM schedule {filter} ORDER BY id LIMIT 1000");
        let rows = self.fetch_all(&sql, json!({ "projects": projects })).await?;
        rows.into_iter()
            .map(|row| from_record::<StoredSchedule>(row).map(|s| s.schedule))
            .collect()
    }

    /// Deletes a schedule; `false` if there was none.
    pub async fn delete_schedule(&self, id: ScheduleId) -> Result<bool, StorageError> {
        let sql = "DELETE type::record('schedule', $id) RETURN BEFORE";
        Ok(!self.fetch_all(sql, json!({ "id": id })).await?.is_empty())
    }

    /// Schedules with a slot due at `now`.
    pub async fn due_schedules(&self, now: DateTime<Utc>) -> Result<Vec<Schedule>, StorageError> {
        let sql = format!("SELECT {COLUMNS} FROM schedule WHERE due_ms <= $now");
        let rows = self
            .fetch_all(&sql, json!({ "now": now.timestamp_millis() }))
            .await?;
        rows.into_iter()
            .map(|row| from_record::<StoredSchedule>(row).map(|s| s.schedule))
            .collect()
    }

    /// Moves a schedule past a slot that started nothing, with why;
    /// `false` if another writer moved it first.
    pub async fn skip_slot(&self, claim: &SlotClaim, error: &str) -> Result<bool, StorageError> {
        let sql = "UPDATE type::record('schedule', $c.id) SET
                next_fire_at = $c.next_fire_at, due_ms = $c.due_ms, last_slot = $c.slot,
                skipped += $c.skipped + 1, last_error = $error
            WHERE due_ms = $c.expected_due_ms RETURN VALUE id";
        match self.fetch_all(sql, json!({ "c": claim, "error": error })).await {
            Ok(rows) => Ok(!rows.is_empty()),
            Err(StorageError::Conflict) => Ok(false),
            Err(e) => Err(e),
        }
    }
}
