//! Event replication and numbering between backend replicas.
//!
//! Every replica applies only some of the changes (its own API requests,
//! the reports it happened to consume), yet every dashboard should see all
//! of them, in one order, whichever replica it reconnects to. So each
//! replica appends its events to one JetStream stream, [`STREAM`], and
//! every replica follows that stream with an ordered consumer, handing each
//! event to its own clients numbered by its stream sequence: the cluster's
//! event order is the stream's.
//!
//! The stream lives in memory (events are a live feed, not a record: the
//! tasks themselves are in SurrealDB) with the same replication as the
//! other streams, and keeps the latest [`HISTORY`] events for an hour. A
//! replica starting up reads the last window's worth back, so clients can
//! resume on it at once. Publishes are pipelined and retried under a
//! message id, so a retry after a lost acknowledgement is not stored twice;
//! an event retried after a later one succeeded is numbered after it
//! (clients order a task's updates by `updated_at`, see `docs/protocol.md`).

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream};
use futures::StreamExt;
use futures::stream::FuturesOrdered;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use vapora_shared::ProjectId;

use super::{BrokerContext, pause};
use crate::events::{EventBus, UnnumberedEvent};

/// The stream holding every replica's events, and its one subject.
pub const STREAM: &str = "VAPORA_FEED";
pub const SUBJECT: &str = "vapora.backend.events";
/// Events the stream keeps (the oldest go first).
pub const HISTORY: i64 = 100_000;
const PROJECT_HEADER: &str = "Vapora-Project";
/// Events waiting to be appended; beyond this (broker away) they are dropped.
const OUTBOX: usize = 8_192;
/// Appends awaiting JetStream's acknowledgement at once.
const IN_FLIGHT: usize = 256;
/// How long a stopping replica keeps appending its last events.
const DRAIN: Duration = Duration::from_secs(2);

pub fn stream_config(replicas: usize) -> stream::Config {
    stream::Config {
        name: STREAM.into(),
        subjects: vec![SUBJECT.into()],
        retention: stream::RetentionPolicy::Limits,
        storage: stream::StorageType::Memory,
        discard: stream::DiscardPolicy::Old,
        max_messages: HISTORY,
        max_age: Duration::from_secs(3600),
        duplicate_window: vapora_agents::jetstream::DUPLICATE_WINDOW,
        num_replicas: replicas,
        description: Some("Vapora backend events, in the order every dashboard sees them".into()),
        ..Default::default()
    }
}

/// Appends this replica's events to the stream and delivers the stream's
/// events to this replica's clients, until `stop`.
pub async fn run(ctx: BrokerContext, replica: Arc<str>, stop: CancellationToken) {
    let events = ctx.intake.events.clone();
    let (tx, outbox) = mpsc::channel(OUTBOX);
    // At once: events published while the broker is still away wait in
    // the outbox rather than being numbered here.
    events.number_through(tx);
    let Some(stream) = open_stream(&ctx, &stop).await else {
        return;
    };
    tokio::join!(
        append(ctx.js.clone(), outbox, replica, stop.clone()),
        follow(stream, events, stop),
    );
}

