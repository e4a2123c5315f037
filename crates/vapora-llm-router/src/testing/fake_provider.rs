//! A scriptable server speaking a provider's wire protocol: OpenAI chat
//! completions, Anthropic Messages, Ollama `/api/chat` or Gemini
//! `generateContent`, each with its own streaming format and usage fields.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use futures::StreamExt;
use serde_json::{Value, json};

/// How the server answers one request.
#[derive(Debug, Clone)]
pub struct Script {
    pub status: u16,
    /// Wait before sending the response head.
    pub delay: Duration,
    /// Output pieces: streamed one per SSE event, or joined for a plain answer.
    pub chunks: Vec<String>,
    /// Pause before each streamed chunk.
    pub chunk_delay: Duration,
    /// `(prompt_tokens, completion_tokens)`; `None` sends no usage at all.
    pub usage: Option<(u64, u64)>,
    /// Cut the connection after this many streamed chunks, without `[DONE]`.
    pub disconnect_after: Option<usize>,
    pub retry_after: Option<u64>,
}

impl Default for Script {
    fn default() -> Self {
        Self {
            status: 200,
            delay: Duration::ZERO,
            chunks: vec!["Hello".into(), ", ".into(), "world".into()],
            chunk_delay: Duration::ZERO,
            usage: Some((10, 3)),
            disconnect_after: None,
            retry_after: None,
        }
    }
}

impl Script {
    pub fn text(chunks: &[&str]) -> Self {
        Self {
            chunks: chunks.iter().map(|c| c.to_string()).collect(),
            ..Self::default()
        }
    }

    pub fn status(status: u16) -> Self {
        Self {
            status,
            ..Self::default()
        }
    }
}

/// Which wire protocol the fake server speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    OpenAi,
    Anthropic,
    Ollama,
    Gemini,
}

#[derive(Debug)]
struct Shared {
    protocol: Protocol,
    default: Mutex<Script>,
    scripts: Mutex<VecDeque<Script>>,
    requests: Mutex<Vec<Value>>,
    /// Streams whose client went away before the last chunk was sent.
    dropped: AtomicUsize,
    completed: AtomicUsize,
}

/// A running fake server; it stops when dropped.
#[derive(Debug)]
pub struct FakeProvider {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

impl FakeProvider {
    /// An OpenAI-protocol server on `127.0.0.1:0`, answering with `default`
    /// unless a script is queued.
    pub async fn start(default: Script) -> Self {
        Self::start_with(Protocol::OpenAi, default).await
    }

    /// A server speaking `protocol` on `127.0.0.1:0`.
    pub async fn start_with(protocol: Protocol, default: Script) -> Self {
        let shared = Arc::new(Shared {
            protocol,
            default: Mutex::new(default),
            scripts: Mutex::new(VecDeque::new()),
            requests: Mutex::new(Vec::new()),
            dropped: AtomicUsize::new(0),
            completed: AtomicUsize::new(0),
        });
        let app = Router::new()
            .route("/v1/chat/completions", post(chat))
            .route("/v1/messages", post(chat))
            .route("/api/chat", post(chat))
            .route("/v1beta/models/{model_action}", post(chat))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind fake server");
        let addr = listener.local_addr().expect("bound address");
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { addr, shared, server }
    }

    /// The base URL to configure a provider with: `http://127.0.0.1:PORT/v1`
    /// for OpenAI, the bare `http://127.0.0.1:PORT` for the others.
    pub fn base_url(&self) -> String {
        match self.shared.protocol {
            Protocol::OpenAi => format!("http://{}/v1", self.addr),
            _ => format!("http://{}", self.addr),
        }
    }

    /// Answers the next request with `script` (queued scripts go first, in order).
    pub fn push(&self, script: Script) {
        lock(&self.shared.scripts).push_back(script);
    }

    pub fn set_default(&self, script: Script) {
        *lock(&self.shared.default) = script;
    }

    /// Bodies of every request received so far.
    pub fn requests(&self) -> Vec<Value> {
        lock(&self.shared.requests).clone()
    }

    pub fn protocol(&self) -> Protocol {
        self.shared.protocol
    }

    pub fn request_count(&self) -> usize {
        lock(&self.shared.requests).len()
    }

    /// Streams abandoned by the client before they finished.
    pub fn dropped_streams(&self) -> usize {
        self.shared.dropped.load(Ordering::SeqCst)
    }

