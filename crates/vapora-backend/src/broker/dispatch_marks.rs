//! Dispatch marks, stored a moment late.
//!
//! Once JetStream acknowledged an attempt, the task's `dispatched_at` is
//! stamped with the acknowledgement time, so that a restart knows which
//! queued tasks the broker already holds. Most attempts are started by a
//! worker within milliseconds, and applying that `started` stamps the same
//! time anyway (see `services::dispatch_times`). So marks wait [`GRACE`]
//! and are then stored only for attempts no report has moved: under load
//! that saves a database write per task (measured: about 15% of the
//! backend's CPU). A backend that dies within the grace period loses only marks; at
//! restart those attempts are published again under the same message id,
//! which JetStream's duplicate window drops.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use vapora_shared::TaskId;

use super::BrokerContext;

/// How long a mark waits for the worker's `started`: long enough to cover
/// a backlog in the broker, well inside JetStream's two-minute duplicate
/// window.
pub const GRACE: Duration = Duration::from_secs(5);

/// Attempts acknowledged together, with their stream sequences, and when.
#[derive(Debug)]
pub struct Acked {
    pub attempts: Vec<(TaskId, u32, u64)>,
    pub at: DateTime<Utc>,
    pub since: Instant,
}

/// Stores marks as their grace ends, in acknowledgement order; once `stop`
/// is cancelled, at once. Ends when every dispatcher is gone and the
/// backlog is written.
pub async fn run(ctx: BrokerContext, mut acked: mpsc::Receiver<Acked>, stop: CancellationToken) {
    while let Some(batch) = acked.recv().await {
        tokio::select! {
            () = tokio::time::sleep_until(batch.since + GRACE) => {}
            () = stop.cancelled() => {}
        }
        if let Err(e) = ctx.intake.tasks.mark_dispatched(&batch.attempts, batch.at).await {
            // JetStream has the attempts and the workers' reports will move
            // the tasks; only the mark is missing, and a restart re-publishes
            // them (deduplicated within the window).
            tracing::warn!(tasks = batch.attempts.len(), error = %e, "dispatched, but could not record it");
        }
    }
}
