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

use super::wire::Wire;

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
    /// Extra response headers, sent as they are (e.g. an odd `Retry-After`).
    pub headers: Vec<(String, String)>,
    /// Sent instead of the protocol's own answer, whatever the status: the
    /// body's exact bytes, one piece per write with `chunk_delay` before
    /// each (for bodies no real provider should send).
    pub raw: Option<Vec<Vec<u8>>>,
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
            headers: Vec::new(),
            raw: None,
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

    /// Answers with `status` and exactly these body pieces.
    pub fn raw(status: u16, pieces: &[&[u8]]) -> Self {
        Self {
            status,
            raw: Some(pieces.iter().map(|p| p.to_vec()).collect()),
            ..Self::default()
        }
    }

    /// Adds a response header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
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

/// Picks the answer to a request from its body (`None`: the usual script).
type Responder = Arc<dyn Fn(&Value) -> Option<Script> + Send + Sync>;

struct Shared {
    protocol: Protocol,
    default: Mutex<Script>,
    scripts: Mutex<VecDeque<Script>>,
    requests: Mutex<Vec<Value>>,
    responder: Mutex<Option<Responder>>,
    /// Streams whose client went away before the last chunk was sent.
    dropped: AtomicUsize,
    completed: AtomicUsize,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("protocol", &self.protocol)
            .finish_non_exhaustive()
    }
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
            responder: Mutex::new(None),
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

    /// Answers each request `responder` has a script for with that script
    /// (before queued ones): for answers that depend on the prompt.
    pub fn respond_with(&self, responder: impl Fn(&Value) -> Option<Script> + Send + Sync + 'static) {
        *lock(&self.shared.responder) = Some(Arc::new(responder));
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
    let responder = lock(&shared.responder).clone();
    let script = match responder.and_then(|respond| respond(&request)) {
        Some(script) => script,
        None => lock(&shared.scripts)
            .pop_front()
            .unwrap_or_else(|| lock(&shared.default).clone()),
    };
    tokio::time::sleep(script.delay).await;
    let extra_headers = script.headers.clone();

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
    let mut response = scripted_response(protocol, &request, &uri, script, shared, model);
    for (name, value) in &extra_headers {
        if let (Ok(name), Ok(value)) = (
            header::HeaderName::from_bytes(name.as_bytes()),
            header::HeaderValue::from_str(value),
        ) {
            response.headers_mut().append(name, value);
        }
    }
    response
}

fn scripted_response(
    protocol: Protocol,
    request: &Value,
    uri: &axum::http::Uri,
    script: Script,
    shared: Arc<Shared>,
    model: String,
) -> Response {
    let status = StatusCode::from_u16(script.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if let Some(pieces) = script.raw {
        return raw_response(status, pieces, script.chunk_delay);
    }
    if script.status != 200 {
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

/// Exactly the scripted bytes, written piece by piece.
fn raw_response(status: StatusCode, pieces: Vec<Vec<u8>>, delay: Duration) -> Response {
    let body = futures::stream::iter(pieces).then(move |piece| async move {
        tokio::time::sleep(delay).await;
        Ok::<_, std::io::Error>(Bytes::from(piece))
    });
    let mut response = Response::new(Body::from_stream(body));
    *response.status_mut() = status;
    response
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
