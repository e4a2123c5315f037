//! The broker dispatcher of one role: entries of the bounded priority queue
//! become `TaskAttempt`s on `vapora.tasks.<role>`.
//!
//! Each attempt carries `Nats-Msg-Id: <task>.<attempt>`, so publishing it
//! again (a retry after a lost ack, a restart before the mark was stored)
//! is dropped by JetStream's duplicate window. A task is marked dispatched
//! only after JetStream acked its attempt ([`super::dispatch_marks`]), and
//! the queue entry — with its unit of queue capacity — is released only
//! then: while the broker is unreachable the dispatcher retries with
//! backoff, the rest wait in the queue, and a full queue makes the API
//! answer 503.
//!
//! The dispatcher works in batches of whatever is waiting (up to [`BATCH`]):
//! one database read for the batch and the publishes pipelined on the
//! connection in priority order. Under load that is one round trip per batch
//! instead of per task; with one task waiting it is the same as one at a
//! time.

use std::time::Duration;

use async_nats::jetstream::context::{PublishAckFuture, PublishError};
use chrono::Utc;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use vapora_shared::wire::{MSG_ID_HEADER, PROTOCOL_VERSION, TaskAttempt, attempt_msg_id, task_subject};
use vapora_shared::{Role, Task, TaskId};

use super::dispatch_marks::Acked;
use super::{BrokerContext, pause};
use crate::queue::QueuedTask;

/// Most attempts published per batch.
pub const BATCH: usize = 128;
const FIRST_RETRY: Duration = Duration::from_millis(100);
const MAX_RETRY: Duration = Duration::from_secs(5);

/// A queue entry on its way out, with the attempt to publish.
struct Outgoing {
    entry: QueuedTask,
    attempt: TaskAttempt,
    /// `task.dispatch`, in the trace of the request that queued the task;
    /// it ends when JetStream has the attempt.
    span: tracing::Span,
    /// Where JetStream stored it, once acknowledged.
    stream_seq: u64,
}

pub async fn run(ctx: BrokerContext, role: Role, marks: mpsc::Sender<Acked>, stop: CancellationToken) {
    let subject = task_subject(&role);
    loop {
        let batch = tokio::select! {
            batch = ctx.queue.pop_batch(&role, BATCH) => batch,
            () = stop.cancelled() => return,
        };
        let wanted: Vec<(TaskId, u32)> = batch.iter().map(|e| (e.task_id, e.attempt)).collect();
        let tasks = match ctx.intake.tasks.awaiting_dispatch(&wanted).await {
            Ok(tasks) => tasks,
            Err(e) => {
                tracing::error!(error = %e, "cannot read queued tasks; retrying");
                for entry in batch {
                    ctx.queue.put_back(entry).await;
                }
                if pause(FIRST_RETRY * 10, &stop).await {
                    continue;
                }
                return;
            }
        };
        // Entries of tasks cancelled, moved or superseded while they waited
        // are dropped here; the rest keep their order.
        let mut tasks = tasks.into_iter().peekable();
        let outgoing: Vec<Outgoing> = batch
            .into_iter()
            .filter_map(|entry| {
                let task = tasks.next_if(|t| t.id == entry.task_id)?;
                let span = tracing::debug_span!("task.dispatch", task_id = %task.id, attempt = task.attempt, role = %task.role);
                vapora_telemetry::trace_context::continue_trace(&span, entry.trace.as_deref());
                Some(Outgoing {
                    attempt: attempt_of(&task),
                    entry,
                    span,
                    stream_seq: 0,
                })
            })
            .collect();
        let (sent, stopped) = publish_until_acked(&ctx, &subject, outgoing, &stop).await;
        let attempts: Vec<(TaskId, u32)> = sent
            .iter()
            .map(|o| (o.attempt.task_id, o.attempt.attempt))
            .collect();
        let at = Utc::now();
        ctx.intake.tasks.note_dispatched(&attempts, at);
        let acked = Acked {
            attempts: sent
                .iter()
                .map(|o| (o.attempt.task_id, o.attempt.attempt, o.stream_seq))
                .collect(),
            at,
            since: Instant::now(),
        };
        if marks.send(acked).await.is_err() {
            return;
        }
        // JetStream has them: their queue entries (and capacity) go.
        drop(sent);
        if stopped {
            return;
        }
    }
}

fn attempt_of(task: &Task) -> TaskAttempt {
    TaskAttempt {
        protocol: PROTOCOL_VERSION,
        task_id: task.id,
        project_id: task.project_id,
        attempt: task.attempt,
        role: task.role.clone(),
        priority: task.priority,
        title: task.title.clone(),
        description: task.prompt_description().into_owned(),
        dispatched_at: Utc::now(),
        context: task.prompt_context(),
        timeout_secs: task.timeout_secs,
    }
}

/// Publishes every attempt, retrying the unacknowledged ones with backoff
/// until JetStream has them all. Returns those acked, and whether it was
/// stopped first (the rest are then back in the queue).
async fn publish_until_acked(
    ctx: &BrokerContext,
    subject: &str,
    mut pending: Vec<Outgoing>,
    stop: &CancellationToken,
) -> (Vec<Outgoing>, bool) {
    let mut acked = Vec::with_capacity(pending.len());
    let mut delay = FIRST_RETRY;
    let mut failures = 0u32;
    loop {
        // Issue every publish first (in order, pipelined on the connection),
        // then collect the acks.
        let mut acks: Vec<Result<PublishAckFuture, PublishError>> = Vec::with_capacity(pending.len());
        for outgoing in &pending {
            acks.push(publish(ctx, subject, outgoing).await);
        }
        let mut unacked = Vec::new();
        let mut last_error = None;
        for (mut outgoing, ack) in pending.into_iter().zip(acks) {
            let result = match ack {
                Ok(ack) => ack.await,
                Err(e) => Err(e),
            };
            match result {
                Ok(ack) => {
                    outgoing.stream_seq = ack.sequence;
                    acked.push(outgoing);
                }
                Err(e) => {
                    last_error = Some(e);
                    unacked.push(outgoing);
                }
            }
        }
        if unacked.is_empty() {
            if failures > 0 {
                tracing::info!(failures, "broker reachable again; dispatch resumed");
            }
            return (acked, false);
        }
        failures += 1;
        // One line per outage, not one per retry.
        if failures == 1 {
            tracing::warn!(
                error = last_error.map(|e| e.to_string()).unwrap_or_default(),
                waiting = unacked.len(),
                "cannot publish to JetStream; tasks wait in the queue"
            );
        }
        pending = unacked;
        if !pause(delay, stop).await {
            for outgoing in pending {
                ctx.queue.put_back(outgoing.entry).await;
            }
            return (acked, true);
        }
        delay = (delay * 2).min(MAX_RETRY);
    }
}

async fn publish(
    ctx: &BrokerContext,
    subject: &str,
    outgoing: &Outgoing,
) -> Result<PublishAckFuture, PublishError> {
    let attempt = &outgoing.attempt;
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(
        MSG_ID_HEADER,
        attempt_msg_id(attempt.task_id, attempt.attempt).as_str(),
    );
    if let Some(traceparent) = vapora_telemetry::trace_context::traceparent_of(&outgoing.span) {
        headers.insert(vapora_telemetry::trace_context::TRACEPARENT, traceparent.as_str());
    }
    let payload = serde_json::to_vec(attempt).expect("serializable");
    ctx.js
        .publish_with_headers(subject.to_owned(), headers, payload.into())
        .await
}
