//! The live event feed, `GET /api/v1/events` (server-sent events), as a
//! stream that survives dropped connections.
//!
//! Each event carries its sequence number (`id:` and `seq`); after a drop
//! the feed reconnects with `since=<last seq>`, and the server replays what
//! it still holds, or sends `resync` when it no longer does. The caller is
//! told about every reconnect, because a server that restarted may have
//! lost its window without knowing the client was ever there.

use std::pin::Pin;
use std::time::Duration;

use eventsource_stream::{Event, EventStreamError, Eventsource};
use futures::{Stream, StreamExt};
use reqwest::Method;
use reqwest::header::ACCEPT;
use tokio::time::Instant;
use vapora_shared::ProjectId;

use super::wire::Envelope;
use super::{ApiClient, ApiError, query};

type SseStream = Pin<Box<dyn Stream<Item = Result<Event, EventStreamError<reqwest::Error>>> + Send>>;

/// How long the feed keeps trying to reconnect before it gives up.
const GIVE_UP_AFTER: Duration = Duration::from_secs(60);
const FIRST_DELAY: Duration = Duration::from_millis(250);
const MAX_DELAY: Duration = Duration::from_secs(5);
/// A connection that lasted this long was healthy: the next drop starts a
/// fresh series of reconnects rather than continuing the last one.
const HEALTHY_AFTER: Duration = Duration::from_secs(30);

/// What the feed yields.
#[derive(Debug)]
pub enum FeedItem {
    /// An event; `raw` is its `data:` line exactly as the server sent it.
    Event { envelope: Envelope, raw: String },
    /// The connection dropped and is open again. Events in between were
    /// replayed if the server still had them, but state built from events
    /// is worth re-reading.
    Reconnected,
}

pub struct EventFeed {
    client: ApiClient,
    project: Option<ProjectId>,
    /// The last event's sequence number: where a reconnect resumes.
    last_seq: Option<u64>,
    stream: Option<SseStream>,
    connected_at: Instant,
    /// When the current series of failed connections began.
    failing_since: Option<Instant>,
    delay: Duration,
}

impl std::fmt::Debug for EventFeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventFeed")
            .field("project", &self.project)
            .field("last_seq", &self.last_seq)
            .field("connected", &self.stream.is_some())
            .finish_non_exhaustive()
    }
}

impl EventFeed {
    /// Subscribes; once this returns, every later event reaches the feed
    /// (the server subscribes before it sends its headers). A refusal
    /// (a bad key, an unknown project) is returned here, not retried.
    pub async fn open(
        client: &ApiClient,
        project: Option<ProjectId>,
        since: Option<u64>,
    ) -> Result<Self, ApiError> {
        let mut feed = Self {
            client: client.clone(),
            project,
            last_seq: since,
            stream: None,
            connected_at: Instant::now(),
            failing_since: None,
            delay: FIRST_DELAY,
        };
        feed.stream = Some(feed.connect().await?);
        Ok(feed)
    }

    /// The next event, reconnecting as needed; an error once the server
    /// has been unreachable for [`GIVE_UP_AFTER`], or refuses the feed.
    pub async fn next(&mut self) -> Result<FeedItem, ApiError> {
        loop {
            let Some(stream) = self.stream.as_mut() else {
                self.reconnect().await?;
                return Ok(FeedItem::Reconnected);
            };
            match stream.next().await {
                Some(Ok(event)) => {
                    // Keep-alive comments never become events; an event
                    // with no data has nothing to say either.
                    if event.data.is_empty() {
                        continue;
                    }
                    let envelope: Envelope =
                        serde_json::from_str(&event.data).map_err(|e| ApiError::Decode {
                            url: self.client.url(&["events"], &[]).to_string(),
                            reason: format!("an event that is not `{{\"seq\",\"type\",\"data\"}}`: {e}"),
                        })?;
                    if let Some(seq) = envelope.seq.or_else(|| event.id.parse().ok()) {
                        self.last_seq = Some(seq);
                    }
                    self.failing_since = None;
                    self.delay = FIRST_DELAY;
                    return Ok(FeedItem::Event {
                        envelope,
                        raw: event.data,
                    });
                }
                // A broken or ended connection: the server restarted, a
                // proxy timed out, the network blinked. Resume.
                Some(Err(_)) | None => {
                    self.stream = None;
                    if self.connected_at.elapsed() >= HEALTHY_AFTER {
                        self.failing_since = None;
                        self.delay = FIRST_DELAY;
                    }
                }
            }
        }
    }

    async fn reconnect(&mut self) -> Result<(), ApiError> {
        let since = *self.failing_since.get_or_insert_with(Instant::now);
        loop {
            // Wait first, also after a clean end: a server that closes every
            // stream at once must not be asked again in a tight loop.
            tokio::time::sleep(self.delay).await;
            self.delay = (self.delay * 2).min(MAX_DELAY);
            match self.connect().await {
                Ok(stream) => {
                    self.stream = Some(stream);
                    return Ok(());
                }
                Err(e) if e.is_transient() && since.elapsed() < GIVE_UP_AFTER => continue,
                Err(e) => return Err(e),
            }
        }
    }

    async fn connect(&mut self) -> Result<SseStream, ApiError> {
        let q = query([
            ("project_id", self.project.map(|p| p.to_string())),
            ("since", self.last_seq.map(|s| s.to_string())),
        ]);
        let url = self.client.url(&["events"], &q);
        let shown = url.to_string();
        // No overall timeout: the stream is meant to stay open.
        let response = self
            .client
            .request(Method::GET, url)
            .header(ACCEPT, "text/event-stream")
            .send()
            .await
            .map_err(|e| ApiError::from_reqwest(self.client.base_url(), &e))?;
        let status = response.status();
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            return Err(ApiError::from_answer(&shown, status.as_u16(), &body));
        }
        self.connected_at = Instant::now();
        Ok(Box::pin(response.bytes_stream().eventsource()))
    }
}
