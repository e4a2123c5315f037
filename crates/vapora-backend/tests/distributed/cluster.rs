//! A whole deployment as separate processes: a real `nats-server`, backend
//! replicas (`vapora-backend`), agent servers (`vapora-agent-server`), and
//! a fake LLM speaking the OpenAI protocol in this process.
//!
//! Processes log to files in the cluster's temp directory; when a test
//! fails, the end of every log is printed.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use secrecy::ExposeSecret;
use serde_json::{Value, json};
pub use vapora_agents::testing::eventually;
use vapora_agents::testing::{NatsServer, workspace_binary};
use vapora_backend::auth::PresentedKey;
use vapora_llm_router::testing::{FakeProvider, Script};

/// Delivery settings short enough for tests: a silent worker's attempt is
/// redelivered after 2 s, and given up on after 3 deliveries.
pub const ACK_WAIT_SECS: &str = "2";
pub const MAX_DELIVER: &str = "3";
/// Long enough that only the stall test (which sets its own) sees a stall:
/// elsewhere a killed agent's attempts wait for redelivery behind a backlog.
pub const ATTEMPT_STALL_SECS: &str = "60";

pub struct Cluster {
    pub nats: NatsServer,
    pub llm: FakeProvider,
    pub backends: Vec<Backend>,
    pub agents: HashMap<String, Agent>,
    /// Sends [`Self::admin_key`] with every request.
    pub http: reqwest::Client,
    /// Every backend of the cluster registers it (`VAPORA_ADMIN_KEY`).
    pub admin_key: String,
    /// Secrets no process may ever log (the admin key and whatever a test
    /// adds); every log is scanned for them when the cluster is dropped.
    pub secrets: Vec<String>,
    dir: tempfile::TempDir,
}

pub struct Backend {
    child: Child,
    pub url: String,
    log: PathBuf,
}

pub struct Agent {
    child: Child,
    log: PathBuf,
}

impl Cluster {
    /// nats-server and the fake LLM; add backends and agents next.
    pub async fn start(llm_script: Script) -> Self {
        Self::start_on(NatsServer::start().await, llm_script).await
    }

