//! `GET /api/v1/ws`: the live event feed for dashboards.
//!
//! Each connection reads the event bus through its own bounded receiver and
//! writes to its own socket, so a slow or stalled client only ever delays
//! itself. When it falls too far behind it receives
//! `{"type":"lagged","data":{"missed":N}}` and should re-fetch over REST; a
//! client that cannot take a single message within [`SEND_TIMEOUT`] is
//! disconnected.
//!
//! Clients only ever send control frames and tiny messages, so incoming
//! frames and messages are capped at [`MAX_INCOMING_BYTES`]: a larger one
//! closes the connection as soon as its header announces the size, before
//! anything is buffered (the library default would buffer 64 MiB).

use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::response::Response;
use futures::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;
use vapora_shared::ProjectId;

use crate::api::SharedState;
use crate::api::extract::{Query, parse_id};
use crate::error::AppError;

const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest frame, and largest message, a client may send.
pub const MAX_INCOMING_BYTES: usize = 16 * 1024;

#[derive(Debug, Deserialize)]
pub struct WsQuery {
    project_id: Option<String>,
}

pub async fn subscribe(
    State(state): State<SharedState>,
    Query(query): Query<WsQuery>,
    upgrade: WebSocketUpgrade,
) -> Result<Response, AppError> {
    let filter: Option<ProjectId> = query
        .project_id
        .as_deref()
        .map(|p| parse_id("project", p))
        .transpose()?;
    // Subscribe before answering the upgrade: everything published once the
    // client sees the handshake complete reaches it.
    let events = state.events.subscribe();
    let shutdown = state.shutdown.clone();
    Ok(upgrade
        .max_frame_size(MAX_INCOMING_BYTES)
        .max_message_size(MAX_INCOMING_BYTES)
        .on_upgrade(move |socket| forward_events(socket, events, filter, shutdown)))
}

async fn forward_events(
    socket: WebSocket,
    mut events: tokio::sync::broadcast::Receiver<std::sync::Arc<crate::events::PublishedEvent>>,
    filter: Option<ProjectId>,
    shutdown: tokio_util::sync::CancellationToken,
) {
    let (mut sink, mut incoming) = socket.split();
    loop {
        let message = tokio::select! {
            event = events.recv() => match event {
                Ok(event) => {
                    if filter.is_some() && event.project_id.is_some() && event.project_id != filter {
                        continue;
                    }
                    Message::Text(event.json.clone())
                }
                Err(RecvError::Lagged(missed)) => {
                    Message::Text(json!({ "type": "lagged", "data": { "missed": missed } }).to_string().into())
                }
                Err(RecvError::Closed) => break,
            },
            // Reading keeps ping/pong and close handling going; clients have
            // nothing to tell us otherwise.
            incoming = incoming.next() => match incoming {
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                Some(Ok(_)) => continue,
            },
            () = shutdown.cancelled() => {
                let frame = CloseFrame { code: close_code::AWAY, reason: "server shutting down".into() };
                let _ = tokio::time::timeout(SEND_TIMEOUT, sink.send(Message::Close(Some(frame)))).await;
                break;
            }
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
