//! Persistence in SurrealDB 3, through the `any` engine.
//!
//! One URL picks the engine: `surrealkv://path` (embedded, on disk — the
//! default), `mem://` (embedded, for tests) or `ws://host:port` (a server).
//! Records are stored from the serde form of the domain types; the schema
//! (`schema.surql`) is defined (idempotently) at every start so that a bad
//! write is refused by the database, not discovered later by a reader.

mod api_keys;
mod budgets;
mod codec;
mod concurrency_slots;
mod dead_letters;
mod idempotency;
mod new_tasks;
mod projects;
mod replica_leases;
mod schedules;
mod spend;
mod task_history;
mod task_inserts;
mod tasks;
mod workflows;

pub use concurrency_slots::SlotWrite;
pub use dead_letters::DeadLetter;
pub use idempotency::{IdempotencyClaim, IdempotencyRecord};
pub use new_tasks::{Companion, TaskInsert};
pub use projects::{ProjectDelete, StoredProject};
pub use schedules::SlotClaim;
pub use spend::RoleSpend;
pub use task_history::{HistoryPage, StaleReport, Transition};
pub use task_inserts::TaskInserts;
pub use tasks::{StoredTask, TaskFilter, TaskWrite};
pub use workflows::{RunFilter, StoredRun};

use std::future::IntoFuture;
use std::sync::Arc;
use std::time::Duration;

use surrealdb::Surreal;
use surrealdb::engine::any::Any;

const NAMESPACE: &str = "vapora";
const DATABASE: &str = "vapora";

/// Tables, fields and indexes (`schema.surql`), defined at every start.
const SCHEMA: &str = include_str!("schema.surql");

/// How long one database call may take unless configured otherwise.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("database error: {0}")]
    Database(surrealdb::Error),
    #[error("stored record could not be read: {0}")]
    Corrupt(#[from] serde_json::Error),
    /// A concurrent transaction wrote the same records; nothing was
    /// written, and the caller may retry from a fresh read.
    #[error("a concurrent write touched the same records")]
    Conflict,
    /// The database did not answer in time; whether the call took effect
    /// is unknown.
    #[error("the database did not answer within {0:?}")]
    Timeout(Duration),
    /// The task that writes batched inserts stopped before answering.
    #[error("the task writer stopped before answering")]
    WriterStopped,
}

impl StorageError {
    /// The same error for another caller that shared the failed call.
    pub(crate) fn duplicate(&self) -> Self {
        match self {
            Self::Database(e) => Self::Database(e.clone()),
            Self::Corrupt(e) => Self::Corrupt(serde::de::Error::custom(e)),
            Self::Conflict => Self::Conflict,
            Self::Timeout(limit) => Self::Timeout(*limit),
            Self::WriterStopped => Self::WriterStopped,
        }
    }
}

impl From<surrealdb::Error> for StorageError {
    fn from(e: surrealdb::Error) -> Self {
        if is_conflict(&e) {
            Self::Conflict
        } else {
            Self::Database(e)
        }
    }
}

/// A handle to the database; cheap to clone.
///
/// The SDK handle sits behind an `Arc` on purpose: cloning a `Surreal`
/// handle opens a new database *session* (a message to the engine and fresh
/// per-session state), and this handle is cloned with `AppState` on every
/// request. Sharing one session makes a clone a reference-count bump.
///
/// Every call is bounded by a timeout ([`Self::with_call_timeout`]), so one
/// hung database answers a clear error instead of holding requests (and
/// the readiness probe) forever.
#[derive(Debug, Clone)]
pub struct Database {
    db: Arc<Surreal<Any>>,
    call_timeout: Duration,
}

impl Database {
    /// Connects, selects the namespace and database, and defines the schema.
    pub async fn connect(url: &str) -> Result<Self, StorageError> {
        Self::connect_with(url, None).await
    }

    /// As [`Self::connect`], signing in as root first (a server needs it;
    /// the embedded engines do not).
    pub async fn connect_with(url: &str, root: Option<(String, String)>) -> Result<Self, StorageError> {
        let limit = DEFAULT_CALL_TIMEOUT;
        let db = bounded(limit, surrealdb::engine::any::connect(url)).await?;
        let db = Self {
            db: Arc::new(db),
            call_timeout: limit,
        };
        if let Some((username, password)) = root {
            db.call(db.db.signin(surrealdb::opt::auth::Root { username, password }))
                .await?;
        }
        db.call(db.db.use_ns(NAMESPACE).use_db(DATABASE)).await?;
        db.call(db.db.query(SCHEMA)).await?.check()?;
        Ok(db)
    }

