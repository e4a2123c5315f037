//! `POST /v1/chat/completions`: one answer as JSON, or a stream of
//! OpenAI chunks over server-sent events.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use futures::StreamExt;
use serde::Serialize;
use serde_json::{Value, json};
use utoipa::IntoParams;

use super::error::{ErrorBody, GatewayError};
use super::keys;
use super::openai_api::{
    ChatCompletion, ChatCompletionRequest, chunk_json, completion, finish_reason_of, usage_chunk_json,
};
use super::{Gateway, ROLE_HEADER};
use crate::{LlmClient, StreamEvent};

/// The optional role header, as the API document states it; the handler
/// reads it from the request's headers.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Header)]
pub(super) struct RoleHeader {
    /// The role charged for the call; with a route-less `model`, also the
    /// role's route.
    #[param(rename = "x-vapora-role", pattern = "^[a-z0-9]([a-z0-9-]{0,62}[a-z0-9])?$")]
    #[allow(dead_code)] // documentation only
    role: Option<String>,
}

/// A JSON body, rejected as an OpenAI-style error.
pub(super) struct OpenAiJson(ChatCompletionRequest);

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

/// Chat completions in OpenAI's wire format; the official SDKs work
/// unchanged.
#[utoipa::path(post, path = "/v1/chat/completions", operation_id = "create_chat_completion", tag = "chat",
    params(RoleHeader),
    request_body = ChatCompletionRequest,
    responses(
        (status = 200, description = "The answer: JSON, or with `stream: true` server-sent events of `chat.completion.chunk` objects ending in `data: [DONE]`",
            content(
                (ChatCompletion = "application/json"),
                (String = "text/event-stream"),
            )),
        (status = 404, description = "No such route or `provider/model`", body = ErrorBody),
        (status = 429, description = "The key is over its requests or tokens per minute, a budget is spent, or the provider limits the rate", body = ErrorBody,
            headers(("Retry-After" = String, description = "Seconds to wait, when known"))),
        (status = 502, description = "Every provider of the route failed", body = ErrorBody),
        (status = 503, description = "Every provider of the route is saturated", body = ErrorBody,
            headers(("Retry-After" = String, description = "Seconds to wait"))),
        (status = 504, description = "The provider did not answer in time", body = ErrorBody),
    ))]
pub(super) async fn chat_completions(
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
        let answer = router.complete(&request).await?;
        let overhead = received.elapsed().saturating_sub(answer.upstream_time);
        router.metrics().overhead.observe(overhead);
        return Ok(Json(completion(&id, created, &answer)).into_response());
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
    async fn send(&self, value: impl Serialize) -> bool {
        let value = serde_json::to_string(&value).expect("frames serialize");
        self.0
            .send(Bytes::from(format!("data: {value}\n\n")))
            .await
            .is_ok()
    }

    async fn done(&self) {
        let _ = self.0.send(Bytes::from_static(b"data: [DONE]\n\n")).await;
    }
}
