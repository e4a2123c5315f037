//! Persistence in SurrealDB 3, through the `any` engine.
//!
//! One URL picks the engine: `surrealkv://path` (embedded, on disk — the
//! default), `mem://` (embedded, for tests) or `ws://host:port` (a server).
//! Records are stored from the serde form of the domain types; the schema
//! below is defined (idempotently) at every start so that a bad write is
//! refused by the database, not discovered later by a reader.

mod api_keys;
mod budgets;
mod codec;
mod concurrency_slots;
mod dead_letters;
mod idempotency;
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
pub use projects::{ProjectDelete, StoredProject};
pub use schedules::SlotClaim;
pub use spend::RoleSpend;
pub use task_history::{HistoryPage, StaleReport, Transition};
pub use task_inserts::TaskInserts;
pub use tasks::{Companion, StoredTask, TaskFilter, TaskInsert, TaskWrite};
pub use workflows::{RunFilter, StoredRun};

use std::future::IntoFuture;
use std::sync::Arc;
use std::time::Duration;

use surrealdb::Surreal;
use surrealdb::engine::any::Any;

const NAMESPACE: &str = "vapora";
const DATABASE: &str = "vapora";

const SCHEMA: &str = r#"
DEFINE TABLE OVERWRITE project SCHEMAFULL;
DEFINE FIELD OVERWRITE name ON project TYPE string;
DEFINE FIELD OVERWRITE description ON project TYPE string;
DEFINE FIELD OVERWRITE created_at ON project TYPE string;
DEFINE FIELD OVERWRITE updated_at ON project TYPE string;
-- Optimistic-concurrency revision, as on tasks. Projects stored before it
-- existed have none and are read as revision 0.
DEFINE FIELD OVERWRITE rev ON project TYPE int DEFAULT 0;
-- Guards between adding tasks and deleting their project. The engines'
-- snapshot isolation only catches write-write conflicts, so a task insert
-- that checks its project exists and a delete that checks the project has
-- no active task could both commit (write skew). Each insert writes one of
-- the project's guard records (picked by task id) and a delete writes them
-- all: the two conflict, while inserts conflict with each other only when
-- they pick the same guard. See `storage::projects::GUARDS`.
DEFINE TABLE OVERWRITE project_guard SCHEMAFULL;
DEFINE FIELD OVERWRITE writes ON project_guard TYPE int DEFAULT 0;

DEFINE TABLE OVERWRITE task SCHEMAFULL;
DEFINE FIELD OVERWRITE project_id ON task TYPE string;
DEFINE FIELD OVERWRITE title ON task TYPE string;
DEFINE FIELD OVERWRITE description ON task TYPE string;
DEFINE FIELD OVERWRITE role ON task TYPE string;
DEFINE FIELD OVERWRITE priority ON task TYPE string
    ASSERT $value IN ['low', 'medium', 'high', 'critical'];
DEFINE FIELD OVERWRITE status ON task TYPE string
    ASSERT $value IN ['todo', 'waiting', 'queued', 'running', 'review', 'done', 'failed', 'cancelled'];