    /// The same handle with every later call bounded by `limit`.
    pub fn with_call_timeout(mut self, limit: Duration) -> Self {
        self.call_timeout = limit;
        self
    }

    /// A round trip to the database, for readiness checks.
    pub async fn ping(&self) -> Result<(), StorageError> {
        self.call(self.db.query("RETURN true")).await?.check()?;
        Ok(())
    }

    /// Awaits one SDK call within the call timeout.
    async fn call<F, T>(&self, request: F) -> Result<T, StorageError>
    where
        F: IntoFuture<Output = Result<T, surrealdb::Error>>,
    {
        bounded(self.call_timeout, request).await
    }

    async fn fetch_all(
        &self,
        sql: &str,
        vars: serde_json::Value,
    ) -> Result<Vec<serde_json::Value>, StorageError> {
        let mut response = self.call(self.db.query(sql).bind(vars)).await?;
        Ok(response.take(0)?)
    }

    async fn execute(&self, sql: &str, vars: serde_json::Value) -> Result<(), StorageError> {
        self.call(self.db.query(sql).bind(vars)).await?.check()?;
        Ok(())
    }

    /// Runs a `BEGIN … COMMIT` query and tells how it ended. When one
    /// statement fails, SurrealDB reports every other one as "not executed",
    /// so the cause is looked for among all of them.
    async fn transact(&self, sql: &str, vars: serde_json::Value) -> Result<Transaction, StorageError> {
        let mut errors: Vec<(usize, surrealdb::Error)> = self
            .call(self.db.query(sql).bind(vars))
            .await?
            .take_errors()
            .into_iter()
            .collect();
        if errors.is_empty() {
            return Ok(Transaction::Committed);
        }
        if let Some((_, thrown)) = errors.iter().find(|(_, e)| e.is_thrown()) {
            return Ok(Transaction::Thrown(thrown.message().to_owned()));
        }
        if errors.iter().any(|(_, e)| is_conflict(e)) {
            return Ok(Transaction::Conflict);
        }
        errors.sort_by_key(|(index, _)| *index);
        let cause = errors
            .iter()
            .position(|(_, e)| !is_not_executed(e))
            .unwrap_or_default();
        Err(errors.swap_remove(cause).1.into())
    }
}

/// A short random pause after a lost write race (the `race`-th in a row):
/// writers that lost together would otherwise retry together and collide
/// again. The ceiling grows with the losses, up to ~4 ms.
pub async fn back_off(race: u32) {
    use std::hash::{BuildHasher, RandomState};
    let ceiling_us = 200 * u64::from(race.min(20) + 1);
    // A fresh `RandomState` is randomly keyed: enough jitter, no extra crate.
    let jitter_us = RandomState::new().hash_one(race) % ceiling_us;
    tokio::time::sleep(Duration::from_micros(jitter_us)).await;
}

/// Awaits `request` for at most `limit`.
async fn bounded<F, T>(limit: Duration, request: F) -> Result<T, StorageError>
where
    F: IntoFuture<Output = Result<T, surrealdb::Error>>,
{
    match tokio::time::timeout(limit, request.into_future()).await {
        Ok(result) => Ok(result?),
        Err(_) => Err(StorageError::Timeout(limit)),
    }
}

/// How a transaction ended, short of a database failure.
#[derive(Debug, PartialEq)]
enum Transaction {
    Committed,
    /// A `THROW` in the query undid it; the thrown message.
    Thrown(String),
    /// Another writer's transaction touched the same records at the same
    /// time; nothing was written and the work may be retried.
    Conflict,
}

/// Whether the database refused a write because a concurrent transaction
/// touched the same keys (safe to retry from a fresh read).
fn is_conflict(e: &surrealdb::Error) -> bool {
    matches!(
        e.query_details(),
        Some(surrealdb::types::QueryError::TransactionConflict)
    )
}

/// Whether a statement was skipped because its transaction failed elsewhere.
fn is_not_executed(e: &surrealdb::Error) -> bool {
    matches!(e.query_details(), Some(surrealdb::types::QueryError::NotExecuted))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_call_that_outlasts_the_timeout_is_abandoned_with_an_error() {
        let db = Database::connect("mem://")
            .await
            .unwrap()
            .with_call_timeout(Duration::from_millis(200));
        let started = tokio::time::Instant::now();
        let outcome = db.execute("SLEEP 5s", serde_json::json!({})).await;
        assert!(matches!(outcome, Err(StorageError::Timeout(_))), "{outcome:?}");
        assert!(started.elapsed() < Duration::from_secs(2));
        // The handle stays usable.
        db.ping().await.unwrap();
    }
}
