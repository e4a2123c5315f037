//! Idempotency records (see `crate::idempotency`): one per caller, route
//! and `Idempotency-Key`, holding the request's fingerprint and, once the
//! request has finished, its response. Times are Unix milliseconds, so the
//! database compares numbers, not strings of varying precision.

use serde::Deserialize;
use serde_json::json;

use super::{Database, StorageError, Transaction};

/// A stored record, as a later request with the same key finds it.
#[derive(Debug, Clone, Deserialize)]
pub struct IdempotencyRecord {
    pub fingerprint: String,
    /// Absent while the first request is still running.
    pub status: Option<u16>,
    /// The response body (JSON text), with `status`.
    pub response: Option<String>,
}

/// How an attempt to claim a key ended.
#[derive(Debug)]
pub enum IdempotencyClaim {
    /// This request runs; it must [`Database::complete_idempotency`] or
    /// [`Database::release_idempotency`].
    Claimed,
    /// A live record holds the key (finished, or claimed recently).
    Taken(IdempotencyRecord),
    /// A concurrent claim touched the record; read again.
    Raced,
}

impl Database {
    /// Claims `id` unless a live record holds it: one that has not expired
    /// and is finished or was claimed after `stale_before_ms` (an older
    /// unfinished claim belongs to a request that died).
    pub async fn claim_idempotency(
        &self,
        id: &str,
        fingerprint: &str,
        now_ms: i64,
        stale_before_ms: i64,
        expires_ms: i64,
    ) -> Result<IdempotencyClaim, StorageError> {
        let sql = "BEGIN TRANSACTION;
            LET $rec = type::record('idempotency', $id);
            IF record::exists($rec) AND $rec.expires_at > $now
                AND ($rec.status != NONE OR $rec.claimed_at > $stale_before) { THROW 'taken' };
            UPSERT $rec CONTENT { fingerprint: $fingerprint, claimed_at: $now, expires_at: $expires } RETURN NONE;
            COMMIT TRANSACTION;";
        let vars = json!({
            "id": id, "fingerprint": fingerprint, "now": now_ms,
            "stale_before": stale_before_ms, "expires": expires_ms,
        });
        Ok(match self.transact(sql, vars).await? {
            Transaction::Committed => IdempotencyClaim::Claimed,
            Transaction::Conflict => IdempotencyClaim::Raced,
            Transaction::Thrown(_) => match self.idempotency_record(id).await? {
                Some(record) => IdempotencyClaim::Taken(record),
                // Expired or released in between.
                None => IdempotencyClaim::Raced,
            },
        })
    }

    async fn idempotency_record(&self, id: &str) -> Result<Option<IdempotencyRecord>, StorageError> {
        let rows = self
            .fetch_all(
                "SELECT fingerprint, status, response FROM type::record('idempotency', $id)",
                json!({ "id": id }),
            )
            .await?;
        rows.into_iter().next().map(super::codec::from_record).transpose()
    }

    /// Stores the response of the request that claimed `id`.
    pub async fn complete_idempotency(
        &self,
        id: &str,
        status: u16,
        response: &str,
    ) -> Result<(), StorageError> {
        self.execute(
            "UPDATE type::record('idempotency', $id) SET status = $status, response = $response RETURN NONE",
            json!({ "id": id, "status": status, "response": response }),
        )
        .await
    }

    /// Gives a claimed key back (the request failed), so a retry can run.
    pub async fn release_idempotency(&self, id: &str) -> Result<(), StorageError> {
        self.execute("DELETE type::record('idempotency', $id)", json!({ "id": id }))
            .await
    }

    /// Deletes records that expired before `now_ms`; how many.
    pub async fn sweep_idempotency(&self, now_ms: i64) -> Result<usize, StorageError> {
        let rows = self
            .fetch_all(
                "DELETE idempotency WHERE expires_at < $now RETURN BEFORE",
                json!({ "now": now_ms }),
            )
            .await?;
        Ok(rows.len())
    }
}
