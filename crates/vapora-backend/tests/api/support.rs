//! `spawn_app()` and typed request helpers for the integration tests.

use std::net::SocketAddr;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use reqwest::StatusCode;
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
pub use vapora_agents::testing::eventually;
use vapora_backend::api::AppState;
use vapora_backend::auth::PresentedKey;
use vapora_backend::startup::StartupError;
use vapora_backend::{Application, Settings};
use vapora_llm_router::testing::{FakeProvider, Script};
use vapora_llm_router::{Pricing, ProviderConfig, ProviderKind};

pub const PRICING: Pricing = Pricing {
    input_per_mtok: 1.0,
    output_per_mtok: 2.0,
};

/// Settings for a test app: free port, in-memory database, the fake LLM,
/// and a fresh admin key of its own.
pub fn test_settings(llm: &FakeProvider) -> Settings {
    Settings {
        port: 0,
        admin_key: Some(PresentedKey::generate().reveal()),
        database_url: "mem://".into(),
        workers_per_role: 1,
        shutdown_grace: Duration::from_secs(1),
        llm: ProviderConfig {
            kind: ProviderKind::OpenAi {
                base_url: llm.base_url(),
                api_key_env: None,
                model: "fake-model".into(),
                pricing: PRICING,
            },
            name: "fake".into(),
            request_timeout: Duration::from_secs(30),
            echo_word_delay: Duration::ZERO,
        },
        ..Settings::default()
    }
}

/// A running backend plus the fake LLM it talks to.
pub struct TestApp {
    pub addr: SocketAddr,
    /// Sends the admin key with every request.
    pub http: reqwest::Client,
    pub admin_key: String,
    pub state: AppState,
    pub llm: FakeProvider,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<Result<(), StartupError>>>,
}

/// Starts the app with default test settings and a fast fake LLM.
pub async fn spawn_app() -> TestApp {
    let llm = FakeProvider::start(Script::default()).await;
    let settings = test_settings(&llm);
    spawn_app_with(llm, settings).await
}

pub async fn spawn_app_with(llm: FakeProvider, settings: Settings) -> TestApp {
    let admin_key = admin_key_of(&settings);
    serve(build_when_unlocked(settings).await, llm, admin_key)
}

/// Another replica of `app`: its own server and fake LLM, the same
/// database and admin key (as replicas sharing a SurrealDB server).
pub async fn spawn_replica(app: &TestApp) -> TestApp {
    let llm = FakeProvider::start(Script::default()).await;
    let settings = Settings {
        admin_key: Some(app.admin_key.clone().into()),
        ..test_settings(&llm)
    };
    let replica = Application::build_on(settings, app.state.db.clone())
        .await
        .expect("replica builds");
    serve(replica, llm, app.admin_key.clone())
}

fn admin_key_of(settings: &Settings) -> String {
    settings
        .admin_key
        .as_ref()
        .expect("test settings name an admin key")
        .expose_secret()
        .to_owned()
}

/// Where every in-process backend of this test binary logs (INFO and up);
/// `scripts/test` scans it for secrets once the suite has run.
pub const LOG_FILE: &str = concat!(env!("CARGO_TARGET_TMPDIR"), "/api-tests.log");

/// Sends this binary's logs to [`LOG_FILE`], once.
fn capture_logs() {
    static INIT: std::sync::Once = std::sync::Once::new();
    INIT.call_once(|| {
        let file = std::fs::File::create(LOG_FILE).expect("log file");
        let filter = tracing_subscriber::EnvFilter::new("info,surrealdb=warn,surrealkv=warn");
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(false)
            .with_writer(std::sync::Mutex::new(file))
            .try_init();
    });
}

fn serve(app: Application, llm: FakeProvider, admin_key: String) -> TestApp {
    capture_logs();
    let addr = app.local_addr();
    let state = app.state().clone();
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async {
        let _ = stopped.await;
    }));
    TestApp {
        addr,
        http: client_with_key(&admin_key),
        admin_key,
        state,
        llm,
        stop: Some(stop),
        server: Some(server),
    }
}

