//! `GET /api/v1/events`: the event feed as Server-Sent Events.
//!
//! The same events as the WebSocket (`api::ws`), for clients that prefer
//! plain HTTP: each is one SSE message whose `id` is the event's `seq` and
//! whose `data` is its JSON. A client that reconnects with `Last-Event-ID`
//! (as `EventSource` does by itself) or `?since=` resumes where it left
//! off. Keep-alive comments every 15 s hold idle connections open through
//! proxies. Each stream counts against the key's WebSocket cap: both hold
//! a connection and a subscription for as long as the client likes.

use std::convert::Infallible;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures::Stream;

use crate::api::SharedState;
use crate::api::extract::Query;
use crate::api::ws::EventsQuery;
use crate::auth::Caller;
use crate::error::{AppError, ErrorBody};
use crate::events::feed::FeedItem;

const LAST_EVENT_ID: &str = "last-event-id";

/// Follows the events the key may see, as `text/event-stream`.
#[utoipa::path(get, path = "/events", operation_id = "stream_events", tag = "events",
    params(
        EventsQuery,
        ("Last-Event-ID" = Option<u64>, Header, description = "The `seq` of the last event received; takes precedence over `since`"),
    ),
    responses(
        (status = 200, description = "Server-Sent Events: `id` is the event's `seq`, `data` its JSON `{\"seq\":…,\"type\":…,\"data\":…}`", content_type = "text/event-stream", body = String),
        (status = 400, description = "`Last-Event-ID` is not a sequence number", body = ErrorBody),
        (status = 404, description = "No such project within the key's reach", body = ErrorBody),
    ))]
pub async fn stream(
    State(state): State<SharedState>,
    caller: Caller,
    Query(query): Query<EventsQuery>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, AppError> {
    let last_event_id = headers
        .get(LAST_EVENT_ID)
        .map(|value| {
            value
                .to_str()
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .ok_or(AppError::BadRequest {
                    code: "invalid_last_event_id",
                    message: "Last-Event-ID must be the `seq` of an event (a non-negative integer)".into(),
                    status: StatusCode::BAD_REQUEST,
                })
        })
        .transpose()?;
    // Subscribed before the response starts: a client that has the
    // headers misses nothing published after.
    let feed = query.subscribe(&state, &caller, last_event_id).await?;
    let slot = state.limits.open_ws(caller.key_id())?;
    let events = futures::stream::unfold((feed, slot), |(mut feed, slot)| async move {
        match feed.next().await? {
            FeedItem::Event(seq, json) => {
                let message = SseEvent::default().id(seq.to_string()).data(json.as_str());
                Some((Ok(message), (feed, slot)))
            }
            FeedItem::KeyRevoked | FeedItem::ShuttingDown => None,
        }
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}