DEFINE FIELD OVERWRITE requires_approval ON task TYPE bool;
DEFINE FIELD OVERWRITE attempt ON task TYPE int;
DEFINE FIELD OVERWRITE assigned_agent ON task TYPE option<string>;
DEFINE FIELD OVERWRITE result ON task TYPE option<object>;
DEFINE FIELD OVERWRITE result.output ON task TYPE string;
DEFINE FIELD OVERWRITE result.provider ON task TYPE string;
DEFINE FIELD OVERWRITE result.model ON task TYPE string;
DEFINE FIELD OVERWRITE result.tokens_in ON task TYPE int;
DEFINE FIELD OVERWRITE result.tokens_out ON task TYPE int;
DEFINE FIELD OVERWRITE result.cost_usd ON task TYPE number;
DEFINE FIELD OVERWRITE result.attempts ON task TYPE int DEFAULT 1;
DEFINE FIELD OVERWRITE result.output_truncated ON task TYPE bool DEFAULT false;
DEFINE FIELD OVERWRITE error ON task TYPE option<string>;
DEFINE FIELD OVERWRITE created_at ON task TYPE string;
DEFINE FIELD OVERWRITE updated_at ON task TYPE string;
DEFINE FIELD OVERWRITE dispatched_at ON task TYPE option<string>;
DEFINE FIELD OVERWRITE started_at ON task TYPE option<string>;
DEFINE FIELD OVERWRITE finished_at ON task TYPE option<string>;
-- The latest result a person sent back from review, and why.
DEFINE FIELD OVERWRITE rejection ON task TYPE option<object>;
DEFINE FIELD OVERWRITE rejection.attempt ON task TYPE int;
DEFINE FIELD OVERWRITE rejection.comment ON task TYPE string;
DEFINE FIELD OVERWRITE rejection.previous_output ON task TYPE string;
DEFINE FIELD OVERWRITE rejection.at ON task TYPE string;
DEFINE FIELD OVERWRITE timeout_secs ON task TYPE option<int>;
-- Dependencies: what must be done first, what still is not, what to do
-- if one fails, and the results handed on (see `services::waiting`).
DEFINE FIELD OVERWRITE depends_on ON task TYPE array<string> DEFAULT [];
DEFINE FIELD OVERWRITE waiting_on ON task TYPE array<string> DEFAULT [];
DEFINE FIELD OVERWRITE on_upstream_failure ON task TYPE string DEFAULT 'fail'
    ASSERT $value IN ['fail', 'wait'];
DEFINE FIELD OVERWRITE upstream ON task TYPE array<object> DEFAULT [];
DEFINE FIELD OVERWRITE upstream[*].task_id ON task TYPE string;
DEFINE FIELD OVERWRITE upstream[*].title ON task TYPE string;
DEFINE FIELD OVERWRITE upstream[*].role ON task TYPE string;
DEFINE FIELD OVERWRITE upstream[*].output ON task TYPE string;
DEFINE FIELD OVERWRITE upstream[*].stage ON task TYPE option<string>;
-- Not queued before `run_at`; failed attempts retried by themselves up to
-- `max_attempts`, after a backoff that doubles (see `services::waiting`).
DEFINE FIELD OVERWRITE run_at ON task TYPE option<string>;
DEFINE FIELD OVERWRITE max_attempts ON task TYPE int DEFAULT 1;
DEFINE FIELD OVERWRITE retry_backoff_secs ON task TYPE int DEFAULT 5;
-- The workflow run and stage the task is (see `crate::workflows`).
DEFINE FIELD OVERWRITE workflow ON task TYPE option<object>;
DEFINE FIELD OVERWRITE workflow.run_id ON task TYPE string;
DEFINE FIELD OVERWRITE workflow.stage ON task TYPE string;
DEFINE FIELD OVERWRITE workflow.dependents ON task TYPE array<string> DEFAULT [];
-- Concurrency keys: at most `limit` tasks of a key queued or running
-- (see `Database::replace_task_in_slot`, and its guard records).
DEFINE FIELD OVERWRITE concurrency ON task TYPE option<object>;
DEFINE FIELD OVERWRITE concurrency.key ON task TYPE string;
DEFINE FIELD OVERWRITE concurrency.limit ON task TYPE int;
DEFINE FIELD OVERWRITE waiting_for_slot ON task TYPE bool DEFAULT false;
DEFINE INDEX OVERWRITE task_concurrency ON task FIELDS concurrency.key;
DEFINE TABLE OVERWRITE concurrency_guard SCHEMAFULL;
DEFINE FIELD OVERWRITE writes ON concurrency_guard TYPE int DEFAULT 0;
-- Optimistic-concurrency revision: every write must name the revision it read.
DEFINE FIELD OVERWRITE rev ON task TYPE int;
-- The backend replica whose in-memory queue holds the task while it waits
-- for dispatch (see `crate::replicas`).
DEFINE FIELD OVERWRITE queued_on ON task TYPE option<string>;
-- Where JetStream stored the current attempt (its stream sequence), once
-- the dispatch mark is written: how `broker::reconciler` finds lost ones.
DEFINE FIELD OVERWRITE dispatch_seq ON task TYPE option<int>;
DEFINE INDEX OVERWRITE task_project ON task FIELDS project_id;
DEFINE INDEX OVERWRITE task_status ON task FIELDS status;
DEFINE INDEX OVERWRITE task_role ON task FIELDS role;
-- The board's and dashboards' most common filter.
DEFINE INDEX OVERWRITE task_project_status ON task FIELDS project_id, status;

