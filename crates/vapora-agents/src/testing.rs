//! Test support: a real `nats-server` with JetStream on a free port, in a
//! temporary directory, killed when dropped.
//!
//! The binary is `$NATS_SERVER_BIN` if set, else `nats-server` on `PATH`
//! (`scripts/test` installs one when missing).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct NatsServer {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl NatsServer {
    /// Starts a server and waits until it accepts clients.
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let bin = std::env::var("NATS_SERVER_BIN").unwrap_or_else(|_| "nats-server".into());
        let child = Command::new(&bin)
            .args(["-p", "-1", "-a", "127.0.0.1", "-js", "-sd"])
            .arg(dir.path().join("store"))
            .arg("--ports_file_dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("could not start {bin} (run scripts/test, which installs it): {e}"));
        let url = wait_for_ports_file(dir.path(), child.id()).await;
        Self {
            child,
            url,
            _dir: dir,
        }
    }

    /// `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
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
