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
//! - `VAPORA_DEAD_LETTERS` captures JetStream's max-deliveries advisories
//!   for `VAPORA_TASKS`, so an attempt given up on while the backend is down
//!   is still failed (`dead_lettered`) when it returns.
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
use vapora_shared::wire::{
    DEAD_LETTERS_STREAM, EVENTS_STREAM, MAX_DELIVERIES_ADVISORY_PREFIX, TASKS_STREAM, task_subject,
};

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
    /// Copies of each stream a NATS cluster keeps (1 on a single server;
    /// 3 on a three-node cluster, so that losing a node loses nothing).
    /// Not a delivery setting, but one [`ensure_topology`] applies, so
    /// every process must agree on it too.
    pub stream_replicas: usize,
}

impl Default for DeliveryPolicy {
    fn default() -> Self {
        Self {
            ack_wait: Duration::from_secs(30),
            max_deliver: 5,
            backoff: [30, 60, 120, 240].map(Duration::from_secs).to_vec(),
            max_ack_pending: 1_000,
            stream_replicas: 1,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{name} is invalid: {value:?} ({reason})")]
pub struct SettingError {
    pub name: &'static str,
    pub value: String,
    pub reason: String,
}

impl DeliveryPolicy {
    /// Reads `VAPORA_NATS_ACK_WAIT_SECS`, `VAPORA_NATS_MAX_DELIVER`,
    /// `VAPORA_NATS_BACKOFF_SECS` (comma-separated) and
    /// `VAPORA_NATS_STREAM_REPLICAS` (1 to 5) over the defaults.
    /// Every process that calls [`ensure_topology`] must agree on them, so
    /// the backend and agent servers read the same variables.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, SettingError> {
        let mut policy = Self::default();
        let invalid = |name: &'static str, value: &str, reason: &str| SettingError {
            name,
            value: value.to_owned(),
            reason: reason.to_owned(),
        };
        let secs = |name: &'static str, value: &str| -> Result<Duration, SettingError> {
            let secs: f64 = value
                .trim()
                .parse()
                .map_err(|_| invalid(name, value, "expected seconds"))?;
            if !(secs > 0.0 && secs.is_finite()) {
                return Err(invalid(name, value, "must be positive"));
            }
            Ok(Duration::from_secs_f64(secs))
        };
        if let Some(value) = get("VAPORA_NATS_ACK_WAIT_SECS") {
            policy.ack_wait = secs("VAPORA_NATS_ACK_WAIT_SECS", &value)?;
        }
        if let Some(value) = get("VAPORA_NATS_MAX_DELIVER") {
            policy.max_deliver = value
                .trim()
                .parse::<i64>()
                .ok()
                .filter(|n| *n >= 1)
                .ok_or_else(|| invalid("VAPORA_NATS_MAX_DELIVER", &value, "expected an integer >= 1"))?;
        }
        if let Some(value) = get("VAPORA_NATS_STREAM_REPLICAS") {
            policy.stream_replicas = value
                .trim()
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=5).contains(n))
                .ok_or_else(|| invalid("VAPORA_NATS_STREAM_REPLICAS", &value, "expected 1 to 5"))?;
        }
        match get("VAPORA_NATS_BACKOFF_SECS") {
            Some(value) => {
                policy.backoff = value
                    .split(',')
                    .map(|v| secs("VAPORA_NATS_BACKOFF_SECS", v))
                    .collect::<Result<_, _>>()?;
            }
            // Without an explicit backoff, redeliver after the ack wait.
            None if get("VAPORA_NATS_ACK_WAIT_SECS").is_some() => policy.backoff.clear(),
            None => {}
        }
        // JetStream refuses a backoff longer than the deliveries it spaces.
        policy.backoff.truncate((policy.max_deliver - 1).max(0) as usize);
        Ok(policy)
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

pub fn dead_letters_stream_config() -> stream::Config {
    stream::Config {
        name: DEAD_LETTERS_STREAM.into(),
        subjects: vec![format!("{MAX_DELIVERIES_ADVISORY_PREFIX}.*")],
        retention: RetentionPolicy::WorkQueue,
        storage: StorageType::File,
        description: Some("Task attempts JetStream gave up on (max deliveries advisories)".into()),
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
pub enum TopologyError {
    #[error("JetStream stream: {0}")]
    CreateStream(#[from] async_nats::jetstream::context::CreateStreamError),
    #[error("JetStream stream: {0}")]
    GetStream(#[from] async_nats::jetstream::context::GetStreamError),
    #[error("JetStream consumer: {0}")]
    Consumer(#[from] async_nats::jetstream::stream::ConsumerError),
}

/// Creates or updates both streams and one consumer per role. Safe to run
/// from every process at every start.
pub async fn ensure_topology(
    context: &js::Context,
    roles: impl IntoIterator<Item = &Role>,
    delivery: &DeliveryPolicy,
) -> Result<(), TopologyError> {
    let replicated = |config| stream::Config {
        num_replicas: delivery.stream_replicas,
        ..config
    };
    let tasks = context
        .create_or_update_stream(replicated(tasks_stream_config()))
        .await?;
    for config in [events_stream_config(), dead_letters_stream_config()] {
        context.create_or_update_stream(replicated(config)).await?;
    }
    let tasks = context.get_stream(&tasks.config.name).await?;
    for role in roles {
        // Creates, or updates an existing durable to these settings.
        tasks
            .create_consumer(role_consumer_config(role, delivery))
            .await?;
    }
    Ok(())
}
