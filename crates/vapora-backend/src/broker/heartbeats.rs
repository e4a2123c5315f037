//! Agent servers' heartbeats into the agent registry.
//!
//! Every replica subscribes (core NATS, so each one hears every beat) and
//! keeps its own registry. A beat says when the next one is due; an agent
//! that misses three in a row is shown offline until it beats again, and is
//! forgotten once it has stayed offline for the registry's eviction delay
//! (`VAPORA_AGENT_EVICT_AFTER_SECS`).

use std::collections::HashMap;
use std::time::Duration;

use futures::StreamExt;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use vapora_shared::wire::{HEARTBEAT_SUBJECT, Heartbeat};
use vapora_shared::{AgentId, Event};

use super::BrokerContext;

/// Missed beats after which an agent is offline.
pub const MISSED_BEATS: u32 = 3;
/// Interval assumed for a beat that names none (or zero).
const DEFAULT_INTERVAL: Duration = Duration::from_secs(3);
const SWEEP_EVERY: Duration = Duration::from_millis(250);
/// Eviction is not urgent; looking for it less often keeps the registry's
/// lock free for readers.
const EVICT_EVERY: Duration = Duration::from_secs(1);

pub async fn run(ctx: BrokerContext, stop: CancellationToken) {
    let mut beats = match ctx.client.subscribe(HEARTBEAT_SUBJECT).await {
        Ok(subscription) => subscription,
        Err(e) => return tracing::error!(error = %e, "cannot subscribe to heartbeats"),
    };
    // When each live agent is declared offline unless it beats again.
    let mut deadlines: HashMap<AgentId, Instant> = HashMap::new();
    let mut sweep = tokio::time::interval(SWEEP_EVERY);
    let mut evict = tokio::time::interval(EVICT_EVERY);
    loop {
        tokio::select! {
            Some(message) = beats.next() => {
                let beat: Heartbeat = match serde_json::from_slice(&message.payload) {
                    Ok(beat) => beat,
                    Err(e) => {
                        tracing::debug!(error = %e, "unreadable heartbeat ignored");
                        continue;
                    }
                };
                let interval = match beat.interval_ms {
                    0 => DEFAULT_INTERVAL,
                    ms => Duration::from_millis(ms),
                };
                deadlines.insert(beat.agent_id.clone(), Instant::now() + interval * MISSED_BEATS);
                if let Some(agent) = ctx.intake.registry.heartbeat(&beat).await {
                    ctx.intake.events.publish(&Event::AgentUpdated(agent));
                }
            }
            _ = sweep.tick() => {
                let now = Instant::now();
                let expired: Vec<AgentId> = deadlines
                    .iter()
                    .filter(|(_, deadline)| **deadline <= now)
                    .map(|(id, _)| id.clone())
                    .collect();
                for id in expired {
                    deadlines.remove(&id);
                    tracing::info!(agent = %id, "agent missed {MISSED_BEATS} heartbeats; offline");
                    if let Some(agent) = ctx.intake.registry.set_offline(&id).await {
                        ctx.intake.events.publish(&Event::AgentUpdated(agent));
                    }
                }
            }
            _ = evict.tick() => {
                for id in ctx.intake.registry.evict_offline().await {
                    tracing::info!(agent = %id, "agent stayed offline too long; forgotten");
                }
            }
            () = stop.cancelled() => return,
        }
    }
}
