//! An agent server's heartbeats (its roles, load and capacity, every
//! interval) and the alive file a container health check reads.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use chrono::Utc;
use tokio_util::sync::CancellationToken;
use vapora_shared::wire::{HEARTBEAT_SUBJECT, Heartbeat, PROTOCOL_VERSION};

use super::Shared;

/// Counts an attempt in the heartbeat's `load` while it lives.
pub(super) struct LoadGuard(Arc<AtomicU32>);

impl LoadGuard {
    pub(super) fn new(load: &Arc<AtomicU32>) -> Self {
        load.fetch_add(1, Ordering::Relaxed);
        Self(load.clone())
    }
}

impl Drop for LoadGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

pub(super) async fn heartbeats(shared: Shared, stop: CancellationToken) {
    let mut tick = tokio::time::interval(shared.config.heartbeat_every);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = stop.cancelled() => return,
        }
        let beat = Heartbeat {
            protocol: PROTOCOL_VERSION,
            agent_id: shared.config.agent_id.clone(),
            roles: shared.config.roles.clone(),
            load: shared.load.load(Ordering::Relaxed),
            capacity: (shared.config.concurrency_per_role * shared.config.roles.len()) as u32,
            version: env!("CARGO_PKG_VERSION").into(),
            interval_ms: shared.config.heartbeat_every.as_millis() as u64,
            sent_at: Utc::now(),
        };
        if let Ok(payload) = serde_json::to_vec(&beat) {
            let _ = shared.client.publish(HEARTBEAT_SUBJECT, payload.into()).await;
        }
        if let Some(path) = &shared.config.alive_file
            && shared.client.connection_state() == async_nats::connection::State::Connected
            && let Err(e) = tokio::fs::write(path, beat.sent_at.timestamp_millis().to_string()).await
        {
            tracing::debug!(error = %e, path = %path.display(), "could not write the alive file");
        }
    }
}

/// How long ago the alive file was last written, per the time in it;
/// `None` if it is missing or unreadable. A worker that is connected and
/// heartbeating keeps this under its heartbeat interval.
pub fn alive_since(path: &Path) -> Option<Duration> {
    let written: i64 = std::fs::read_to_string(path).ok()?.trim().parse().ok()?;
    let age = Utc::now().timestamp_millis().saturating_sub(written);
    Some(Duration::from_millis(age.max(0).unsigned_abs()))
}