    /// As [`Self::start`], on a server the test configured (credentials…).
    pub async fn start_on(nats: NatsServer, llm_script: Script) -> Self {
        let admin_key = PresentedKey::generate().reveal().expose_secret().to_owned();
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            reqwest::header::AUTHORIZATION,
            format!("Bearer {admin_key}").parse().unwrap(),
        );
        Self {
            nats,
            llm: FakeProvider::start(llm_script).await,
            backends: Vec::new(),
            agents: HashMap::new(),
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(64)
                .default_headers(headers)
                .build()
                .unwrap(),
            secrets: vec![admin_key.clone()],
            admin_key,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// The backend's on-disk database, kept across backend restarts.
    fn database_url(&self) -> String {
        format!("surrealkv://{}", self.dir.path().join("db").display())
    }

    fn common_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("VAPORA_NATS_URL", self.nats.url().to_owned()),
            ("VAPORA_NATS_ACK_WAIT_SECS", ACK_WAIT_SECS.into()),
            ("VAPORA_NATS_MAX_DELIVER", MAX_DELIVER.into()),
            ("VAPORA_ATTEMPT_STALL_SECS", ATTEMPT_STALL_SECS.into()),
            ("NO_COLOR", "1".into()),
        ]
    }

    /// Starts (or restarts) the backend on the cluster's on-disk database.
    pub async fn start_backend(&mut self) -> usize {
        self.start_backend_with(&[]).await
    }

    /// As [`Self::start_backend`], with some settings of the test's own.
    pub async fn start_backend_with(&mut self, extra_env: &[(&str, &str)]) -> usize {
        let url = self.database_url();
        self.spawn_backend(&url, extra_env).await
    }

    pub async fn spawn_backend(&mut self, database_url: &str, extra_env: &[(&str, &str)]) -> usize {
        let n = self.backends.len();
        let log = self.dir.path().join(format!("backend-{n}.log"));
        let mut command = Command::new(env!("CARGO_BIN_EXE_vapora-backend"));
        command
            .envs(self.common_env())
            .env("VAPORA_PORT", "0")
            .env("VAPORA_DATABASE_URL", database_url)
            .env("VAPORA_ADMIN_KEY", &self.admin_key)
            .env("VAPORA_QUEUE_CAPACITY", "20000")
            .env("VAPORA_SHUTDOWN_GRACE_SECS", "2")
            .env("RUST_LOG", "info,surrealdb=warn,surrealkv=warn,async_nats=warn");
        for (key, value) in extra_env {
            command.env(key, value);
        }
        let child = spawn_logged(&mut command, &log);
        let addr = wait_for_log_value(&log, "vapora-backend listening", "addr=").await;
        self.backends.push(Backend {
            child,
            url: format!("http://{addr}"),
            log,
        });
        n
    }

    /// Starts an agent server serving `roles` (comma-separated).
    pub async fn start_agent(&mut self, id: &str, roles: &str, concurrency: usize) {
        self.start_agent_with(id, roles, concurrency, &[]).await;
    }

    pub async fn start_agent_with(
        &mut self,
        id: &str,
        roles: &str,
        concurrency: usize,
        extra_env: &[(&str, &str)],
    ) {
        static STARTS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = STARTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let log = self.dir.path().join(format!("agent-{id}-{n}.log"));
        let mut command = Command::new(agent_server_binary());
        command
            .envs(self.common_env())
            .env("VAPORA_AGENT_ID", id)
            .env("VAPORA_AGENT_ROLES", roles)
            .env("VAPORA_AGENT_CONCURRENCY", concurrency.to_string())
            .env("VAPORA_AGENT_HEARTBEAT_SECS", "0.5")
            .env("VAPORA_SHUTDOWN_GRACE_SECS", "5")
            .env("VAPORA_LLM_BASE_URL", self.llm.base_url())
            .env("VAPORA_LLM_MODEL", "fake-model")
            .env("RUST_LOG", "info,async_nats=warn");
        for (key, value) in extra_env {
            command.env(key, value);
        }
        let child = spawn_logged(&mut command, &log);
        self.agents.insert(id.to_owned(), Agent { child, log });
    }

    /// Starts a worker that is not `vapora-agent-server` (one written in
    /// another language, say) as agent `id`: logged, terminated and killed
    /// like the agent servers.
    pub fn start_external_agent(&mut self, id: &str, mut command: Command) {
        let log = self.dir.path().join(format!("agent-{id}.log"));
        let child = spawn_logged(&mut command, &log);
        self.agents.insert(id.to_owned(), Agent { child, log });
    }

    /// `kill -9` an agent server.
    pub fn kill_agent(&mut self, id: &str) {
        let agent = self.agents.get_mut(id).expect("known agent");
        let _ = agent.child.kill();
        let _ = agent.child.wait();
    }

    /// `kill -9` a backend replica.
    pub fn kill_backend(&mut self, n: usize) {
        let _ = self.backends[n].child.kill();
        let _ = self.backends[n].child.wait();
    }

    /// Sends SIGTERM to an agent server and waits up to `limit` for it to
    /// exit; returns its exit status and how long it took.
    pub async fn terminate_agent(
        &mut self,
        id: &str,
        limit: Duration,
    ) -> (std::process::ExitStatus, Duration) {
        let agent = self.agents.get_mut(id).expect("known agent");
        terminate(&mut agent.child, &format!("agent {id}"), limit).await
    }

    /// As [`Self::terminate_agent`], for backend replica `n`; also returns
    /// what it logged from the SIGTERM on.
    pub async fn terminate_backend(
        &mut self,
        n: usize,
        limit: Duration,
    ) -> (std::process::ExitStatus, String) {
        let backend = &mut self.backends[n];
        let before = std::fs::read_to_string(&backend.log).unwrap_or_default().len();
        let (status, _) = terminate(&mut backend.child, &format!("backend {n}"), limit).await;
        let log = std::fs::read_to_string(&backend.log).unwrap_or_default();
        (status, log[before..].to_owned())
    }

    pub fn api(&self, n: usize) -> Api<'_> {
        Api {
            http: &self.http,
            base: &self.backends[n].url,
        }
    }

    /// Waits until the backend lists every agent in `ids` as online.
    pub async fn wait_for_agents(&self, backend: usize, ids: &[&str]) {
        let api = self.api(backend);
        eventually(30, "agents online", || async {
            let agents = api.get("/api/v1/agents?limit=500").await;
            ids.iter().all(|id| {
                agents["items"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|a| a["id"] == *id && a["status"] != "offline")
            })
        })
        .await;
    }

    /// What agent server `id` has logged so far.
    pub fn agent_log(&self, id: &str) -> String {
        std::fs::read_to_string(&self.agents[id].log).unwrap_or_default()
    }

    /// Every process's log file.
    fn log_files(&self) -> Vec<&Path> {
        let mut logs: Vec<&Path> = self.backends.iter().map(|b| b.log.as_path()).collect();
        logs.extend(self.agents.values().map(|a| a.log.as_path()));
        logs
    }

    /// Everything every process has logged so far.
    pub fn all_logs(&self) -> String {
        self.log_files()
            .into_iter()
            .map(|log| std::fs::read_to_string(log).unwrap_or_default())
            .collect()
    }

    fn dump_logs(&self) {
        for log in self.log_files() {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            eprintln!("----- {} (last 40 lines) -----", log.display());
            for line in &lines[lines.len().saturating_sub(40)..] {
                eprintln!("{line}");
            }
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.dump_logs();
        }
        for agent in self.agents.values_mut() {
            let _ = agent.child.kill();
            let _ = agent.child.wait();
        }
        for backend in &mut self.backends {
            let _ = backend.child.kill();
            let _ = backend.child.wait();
        }
        if !std::thread::panicking() {
            let logs = self.all_logs();
            for secret in &self.secrets {
                // The secret itself is not printed, only where it was found.
                assert!(
                    !logs.contains(secret.as_str()),
                    "a secret reached a process log ({} chars)",
                    secret.len()
                );
            }
        }
    }
}

