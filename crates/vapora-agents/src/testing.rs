//! Test support: a real `nats-server` with JetStream on a free port, in a
//! temporary directory, killed when dropped; the workspace's binaries for
//! tests that run them as separate processes; and [`eventually`], for
//! waiting on what other processes do.
//!
//! The server binary is `$NATS_SERVER_BIN` if set, else `nats-server` on
//! `PATH` (`scripts/test` installs one when missing).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct NatsServer {
    child: Child,
    url: String,
    dir: tempfile::TempDir,
    deployment: Option<Deployment>,
}

/// A deployment's own configuration file, run as it is: its JetStream
/// settings and store, the environment its variables come from.
#[derive(Debug, Clone)]
struct Deployment {
    config: PathBuf,
    env: Vec<(String, String)>,
}

/// Name of the configuration file in the server's directory, if any.
const CONFIG_FILE: &str = "nats.conf";

impl NatsServer {
    /// Starts a server and waits until it accepts clients.
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let (child, url) = launch(dir.path(), -1, None).await;
        Self {
            child,
            url,
            dir,
            deployment: None,
        }
    }

    /// A server run from a deployment's configuration file as it is, with
    /// `env` as the environment its `$VARIABLES` come from (plus
    /// `NATS_STORE_DIR`, a directory of the test's); only the client port
    /// and address are the test's, and the monitoring port is off.
    pub async fn start_from_file(config: &Path, env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut env: Vec<(String, String)> = env.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect();
        env.push((
            "NATS_STORE_DIR".into(),
            dir.path().join("store").display().to_string(),
        ));
        let deployment = Deployment {
            config: config.to_owned(),
            env,
        };
        let (child, url) = launch(dir.path(), -1, Some(&deployment)).await;
        Self {
            child,
            url,
            dir,
            deployment: Some(deployment),
        }
    }

    /// As [`Self::start`], with `config` (nats-server configuration text,
    /// e.g. an `authorization` block) as its configuration file; the port,
    /// address and store stay the test's.
    pub async fn start_with_config(config: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join(CONFIG_FILE), config).expect("config written");
        let (child, url) = launch(dir.path(), -1, None).await;
        Self {
            child,
            url,
            dir,
            deployment: None,
        }
    }

    /// `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Kills the server (`SIGKILL`: no goodbye to clients, nothing flushed
    /// beyond what the file store already wrote).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts it again on the same port with the same store, after
    /// [`Self::kill`].
    pub async fn start_again(&mut self) {
        let port: i32 = self
            .url
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("url has a port");
        let (child, url) = launch(self.dir.path(), port, self.deployment.as_ref()).await;
        assert_eq!(url, self.url, "restarted on another address");
        self.child = child;
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

async fn launch(dir: &Path, port: i32, deployment: Option<&Deployment>) -> (Child, String) {
    let bin = std::env::var("NATS_SERVER_BIN").unwrap_or_else(|_| "nats-server".into());
    // A restart finds the previous run's ports file; start from none.
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.path().extension().is_some_and(|e| e == "ports") {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
    let mut command = Command::new(&bin);
    match deployment {
        Some(deployment) => {
            command
                .arg("-c")
                .arg(&deployment.config)
                .envs(deployment.env.iter().map(|(k, v)| (k, v)))
                .args(["-m", "0"]);
        }
        None => {
            let config = dir.join(CONFIG_FILE);
            if config.exists() {
                command.arg("-c").arg(config);
            }
            command.args(["-js", "-sd"]).arg(dir.join("store"));
        }
    }
    let child = command
        .args(["-p", &port.to_string(), "-a", "127.0.0.1"])
        .arg("--ports_file_dir")
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("could not start {bin} (run scripts/test, which installs it): {e}"));
    let url = wait_for_ports_file(dir, child.id()).await;
    (child, url)
}

/// The server writes `nats-server_<pid>.ports` (JSON with its client URLs)
/// once it listens.
async fn wait_for_ports_file(dir: &Path, pid: u32) -> String {
    let path = dir.join(format!("nats-server_{pid}.ports"));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(text) = tokio::fs::read_to_string(&path).await
            && let Ok(ports) = serde_json::from_str::<serde_json::Value>(&text)
            && let Some(url) = ports["nats"][0].as_str()
        {
            return url.to_owned();
        }
        assert!(Instant::now() < deadline, "nats-server did not start within 10 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Path of a binary of this workspace, built by `cargo build` first so a
/// test of one package never runs a stale binary of another.
pub fn workspace_binary(package: &str, name: &str) -> PathBuf {
    // `target/<profile>/deps/<test binary>` → `target/<profile>/<name>`.
    let exe = std::env::current_exe().expect("current exe");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test binaries live in target/<profile>/deps");
    let release = profile_dir.file_name().is_some_and(|n| n == "release");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut build = Command::new(cargo);
    build.args(["build", "--quiet", "-p", package, "--bin", name]);
    if release {
        build.arg("--release");
    }
    let status = build.status().expect("cargo runs");
    assert!(status.success(), "building {name} failed");
    profile_dir.join(name)
}

/// Polls `condition` every 20 ms until it holds; panics naming `what` after
/// `secs` seconds.
pub async fn eventually<F, Fut>(secs: u64, what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while !condition().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
