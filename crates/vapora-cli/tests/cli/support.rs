//! A backend started in this test process (in-memory storage, a fresh
//! admin key, a scriptable fake OpenAI provider) and the real `vapora`
//! binary run against it.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use secrecy::ExposeSecret;
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStderr, ChildStdout, Command};
use tokio::sync::oneshot;
use vapora_backend::auth::PresentedKey;
use vapora_backend::{Application, Settings};
use vapora_llm_router::testing::{FakeProvider, Script};
use vapora_llm_router::{Pricing, ProviderConfig, ProviderKind};

/// Longest a single `vapora` run may take.
const RUN_TIMEOUT: Duration = Duration::from_secs(60);

/// A running backend, and an empty home directory for the client (so that
/// no real `~/.config/vapora` leaks into a test).
pub struct Backend {
    pub url: String,
    pub admin_key: String,
    pub llm: FakeProvider,
    pub home: TempDir,
    http: reqwest::Client,
    _stop: oneshot::Sender<()>,
}

pub async fn spawn_backend() -> Backend {
    spawn_backend_with(|_| {}).await
}

/// A backend with `adjust` applied to the test settings.
pub async fn spawn_backend_with(adjust: impl FnOnce(&mut Settings)) -> Backend {
    let llm = FakeProvider::start(Script::default()).await;
    let admin_key = PresentedKey::generate().reveal();
    let mut settings = Settings {
        port: 0,
        admin_key: Some(admin_key.clone()),
        database_url: "mem://".into(),
        workers_per_role: 1,
        shutdown_grace: Duration::from_secs(1),
        llm: ProviderConfig {
            kind: ProviderKind::OpenAi {
                base_url: llm.base_url(),
                api_key_env: None,
                model: "fake-model".into(),
                pricing: Pricing {
                    input_per_mtok: 1.0,
                    output_per_mtok: 2.0,
                },
            },
            name: "fake".into(),
            request_timeout: Duration::from_secs(30),
            echo_word_delay: Duration::ZERO,
        },
        ..Settings::default()
    };
    adjust(&mut settings);
    let app = Application::build(settings).await.expect("the backend builds");
    let addr: SocketAddr = app.local_addr();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(app.run_until(async {
        let _ = stopped.await;
    }));
    Backend {
        url: format!("http://{addr}"),
        admin_key: admin_key.expose_secret().to_owned(),
        llm,
        home: tempfile::tempdir().expect("a temporary home"),
        http: reqwest::Client::new(),
        _stop: stop,
    }
}

/// How one run of `vapora` ended.
#[derive(Debug)]
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Asserts exit 0 and returns stdout.
    pub fn ok(&self) -> &str {
        assert_eq!(self.code, Some(0), "{self:#?}");
        &self.stdout
    }

    /// Asserts exit 0 and parses stdout as one JSON document.
    pub fn json(&self) -> Value {
        serde_json::from_str(self.ok())
            .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}): {self:#?}"))
    }
}

