//! The NATS worker: takes task attempts from JetStream, runs them, and
//! reports back (see `docs/protocol.md`).
//!
//! Per role it pulls from the durable consumer `workers-<role>` with bounded
//! concurrency. For each attempt it reports `started` (and calls the model
//! only once JetStream has stored it), streams `progress`,
//! and publishes `succeeded` or `failed`. Only once that final report is
//! acknowledged by JetStream is the attempt acked, so a crash at any point
//! leads to redelivery, never to a lost result. While the model call runs,
//! in-progress acks keep the attempt from being redelivered. A message on
//! `vapora.cancel.<task_id>` aborts the call. On shutdown the worker stops
//! pulling, lets running attempts finish until the deadline, then naks the
//! rest so they are redelivered at once.
//!
//! Reports go out through `report_sink`; `heartbeats` announces the
//! worker and keeps its alive file.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicU32;
use std::time::Duration;

use async_nats::jetstream::consumer::PullConsumer;
use async_nats::jetstream::{self as js, AckKind};
use futures::StreamExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use vapora_llm_router::LlmClient;
use vapora_shared::wire::{CancelRequest, TASKS_STREAM, TaskAttempt, cancel_subject};
use vapora_shared::{AgentId, Role};

use crate::RoleCatalog;
use crate::attempt::{AgentContext, AttemptOutcome, OutputLimits, run_attempt};
use crate::jetstream::consumer_name;
use crate::metrics::AgentMetrics;

mod heartbeats;
mod report_sink;

pub use heartbeats::alive_since;
use heartbeats::{LoadGuard, heartbeats};
use report_sink::JetStreamSink;

#[derive(Debug, Clone)]
pub struct WorkerConfig {
    pub agent_id: AgentId,
    pub roles: Vec<Role>,
    /// Attempts run at once, per role.
    pub concurrency_per_role: usize,
    pub heartbeat_every: Duration,
    /// Interval of in-progress acks; keep it well under the consumer's ack wait.
    pub in_progress_every: Duration,
    /// How long running attempts may go on after shutdown is requested.
    pub shutdown_deadline: Duration,
    /// Size limits on outputs and progress chunks.
    pub limits: OutputLimits,
    /// Rewritten with the time at every heartbeat sent while connected to
    /// NATS, for `vapora-agent-server healthcheck` (see [`alive_since`]).
    pub alive_file: Option<PathBuf>,
    /// Where attempts are counted and timed.
    pub metrics: AgentMetrics,
}

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("flushing at shutdown: {0}")]
    Flush(#[from] async_nats::client::FlushError),
}

/// Everything one attempt needs; cheap to clone.
#[derive(Debug, Clone)]
struct Shared {
    client: async_nats::Client,
    js: js::Context,
    llm: Arc<dyn LlmClient>,
    catalog: RoleCatalog,
    config: WorkerConfig,
    load: Arc<AtomicU32>,
}

/// Runs until `stop` is cancelled and running attempts are settled.
pub async fn run(
    client: async_nats::Client,
    llm: Arc<dyn LlmClient>,
    catalog: RoleCatalog,
    config: WorkerConfig,
    stop: CancellationToken,
) -> Result<(), WorkerError> {
    let js = js::new(client.clone());
    let shared = Shared {
        client,
        js,
        llm,
        catalog,
        config,
        load: Default::default(),
    };
    let attempts = TaskTracker::new();
    // Cancelled after the shutdown deadline: running attempts are nak'ed.
    let abort = CancellationToken::new();
    let mut pullers = Vec::new();
    for role in &shared.config.roles {
        pullers.push(tokio::spawn(pull(
            shared.clone(),
            consumer_name(role),
            attempts.clone(),
            stop.clone(),
            abort.clone(),
        )));
    }
    let heartbeat = tokio::spawn(heartbeats(shared.clone(), stop.clone()));

    stop.cancelled().await;
    for puller in pullers {
        let _ = puller.await;
    }
    attempts.close();
    if tokio::time::timeout(shared.config.shutdown_deadline, attempts.wait())
        .await
        .is_err()
    {
        tracing::warn!("attempts still running at the shutdown deadline; handing them back");
        abort.cancel();
        attempts.wait().await;
    }
    let _ = heartbeat.await;
    shared.client.flush().await?;
    Ok(())
}

