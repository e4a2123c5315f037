//! The in-process event bus feeding WebSocket clients.
//!
//! A `tokio::sync::broadcast` channel: publishing never waits, and each
//! subscriber reads at its own pace from a bounded ring. A subscriber that
//! falls more than `capacity` events behind loses the oldest ones and is told
//! how many it missed (it can re-fetch over REST); nobody else notices.
//! Events are serialized once, at publish time, not once per subscriber.

use std::sync::Arc;

use axum::extract::ws::Utf8Bytes;
use tokio::sync::broadcast;
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
}

impl EventBus {
    pub fn new(capacity: usize) -> Self {
        let (sender, _) = broadcast::channel(capacity.max(1));
        Self { sender }
    }

    pub fn publish(&self, event: &Event) {
        // With no subscriber nobody is listening, which is fine.
        if self.sender.receiver_count() == 0 {
            return;
        }
        let json = serde_json::to_string(event).expect("events always serialize");
        let _ = self.sender.send(Arc::new(PublishedEvent {
            project_id: event.project_id(),
            json: json.into(),
        }));
    }

    /// Connected subscribers (WebSocket clients).
    pub fn subscribers(&self) -> usize {
        self.sender.receiver_count()
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<PublishedEvent>> {
        self.sender.subscribe()
    }
}