/// Sends SIGTERM to `child` and waits up to `limit` for it to exit.
async fn terminate(child: &mut Child, what: &str, limit: Duration) -> (std::process::ExitStatus, Duration) {
    let started = std::time::Instant::now();
    let sent = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return (status, started.elapsed());
        }
        assert!(
            started.elapsed() < limit,
            "{what} still running {limit:?} after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn agent_server_binary() -> PathBuf {
    static BINARY: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BINARY
        .get_or_init(|| workspace_binary("vapora-agents", "vapora-agent-server"))
        .clone()
}

fn spawn_logged(command: &mut Command, log: &Path) -> Child {
    let out = std::fs::File::create(log).unwrap();
    let err = out.try_clone().unwrap();
    command
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .unwrap()
}

/// Waits for a log line containing `marker` and returns the value after
/// `key` on it (up to the next space).
async fn wait_for_log_value(log: &Path, marker: &str, key: &str) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if let Some(line) = text.lines().find(|l| l.contains(marker))
            && let Some(at) = line.find(key)
        {
            let rest = &line[at + key.len()..];
            return rest.split_whitespace().next().unwrap().to_owned();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no {marker:?} in {}:\n{text}",
            log.display()
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Typed requests against one backend.
#[derive(Clone, Copy)]
pub struct Api<'a> {
    http: &'a reqwest::Client,
    base: &'a str,
}

impl<'a> Api<'a> {
    /// Requests against any backend, e.g. a replica started in-process.
    pub fn at(http: &'a reqwest::Client, base: &'a str) -> Self {
        Self { http, base }
    }

