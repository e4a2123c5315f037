//! The NATS worker: takes task attempts from JetStream, runs them, and
//! reports back (see `docs/protocol.md`).
//!
//! Per role it pulls from the durable consumer `workers-<role>` with bounded
//! concurrency. For each attempt it reports `started`, streams `progress`,
//! and publishes `succeeded` or `failed`. Only once that final report is
//! acknowledged by JetStream is the attempt acked, so a crash at any point
//! leads to redelivery, never to a lost result. While the model call runs,
//! in-progress acks keep the attempt from being redelivered. A message on
//! `vapora.cancel.<task_id>` aborts the call. On shutdown the worker stops
//! pulling, lets running attempts finish until the deadline, then naks the
//! rest so they are redelivered at once.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::PullConsumer;
use async_nats::jetstream::{self as js, AckKind};
use chrono::Utc;
use futures::StreamExt;
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use vapora_llm_router::LlmClient;
use vapora_shared::wire::{
    CancelRequest, HEARTBEAT_SUBJECT, Heartbeat, MSG_ID_HEADER, TASKS_STREAM, TaskAttempt, TaskReport,
    cancel_subject, report_msg_id, task_events_subject,
};
use vapora_shared::{AgentId, Role};

use crate::jetstream::consumer_name;
use crate::{ExecutionError, RoleCatalog, execute};

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
}

#[derive(Debug, thiserror::Error)]
#[error("worker: {0}")]
pub struct WorkerError(String);

fn err(e: impl std::fmt::Display) -> WorkerError {
    WorkerError(e.to_string())
}

/// Everything one attempt needs; cheap to clone.
#[derive(Debug, Clone)]
struct Shared {
    client: async_nats::Client,
    js: js::Context,
    llm: Arc<dyn LlmClient>,
    catalog: RoleCatalog,
    config: WorkerConfig,
    load: Arc<std::sync::atomic::AtomicU32>,
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
    let tasks = shared.js.get_stream(TASKS_STREAM).await.map_err(err)?;
    let attempts = TaskTracker::new();
    // Cancelled after the shutdown deadline: running attempts are nak'ed.
    let abort = CancellationToken::new();
    let mut pullers = Vec::new();
    for role in &shared.config.roles {
        let consumer: PullConsumer = tasks.get_consumer(&consumer_name(role)).await.map_err(err)?;
        pullers.push(tokio::spawn(pull(
            shared.clone(),
            consumer,
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
    shared.client.flush().await.map_err(err)?;
    Ok(())
}

/// Pulls one role's attempts, never holding more than the concurrency allows.
async fn pull(
    shared: Shared,
    consumer: PullConsumer,
    attempts: TaskTracker,
    stop: CancellationToken,
    abort: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(shared.config.concurrency_per_role.max(1)));
    let mut messages = match consumer
        .stream()
        .max_messages_per_batch(shared.config.concurrency_per_role.max(1))
        .messages()
        .await
    {
        Ok(messages) => messages,
        Err(e) => return tracing::error!(error = %e, "cannot pull attempts"),
    };
    loop {
        // A free slot first, then a message: never more in hand than we run.
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.expect("never closed"),
            () = stop.cancelled() => return,
        };
        let message = tokio::select! {
            next = messages.next() => next,
            () = stop.cancelled() => return,
        };
        match message {
            Some(Ok(message)) => {
                attempts.spawn(run_attempt(shared.clone(), message, abort.clone(), slot));
            }
            Some(Err(e)) => tracing::warn!(error = %e, "pull error; retrying"),
            None => return,
        }
    }
}

async fn run_attempt(
    shared: Shared,
    message: js::Message,
    abort: CancellationToken,
    _slot: tokio::sync::OwnedSemaphorePermit,
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
    let (task_id, number, agent_id) = (attempt.task_id, attempt.attempt, shared.config.agent_id.clone());
    shared.load.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let _load = LoadGuard(shared.load.clone());

    let cancel = abort.child_token();
    let mut cancels = match shared.client.subscribe(cancel_subject(task_id)).await {
        Ok(subscription) => subscription,
        Err(e) => return tracing::error!(error = %e, "cannot subscribe for cancellation"),
    };
    let cancelled_by_user = CancellationToken::new();
    let watcher = {
        let (cancel, by_user) = (cancel.clone(), cancelled_by_user.clone());
        tokio::spawn(async move {
            while let Some(message) = cancels.next().await {
                // A cancel names its attempt; one for another attempt of the
                // same task (an older, superseded one) is not for us.
                match serde_json::from_slice::<CancelRequest>(&message.payload) {
                    Ok(request) if request.attempt != number => continue,
                    _ => {}
                }
                by_user.cancel();
                cancel.cancel();
                return;
            }
        })
    };
    // Keeps the attempt from being redelivered while the model works.
    let keepalive = {
        let (message_ack, every, done) = (message.clone(), shared.config.in_progress_every, cancel.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tokio::select! {
                    _ = tick.tick() => { let _ = message_ack.ack_with(AckKind::Progress).await; }
                    () = done.cancelled() => return,
                }
            }
        })
    };

