//! Backend replicas that survive each other: who holds which queued task,
//! and who takes over the queue of a replica that is gone.
//!
//! A task waiting for dispatch sits in the in-memory queue of the replica
//! that queued it, and its record names that replica (`queued_on`, set by
//! the same write that queues the task, so it costs nothing extra). Each
//! replica holds a lease in the database, renewed every [`RENEW_EVERY`]
//! for [`LEASE_TTL`] by the database's clock. After each renewal a replica
//! adopts every waiting task whose replica holds no live lease: one killed,
//! cut off from the database, or stopped (a clean stop releases its lease,
//! so what it left queued moves on at once). Adoption is one conditional
//! update, so each task is adopted by one replica only.
//!
//! Adopting from a replica that is alive but was cut off from the database
//! longer than the lease is safe too: its dispatcher re-reads each task
//! before publishing and drops those no longer queued on it, and an attempt
//! published by both carries one message id, which JetStream's duplicate
//! window drops. The attempt fence is the last line either way.
//!
//! Hand-written on the database rather than a NATS KV bucket with a TTL:
//! the ownership must change in the same write as the task it moves, which
//! only the database can do.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::services::TaskService;

/// How long a lease lasts without renewal: a killed replica's queue is
/// adopted within this plus [`RENEW_EVERY`].
pub const LEASE_TTL: Duration = Duration::from_secs(10);
/// How often a replica renews its lease and looks for orphaned tasks.
pub const RENEW_EVERY: Duration = Duration::from_secs(2);

/// A replica's name in leases and task records: new at every start, so a
/// restarted process adopts what its previous life left queued.
pub fn new_replica_id() -> Arc<str> {
    uuid::Uuid::now_v7().to_string().into()
}

/// Renews this replica's lease and adopts orphaned tasks until `stop`, then
/// releases the lease.
pub async fn hold_lease(tasks: TaskService, stop: CancellationToken) {
    let mut every = tokio::time::interval(RENEW_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        tokio::select! {
            _ = every.tick() => {}
            () = stop.cancelled() => break,
        }
        match renew_and_adopt(&tasks).await {
            Ok(()) if failing => {
                failing = false;
                tracing::info!("replica lease renewed again");
            }
            Ok(()) => {}
            // One line per outage; storage errors are reported by the API too.
            Err(e) if !failing => {
                failing = true;
                tracing::warn!(error = %e, "cannot renew the replica lease; retrying");
            }
            Err(_) => {}
        }
    }
}

/// Renews the lease, then adopts what replicas without one left queued.
pub async fn renew_and_adopt(tasks: &TaskService) -> Result<(), crate::error::AppError> {
    tasks.renew_lease(LEASE_TTL).await?;
    let adopted = tasks.adopt_orphans().await?;
    if adopted > 0 {
        tracing::info!(tasks = adopted, "adopted tasks queued on a replica that is gone");
    }
    Ok(())
}