-- Every status change of the task, oldest first, written by the same
-- compare-and-set that makes the change: the audit trail that shows a task
-- was finished exactly once, whoever (replica, worker, person) moved it.
-- Kept in the record rather than a table of its own: a row per move cost a
-- statement per move (measured: 0.17 ms against 0.03 ms in the record).
DEFINE FIELD OVERWRITE history ON task TYPE array<object> DEFAULT [];
DEFINE FIELD OVERWRITE history[*].from_status ON task TYPE option<string>;
DEFINE FIELD OVERWRITE history[*].to_status ON task TYPE string;
DEFINE FIELD OVERWRITE history[*].attempt ON task TYPE int;
DEFINE FIELD OVERWRITE history[*].agent ON task TYPE option<string>;
DEFINE FIELD OVERWRITE history[*].at ON task TYPE string;
-- Earlier builds kept the history in a `task_transition` table written by
-- events; the events go (they would keep writing it), the rows stay.
REMOVE EVENT IF EXISTS record_transition ON task;
REMOVE EVENT IF EXISTS forget_transitions ON task;

-- Worker reports that arrived for an attempt the task was no longer on.
DEFINE TABLE OVERWRITE stale_report SCHEMAFULL;
DEFINE FIELD OVERWRITE task ON stale_report TYPE string;
DEFINE FIELD OVERWRITE attempt ON stale_report TYPE int;
DEFINE FIELD OVERWRITE kind ON stale_report TYPE string;
DEFINE FIELD OVERWRITE agent ON stale_report TYPE string;
DEFINE FIELD OVERWRITE at ON stale_report TYPE string;
-- The whole result (JSON) when it came before its own worker's `started`.
DEFINE FIELD OVERWRITE report ON stale_report TYPE option<string>;
DEFINE INDEX OVERWRITE stale_report_task ON stale_report FIELDS task;

-- Attempts JetStream gave up on after its delivery limit (broker mode).
DEFINE TABLE OVERWRITE dead_letter SCHEMAFULL;
DEFINE FIELD OVERWRITE task_id ON dead_letter TYPE string;
DEFINE FIELD OVERWRITE attempt ON dead_letter TYPE int;
DEFINE FIELD OVERWRITE role ON dead_letter TYPE string;
DEFINE FIELD OVERWRITE deliveries ON dead_letter TYPE int;
DEFINE FIELD OVERWRITE stream_seq ON dead_letter TYPE int;
DEFINE FIELD OVERWRITE at ON dead_letter TYPE string;

-- API keys (see `auth::keys`), keyed by their public id: the HMAC of the
-- secret, never the secret.
DEFINE TABLE OVERWRITE api_key SCHEMAFULL;
DEFINE FIELD OVERWRITE name ON api_key TYPE string;
DEFINE FIELD OVERWRITE role ON api_key TYPE string ASSERT $value IN ['admin', 'member', 'viewer'];
DEFINE FIELD OVERWRITE projects ON api_key TYPE array<string> DEFAULT [];
DEFINE FIELD OVERWRITE hash ON api_key TYPE string;
DEFINE FIELD OVERWRITE created_at ON api_key TYPE string;
DEFINE FIELD OVERWRITE last_used_at ON api_key TYPE option<string>;
DEFINE FIELD OVERWRITE expires_at ON api_key TYPE option<string>;
DEFINE FIELD OVERWRITE revoked_at ON api_key TYPE option<string>;

