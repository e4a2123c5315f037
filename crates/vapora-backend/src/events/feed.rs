//! One client's event stream, as the WebSocket and SSE routes serve it.
//!
//! A feed starts with what the client missed since the sequence number it
//! presents (or a `resync` event when that is gone), then follows the live
//! events of the projects its key may see. If it falls behind the live
//! channel it catches up from the window, so a slow client loses nothing
//! the window still holds; every event reaches it at most once and in
//! order (anything numbered at or below what it already has is skipped).
//! The feed also re-checks the key every second, so a revoked key stops
//! receiving, and ends when the server shuts down.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::Utf8Bytes;
use serde_json::json;
use tokio::sync::broadcast::{self, error::RecvError};
use tokio_util::sync::CancellationToken;
use vapora_shared::ProjectId;

use super::window::Resume;
use super::{EventBus, PublishedEvent};
use crate::auth::{KeyId, Keys};

/// How often an open feed re-checks its key: a revoked or expired key is
/// disconnected, and a member's new projects come into view.
const KEY_RECHECK: Duration = Duration::from_secs(1);

/// Which events a feed forwards: those of one project, or of the caller's
/// projects (`None`: all, agent events included).
#[derive(Debug)]
pub struct EventFilter {
    pub project: Option<ProjectId>,
    pub scope: Option<Vec<ProjectId>>,
}

impl EventFilter {
    fn admits(&self, project: Option<ProjectId>) -> bool {
        let Some(project) = project else {
            return self.scope.is_none();
        };
        self.project.is_none_or(|wanted| wanted == project)
            && self.scope.as_ref().is_none_or(|scope| scope.contains(&project))
    }
}

/// What a feed yields next.
#[derive(Debug)]
pub enum FeedItem {
    /// An event's number and its JSON text.
    Event(u64, Utf8Bytes),
    /// The feed is over: the key was revoked or expired.
    KeyRevoked,
    /// The feed is over: the server is shutting down.
    ShuttingDown,
}

#[derive(Debug)]
pub struct EventFeed {
    bus: EventBus,
    live: broadcast::Receiver<Arc<PublishedEvent>>,
    backlog: VecDeque<Arc<PublishedEvent>>,
    /// A `resync` owed to the client: the `since` it asked for (or had)
    /// and the number to start over from.
    resync: Option<(u64, u64)>,
    /// The highest number the client has been given (or told to skip to).
    last: u64,
    filter: EventFilter,
    key: Option<(Keys, KeyId)>,
    recheck: tokio::time::Interval,
    shutdown: CancellationToken,
}

impl EventFeed {
    /// Subscribes at once: everything numbered from now on reaches the
    /// client, after what it missed since `since`.
    pub fn subscribe(
        bus: &EventBus,
        since: Option<u64>,
        filter: EventFilter,
        key: Option<(Keys, KeyId)>,
        shutdown: CancellationToken,
    ) -> Self {
        let (live, last, resume) = bus.subscribe_since(since);
        let mut recheck = tokio::time::interval(KEY_RECHECK);
        recheck.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut feed = Self {
            bus: bus.clone(),
            live,
            backlog: VecDeque::new(),
            resync: None,
            last,
            filter,
            key,
            recheck,
            shutdown,
        };
        feed.resume(resume);
        feed
    }

    fn resume(&mut self, resume: Resume) {
        match resume {
            Resume::Replay(events) => self.backlog = events.into(),
            Resume::Resync { latest } => {
                self.backlog.clear();
                self.resync = Some((self.last, latest));
            }
        }
    }

    /// The next event for this client, or why the feed ended; `None` when
    /// the bus itself is gone.
    pub async fn next(&mut self) -> Option<FeedItem> {
        loop {
            if let Some((since, latest)) = self.resync.take() {
                self.last = self.last.max(latest);
                let text = json!({ "seq": latest, "type": "resync", "data": { "since": since } });
                return Some(FeedItem::Event(latest, text.to_string().into()));
            }
            if let Some(event) = self.backlog.pop_front() {
                if let Some(item) = self.admit(&event) {
                    return Some(item);
                }
                continue;
            }
            tokio::select! {
                event = self.live.recv() => match event {
                    Ok(event) => {
                        if let Some(item) = self.admit(&event) {
                            return Some(item);
                        }
                    }
                    Err(RecvError::Lagged(_)) => {
                        let missed = self.bus.missed_since(self.last);
                        self.resume(missed);
                    }
                    Err(RecvError::Closed) => return None,
                },
                _ = self.recheck.tick(), if self.key.is_some() => {
                    if !self.key_still_valid().await {
                        return Some(FeedItem::KeyRevoked);
                    }
                }
                () = self.shutdown.cancelled() => return Some(FeedItem::ShuttingDown),
            }
        }
    }

    /// The event as the client gets it, unless it has it already or may
    /// not see it.
    fn admit(&mut self, event: &PublishedEvent) -> Option<FeedItem> {
        if event.seq <= self.last {
            return None;
        }
        self.last = event.seq;
        self.filter
            .admits(event.project_id)
            .then(|| FeedItem::Event(event.seq, event.json.clone()))
    }

    async fn key_still_valid(&mut self) -> bool {
        let Some((keys, id)) = &self.key else { return true };
        match keys.still_valid(id).await {
            Ok(Some(current)) => {
                if self.filter.scope.is_some() {
                    self.filter.scope = Some(current.info.projects.clone());
                }
                true
            }
            Ok(None) => {
                tracing::info!(key_id = %id, "closing an event stream whose key was revoked or expired");
                false
            }
            // Storage trouble is no reason to drop a dashboard; try again later.
            Err(_) => true,
        }
    }
}