    let started = TaskReport::Started {
        task_id,
        attempt: number,
        agent_id: agent_id.clone(),
    };
    if let Err(e) = report(&shared.js, &started).await {
        tracing::warn!(error = %e, "could not report start");
    }
    // Progress goes out through a bounded channel: best effort, never
    // holding up the model stream.
    let (progress_tx, mut progress_rx) = mpsc::channel::<TaskReport>(256);
    let progress_publisher = {
        let js = shared.js.clone();
        tokio::spawn(async move {
            while let Some(progress) = progress_rx.recv().await {
                let _ = report(&js, &progress).await;
            }
        })
    };
    let mut seq = 0;
    let outcome = execute(
        shared.llm.as_ref(),
        &shared.catalog,
        (&attempt).into(),
        &cancel,
        |chunk| {
            let progress = TaskReport::Progress {
                task_id,
                project_id: attempt.project_id,
                attempt: number,
                agent_id: agent_id.clone(),
                seq,
                chunk: chunk.to_owned(),
            };
            seq += 1;
            let _ = progress_tx.try_send(progress);
        },
    )
    .await;
    drop(progress_tx);
    let _ = progress_publisher.await;
    keepalive.abort();
    watcher.abort();

    let final_report = match outcome {
        Ok(result) => TaskReport::Succeeded {
            task_id,
            attempt: number,
            agent_id,
            result,
        },
        Err(ExecutionError::Cancelled) if cancelled_by_user.is_cancelled() => {
            let _ = message.ack().await;
            return;
        }
        Err(ExecutionError::Cancelled) => {
            // Our shutdown deadline: hand the attempt back for redelivery now.
            let _ = message.ack_with(AckKind::Nak(None)).await;
            return;
        }
        Err(e) => TaskReport::Failed {
            task_id,
            attempt: number,
            agent_id,
            error: e.to_string(),
        },
    };
    match report(&shared.js, &final_report).await {
        // Stored: now the attempt may leave the work queue.
        Ok(()) => {
            if let Err(e) = message.double_ack().await {
                tracing::warn!(error = %e, task = %task_id, "ack failed; the attempt will be redelivered");
            }
        }
        Err(e) => {
            tracing::error!(error = %e, task = %task_id, "result not stored; leaving the attempt for redelivery");
            let _ = message.ack_with(AckKind::Nak(None)).await;
        }
    }
}

struct LoadGuard(Arc<std::sync::atomic::AtomicU32>);

impl Drop for LoadGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Publishes a report to the events stream and waits for JetStream's ack.
async fn report(js: &js::Context, report: &TaskReport) -> Result<(), WorkerError> {
    let msg_id = report_msg_id(report);
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(MSG_ID_HEADER, msg_id.as_str());
    let payload = serde_json::to_vec(report).map_err(err)?;
    js.publish_with_headers(task_events_subject(report.task_id()), headers, payload.into())
        .await
        .map_err(err)?
        .await
        .map_err(err)?;
    Ok(())
}

async fn heartbeats(shared: Shared, stop: CancellationToken) {
    let mut tick = tokio::time::interval(shared.config.heartbeat_every);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = stop.cancelled() => return,
        }
        let beat = Heartbeat {
            agent_id: shared.config.agent_id.clone(),
            roles: shared.config.roles.clone(),
            load: shared.load.load(std::sync::atomic::Ordering::Relaxed),
            capacity: (shared.config.concurrency_per_role * shared.config.roles.len()) as u32,
            version: env!("CARGO_PKG_VERSION").into(),
            interval_ms: shared.config.heartbeat_every.as_millis() as u64,
            sent_at: Utc::now(),
        };
        if let Ok(payload) = serde_json::to_vec(&beat) {
            let _ = shared.client.publish(HEARTBEAT_SUBJECT, payload.into()).await;
        }
    }
}
