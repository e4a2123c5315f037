//! The JetStream topology shared by the backend and agent servers.
//!
//! Two file-backed streams, created (or brought up to date) idempotently by
//! whoever starts first:
//!
//! - `VAPORA_TASKS` (`vapora.tasks.<role>`), *work-queue* retention: an
//!   attempt is deleted once a worker acks it. A two-minute duplicate
//!   window drops a re-published attempt carrying the same `Nats-Msg-Id`.
//!   The stream refuses new messages when full rather than dropping old
//!   ones, so the backend sees backpressure instead of silent loss.
//! - `VAPORA_TASK_EVENTS` (`vapora.events.<task_id>`), limits retention (24 h):
//!   progress and results, read by the backend's durable consumer, so
//!   reports sent while the backend is down are applied when it returns.
//!
//! One durable pull consumer per role (`workers-<role>`) with explicit acks,
//! an ack wait that in-progress acks extend, a delivery limit and a
//! redelivery backoff. Durability on power loss depends on the server's
//! `sync_interval`; see `docs/protocol.md`.

use std::time::Duration;

use async_nats::jetstream::consumer::{AckPolicy, pull};
use async_nats::jetstream::stream::{self, DiscardPolicy, RetentionPolicy, StorageType};
use async_nats::jetstream::{self as js};
use vapora_shared::Role;
use vapora_shared::wire::{EVENTS_STREAM, TASKS_STREAM, task_subject};

/// How attempts are delivered to workers.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryPolicy {
    /// Time a worker has to ack (or send an in-progress ack) before the
    /// attempt is redelivered.
    pub ack_wait: Duration,
    /// Deliveries before an attempt is given up (dead-lettered).
    pub max_deliver: i64,
    /// Waits before each redelivery; the first equals `ack_wait`.
    pub backoff: Vec<Duration>,
    /// Unacked attempts a role's consumer hands out at once.
    pub max_ack_pending: i64,
}

impl Default for DeliveryPolicy {
    fn default() -> Self {
        Self {
            ack_wait: Duration::from_secs(30),
            max_deliver: 5,
            backoff: [30, 60, 120, 240].map(Duration::from_secs).to_vec(),
            max_ack_pending: 1_000,
        }
    }
}

pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);
pub const MAX_QUEUED_ATTEMPTS: i64 = 1_000_000;

/// Durable name of the consumer serving `role`.
pub fn consumer_name(role: &Role) -> String {
    format!("workers-{role}")
}

pub fn tasks_stream_config() -> stream::Config {
    stream::Config {
        name: TASKS_STREAM.into(),
        subjects: vec!["vapora.tasks.*".into()],
        retention: RetentionPolicy::WorkQueue,
        storage: StorageType::File,
        discard: DiscardPolicy::New,
        max_messages: MAX_QUEUED_ATTEMPTS,
        duplicate_window: DUPLICATE_WINDOW,
        description: Some("Vapora task attempts, one subject per role".into()),
        ..Default::default()
    }
}

pub fn events_stream_config() -> stream::Config {
    stream::Config {
        name: EVENTS_STREAM.into(),
        subjects: vec!["vapora.events.*".into()],
        retention: RetentionPolicy::Limits,
        storage: StorageType::File,
        max_age: Duration::from_secs(24 * 3600),
        duplicate_window: DUPLICATE_WINDOW,
        description: Some("Progress and results reported by Vapora workers".into()),
        ..Default::default()
    }
}

pub fn role_consumer_config(role: &Role, delivery: &DeliveryPolicy) -> pull::Config {
    pull::Config {
        durable_name: Some(consumer_name(role)),
        filter_subject: task_subject(role),
        ack_policy: AckPolicy::Explicit,
        ack_wait: delivery.ack_wait,
        max_deliver: delivery.max_deliver,
        backoff: delivery.backoff.clone(),
        max_ack_pending: delivery.max_ack_pending,
        description: Some(format!("Vapora workers of role {role}")),
        ..Default::default()
    }
}

#[derive(Debug, thiserror::Error)]
#[error("JetStream topology: {0}")]
pub struct TopologyError(String);

/// Creates or updates both streams and one consumer per role. Safe to run
/// from every process at every start.
pub async fn ensure_topology(
    context: &js::Context,
    roles: impl IntoIterator<Item = &Role>,
    delivery: &DeliveryPolicy,
) -> Result<(), TopologyError> {
    let err = |e: &dyn std::fmt::Display| TopologyError(e.to_string());
    let tasks = context
        .create_or_update_stream(tasks_stream_config())
        .await
        .map_err(|e| err(&e))?;
    context
        .create_or_update_stream(events_stream_config())
        .await
        .map_err(|e| err(&e))?;
    let tasks = context
        .get_stream(&tasks.config.name)
        .await
        .map_err(|e| err(&e))?;
    for role in roles {
        tasks
            .create_consumer(role_consumer_config(role, delivery))
            .await
            .map_err(|e| err(&e))?;
    }
    Ok(())
}
