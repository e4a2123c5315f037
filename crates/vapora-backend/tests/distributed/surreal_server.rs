//! A real SurrealDB server (`ws://`) as a process: the binary
//! `scripts/surrealdb-server` builds and caches, named by
//! `$VAPORA_SURREAL_BIN` (`scripts/test` sets it), on a free port with root
//! credentials and on-disk storage in a temporary directory; killed when
//! dropped.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::cluster::eventually;

pub const USER: &str = "root";

#[derive(Debug)]
pub struct SurrealServer {
    child: Option<Child>,
    port: u16,
    pub password: String,
    dir: tempfile::TempDir,
}

fn binary() -> PathBuf {
    std::env::var("VAPORA_SURREAL_BIN")
        .map(PathBuf::from)
        .expect("VAPORA_SURREAL_BIN names the SurrealDB server (run scripts/test, which builds it)")
}

impl SurrealServer {
    pub async fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut server = Self {
            child: None,
            port,
            password: format!("surreal-{}", uuid::Uuid::new_v4().simple()),
            dir: tempfile::tempdir().unwrap(),
        };
        server.start_again().await;
        server
    }

    /// `ws://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("ws://127.0.0.1:{}", self.port)
    }

    /// `kill -9`: nothing is closed or flushed beyond what was committed.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it on the same port and data, and waits until it answers.
    pub async fn start_again(&mut self) {
        let log = std::fs::File::create(self.dir.path().join("surreal.log")).unwrap();
        let child = Command::new(binary())
            .env("SURREAL_LOG", "warn")
            .args(["start", "--no-banner", "--bind"])
            .arg(format!("127.0.0.1:{}", self.port))
            .args(["--username", USER, "--password", &self.password])
            .arg(format!("surrealkv:{}", self.dir.path().join("data").display()))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("the SurrealDB server starts");
        self.child = Some(child);
        let health = format!("http://127.0.0.1:{}/health", self.port);
        eventually(60, "the SurrealDB server answers", || async {
            reqwest::get(&health).await.is_ok_and(|r| r.status().is_success())
        })
        .await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

impl Drop for SurrealServer {
    fn drop(&mut self) {
        self.kill();
    }
}
