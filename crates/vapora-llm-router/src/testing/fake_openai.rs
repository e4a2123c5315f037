//! A scriptable server speaking the OpenAI chat-completions protocol.

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

#[derive(Debug)]
struct Shared {
    default: Mutex<Script>,
    scripts: Mutex<VecDeque<Script>>,
    requests: Mutex<Vec<Value>>,
    /// Streams whose client went away before the last chunk was sent.
    dropped: AtomicUsize,
    completed: AtomicUsize,
}

/// A running fake server; it stops when dropped.
#[derive(Debug)]
pub struct FakeOpenAi {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

impl FakeOpenAi {
    /// Starts on `127.0.0.1:0`, answering with `default` unless a script is queued.
    pub async fn start(default: Script) -> Self {
        let shared = Arc::new(Shared {
            default: Mutex::new(default),
            scripts: Mutex::new(VecDeque::new()),
            requests: Mutex::new(Vec::new()),
            dropped: AtomicUsize::new(0),
            completed: AtomicUsize::new(0),
        });
        let app = Router::new()
            .route("/v1/chat/completions", post(chat))
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

    /// The base URL to configure a provider with (`http://127.0.0.1:PORT/v1`).
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
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

impl Drop for FakeOpenAi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

async fn chat(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let request: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return (StatusCode::BAD_REQUEST, format!("bad json: {e}")).into_response(),
    };
    lock(&shared.requests).push(request.clone());
    let script = lock(&shared.scripts)
        .pop_front()
        .unwrap_or_else(|| lock(&shared.default).clone());
    tokio::time::sleep(script.delay).await;

    let model = request["model"].as_str().unwrap_or("fake-model").to_owned();
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
    let usage = script
        .usage
        .map(|(p, c)| json!({"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}));
    if request["stream"].as_bool() != Some(true) {
        let mut answer = json!({
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": script.chunks.concat()}, "finish_reason": "stop"}],
        });
        if let Some(usage) = usage {
            answer["usage"] = usage;
        }
        return axum::Json(answer).into_response();
    }
    let include_usage = request["stream_options"]["include_usage"].as_bool() == Some(true);
    stream_response(shared, script, model, if include_usage { usage } else { None })
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

fn stream_response(shared: Arc<Shared>, script: Script, model: String, usage: Option<Value>) -> Response {
    let event = |v: Value| Ok::<_, std::io::Error>(Bytes::from(format!("data: {v}\n\n")));
    let chunk = move |content: Option<&str>, finish: Option<&str>| {
        json!({
            "id": "chatcmpl-fake",
            "object": "chat.completion.chunk",
            "model": model,
            "choices": [{"index": 0, "delta": content.map(|c| json!({"content": c})).unwrap_or(json!({})), "finish_reason": finish}],
        })
    };
    let guard = StreamGuard {
        shared,
        end: StreamEnd::Pending,
    };
    let frames = futures::stream::unfold(
        (0usize, script, guard, chunk, usage),
        move |(i, script, mut guard, chunk, usage)| async move {
            let n = script.chunks.len();
            if script.disconnect_after == Some(i) {
                guard.end = StreamEnd::Aborted;
                // Let the chunks already yielded reach the socket first.
                tokio::time::sleep(Duration::from_millis(20)).await;
                let err = std::io::Error::new(std::io::ErrorKind::ConnectionAborted, "scripted disconnect");
                // Yielding an error makes the server abort the connection.
                return Some((vec![Err(err)], (usize::MAX, script, guard, chunk, usage)));
            }
            if i == usize::MAX || i > n {
                return None;
            }
            if i == n {
                let mut out = vec![event(chunk(None, Some("stop")))];
                if let Some(u) = &usage {
                    out.push(event(json!({"id": "chatcmpl-fake", "object": "chat.completion.chunk", "choices": [], "usage": u})));
                }
                out.push(Ok(Bytes::from_static(b"data: [DONE]\n\n")));
                guard.end = StreamEnd::Finished;
                return Some((out, (i + 1, script, guard, chunk, usage)));
            }
            tokio::time::sleep(script.chunk_delay).await;
            let frame = event(chunk(Some(&script.chunks[i]), None));
            Some((vec![frame], (i + 1, script, guard, chunk, usage)))
        },
    )
    .flat_map(futures::stream::iter);
    Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .body(Body::from_stream(frames))
        .expect("valid response")
}
