//! The router served over HTTP as an OpenAI-compatible API.
//!
//! - `POST /v1/chat/completions` — OpenAI wire format; `stream: true` answers
//!   with SSE ending in `data: [DONE]`. `model` names a route (`role:developer`)
//!   or a concrete `provider/model`. The `x-vapora-role` header names the role
//!   charged (and, when `model` is a route-less default, the role's route);
//!   the key that authenticated is charged its per-key budget.
//! - `GET /v1/models` — routes and targets.
//! - `GET /api/v1/budgets` — limit, spent, reserved and period of the role
//!   budgets and the caller's own key budget.
//! - `GET /metrics`, `GET /health`: no key needed.
//!
//! Every other route needs a configured key (see [`keys`]).

mod error;
pub mod keys;
mod openai_api;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, FromRequest, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router as HttpRouter};
use futures::StreamExt;
use serde_json::{Value, json};

pub use error::GatewayError;
pub use keys::{GatewayKeys, GatewaySection};
use openai_api::{ChatCompletionRequest, chunk_json, completion_json, finish_reason_of, usage_chunk_json};

use crate::{LlmClient, Router, StreamEvent};

/// Largest request body accepted (413 beyond).
pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;
pub const ROLE_HEADER: &str = "x-vapora-role";

/// What every handler shares: the router and who may call it.
#[derive(Debug, Clone)]
pub struct Gateway {
    pub router: Router,
    pub keys: GatewayKeys,
}

/// The gateway's HTTP routes over `router`, for callers holding `keys`.
pub fn app(router: Router, keys: GatewayKeys) -> HttpRouter {
    let gateway = Gateway { router, keys };
    // Keyed routes check the key before anything reads the body.
    let keyed = HttpRouter::new()
        .route("/v1/chat/completions", post(chat_completions))
        .route("/v1/models", get(models))
        .route("/api/v1/budgets", get(budgets))
        .route_layer(axum::middleware::from_fn_with_state(gateway.clone(), require_key));
    keyed
        .route("/metrics", get(metrics))
        .route("/health", get(|| async { Json(json!({ "status": "ok" })) }))
        .fallback(|| async {
            GatewayError {
                status: StatusCode::NOT_FOUND,
                code: "not_found",
                ..GatewayError::invalid("no such endpoint", None)
            }
        })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(gateway)
}

/// Puts the caller's [`keys::GatewayKey`] in the request, or answers 401.
async fn require_key(
    State(gateway): State<Gateway>,
    mut request: Request,
    next: axum::middleware::Next,
) -> Result<Response, GatewayError> {
    let caller = gateway.keys.authenticate(request.headers())?;
    request.extensions_mut().insert(caller);
    Ok(next.run(request).await)
}

/// A JSON body, rejected as an OpenAI-style error.
struct OpenAiJson(ChatCompletionRequest);

impl<S: Send + Sync> FromRequest<S> for OpenAiJson {
    type Rejection = GatewayError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|rejection| GatewayError {
                status: rejection.status(),
                code: if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    "payload_too_large"
                } else {
                    "invalid_body"
                },
                ..GatewayError::invalid(rejection.body_text(), None)
            })?;
        let value: Value = serde_json::from_slice(&bytes).map_err(|e| GatewayError {
            code: "invalid_json",
            ..GatewayError::invalid(format!("the body is not valid JSON: {e}"), None)
        })?;
        serde_json::from_value(value)
            .map(OpenAiJson)
            .map_err(|e| GatewayError::invalid(e.to_string(), None))
    }
}

fn header_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

