//! `GET /api/v1/ws`: the live event feed for dashboards.
//!
//! Each connection reads the event bus through its own bounded receiver and
//! writes to its own socket, so a slow or stalled client only ever delays
//! itself. When it falls too far behind it receives
//! `{"type":"lagged","data":{"missed":N}}` and should re-fetch over REST; a
//! client that cannot take a single message within [`SEND_TIMEOUT`] is
//! disconnected.
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
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;
use utoipa::IntoParams;
use vapora_shared::ProjectId;

use crate::api::SharedState;
use crate::api::extract::{Query, parse_id};
use crate::auth::middleware::WS_PROTOCOL;
use crate::auth::{Caller, KeyId, Keys};
use crate::error::{AppError, ErrorBody};

const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// How often an open connection re-checks its key: a revoked or expired
/// key is disconnected, and a member's new projects come into view.
const KEY_RECHECK: Duration = Duration::from_secs(1);

/// Largest frame, and largest message, a client may send.
pub const MAX_INCOMING_BYTES: usize = 16 * 1024;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WsQuery {
    /// Only this project's events.
    #[param(value_type = Option<ProjectId>)]
    project_id: Option<String>,
}

/// Which events a connection forwards: those of one project, or of the
/// caller's projects (`None`: all, agent events included).
#[derive(Debug)]
struct EventFilter {
    project: Option<ProjectId>,
    scope: Option<Vec<ProjectId>>,
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

/// Upgrades to a WebSocket of JSON events, `{"type":…,"data":…}`. Browsers
/// offer the key as a subprotocol: `new WebSocket(url, ["vapora.v1", key])`.
#[utoipa::path(get, path = "/ws", operation_id = "subscribe_events", tag = "events",
    params(WsQuery),
    responses(
        (status = 101, description = "Switched to a WebSocket; the server selects the `vapora.v1` subprotocol"),
        (status = 404, description = "No such project within the key's reach", body = ErrorBody),
        (status = 426, description = "Not a WebSocket upgrade request", body = ErrorBody),
    ))]
pub async fn subscribe(
    State(state): State<SharedState>,
    caller: Caller,
    Query(query): Query<WsQuery>,
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
    let project: Option<ProjectId> = query
        .project_id
        .as_deref()
        .map(|p| parse_id("project", p))
        .transpose()?;
    if let Some(project) = project {
        caller.see_project(project)?;
    }
    let filter = EventFilter {
        project,
        scope: caller.scope().map(<[_]>::to_vec),
    };
    // Subscribe before answering the upgrade: everything published once the
    // client sees the handshake complete reaches it.
    let events = state.events.subscribe();
    let shutdown = state.shutdown.clone();
    let key = state.keys.clone().map(|keys| (keys, caller.key_id().to_owned()));
    let slot = state.limits.open_ws(caller.key_id())?;
    Ok(upgrade
        .protocols([WS_PROTOCOL])
        .max_frame_size(MAX_INCOMING_BYTES)
        .max_message_size(MAX_INCOMING_BYTES)
        .on_upgrade(move |socket| async move {
            forward_events(socket, events, filter, key, shutdown).await;
            drop(slot);
        }))
}

async fn forward_events(
    socket: WebSocket,
    mut events: tokio::sync::broadcast::Receiver<std::sync::Arc<crate::events::PublishedEvent>>,
    mut filter: EventFilter,
    key: Option<(Keys, KeyId)>,
    shutdown: tokio_util::sync::CancellationToken,
) {
    let (mut sink, mut incoming) = socket.split();
    let mut recheck = tokio::time::interval(KEY_RECHECK);
    recheck.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let message = tokio::select! {
            event = events.recv() => match event {
                Ok(event) => {
                    if !filter.admits(event.project_id) {
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
            _ = recheck.tick(), if key.is_some() => {
                let Some((keys, id)) = &key else { continue };
                match keys.still_valid(id).await {
                    Ok(Some(current)) => {
                        if filter.scope.is_some() {
                            filter.scope = Some(current.info.projects.clone());
                        }
                        continue;
                    }
                    Ok(None) => {
                        tracing::info!(key_id = %id, "closing a WebSocket whose key was revoked or expired");
                        let frame = CloseFrame { code: close_code::POLICY, reason: "API key revoked or expired".into() };
                        let _ = tokio::time::timeout(SEND_TIMEOUT, sink.send(Message::Close(Some(frame)))).await;
                        break;
                    }
                    // Storage trouble is no reason to drop a dashboard; try again later.
                    Err(_) => continue,
                }
            }
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
