//! The in-process event bus feeding WebSocket clients.
//!
//! A `tokio::sync::broadcast` channel: publishing never waits, and each
//! subscriber reads at its own pace from a bounded ring. A subscriber that
//! falls more than `capacity` events behind loses the oldest ones and is told
//! how many it missed (it can re-fetch over REST); nobody else notices.
//! Events are serialized once, at publish time, not once per subscriber.
//!
//! With a broker, replicas share their events (`broker::replication`): events
//! published here are also handed to a bounded outbox, and events from other
//! replicas enter through [`EventBus::deliver`], which does not replicate
//! them again.

use std::sync::{Arc, OnceLock};

use axum::extract::ws::Utf8Bytes;
use tokio::sync::{broadcast, mpsc};
use vapora_shared::{Event, ProjectId};

/// An event ready to send: its project (for filtering) and its JSON text.
#[derive(Debug)]
pub struct PublishedEvent {
    pub project_id: Option<ProjectId>,
    /// Shared text: sending it to each client is a reference-count bump.
    pub json: Utf8Bytes,
}

#[derive(Debug, Clone)]
pub struct EventBus {
    sender: broadcast::Sender<Arc<PublishedEvent>>,
    /// Set once a broker connects: where events for other replicas go.
    outbox: Arc<OnceLock<mpsc::Sender<Arc<PublishedEvent>>>>,
}

impl EventBus {
    pub fn new(capacity: usize) -> Self {
        let (sender, _) = broadcast::channel(capacity.max(1));
        Self {
            sender,
            outbox: Arc::default(),
        }
    }

    pub fn publish(&self, event: &Event) {
        let outbox = self.outbox.get();
        // With no subscriber and no replica nobody is listening, which is fine.
        if self.sender.receiver_count() == 0 && outbox.is_none() {
            return;
        }
        let json = serde_json::to_string(event).expect("events always serialize");
        let published = Arc::new(PublishedEvent {
            project_id: event.project_id(),
            json: json.into(),
        });
        if let Some(outbox) = outbox {
            // Replication is best effort, like the WebSocket itself: a full
            // outbox (broker down) drops the copy for other replicas rather
            // than holding up the write that produced the event.
            let _ = outbox.try_send(published.clone());
        }
        let _ = self.sender.send(published);
    }

    /// Hands an event from another replica to this replica's subscribers.
    pub fn deliver(&self, event: PublishedEvent) {
        let _ = self.sender.send(Arc::new(event));
    }

    /// Starts copying every published event to `outbox`; only the first
    /// call takes effect.
    pub fn replicate_to(&self, outbox: mpsc::Sender<Arc<PublishedEvent>>) {
        let _ = self.outbox.set(outbox);
    }

    /// Connected subscribers (WebSocket clients).
    pub fn subscribers(&self) -> usize {
        self.sender.receiver_count()
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<PublishedEvent>> {
        self.sender.subscribe()
    }
}