-- Creates made with an `Idempotency-Key` (see `crate::idempotency`), keyed by
-- a hash of the caller's key id, the route and the client's key; times in
-- Unix milliseconds.
DEFINE TABLE OVERWRITE idempotency SCHEMAFULL;
DEFINE FIELD OVERWRITE fingerprint ON idempotency TYPE string;
DEFINE FIELD OVERWRITE claimed_at ON idempotency TYPE int;
DEFINE FIELD OVERWRITE expires_at ON idempotency TYPE int;
DEFINE FIELD OVERWRITE status ON idempotency TYPE option<int>;
DEFINE FIELD OVERWRITE response ON idempotency TYPE option<string>;
DEFINE INDEX OVERWRITE idempotency_expiry ON idempotency FIELDS expires_at;

-- One per live backend replica, renewed while it runs; expiry by the
-- database's clock, so replicas' clocks need not agree.
DEFINE TABLE OVERWRITE replica_lease SCHEMAFULL;
DEFINE FIELD OVERWRITE expires_at ON replica_lease TYPE datetime;

-- Workflow templates made over the API, keyed by name (those of
-- `config/workflows.toml` are read from the file). The template whole, as
-- JSON: `WorkflowTemplate::validate` checks its shape before it is stored.
DEFINE TABLE OVERWRITE workflow_template SCHEMAFULL;
DEFINE FIELD OVERWRITE body ON workflow_template TYPE string;

-- Workflow runs (see `crate::workflows`). Schemaless for `inputs`, whose
-- keys are the template's; the fields that are queried are typed.
DEFINE TABLE OVERWRITE workflow_run SCHEMALESS;
DEFINE FIELD OVERWRITE project_id ON workflow_run TYPE string;
DEFINE FIELD OVERWRITE template ON workflow_run TYPE string;
DEFINE FIELD OVERWRITE status ON workflow_run TYPE string
    ASSERT $value IN ['running', 'awaiting_approval', 'failed', 'done', 'cancelled'];
DEFINE FIELD OVERWRITE stages ON workflow_run TYPE array<object>;
DEFINE FIELD OVERWRITE rev ON workflow_run TYPE int;
DEFINE INDEX OVERWRITE workflow_run_project ON workflow_run FIELDS project_id;

-- Recurring schedules (see `crate::workflows::schedules`). `due_ms` is the
-- next slot in Unix milliseconds, what the tick compares and claims on.
-- Schemaless for the task or workflow body each slot starts.
DEFINE TABLE OVERWRITE schedule SCHEMALESS;
DEFINE FIELD OVERWRITE project_id ON schedule TYPE string;
DEFINE FIELD OVERWRITE cron ON schedule TYPE string;
DEFINE FIELD OVERWRITE due_ms ON schedule TYPE int;
DEFINE FIELD OVERWRITE fired ON schedule TYPE int DEFAULT 0;
DEFINE FIELD OVERWRITE skipped ON schedule TYPE int DEFAULT 0;
DEFINE INDEX OVERWRITE schedule_due ON schedule FIELDS due_ms;
DEFINE INDEX OVERWRITE schedule_project ON schedule FIELDS project_id;

-- Spend per LLM budget in its current period, keyed by budget key.
DEFINE TABLE OVERWRITE budget_spend SCHEMAFULL;
DEFINE FIELD OVERWRITE period_start ON budget_spend TYPE string;
DEFINE FIELD OVERWRITE spent_nanos ON budget_spend TYPE int;
"#;

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