/// Builds the app, waiting while an on-disk store is still locked by a
/// handle closed a moment ago (the embedded engine releases it in the
/// background; a real restart is a new process, which never sees this).
async fn build_when_unlocked(settings: Settings) -> Application {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match Application::build(settings.clone()).await {
            Ok(app) => return app,
            Err(e) if e.to_string().contains("locked") && tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("app builds: {e}"),
        }
    }
}

/// Opens the store directly, with the same wait as [`build_when_unlocked`].
pub async fn open_store_when_unlocked(url: &str) -> vapora_backend::storage::Database {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match vapora_backend::storage::Database::connect(url).await {
            Ok(db) => return db,
            Err(e) if e.to_string().contains("locked") && tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("store opens: {e}"),
        }
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Graceful stop, as on SIGTERM; returns the fake LLM for reuse.
    pub async fn stop(mut self) -> FakeProvider {
        let _ = self.stop.take().expect("running").send(());
        let server = self.server.take().expect("running");
        tokio::time::timeout(Duration::from_secs(30), server)
            .await
            .expect("shutdown finishes in time")
            .expect("server task did not panic")
            .expect("server exits cleanly");
        // The state holds a database handle; drop it so the store is released.
        drop(self.state);
        self.llm
    }

    /// The API as the admin.
    pub fn api(&self) -> ApiClient {
        ApiClient {
            http: self.http.clone(),
            base: self.url(""),
        }
    }

    /// The API as the holder of `key`.
    pub fn api_as(&self, key: &str) -> ApiClient {
        ApiClient {
            http: client_with_key(key),
            base: self.url(""),
        }
    }

    pub async fn post(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        self.api().send(reqwest::Method::POST, path, Some(body)).await
    }

    pub async fn patch(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        self.api().send(reqwest::Method::PATCH, path, Some(body)).await
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.api().send(reqwest::Method::GET, path, None).await
    }

    /// Issues a key as the admin; returns the key text and its id.
    pub async fn issue_key(&self, role: &str, projects: &[&Value]) -> (String, String) {
        let (status, body) = self
            .post(
                "/api/v1/keys",
                &json!({ "name": format!("{role} key"), "role": role, "projects": projects }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        (
            body["key"].as_str().unwrap().to_owned(),
            body["id"].as_str().unwrap().to_owned(),
        )
    }

    pub async fn create_project(&self, name: &str) -> Value {
        let (status, body) = self.post("/api/v1/projects", &json!({ "name": name })).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body
    }

    /// Creates a task; `extra` fields are merged over a valid developer task.
    pub async fn create_task(&self, project_id: &Value, extra: Value) -> Value {
        let (status, body) = self.try_create_task(project_id, extra).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body
    }

    pub async fn try_create_task(&self, project_id: &Value, extra: Value) -> (StatusCode, Value) {
        let mut task = json!({
            "project_id": project_id,
            "title": "Write the parser",
            "description": "Parse the config file.",
            "role": "developer",
            "priority": "medium",
        });
        if let (Some(task), Some(extra)) = (task.as_object_mut(), extra.as_object()) {
            task.extend(extra.clone());
        }
        self.post("/api/v1/tasks", &task).await
    }

    pub async fn task(&self, id: &Value) -> Value {
        let (status, body) = self.get(&format!("/api/v1/tasks/{}", id.as_str().unwrap())).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    /// `POST /api/v1/tasks/{id}/cancel`.
    pub async fn cancel(&self, id: &Value) -> (StatusCode, Value) {
        self.post(
            &format!("/api/v1/tasks/{}/cancel", id.as_str().unwrap()),
            &json!({}),
        )
        .await
    }

    /// `POST /api/v1/tasks/{id}/retry`.
    pub async fn retry(&self, id: &Value) -> (StatusCode, Value) {
        self.post(
            &format!("/api/v1/tasks/{}/retry", id.as_str().unwrap()),
            &json!({}),
        )
        .await
    }

    /// Tasks completed, summed over every agent in the registry.
    pub async fn tasks_completed_by_agents(&self) -> u64 {
        let (_, agents) = self.get("/api/v1/agents?limit=500").await;
        agents["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["tasks_completed"].as_u64().unwrap())
            .sum()
    }

    /// Polls until the task reaches `status` (panics after 20 s).
    pub async fn wait_for_status(&self, id: &Value, status: &str) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let task = self.task(id).await;
            if task["status"] == status {
                return task;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "task never reached {status}: {task}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Number of tasks stored, over the public API.
    pub async fn task_count(&self) -> usize {
        let (_, page) = self.get("/api/v1/tasks?limit=500").await;
        page["items"].as_array().map_or(0, Vec::len)
    }

    /// A WebSocket client with the admin key.
    pub async fn websocket(&self, query: &str) -> WsClient {
        self.websocket_with_key(query, &self.admin_key)
            .await
            .expect("websocket handshake")
    }

    /// A WebSocket client offering `key` as a subprotocol, as browsers do.
    pub async fn websocket_with_key(
        &self,
        query: &str,
        key: &str,
    ) -> Result<WsClient, tokio_tungstenite::tungstenite::Error> {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let mut request = format!("ws://{}/api/v1/ws{query}", self.addr)
            .into_client_request()
            .expect("a valid URL");
        let protocols = format!("vapora.v1, {key}").parse().expect("a valid header");
        request.headers_mut().insert("sec-websocket-protocol", protocols);
        let (ws, response) = tokio_tungstenite::connect_async(request).await?;
        assert_eq!(
            response.headers()["sec-websocket-protocol"],
            "vapora.v1",
            "the server selects the protocol and never echoes the key"
        );
        Ok(WsClient { ws })
    }
}

/// Requests with one client's key.
#[derive(Clone)]
pub struct ApiClient {
    pub http: reqwest::Client,
    pub base: String,
}

impl ApiClient {
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> (StatusCode, Value) {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(body) = body {
            request = request.json(body);
        }
        decode(request.send().await.expect("request sent")).await
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.send(reqwest::Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        self.send(reqwest::Method::POST, path, Some(body)).await
    }
}

/// An HTTP client that sends `key` as its bearer token.
pub fn client_with_key(key: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    let value = format!("Bearer {key}")
        .parse()
        .expect("a key is a valid header value");
    headers.insert(reqwest::header::AUTHORIZATION, value);
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .expect("client builds")
}

pub async fn decode(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    let text = response.text().await.expect("body read");
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, body)
}

/// A WebSocket dashboard client.
pub struct WsClient {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl WsClient {
    /// The next JSON event (panics after 10 s of silence).
    pub async fn next_event(&mut self) -> Value {
        loop {
            let message = tokio::time::timeout(Duration::from_secs(10), self.ws.next())
                .await
                .expect("an event within 10 s")
                .expect("socket open")
                .expect("valid frame");
            if let Message::Text(text) = message {
                return serde_json::from_str(&text).expect("events are JSON");
            }
        }
    }

    /// Events until (and including) the first one matching `last`.
    pub async fn events_until(&mut self, last: impl Fn(&Value) -> bool) -> Vec<Value> {
        let mut events = Vec::new();
        loop {
            let event = self.next_event().await;
            let done = last(&event);
            events.push(event);
            if done {
                return events;
            }
        }
    }

    pub async fn close(mut self) {
        let _ = self.ws.send(Message::Close(None)).await;
    }
}

/// A fake LLM answer slow enough to observe (and cancel) a running task.
pub fn slow_script() -> Script {
    Script {
        chunks: (0..200).map(|i| format!("word{i} ")).collect(),
        chunk_delay: Duration::from_millis(50),
        ..Script::default()
    }
}