    pub fn completed_streams(&self) -> usize {
        self.shared.completed.load(Ordering::SeqCst)
    }
}

impl Drop for FakeProvider {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

async fn chat(State(shared): State<Arc<Shared>>, uri: axum::http::Uri, body: Bytes) -> Response {
    let request: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return (StatusCode::BAD_REQUEST, format!("bad json: {e}")).into_response(),
    };
    lock(&shared.requests).push(request.clone());
    let script = lock(&shared.scripts)
        .pop_front()
        .unwrap_or_else(|| lock(&shared.default).clone());
    tokio::time::sleep(script.delay).await;

    let protocol = shared.protocol;
    let model = match protocol {
        Protocol::Gemini => uri
            .path()
            .rsplit('/')
            .next()
            .unwrap_or("")
            .split(':')
            .next()
            .unwrap_or("")
            .to_owned(),
        _ => request["model"].as_str().unwrap_or("fake-model").to_owned(),
    };
    if script.status != 200 {
        let status = StatusCode::from_u16(script.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (
            status,
            axum::Json(json!({"error": {"message": "scripted failure", "type": "fake"}})),
        )
            .into_response();
        if let Some(secs) = script.retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, secs.into());
        }
        return response;
    }
    let streaming = match protocol {
        Protocol::Gemini => uri.path().ends_with(":streamGenerateContent"),
        _ => request["stream"].as_bool() == Some(true),
    };
    let wire = Wire {
        protocol,
        model,
        usage: script.usage,
    };
    if !streaming {
        return axum::Json(wire.whole(&script.chunks.concat())).into_response();
    }
    // OpenAI only reports streamed usage when asked to.
    let usage_asked =
        protocol != Protocol::OpenAi || request["stream_options"]["include_usage"].as_bool() == Some(true);
    let wire = Wire {
        usage: if usage_asked { wire.usage } else { None },
        ..wire
    };
    stream_response(shared, script, wire)
}

/// Encodes answers in one protocol.
#[derive(Debug, Clone)]
struct Wire {
    protocol: Protocol,
    model: String,
    usage: Option<(u64, u64)>,
}

impl Wire {
    fn whole(&self, text: &str) -> Value {
        let (p, c) = self.usage.unzip();
        match self.protocol {
            Protocol::OpenAi => {
                let mut v = json!({"id": "chatcmpl-fake", "object": "chat.completion", "model": self.model,
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}]});
                if let (Some(p), Some(c)) = (p, c) {
                    v["usage"] = json!({"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c});
                }
                v
            }
            Protocol::Anthropic => {
                let mut v = json!({"id": "msg_fake", "type": "message", "role": "assistant", "model": self.model,
                    "content": [{"type": "text", "text": text}], "stop_reason": "end_turn"});
                if let (Some(p), Some(c)) = (p, c) {
                    v["usage"] = json!({"input_tokens": p, "output_tokens": c});
                }
                v
            }
            Protocol::Ollama => {
                let mut v = json!({"model": self.model, "message": {"role": "assistant", "content": text}, "done": true, "done_reason": "stop"});
                if let (Some(p), Some(c)) = (p, c) {
                    v["prompt_eval_count"] = p.into();
                    v["eval_count"] = c.into();
                }
                v
            }
            Protocol::Gemini => {
                let mut v = json!({"candidates": [{"content": {"parts": [{"text": text}], "role": "model"}, "finishReason": "STOP"}], "modelVersion": self.model});
                if let (Some(p), Some(c)) = (p, c) {
                    v["usageMetadata"] =
                        json!({"promptTokenCount": p, "candidatesTokenCount": c, "totalTokenCount": p + c});
                }
                v
            }
        }
    }

    fn frame(&self, v: Value) -> String {
        match self.protocol {
            Protocol::Ollama => format!("{v}\n"),
            _ => format!("data: {v}\n\n"),
        }
    }

