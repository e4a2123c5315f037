//! The event bus feeding WebSocket and Server-Sent Events clients.
//!
//! Every event gets a sequence number, in one total order for the whole
//! cluster, and the latest ones stay in a bounded [`window::Window`] so a
//! client that reconnects with the last number it saw misses nothing
//! ([`feed`]). Live events fan out through a `tokio::sync::broadcast`
//! channel: publishing never waits, each subscriber reads at its own pace,
//! and one that falls behind the channel catches up from the window.
//! Events are serialized once, when numbered, not once per subscriber.
//!
//! Who numbers events: embedded (one backend), this process, from the
//! microsecond it started, so that numbers keep growing across restarts
//! and a client holding a number from before a restart is told to resync
//! rather than handed the wrong events. With a broker, the replicas share
//! one order: [`EventBus::publish`] hands each event to
//! `broker::replication`, which appends it to a JetStream stream, and every
//! replica (this one included) takes the events back in stream order
//! through [`EventBus::deliver`], numbered by their stream sequence.

pub mod feed;
pub mod window;

use std::sync::{Arc, Mutex, OnceLock};

use axum::extract::ws::Utf8Bytes;
use tokio::sync::{broadcast, mpsc};
use vapora_shared::{Event, ProjectId};

use window::{Resume, Window};

/// An event ready to send: its number, its project (for filtering) and its
/// JSON text, `{"seq":…,"type":…,"data":…}`.
#[derive(Debug, PartialEq)]
pub struct PublishedEvent {
    pub seq: u64,
    pub project_id: Option<ProjectId>,
    /// Shared text: sending it to each client is a reference-count bump.
    pub json: Utf8Bytes,
}

/// An event on its way to be numbered by the broker: its JSON without `seq`.
#[derive(Debug)]
pub struct UnnumberedEvent {
    pub project_id: Option<ProjectId>,
    pub json: String,
}

#[derive(Debug, Clone)]
pub struct EventBus {
    sender: broadcast::Sender<Arc<PublishedEvent>>,
    /// Locked for each event numbered and each client subscribing, so that
    /// a subscriber's replay and its live events meet without a gap.
    window: Arc<Mutex<Window>>,
    /// Set when a broker numbers events: where they go to be numbered.
    numbering: Arc<OnceLock<mpsc::Sender<UnnumberedEvent>>>,
}

impl EventBus {
    /// `buffer`: live events a subscriber may fall behind before it catches
    /// up from the window; `window`: events kept for reconnecting clients.
    pub fn new(buffer: usize, window: usize) -> Self {
        let (sender, _) = broadcast::channel(buffer.max(1));
        let first = u64::try_from(chrono::Utc::now().timestamp_micros()).unwrap_or(1);
        Self {
            sender,
            window: Arc::new(Mutex::new(Window::new(window, Some(first)))),
            numbering: Arc::default(),
        }
    }

    pub fn publish(&self, event: &Event) {
        let json = serde_json::to_string(event).expect("events always serialize");
        let project_id = event.project_id();
        if let Some(numbering) = self.numbering.get() {
            // The broker numbers it; it comes back through `deliver`. A full
            // outbox (broker away) drops the event rather than holding up
            // the write that produced it: clients re-fetch on reconnect.
            if numbering.try_send(UnnumberedEvent { project_id, json }).is_err() {
                tracing::debug!("event dropped: the broker outbox is full");
            }
            return;
        }
        let mut window = self.lock();
        let seq = window.latest() + 1;
        self.append(&mut window, seq, project_id, &json);
    }

    /// Takes an event numbered by the broker (`seq` is its stream
    /// sequence); repeats of events already delivered are dropped.
    pub fn deliver(&self, seq: u64, project_id: Option<ProjectId>, json: &str) {
        let mut window = self.lock();
        self.append(&mut window, seq, project_id, json);
    }

    fn append(&self, window: &mut Window, seq: u64, project_id: Option<ProjectId>, json: &str) {
        let event = Arc::new(PublishedEvent {
            seq,
            project_id,
            json: with_seq(seq, json).into(),
        });
        if window.push(event.clone()) {
            // No subscriber is fine: the window keeps it for later.
            let _ = self.sender.send(event);
        }
    }

    /// From now on events are numbered by whoever reads `outbox`, and come
    /// back through [`EventBus::deliver`]; only the first call takes effect.
    pub fn number_through(&self, outbox: mpsc::Sender<UnnumberedEvent>) {
        if self.numbering.set(outbox).is_ok() {
            // The broker's numbers start wherever its stream is.
            let mut window = self.lock();
            *window = Window::new(window.capacity(), None);
        }
    }

    /// Events the window keeps.
    pub fn window_capacity(&self) -> usize {
        self.lock().capacity()
    }

    /// Connected subscribers (WebSocket and SSE clients).
    pub fn subscribers(&self) -> usize {
        self.sender.receiver_count()
    }

    /// Live events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<PublishedEvent>> {
        self.sender.subscribe()
    }

    /// Live events, and first what a client that saw everything up to
    /// `since` has missed (if anything is gone, a resync). Without `since`,
    /// live events only, from the current sequence number.
    pub fn subscribe_since(
        &self,
        since: Option<u64>,
    ) -> (broadcast::Receiver<Arc<PublishedEvent>>, u64, Resume) {
        let window = self.lock();
        let receiver = self.sender.subscribe();
        let latest = window.latest();
        match since {
            Some(since) => (receiver, since, window.resume(since)),
            None => (receiver, latest, Resume::Replay(Vec::new())),
        }
    }

    /// What came after `since`, for a subscriber that fell behind the
    /// live channel.
    pub fn missed_since(&self, since: u64) -> Resume {
        self.lock().resume(since)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Window> {
        // Nothing panics while holding it, but a poisoned window is still
        // a consistent ring.
        self.window.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// `{"type":…}` → `{"seq":N,"type":…}`: events are JSON objects, so the
/// number goes in without parsing them again.
fn with_seq(seq: u64, json: &str) -> String {
    let rest = json.strip_prefix('{').unwrap_or(json);
    format!("{{\"seq\":{seq},{rest}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use vapora_shared::ProjectId;

    #[test]
    fn events_are_numbered_in_order_and_carry_their_number() {
        let bus = EventBus::new(16, 16);
        let (mut live, start, _) = bus.subscribe_since(None);
        let id = ProjectId::new();
        bus.publish(&Event::ProjectDeleted { id });
        bus.publish(&Event::ProjectDeleted { id });
        let first = live.try_recv().unwrap();
        let second = live.try_recv().unwrap();
        assert_eq!(first.seq, start + 1);
        assert_eq!(second.seq, start + 2);
        let parsed: serde_json::Value = serde_json::from_str(first.json.as_str()).unwrap();
        assert_eq!(parsed["seq"], start + 1);
        assert_eq!(parsed["type"], "project.deleted");
        assert_eq!(parsed["data"]["id"], id.to_string());
    }

    #[test]
    fn events_published_with_nobody_listening_are_kept_for_resuming() {
        let bus = EventBus::new(16, 16);
        let (_, start, _) = bus.subscribe_since(None);
        bus.publish(&Event::ProjectDeleted { id: ProjectId::new() });
        let (_, _, resume) = bus.subscribe_since(Some(start));
        let Resume::Replay(missed) = resume else {
            panic!("resync")
        };
        assert_eq!(missed.len(), 1);
    }
}
