//! Event replication between backend replicas.
//!
//! Every replica applies only some of the changes (its own API requests,
//! the reports it happened to consume), yet every dashboard should see all
//! of them. So each replica publishes its events on a core NATS subject and
//! hands other replicas' events to its own WebSocket clients. Like the
//! WebSocket stream itself this is at most once; a dashboard that reconnects
//! re-reads state over REST.

use std::sync::Arc;

use futures::StreamExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use vapora_shared::ProjectId;

use crate::events::{EventBus, PublishedEvent};

/// Core NATS subject carrying every replica's events (the WebSocket JSON).
pub const SUBJECT: &str = "vapora.backend.events";
const ORIGIN_HEADER: &str = "Vapora-Replica";
const PROJECT_HEADER: &str = "Vapora-Project";
/// Events waiting to go out; beyond this (broker away) copies are dropped.
const OUTBOX: usize = 8_192;

/// `replica` marks this replica's events, so that it can tell them apart.
pub async fn run(client: async_nats::Client, events: EventBus, replica: Arc<str>, stop: CancellationToken) {
    let mut incoming = match client.subscribe(SUBJECT).await {
        Ok(subscription) => subscription,
        Err(e) => return tracing::error!(error = %e, "cannot subscribe to other replicas' events"),
    };
    let (tx, mut outbox) = mpsc::channel::<Arc<PublishedEvent>>(OUTBOX);
    events.replicate_to(tx);
    loop {
        tokio::select! {
            Some(event) = outbox.recv() => {
                let mut headers = async_nats::HeaderMap::new();
                headers.insert(ORIGIN_HEADER, &*replica);
                if let Some(project) = event.project_id {
                    headers.insert(PROJECT_HEADER, project.to_string().as_str());
                }
                let payload = bytes::Bytes::copy_from_slice(event.json.as_str().as_bytes());
                if let Err(e) = client.publish_with_headers(SUBJECT, headers, payload).await {
                    tracing::debug!(error = %e, "event not replicated");
                }
            }
            Some(message) = incoming.next() => {
                let headers = message.headers.as_ref();
                if headers.and_then(|h| h.get(ORIGIN_HEADER)).map(|v| v.as_str()) == Some(&*replica) {
                    continue;
                }
                let project_id = headers
                    .and_then(|h| h.get(PROJECT_HEADER))
                    .and_then(|v| v.as_str().parse::<ProjectId>().ok());
                let Ok(json) = String::from_utf8(message.payload.to_vec()) else { continue };
                events.deliver(PublishedEvent { project_id, json: json.into() });
            }
            () = stop.cancelled() => return,
        }
    }
}
