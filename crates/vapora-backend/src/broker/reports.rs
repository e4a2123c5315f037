//! Workers' reports from `VAPORA_TASK_EVENTS`, applied to the tasks.
//!
//! One durable pull consumer, `backend`, shared by every replica: each
//! report is applied by one of them (the others learn of the change through
//! event replication), and reports published while every replica was down
//! wait in the stream. A report is acked only after it was applied (or
//! found stale), so a replica that dies mid-way leaves it for redelivery.
//!
//! Reports of different tasks are applied concurrently on a fixed number of
//! lanes; a task always maps to the same lane, so its reports keep their
//! order within this replica. A lane applies what has queued up for it in
//! one batch ([`crate::services::TaskService::apply_reports`]): one read
//! and one transaction instead of a read and a write per report.

use std::hash::{Hash, Hasher};
use std::time::Duration;

use async_nats::jetstream::consumer::{AckPolicy, PullConsumer, pull};
use async_nats::jetstream::{self as js, AckKind};
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use vapora_shared::Event;
use vapora_shared::wire::{EVENTS_STREAM, TaskReport};

use super::{BrokerContext, pause};
use crate::services::ReportOutcome;

/// Durable name of the backend's consumer of reports.
pub const CONSUMER: &str = "backend";
const LANES: usize = 4;
/// Reports applied in one transaction, at most. Bigger transactions cost
/// more per write in SurrealDB (measured: 16–32 writes is the sweet spot).
const MAX_BATCH: usize = 32;
/// Reports handed out to the backend and not yet acked, across replicas.
const MAX_ACK_PENDING: i64 = 20_000;

pub async fn run(ctx: BrokerContext, stop: CancellationToken) {
    let mut messages = loop {
        match open(&ctx).await {
            Ok(messages) => break messages,
            Err(e) => tracing::warn!(error = %e, "cannot consume worker reports yet; retrying"),
        }
        if !pause(Duration::from_secs(1), &stop).await {
            return;
        }
    };
    let lanes = TaskTracker::new();
    let senders: Vec<mpsc::Sender<js::Message>> = (0..LANES)
        .map(|_| {
            let (tx, rx) = mpsc::channel(256);
            lanes.spawn(lane(ctx.clone(), rx));
            tx
        })
        .collect();
    loop {
        let message = tokio::select! {
            next = messages.next() => next,
            () = stop.cancelled() => break,
        };
        match message {
            Some(Ok(message)) => {
                let mut hasher = std::collections::hash_map::DefaultHasher::new();
                message.subject.hash(&mut hasher);
                let lane = (hasher.finish() % LANES as u64) as usize;
                if senders[lane].send(message).await.is_err() {
                    break;
                }
            }
            // Missed heartbeats and the like while the broker is away; the
            // stream recovers on its own once the client reconnects.
            Some(Err(e)) => tracing::debug!(error = %e, "report stream hiccup"),
            None => break,
        }
    }
    // Unacked reports in the lanes' buffers are applied before we stop;
    // any we never took are redelivered to whoever consumes next.
    drop(senders);
    lanes.close();
    lanes.wait().await;
}

async fn open(ctx: &BrokerContext) -> Result<pull::Stream, String> {
    let stream = ctx
        .js
        .get_stream(EVENTS_STREAM)
        .await
        .map_err(|e| e.to_string())?;
    let consumer: PullConsumer = stream
        .create_consumer(pull::Config {
            durable_name: Some(CONSUMER.into()),
            ack_policy: AckPolicy::Explicit,
            ack_wait: Duration::from_secs(30),
            max_ack_pending: MAX_ACK_PENDING,
            description: Some("Vapora backend: applies worker reports".into()),
            ..Default::default()
        })
        .await
        .map_err(|e| e.to_string())?;
    consumer
        .stream()
        .max_messages_per_batch(500)
        .messages()
        .await
        .map_err(|e| e.to_string())
}

async fn lane(ctx: BrokerContext, mut messages: mpsc::Receiver<js::Message>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    // Whatever queued up while the last batch was being applied goes
    // together: under load batches grow, and with them the saving.
    while messages.recv_many(&mut batch, MAX_BATCH).await > 0 {
        apply_batch(&ctx, std::mem::take(&mut batch)).await;
    }
}

async fn apply_batch(ctx: &BrokerContext, messages: Vec<js::Message>) {
    let mut reports = Vec::with_capacity(messages.len());
    let mut readable = Vec::with_capacity(messages.len());
    for message in messages {
        match serde_json::from_slice::<TaskReport>(&message.payload) {
            Ok(report) => {
                reports.push(report);
                readable.push(message);
            }
            Err(e) => {
                tracing::warn!(subject = %message.subject, error = %e, "unreadable worker report dropped");
                let _ = message.ack_with(AckKind::Term).await;
            }
        }
    }
    let outcomes = ctx.tasks.apply_reports(&reports).await;
    for ((report, message), outcome) in reports.iter().zip(readable).zip(outcomes) {
        match outcome {
            Ok(outcome) => {
                note_in_registry(ctx, report, &outcome).await;
                if let (ReportOutcome::Stale, TaskReport::Started { .. }) = (&outcome, report) {
                    // A worker is running an attempt nobody wants any more.
                    ctx.tasks
                        .running_tasks()
                        .cancel(report.task_id(), report.attempt())
                        .await;
                }
                let _ = message.ack().await;
            }
            Err(e) => {
                tracing::warn!(task = %report.task_id(), error = %e, "could not apply a report; it will be redelivered");
                let _ = message.ack_with(AckKind::Nak(Some(Duration::from_secs(1)))).await;
            }
        }
    }
}

async fn note_in_registry(ctx: &BrokerContext, report: &TaskReport, outcome: &ReportOutcome) {
    let ReportOutcome::Applied(_) = outcome else {
        return;
    };
    let (agent, finished) = match report {
        TaskReport::Started { agent_id, .. } => (agent_id, None),
        TaskReport::Succeeded { agent_id, .. } => (agent_id, Some(true)),
        TaskReport::Failed { agent_id, .. } => (agent_id, Some(false)),
        TaskReport::Progress { .. } => return,
    };
    if let Some(agent) = ctx.registry.note_report(agent, report.task_id(), finished).await {
        ctx.events.publish(&Event::AgentUpdated(agent));
    }
}
