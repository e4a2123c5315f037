//! `GET /api/v1/ws`: the live event feed for dashboards.
//!
//! Each connection follows its own [`EventFeed`] and writes to its own
//! socket, so a slow or stalled client only ever delays itself. A client
//! that reconnects with `?since=<seq>` (the `seq` of the last event it got)
//! receives what it missed, then live events; one whose events have left
//! the server's window gets a `resync` event and should re-fetch over
//! REST. A client that cannot take a single message within [`SEND_TIMEOUT`]
//! is disconnected.
//!
//! A client sees the events of its key's projects only; an admin also sees
//! agent events, which belong to no project (they name the task an agent
//! runs, whatever its project, so scoped keys do not get them). Browsers, which cannot set an
//! `Authorization` header here, offer the key as a subprotocol (see
//! `auth::middleware`); the server selects [`WS_PROTOCOL`].
//!
//! Clients only ever send control frames and tiny messages, so incoming
//! frames and messages are capped at [`MAX_INCOMING_BYTES`]: a larger one
//! closes the connection as soon as its header announces the size, before
//! anything is buffered (the library default would buffer 64 MiB).

use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::http::StatusCode;
use axum::response::Response;
use futures::{SinkExt, StreamExt};
use serde::Deserialize;
use utoipa::IntoParams;
use vapora_shared::ProjectId;

use crate::api::SharedState;
use crate::api::extract::{Query, project_filter};
use crate::auth::Caller;
use crate::auth::middleware::WS_PROTOCOL;
use crate::error::{AppError, ErrorBody};
use crate::events::feed::{EventFeed, EventFilter, FeedItem};

const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest frame, and largest message, a client may send.
pub const MAX_INCOMING_BYTES: usize = 16 * 1024;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// Only this project's events.
    #[param(value_type = Option<ProjectId>)]
    pub project_id: Option<String>,
    /// The `seq` of the last event received: replay what came after it.
    pub since: Option<u64>,
}

impl EventsQuery {
    /// The feed this caller asked for, subscribed now. An unknown project
    /// is a 404, not a stream that stays silent forever.
    pub async fn subscribe(
        &self,
        state: &SharedState,
        caller: &Caller,
        since: Option<u64>,
    ) -> Result<EventFeed, AppError> {
        let project = project_filter(state, caller, self.project_id.as_deref()).await?;
        let filter = EventFilter {
            project,
            scope: caller.scope().map(<[_]>::to_vec),
        };
        let key = state.keys.clone().map(|keys| (keys, caller.key_id().to_owned()));
        Ok(EventFeed::subscribe(
            &state.events,
            since.or(self.since),
            filter,
            key,
            state.shutdown.clone(),
        ))
    }
}

/// Upgrades to a WebSocket of JSON events, `{"seq":…,"type":…,"data":…}`.
/// Browsers offer the key as a subprotocol:
/// `new WebSocket(url, ["vapora.v1", key])`.
#[utoipa::path(get, path = "/ws", operation_id = "subscribe_events", tag = "events",
    params(EventsQuery),
    responses(
        (status = 101, description = "Switched to a WebSocket; the server selects the `vapora.v1` subprotocol"),
        (status = 404, description = "No such project within the key's reach", body = ErrorBody),
        (status = 426, description = "Not a WebSocket upgrade request", body = ErrorBody),
    ))]
pub async fn subscribe(
    State(state): State<SharedState>,
    caller: Caller,
    Query(query): Query<EventsQuery>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, AppError> {
    // A plain GET gets the API's JSON error, not axum's text one; 426 for
    // every malformed upgrade tells the client what this route wants.
    let upgrade = upgrade.map_err(|rejection| AppError::BadRequest {
        code: "websocket_upgrade_required",
        message: format!(
            "this route only serves WebSocket upgrades: {}",
            rejection.body_text()
        ),
        status: StatusCode::UPGRADE_REQUIRED,
    })?;
    // Subscribe before answering the upgrade: everything published once the
    // client sees the handshake complete reaches it.
    let feed = query.subscribe(&state, &caller, None).await?;
    let slot = state.limits.open_ws(caller.key_id())?;
    Ok(upgrade
        .protocols([WS_PROTOCOL])
        .max_frame_size(MAX_INCOMING_BYTES)
        .max_message_size(MAX_INCOMING_BYTES)
        .on_upgrade(move |socket| async move {
            forward_events(socket, feed).await;
            drop(slot);
        }))
}

async fn forward_events(socket: WebSocket, mut feed: EventFeed) {
    let (mut sink, mut incoming) = socket.split();
    loop {
        let message = tokio::select! {
            item = feed.next() => match item {
                Some(FeedItem::Event(_, json)) => Message::Text(json),
                Some(FeedItem::KeyRevoked) => {
                    close(&mut sink, close_code::POLICY, "API key revoked or expired").await;
                    break;
                }
                Some(FeedItem::ShuttingDown) => {
                    close(&mut sink, close_code::AWAY, "server shutting down").await;
                    break;
                }
                None => break,
            },
            // Reading keeps ping/pong and close handling going; clients have
            // nothing to tell us otherwise.
            incoming = incoming.next() => match incoming {
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                Some(Ok(_)) => continue,
            },
        };
        match tokio::time::timeout(SEND_TIMEOUT, sink.send(message)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => break,
            Err(_) => {
                tracing::info!("disconnecting a WebSocket client that stopped reading");
                break;
            }
        }
    }
}

async fn close(sink: &mut futures::stream::SplitSink<WebSocket, Message>, code: u16, reason: &'static str) {
    let frame = CloseFrame {
        code,
        reason: reason.into(),
    };
    let _ = tokio::time::timeout(SEND_TIMEOUT, sink.send(Message::Close(Some(frame)))).await;
}