async fn chat_completions(
    State(Gateway { router, .. }): State<Gateway>,
    Extension(caller): Extension<Arc<keys::GatewayKey>>,
    headers: HeaderMap,
    OpenAiJson(body): OpenAiJson,
) -> Result<Response, GatewayError> {
    let received = Instant::now();
    let stream = body.stream;
    let include_usage = body.stream_options.as_ref().is_some_and(|o| o.include_usage);
    let request = body
        .into_chat_request(header_value(&headers, ROLE_HEADER), Some(caller.name.clone()))
        .map_err(|(message, param)| GatewayError::invalid(message, Some(param)))?;
    caller.admit(tokens_requested(&request, router.default_max_tokens()))?;
    let id = format!("chatcmpl-{:x}{:016x}", now_secs(), rand_u64());
    let created = now_secs();
    if !stream {
        let completion = router.complete(&request).await?;
        let overhead = received.elapsed().saturating_sub(completion.upstream_time);
        router.metrics().overhead.observe(overhead);
        return Ok(Json(completion_json(&id, created, &completion)).into_response());
    }

    let mut events = router.stream(&request).await?;
    let requested = request.model.clone().unwrap_or_default();
    let sse = async_stream(move |tx| async move {
        let first = chunk_json(
            &id,
            created,
            &requested,
            json!({ "role": "assistant", "content": "" }),
            None,
        );
        if !tx.send(first).await {
            return;
        }
        while let Some(event) = events.next().await {
            let frame = match event {
                Ok(StreamEvent::Delta(text)) => {
                    chunk_json(&id, created, &requested, json!({ "content": text }), None)
                }
                Ok(StreamEvent::Finished(c)) => {
                    let model = format!("{}/{}", c.provider, c.model);
                    let last = chunk_json(&id, created, &model, json!({}), Some(finish_reason_of(&c)));
                    if !tx.send(last).await {
                        return;
                    }
                    if include_usage && !tx.send(usage_chunk_json(&id, created, &c)).await {
                        return;
                    }
                    tx.done().await;
                    return;
                }
                // Reported as an error event; no `[DONE]`, so no client can
                // mistake a cut-off answer for a complete one.
                Err(e) => {
                    tx.send(GatewayError::from(e).body()).await;
                    return;
                }
            };
            if !tx.send(frame).await {
                return;
            }
        }
    });
    Ok(Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(Body::from_stream(sse))
        .expect("valid response"))
}

/// The tokens a request may use: its prompt at about four characters a
/// token, and the most it may be answered.
fn tokens_requested(request: &crate::ChatRequest, default_max_tokens: u32) -> u32 {
    let prompt_chars: usize = request.messages.iter().map(|m| m.content.len()).sum();
    let prompt = u32::try_from(prompt_chars.div_ceil(4)).unwrap_or(u32::MAX);
    prompt.saturating_add(request.max_tokens.unwrap_or(default_max_tokens))
}

/// A pseudo-random number for completion ids.
fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish()
}

/// Feeds SSE frames from a producer to a response body, with backpressure:
/// the producer waits while the client is slow (the channel holds 16 frames),
/// and stops when the client has gone (dropping the upstream stream too).
fn async_stream<F, Fut>(produce: F) -> impl futures::Stream<Item = Result<Bytes, Infallible>> + Send + 'static
where
    F: FnOnce(FrameSender) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(16);
    let producer = tokio::spawn(produce(FrameSender(tx)));
    let guard = AbortOnDrop(producer);
    futures::stream::unfold((rx, guard), |(mut rx, guard)| async move {
        rx.recv().await.map(|frame| (Ok(frame), (rx, guard)))
    })
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

struct FrameSender(tokio::sync::mpsc::Sender<Bytes>);

impl FrameSender {
    /// Sends one `data:` event; false when the client has gone.
    async fn send(&self, value: Value) -> bool {
        self.0
            .send(Bytes::from(format!("data: {value}\n\n")))
            .await
            .is_ok()
    }

    async fn done(&self) {
        let _ = self.0.send(Bytes::from_static(b"data: [DONE]\n\n")).await;
    }
}

async fn models(State(Gateway { router, .. }): State<Gateway>) -> Json<Value> {
    let mut data: Vec<Value> = router
        .routes()
        .iter()
        .map(|r| {
            json!({
                "id": r.name,
                "object": "model",
                "created": 0,
                "owned_by": "vapora",
                "strategy": r.strategy,
                "targets": r.targets.iter().map(ToString::to_string).collect::<Vec<_>>(),
            })
        })
        .collect();
    data.extend(router.targets().iter().map(|t| {
        let pricing = router.provider(&t.provider).and_then(|p| p.models.get(&t.model).copied()).unwrap_or_default();
        json!({ "id": t.to_string(), "object": "model", "created": 0, "owned_by": t.provider, "pricing": pricing })
    }));
    Json(json!({ "object": "list", "data": data }))
}

/// The role budgets and the caller's own key budget; other keys' budgets
/// are theirs to see.
async fn budgets(
    State(Gateway { router, .. }): State<Gateway>,
    Extension(caller): Extension<Arc<keys::GatewayKey>>,
) -> Json<Value> {
    let own = crate::fingerprint::api_key_budget(&caller.name);
    let visible: Vec<_> = router
        .budgets()
        .statuses()
        .into_iter()
        .filter(|b| !b.key.starts_with("api_key:") || b.key == own)
        .collect();
    Json(json!({ "budgets": visible }))
}

async fn metrics(State(Gateway { router, .. }): State<Gateway>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        router.metrics().render(),
    )
}

/// For tests and the binary: serve until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    keys: GatewayKeys,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app(router, keys))
        .with_graceful_shutdown(shutdown)
        .await
}