impl Backend {
    /// `vapora` with this backend's URL and admin key in the environment.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = self.bare_command(args);
        command
            .env("VAPORA_URL", &self.url)
            .env("VAPORA_KEY", &self.admin_key);
        command
    }

    /// `vapora` with no URL or key but what the test adds.
    pub fn bare_command(&self, args: &[&str]) -> Command {
        command_in(self.home.path(), args)
    }

    pub async fn vapora(&self, args: &[&str]) -> Run {
        run(self.command(args)).await
    }

    /// Starts `vapora` without waiting for it, its output piped.
    pub fn start(&self, args: &[&str]) -> Started {
        start(self.command(args))
    }

    /// A project, made through the CLI; returns its id.
    pub async fn project(&self, name: &str) -> String {
        let project = self.vapora(&["--json", "project", "create", name]).await.json();
        project["id"].as_str().expect("an id").to_owned()
    }

    /// A task in todo (not dispatched), made through the CLI; returns its id.
    pub async fn todo_task(&self, project: &str, extra: &[&str]) -> String {
        let mut args = vec![
            "--json",
            "task",
            "create",
            "--project",
            project,
            "--title",
            "t",
            "--todo",
        ];
        args.extend_from_slice(extra);
        let task = self.vapora(&args).await.json();
        task["id"].as_str().expect("an id").to_owned()
    }

    /// Queues a todo task over the API directly (the CLI has no such verb).
    pub async fn queue(&self, task: &str) {
        let response = self
            .http
            .patch(format!("{}/api/v1/tasks/{task}", self.url))
            .bearer_auth(&self.admin_key)
            .json(&json!({ "status": "queued" }))
            .send()
            .await
            .expect("the backend answers");
        assert!(response.status().is_success(), "{:?}", response.text().await);
    }

    /// POSTs to the API directly, as another client would (a person
    /// approving a task while the CLI watches); the status and JSON body.
    pub async fn api_post(&self, path: &str, body: &Value) -> (u16, Value) {
        let response = self
            .http
            .post(format!("{}/api/v1/{path}", self.url))
            .bearer_auth(&self.admin_key)
            .json(body)
            .send()
            .await
            .expect("the backend answers");
        let status = response.status().as_u16();
        (status, response.json().await.expect("JSON"))
    }

    /// Polls the task over the API until it has `status`.
    pub async fn wait_for_status(&self, task: &str, status: &str) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let body: Value = self
                .http
                .get(format!("{}/api/v1/tasks/{task}", self.url))
                .bearer_auth(&self.admin_key)
                .send()
                .await
                .expect("the backend answers")
                .json()
                .await
                .expect("JSON");
            if body["status"] == status {
                return body;
            }
            assert!(tokio::time::Instant::now() < deadline, "never {status}: {body}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// `vapora` with `home` as its home directory and no URL or key in its
/// environment: no real `~/.config/vapora` leaks into a test.
pub fn command_in(home: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_vapora"));
    command
        .args(args)
        .env_remove("VAPORA_URL")
        .env_remove("VAPORA_KEY")
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .stdin(Stdio::null())
        .kill_on_drop(true);
    command
}

/// Starts a prepared command without waiting for it, its output piped.
pub fn start(mut command: Command) -> Started {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("vapora starts");
    let stderr = child.stderr.take().expect("piped stderr");
    Started {
        child,
        stderr: BufReader::new(stderr).lines(),
        seen: Vec::new(),
    }
}

/// Runs a prepared command to its end.
pub async fn run(mut command: Command) -> Run {
    let output = tokio::time::timeout(RUN_TIMEOUT, command.output())
        .await
        .expect("vapora finishes in time")
        .expect("vapora runs");
    Run {
        code: output.status.code(),
        stdout: String::from_utf8(output.stdout).expect("UTF-8 stdout"),
        stderr: String::from_utf8(output.stderr).expect("UTF-8 stderr"),
    }
}

/// A `vapora` run in progress, its stderr read line by line so that a
/// test can wait for a point in its progress.
pub struct Started {
    child: Child,
    stderr: Lines<BufReader<ChildStderr>>,
    seen: Vec<String>,
}

impl Started {
    /// Reads stderr until a line contains `needle`.
    pub async fn wait_for_stderr(&mut self, needle: &str) {
        let found = tokio::time::timeout(RUN_TIMEOUT, async {
            while let Some(line) = self.stderr.next_line().await.expect("stderr reads") {
                let hit = line.contains(needle);
                self.seen.push(line);
                if hit {
                    return true;
                }
            }
            false
        })
        .await;
        assert_eq!(found, Ok(true), "no {needle:?} on stderr; saw {:#?}", self.seen);
    }

    /// Waits for the end, collecting the rest of the output.
    pub async fn finish(mut self) -> Run {
        let rest_of_stderr = async {
            while let Some(line) = self.stderr.next_line().await.expect("stderr reads") {
                self.seen.push(line);
            }
        };
        let (output, ()) = tokio::time::timeout(RUN_TIMEOUT, async {
            tokio::join!(self.child.wait_with_output(), rest_of_stderr)
        })
        .await
        .expect("vapora finishes in time");
        let output = output.expect("vapora runs");
        Run {
            code: output.status.code(),
            stdout: String::from_utf8(output.stdout).expect("UTF-8 stdout"),
            stderr: self.seen.join("\n"),
        }
    }

    /// Stops it (SIGKILL), for commands that run until interrupted.
    pub async fn kill(mut self) -> Child {
        self.child.kill().await.expect("vapora is killed");
        self.child
    }

    pub fn stdout(&mut self) -> Lines<BufReader<ChildStdout>> {
        BufReader::new(self.child.stdout.take().expect("piped stdout")).lines()
    }
}

/// Streamed output pieces, slow enough to watch, longer than the output
/// limit [`SMALL_OUTPUT_LIMIT`] that the tests set: text past it can only
/// have come from the stream, not from the stored result.
pub fn streamed_script() -> Script {
    Script {
        chunks: STREAMED.iter().map(|c| c.to_string()).collect(),
        chunk_delay: Duration::from_millis(50),
        ..Script::default()
    }
}

pub const STREAMED: [&str; 5] = [
    "The first streamed line.\n",
    "A second line, ",
    "written in pieces,",
    " ends here.\n",
    "And a tail past the limit of the stored result",
];

/// Bytes of `result.output` the backend keeps in the streaming tests.
pub const SMALL_OUTPUT_LIMIT: usize = 40;

pub fn limit_output(settings: &mut Settings) {
    settings.output_limits.max_output_bytes = SMALL_OUTPUT_LIMIT;
}