    fn start(&self) -> Vec<String> {
        match self.protocol {
            Protocol::Anthropic => {
                let mut message = json!({"id": "msg_fake", "type": "message", "role": "assistant", "model": self.model, "content": []});
                if let Some((p, _)) = self.usage {
                    message["usage"] = json!({"input_tokens": p, "output_tokens": 1});
                }
                vec![
                    self.frame(json!({"type": "message_start", "message": message})),
                    self.frame(json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})),
                    self.frame(json!({"type": "ping"})),
                ]
            }
            _ => Vec::new(),
        }
    }

    fn delta(&self, text: &str) -> String {
        self.frame(match self.protocol {
            Protocol::OpenAi => json!({"id": "chatcmpl-fake", "object": "chat.completion.chunk", "model": self.model,
                "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": null}]}),
            Protocol::Anthropic => json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}}),
            Protocol::Ollama => json!({"model": self.model, "message": {"role": "assistant", "content": text}, "done": false}),
            Protocol::Gemini => json!({"candidates": [{"content": {"parts": [{"text": text}], "role": "model"}}], "modelVersion": self.model}),
        })
    }

    fn end(&self) -> Vec<String> {
        let (p, c) = self.usage.unzip();
        match self.protocol {
            Protocol::OpenAi => {
                let mut out = vec![self.frame(
                    json!({"id": "chatcmpl-fake", "object": "chat.completion.chunk", "model": self.model,
                    "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}),
                )];
                if let (Some(p), Some(c)) = (p, c) {
                    out.push(self.frame(
                        json!({"id": "chatcmpl-fake", "object": "chat.completion.chunk", "choices": [],
                        "usage": {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}}),
                    ));
                }
                out.push("data: [DONE]\n\n".into());
                out
            }
            Protocol::Anthropic => {
                let mut delta = json!({"type": "message_delta", "delta": {"stop_reason": "end_turn"}});
                if let Some(c) = c {
                    delta["usage"] = json!({"output_tokens": c});
                }
                vec![
                    self.frame(json!({"type": "content_block_stop", "index": 0})),
                    self.frame(delta),
                    self.frame(json!({"type": "message_stop"})),
                ]
            }
            Protocol::Ollama => {
                let mut last = json!({"model": self.model, "message": {"role": "assistant", "content": ""}, "done": true, "done_reason": "stop"});
                if let (Some(p), Some(c)) = (p, c) {
                    last["prompt_eval_count"] = p.into();
                    last["eval_count"] = c.into();
                }
                vec![self.frame(last)]
            }
            Protocol::Gemini => {
                let mut last = json!({"candidates": [{"content": {"parts": [{"text": ""}], "role": "model"}, "finishReason": "STOP"}], "modelVersion": self.model});
                if let (Some(p), Some(c)) = (p, c) {
                    last["usageMetadata"] =
                        json!({"promptTokenCount": p, "candidatesTokenCount": c, "totalTokenCount": p + c});
                }
                vec![self.frame(last)]
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum StreamEnd {
    /// Still sending; if dropped now, the client went away.
    Pending,
    Finished,
    /// The script cut the connection on purpose.
    Aborted,
}

/// Counts how each stream ended when the server drops it.
struct StreamGuard {
    shared: Arc<Shared>,
    end: StreamEnd,
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        match self.end {
            StreamEnd::Pending => self.shared.dropped.fetch_add(1, Ordering::SeqCst),
            StreamEnd::Finished => self.shared.completed.fetch_add(1, Ordering::SeqCst),
            StreamEnd::Aborted => 0,
        };
    }
}

fn stream_response(shared: Arc<Shared>, script: Script, wire: Wire) -> Response {
    let content_type = if wire.protocol == Protocol::Ollama {
        "application/x-ndjson"
    } else {
        "text/event-stream"
    };
    let guard = StreamGuard {
        shared,
        end: StreamEnd::Pending,
    };
    let frames = futures::stream::unfold(
        (0usize, script, guard, wire),
        |(i, script, mut guard, wire)| async move {
            let n = script.chunks.len();
            if i == usize::MAX || i > n {
                return None;
            }
            if script.disconnect_after == Some(i) {
                guard.end = StreamEnd::Aborted;
                // Let the chunks already yielded reach the socket first.
                tokio::time::sleep(Duration::from_millis(20)).await;
                let err = std::io::Error::new(std::io::ErrorKind::ConnectionAborted, "scripted disconnect");
                // Yielding an error makes the server abort the connection.
                return Some((vec![Err(err)], (usize::MAX, script, guard, wire)));
            }
            if i == n {
                guard.end = StreamEnd::Finished;
                let out = wire.end().into_iter().map(|f| Ok(Bytes::from(f))).collect();
                return Some((out, (i + 1, script, guard, wire)));
            }
            tokio::time::sleep(script.chunk_delay).await;
            let mut out: Vec<Result<Bytes, std::io::Error>> = if i == 0 {
                wire.start().into_iter().map(|f| Ok(Bytes::from(f))).collect()
            } else {
                Vec::new()
            };
            out.push(Ok(Bytes::from(wire.delta(&script.chunks[i]))));
            Some((out, (i + 1, script, guard, wire)))
        },
    )
    .flat_map(futures::stream::iter);
    Response::builder()
        .header(header::CONTENT_TYPE, content_type)
        .body(Body::from_stream(frames))
        .expect("valid response")
}