/// How long one pull request waits on the server for attempts.
const PULL_WAIT: Duration = Duration::from_secs(5);

/// Pulls one role's attempts, never holding more than the concurrency allows.
///
/// Each pull asks for exactly as many attempts as there are free slots. A
/// prefetched attempt waiting here for a slot would count down its ack
/// wait with nothing to extend it (in-progress acks start with the
/// attempt), and JetStream would hand it to another worker meanwhile: two
/// model calls for one attempt whenever calls last longer than the ack wait.
async fn pull(
    shared: Shared,
    consumer: String,
    attempts: TaskTracker,
    stop: CancellationToken,
    abort: CancellationToken,
) {
    let Some(consumer) = open_consumer(&shared.js, &consumer, &stop).await else {
        return;
    };
    let slots = Arc::new(Semaphore::new(shared.config.concurrency_per_role.max(1)));
    let mut failing = false;
    loop {
        let first = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.expect("never closed"),
            () = stop.cancelled() => return,
        };
        let mut free = vec![first];
        while let Ok(slot) = slots.clone().try_acquire_owned() {
            free.push(slot);
        }
        let batch = consumer
            .batch()
            .max_messages(free.len())
            .expires(PULL_WAIT)
            .messages()
            .await;
        let mut messages = match batch {
            Ok(messages) => messages,
            Err(e) => {
                // One line per outage: the client reconnects by itself.
                if !std::mem::replace(&mut failing, true) {
                    tracing::warn!(error = %e, "cannot pull attempts; retrying");
                }
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_millis(500)) => continue,
                    () = stop.cancelled() => return,
                }
            }
        };
        if std::mem::replace(&mut failing, false) {
            tracing::info!("pulling attempts again");
        }
        loop {
            let next = tokio::select! {
                next = messages.next() => next,
                () = stop.cancelled() => return,
            };
            match next {
                Some(Ok(message)) => {
                    let Some(slot) = free.pop() else {
                        // The server never sends more than asked for.
                        break;
                    };
                    attempts.spawn(take_attempt(shared.clone(), message, abort.clone(), slot));
                }
                Some(Err(e)) => {
                    tracing::debug!(error = %e, "pull ended early");
                    break;
                }
                None => break,
            }
        }
    }
}

