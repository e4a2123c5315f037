//! Broker mode: the backend's half of distributed execution over NATS
//! JetStream, used instead of the in-process pool when `VAPORA_NATS_URL` is
//! set. `docs/protocol.md` is the contract with the workers.
//!
//! - [`dispatcher`]: per role, the queue's most urgent entry is published to
//!   `vapora.tasks.<role>`, and marked dispatched ([`dispatch_marks`]) once
//!   JetStream acked it.
//! - [`reports`]: the durable consumer of workers' reports, applied through
//!   the attempt fence.
//! - [`heartbeats`]: agent servers' heartbeats into the agent registry.
//! - [`dead_letters`]: attempts JetStream gave up on fail the task.
//! - [`stalls`]: running attempts whose agent went silent fail the task.
//! - [`reconciler`]: attempts the broker acknowledged and then lost are
//!   dispatched again.
//! - [`replication`]: every replica's events reach every replica's
//!   WebSocket and SSE clients, numbered in one order.
//!
//! The broker may be unreachable at start or at any time later. The client
//! reconnects by itself and set-up is retried until it succeeds; meanwhile
//! the API keeps serving and tasks wait in the bounded queue (503 once full).

pub mod dead_letters;
pub mod dispatch_marks;
pub mod dispatcher;
pub mod heartbeats;
pub mod reconciler;
pub mod replication;
pub mod reports;
pub mod stalls;

use std::time::Duration;

use async_nats::jetstream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use vapora_agents::RoleCatalog;
use vapora_agents::jetstream::{DeliveryPolicy, ensure_topology};
use vapora_agents::nats_auth::NatsCredentials;

use crate::queue::SharedTaskQueue;
use crate::swarm::reports::ReportIntake;

/// Acknowledged batches waiting for their marks, at most; dispatchers wait
/// beyond it. Batches are small when the load is light, so this is sized
/// for a grace period of one-task batches at 1,000+ tasks/s.
const MARK_BACKLOG: usize = 8_192;

/// What the broker-side tasks share; cheap to clone.
#[derive(Debug, Clone)]
pub struct BrokerContext {
    pub client: async_nats::Client,
    pub js: jetstream::Context,
    /// Where reports go, and the task service, registry and events behind it.
    pub intake: ReportIntake,
    pub queue: SharedTaskQueue,
    pub roles: RoleCatalog,
    pub delivery: DeliveryPolicy,
    /// See [`stalls`].
    pub stall_timeout: Duration,
    /// See [`reconciler`].
    pub reconcile_after: Duration,
}

#[derive(Debug, thiserror::Error)]
#[error("NATS at {url}: {source}")]
pub struct BrokerError {
    /// Redacted: credentials in the URL never reach a message.
    url: String,
    source: async_nats::ConnectError,
}

/// Why one of the backend's JetStream consumers could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum ConsumeError {
    #[error("stream: {0}")]
    Stream(#[from] async_nats::jetstream::context::GetStreamError),
    #[error("consumer: {0}")]
    Consumer(#[from] async_nats::jetstream::stream::ConsumerError),
    #[error("pulling: {0}")]
    Pull(#[from] async_nats::jetstream::consumer::StreamError),
}

/// Connects to NATS. A broker that is down now is not an error: the client
/// keeps trying in the background, and everything here waits for it.
pub async fn connect(url: &str, credentials: &NatsCredentials) -> Result<async_nats::Client, BrokerError> {
    let options = credentials
        .apply(async_nats::ConnectOptions::new())
        .await
        .map_err(|e| BrokerError {
            url: vapora_agents::nats_url::redacted(url),
            source: e.into(),
        })?;
    options
        .name("vapora-backend")
        .retry_on_initial_connect()
        .connect(vapora_agents::nats_url::servers(url))
        .await
        .map_err(|source| BrokerError {
            url: vapora_agents::nats_url::redacted(url),
            source,
        })
}

/// Starts every broker-side task on `tracker`; they stop when `stop` is
/// cancelled. Events replicate at once; the JetStream parts start once the
/// streams and consumers exist.
pub fn spawn(ctx: BrokerContext, tracker: &TaskTracker, stop: CancellationToken) {
    tracker.spawn(replication::run(
        ctx.clone(),
        ctx.intake.tasks.replica().into(),
        stop.clone(),
    ));
    tracker.spawn(heartbeats::run(ctx.clone(), stop.clone()));
    let inner = tracker.clone();
    tracker.spawn(async move {
        if !wait_for_topology(&ctx, &stop).await {
            return;
        }
        tracing::info!("JetStream topology ready; dispatching over the broker");
        // Only the dispatchers hold senders: the marker ends after them,
        // once their last marks are stored.
        let (marks, acked) = tokio::sync::mpsc::channel(MARK_BACKLOG);
        inner.spawn(dispatch_marks::run(ctx.clone(), acked, stop.clone()));
        for role in ctx.roles.roles() {
            inner.spawn(dispatcher::run(
                ctx.clone(),
                role.clone(),
                marks.clone(),
                stop.clone(),
            ));
        }
        inner.spawn(reports::run(ctx.clone(), stop.clone()));
        inner.spawn(dead_letters::run(ctx.clone(), stop.clone()));
        inner.spawn(stalls::run(ctx.clone(), ctx.stall_timeout, stop.clone()));
        inner.spawn(reconciler::run(ctx.clone(), ctx.reconcile_after, stop.clone()));
    });
}

/// Creates or updates the streams and consumers, retrying while the broker
/// is unreachable. Returns `false` if stopped first.
async fn wait_for_topology(ctx: &BrokerContext, stop: &CancellationToken) -> bool {
    let mut delay = Duration::from_millis(200);
    loop {
        match ensure_topology(&ctx.js, ctx.roles.roles(), &ctx.delivery).await {
            Ok(()) => return true,
            Err(e) => tracing::warn!(error = %e, retry_in = ?delay, "JetStream not ready"),
        }
        if !pause(delay, stop).await {
            return false;
        }
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

/// Waits `delay` before a retry; `false` if stopped meanwhile.
async fn pause(delay: Duration, stop: &CancellationToken) -> bool {
    tokio::select! {
        () = tokio::time::sleep(delay) => true,
        () = stop.cancelled() => false,
    }
}
