//! Workers' reports from `VAPORA_TASK_EVENTS`, applied to the tasks.
//!
//! One durable pull consumer, `backend`, shared by every replica: each
//! report is applied by one of them (the others learn of the change through
//! event replication), and reports published while every replica was down
//! wait in the stream. A report is acked only after it was applied (or
//! found stale), so a replica that dies mid-way leaves it for redelivery.
//!
//! Nothing can hold the consumer up for good: an unreadable report or one
//! about a task that does not exist is counted and acked at once, and a
//! report that cannot be applied for now (storage unavailable) is retried
//! with a growing delay, at most [`MAX_DELIVER`] times.
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
use vapora_shared::wire::{EVENTS_STREAM, TaskReport};

use super::{BrokerContext, ConsumeError, pause};
use crate::metrics::RejectedReport;

/// Durable name of the backend's consumer of reports.
pub const CONSUMER: &str = "backend";
const LANES: usize = 4;
/// Reports applied in one transaction, at most. Bigger transactions cost
/// more per write in SurrealDB (measured: 16–32 writes is the sweet spot).
const MAX_BATCH: usize = 32;
/// Reports handed out to the backend and not yet acked, across replicas.
const MAX_ACK_PENDING: i64 = 20_000;
/// Deliveries of one report before it is given up. With the nak delays of
/// [`retry_delay`] this spans a storage outage of about a quarter of an hour.
pub const MAX_DELIVER: i64 = 20;

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

async fn open(ctx: &BrokerContext) -> Result<pull::Stream, ConsumeError> {
    let stream = ctx.js.get_stream(EVENTS_STREAM).await?;
    let consumer: PullConsumer = stream
        .create_consumer(pull::Config {
            durable_name: Some(CONSUMER.into()),
            ack_policy: AckPolicy::Explicit,
            ack_wait: Duration::from_secs(30),
            max_deliver: MAX_DELIVER,
            max_ack_pending: MAX_ACK_PENDING,
            description: Some("Vapora backend: applies worker reports".into()),
            ..Default::default()
        })
        .await?;
    Ok(consumer.stream().max_messages_per_batch(500).messages().await?)
}

/// The nak delay before delivery `delivered + 1`: 1 s, doubling, at most a
/// minute, so a short outage is retried soon and a long one is not hammered.
fn retry_delay(delivered: i64) -> Duration {
    let exponent = u32::try_from(delivered.saturating_sub(1))
        .unwrap_or(u32::MAX)
        .min(6);
    Duration::from_secs(1 << exponent).min(Duration::from_secs(60))
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
                tracing::debug!(subject = %message.subject, error = %e, "unreadable worker report dropped");
                ctx.intake.metrics.report_rejected(RejectedReport::Unreadable);
                let _ = message.ack_with(AckKind::Term).await;
            }
        }
    }
    let outcomes = ctx.intake.apply(&reports).await;
    for ((report, message), outcome) in reports.iter().zip(readable).zip(outcomes) {
        match outcome {
            Ok(_) => {
                let _ = message.ack().await;
            }
            Err(e) => {
                let delivered = message.info().map(|info| info.delivered).unwrap_or(1);
                tracing::warn!(task = %report.task_id(), delivered, error = %e, "could not apply a report; it will be redelivered");
                let _ = message.ack_with(AckKind::Nak(Some(retry_delay(delivered)))).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_to_a_minute() {
        let delays: Vec<u64> = [1, 2, 3, 7, 8, 20, i64::MAX]
            .map(|n| retry_delay(n).as_secs())
            .to_vec();
        assert_eq!(delays, [1, 2, 4, 60, 60, 60, 60]);
        let outage: u64 = (1..MAX_DELIVER).map(|n| retry_delay(n).as_secs()).sum();
        assert!(outage >= 10 * 60, "deliveries span only {outage} s");
    }
}