    pub async fn get(&self, path: &str) -> Value {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_success(),
            "GET {path}: {}",
            response.status()
        );
        response.json().await.unwrap()
    }

    pub async fn post(&self, path: &str, body: Value) -> (reqwest::StatusCode, Value) {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// As [`Self::post`] with an `Idempotency-Key`, sent again when the
    /// connection fails before any answer: a pooled connection the server
    /// closed as idle just as it was reused, which a loaded machine makes
    /// likely. The key makes a repeat of a create harmless; other repeats
    /// answer for themselves (an approve of a done task is a 409).
    pub async fn post_retrying(&self, path: &str, body: Value, key: &str) -> (reqwest::StatusCode, Value) {
        let mut failures = 0;
        loop {
            let sent = self
                .http
                .post(format!("{}{path}", self.base))
                .header("idempotency-key", key)
                .json(&body)
                .send()
                .await;
            match sent {
                Ok(response) => {
                    let status = response.status();
                    return (status, response.json().await.unwrap_or(Value::Null));
                }
                Err(e) if failures < 3 && e.is_request() => {
                    failures += 1;
                    eprintln!("POST {path}: {e}; sending it again");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("POST {path}: {e}"),
            }
        }
    }

    pub async fn create_project(&self) -> String {
        let (status, project) = self
            .post("/api/v1/projects", json!({"name": "distributed"}))
            .await;
        assert_eq!(status, 201, "{project}");
        project["id"].as_str().unwrap().to_owned()
    }

    pub async fn create_task(&self, project: &str, role: &str, title: &str) -> String {
        self.create_task_with(project, role, title, json!({})).await
    }

    /// As [`Self::create_task`], with `extra` fields in the body.
    pub async fn create_task_with(&self, project: &str, role: &str, title: &str, extra: Value) -> String {
        let mut body = json!({"project_id": project, "role": role, "title": title});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let (status, task) = self.post("/api/v1/tasks", body).await;
        assert_eq!(status, 201, "{task}");
        task["id"].as_str().unwrap().to_owned()
    }

    /// Creates `n` tasks spread over `roles`, `parallel` requests at a time.
    pub async fn create_tasks(
        &self,
        project: &str,
        roles: &[&str],
        n: usize,
        parallel: usize,
    ) -> Vec<String> {
        use futures::StreamExt;
        futures::stream::iter(0..n)
            .map(|i| {
                let role = roles[i % roles.len()];
                async move { self.create_task(project, role, &format!("task {i}")).await }
            })
            .buffered(parallel)
            .collect()
            .await
    }

    pub async fn task(&self, id: &str) -> Value {
        self.get(&format!("/api/v1/tasks/{id}")).await
    }

    /// Every task of the project in `status` (all pages).
    pub async fn tasks_in(&self, project: &str, status: &str) -> Vec<Value> {
        let mut all = Vec::new();
        let mut cursor = String::new();
        loop {
            let page = self
                .get(&format!(
                    "/api/v1/tasks?project_id={project}&status={status}&limit=500{cursor}"
                ))
                .await;
            all.extend(page["items"].as_array().unwrap().iter().cloned());
            match page["next_cursor"].as_str() {
                Some(next) => cursor = format!("&cursor={next}"),
                None => return all,
            }
        }
    }

    /// Waits until `ids` are all `done`.
    pub async fn wait_all_done(&self, project: &str, ids: &[String], secs: u64) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let done = self.tasks_in(project, "done").await.len();
            if done >= ids.len() {
                return;
            }
            if tokio::time::Instant::now() > deadline {
                let failed = self.tasks_in(project, "failed").await;
                let queued = self.tasks_in(project, "queued").await.len();
                let running = self.tasks_in(project, "running").await.len();
                panic!(
                    "{done}/{} done after {secs} s ({queued} queued, {running} running, failed: {failed:?})",
                    ids.len()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Asserts that every task entered a final state exactly once, and
    /// that state is `done`.
    pub async fn assert_finished_exactly_once(&self, ids: &[String]) {
        use futures::StreamExt;
        let histories: Vec<(String, Value)> = futures::stream::iter(ids)
            .map(|id| async move { (id.clone(), self.get(&format!("/api/v1/tasks/{id}/history")).await) })
            .buffer_unordered(16)
            .collect()
            .await;
        for (id, history) in histories {
            let finals: Vec<&Value> = history["transitions"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|t| ["done", "failed", "cancelled"].contains(&t["to_status"].as_str().unwrap()))
                .collect();
            assert_eq!(
                finals.len(),
                1,
                "task {id} finished {} times: {history}",
                finals.len()
            );
            assert_eq!(finals[0]["to_status"], "done", "task {id}: {history}");
        }
    }
}

/// Collects `task.created` and `task.updated`-to-done ids from a backend's
/// WebSocket until `done` ids are seen (or a minute passes without an event).
pub async fn watch(
    url: &str,
    key: &str,
    until_done: usize,
) -> tokio::task::JoinHandle<(HashSet<String>, HashSet<String>)> {
    let mut ws = connect_events(url, key, "").await;
    tokio::spawn(async move {
        use futures::StreamExt;
        let (mut created, mut done) = (HashSet::new(), HashSet::new());
        while done.len() < until_done {
            let Ok(Some(Ok(message))) = tokio::time::timeout(Duration::from_secs(60), ws.next()).await else {
                break;
            };
            let Ok(text) = message.to_text() else { continue };
            let Ok(event) = serde_json::from_str::<Value>(text) else {
                continue;
            };
            let id = event["data"]["id"].as_str().unwrap_or_default().to_owned();
            match (event["type"].as_str(), event["data"]["status"].as_str()) {
                (Some("task.created"), _) => {
                    created.insert(id);
                }
                (Some("task.updated"), Some("done")) => {
                    done.insert(id);
                }
                _ => {}
            }
        }
        (created, done)
    })
}

/// The event WebSocket of the backend at `url` (`http://…`), with `query`
/// (`""` or `?since=…`).
pub async fn connect_events(
    url: &str,
    key: &str,
    query: &str,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut request = format!("{}/api/v1/ws{query}", url.replacen("http", "ws", 1))
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {key}").parse().unwrap());
    tokio_tungstenite::connect_async(request).await.unwrap().0
}

/// A fake-LLM answer that streams ten chunks over about `millis` ms.
pub fn taking(millis: u64) -> Script {
    Script {
        chunks: (0..10).map(|i| format!("part{i} ")).collect(),
        chunk_delay: Duration::from_millis(millis / 10),
        ..Script::default()
    }
}

/// A replayable pseudo-random schedule: the seed comes from
/// `VAPORA_CHAOS_SEED` when set (to replay a failure), else from the test,
/// and is printed either way.
pub struct Schedule(u64);

impl Schedule {
    pub fn new(test: &str, default_seed: u64) -> Self {
        let seed = std::env::var("VAPORA_CHAOS_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(default_seed);
        eprintln!("{test}: chaos seed {seed} (replay with VAPORA_CHAOS_SEED={seed})");
        Self(seed.max(1))
    }

    /// A number in `range` (xorshift64*).
    pub fn pick(&mut self, range: std::ops::Range<u64>) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let n = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D);
        range.start + n % (range.end - range.start)
    }
}