async fn open_stream(ctx: &BrokerContext, stop: &CancellationToken) -> Option<stream::Stream> {
    let mut delay = Duration::from_millis(200);
    loop {
        match ctx
            .js
            .create_or_update_stream(stream_config(ctx.delivery.stream_replicas))
            .await
        {
            Ok(_) => match ctx.js.get_stream(STREAM).await {
                Ok(stream) => return Some(stream),
                Err(e) => tracing::warn!(error = %e, retry_in = ?delay, "JetStream not ready for events"),
            },
            Err(e) => tracing::warn!(error = %e, retry_in = ?delay, "JetStream not ready for events"),
        }
        if !pause(delay, stop).await {
            return None;
        }
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

type Appended = (String, UnnumberedEvent, Result<(), String>);

async fn append(
    js: jetstream::Context,
    mut outbox: mpsc::Receiver<UnnumberedEvent>,
    replica: Arc<str>,
    stop: CancellationToken,
) {
    let mut in_flight = FuturesOrdered::new();
    let mut count: u64 = 0;
    let retry = |(id, event, result): Appended, js: &jetstream::Context| match result {
        Ok(()) => None,
        Err(e) => {
            tracing::debug!(error = %e, "event not appended yet; retrying");
            Some(send(js.clone(), id, event, Duration::from_millis(100)))
        }
    };
    loop {
        tokio::select! {
            Some(done) = in_flight.next(), if !in_flight.is_empty() => {
                if let Some(again) = retry(done, &js) {
                    in_flight.push_back(again);
                }
            }
            Some(event) = outbox.recv(), if in_flight.len() < IN_FLIGHT => {
                count += 1;
                in_flight.push_back(send(js.clone(), format!("{replica}-{count}"), event, Duration::ZERO));
            }
            () = stop.cancelled() => break,
        }
    }
    // Stopping: what this replica did last should still reach dashboards.
    outbox.close();
    let drain = async {
        while let Some(event) = outbox.recv().await {
            count += 1;
            in_flight.push_back(send(
                js.clone(),
                format!("{replica}-{count}"),
                event,
                Duration::ZERO,
            ));
        }
        while let Some(done) = in_flight.next().await {
            if let Some(again) = retry(done, &js) {
                in_flight.push_back(again);
            }
        }
    };
    let _ = tokio::time::timeout(DRAIN, drain).await;
}

async fn send(js: jetstream::Context, id: String, event: UnnumberedEvent, after: Duration) -> Appended {
    tokio::time::sleep(after).await;
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(async_nats::header::NATS_MESSAGE_ID, id.as_str());
    if let Some(project) = event.project_id {
        headers.insert(PROJECT_HEADER, project.to_string().as_str());
    }
    let payload = bytes::Bytes::copy_from_slice(event.json.as_bytes());
    let result = match js.publish_with_headers(SUBJECT, headers, payload).await {
        Ok(ack) => ack.await.map(drop).map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    (id, event, result)
}

/// Delivers the stream's events in order, from the last window's worth on;
/// after an interruption, from where it left off.
async fn follow(stream: stream::Stream, events: EventBus, stop: CancellationToken) {
    let mut after: Option<u64> = None;
    let mut delay = Duration::from_millis(200);
    loop {
        let start = match after {
            Some(seq) => seq + 1,
            None => match stream.get_info().await {
                Ok(info) => {
                    info.state
                        .last_sequence
                        .saturating_sub(events.window_capacity() as u64)
                        + 1
                }
                Err(e) => {
                    tracing::debug!(error = %e, "events stream unreadable; retrying");
                    if !pause(delay, &stop).await {
                        return;
                    }
                    continue;
                }
            },
        };
        let config = consumer::pull::OrderedConfig {
            filter_subject: SUBJECT.into(),
            deliver_policy: consumer::DeliverPolicy::ByStartSequence {
                start_sequence: start,
            },
            ..Default::default()
        };
        let messages = match stream.create_consumer(config).await {
            Ok(consumer) => consumer.messages().await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match messages {
            Ok(mut messages) => loop {
                let message = tokio::select! {
                    message = messages.next() => message,
                    () = stop.cancelled() => return,
                };
                match message {
                    Some(Ok(message)) => {
                        let Ok(info) = message.info() else { continue };
                        let seq = info.stream_sequence;
                        after = Some(seq);
                        delay = Duration::from_millis(200);
                        let project_id = message
                            .headers
                            .as_ref()
                            .and_then(|h| h.get(PROJECT_HEADER))
                            .and_then(|v| v.as_str().parse::<ProjectId>().ok());
                        let Ok(json) = std::str::from_utf8(&message.payload) else {
                            continue;
                        };
                        events.deliver(seq, project_id, json);
                    }
                    // The ordered consumer recreates itself after most
                    // failures; what it reports is passing trouble.
                    Some(Err(e)) => tracing::debug!(error = %e, "events stream interrupted"),
                    None => break,
                }
            },
            Err(e) => tracing::debug!(error = %e, "cannot follow the events stream yet; retrying"),
        }
        if !pause(delay, &stop).await {
            return;
        }
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}