/// The durable consumer `name` of the tasks stream, asked for until
/// JetStream answers (a cluster may still be electing its leaders); `None`
/// if stopped first.
async fn open_consumer(js: &js::Context, name: &str, stop: &CancellationToken) -> Option<PullConsumer> {
    let mut delay = Duration::from_millis(200);
    loop {
        let consumer = match js.get_stream(TASKS_STREAM).await {
            Ok(tasks) => tasks.get_consumer(name).await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match consumer {
            Ok(consumer) => return Some(consumer),
            Err(error) => {
                tracing::warn!(consumer = name, %error, retry_in = ?delay, "cannot open the consumer yet")
            }
        }
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = stop.cancelled() => return None,
        }
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

/// One delivered attempt: the shared [`run_attempt`], with what JetStream
/// adds around it (cancellation requests, in-progress acks, the final ack).
async fn take_attempt(
    shared: Shared,
    message: js::Message,
    abort: CancellationToken,
    _slot: OwnedSemaphorePermit,
) {
    let attempt: TaskAttempt = match serde_json::from_slice(&message.payload) {
        Ok(attempt) => attempt,
        Err(e) => {
            // Unreadable forever: stop redelivering it.
            tracing::error!(error = %e, "malformed task attempt; terminating it");
            let _ = message.ack_with(AckKind::Term).await;
            return;
        }
    };
    let _load = LoadGuard::new(&shared.load);
    let _in_flight = shared.config.metrics.in_flight();
    let started = std::time::Instant::now();
    let cancel = CancellationToken::new();
    let watcher = match watch_cancellation(&shared.client, &attempt, cancel.clone()).await {
        Ok(watcher) => watcher,
        Err(e) => {
            // Running without hearing cancellations could waste a whole
            // model call; another worker (or this one, later) can take it.
            tracing::warn!(error = %e, task = %attempt.task_id, "cannot subscribe for cancellation; handing the attempt back");
            let _ = message
                .ack_with(AckKind::Nak(Some(shared.config.in_progress_every)))
                .await;
            return;
        }
    };
    let keepalive = keep_in_progress(message.clone(), shared.config.in_progress_every);
    let sink = JetStreamSink::start(shared.js.clone());
    let agent = AgentContext {
        id: &shared.config.agent_id,
        llm: shared.llm.as_ref(),
        roles: &shared.catalog,
        limits: shared.config.limits,
    };
    // The attempt's execution, in the trace its dispatch carried.
    let span = tracing::debug_span!("task.execute", task_id = %attempt.task_id, attempt = attempt.attempt, role = %attempt.role);
    let parent = message
        .headers
        .as_ref()
        .and_then(|h| h.get(vapora_telemetry::trace_context::TRACEPARENT))
        .map(|v| v.as_str());
    vapora_telemetry::trace_context::continue_trace(&span, parent);
    let outcome = tracing::Instrument::instrument(
        run_attempt(agent, (&attempt).into(), &sink, &cancel, &abort),
        span,
    )
    .await;
    shared
        .config
        .metrics
        .attempt_ended(&attempt.role, &outcome, started.elapsed());
    drop(sink);
    keepalive.abort();
    watcher.abort();
    let task = attempt.task_id;
    match outcome {
        // Stored: now the attempt may leave the work queue.
        AttemptOutcome::Reported { .. } => {
            if let Err(e) = message.double_ack().await {
                tracing::warn!(error = %e, %task, "ack failed; the attempt will be redelivered");
            }
        }
        AttemptOutcome::Cancelled | AttemptOutcome::Superseded => {
            let _ = message.ack().await;
        }
        // Our shutdown deadline: hand the attempt back for redelivery now.
        AttemptOutcome::Interrupted => {
            let _ = message.ack_with(AckKind::Nak(None)).await;
        }
        AttemptOutcome::Undelivered(e) => {
            tracing::error!(error = %e, %task, "result not stored; leaving the attempt for redelivery");
            let _ = message.ack_with(AckKind::Nak(None)).await;
        }
    }
}

/// Trips `cancel` when a cancellation for this attempt arrives on
/// `vapora.cancel.<task_id>`.
async fn watch_cancellation(
    client: &async_nats::Client,
    attempt: &TaskAttempt,
    cancel: CancellationToken,
) -> Result<JoinHandle<()>, async_nats::SubscribeError> {
    let mut cancels = client.subscribe(cancel_subject(attempt.task_id)).await?;
    let number = attempt.attempt;
    Ok(tokio::spawn(async move {
        while let Some(message) = cancels.next().await {
            // A cancel names its attempt; one for another attempt of the
            // same task (an older, superseded one) is not for us.
            match serde_json::from_slice::<CancelRequest>(&message.payload) {
                Ok(request) if request.attempt != number => continue,
                _ => {}
            }
            cancel.cancel();
            return;
        }
    }))
}

/// Keeps the attempt from being redelivered while the model works.
fn keep_in_progress(message: js::Message, every: Duration) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.tick().await;
        loop {
            tick.tick().await;
            let _ = message.ack_with(AckKind::Progress).await;
        }
    })
}
