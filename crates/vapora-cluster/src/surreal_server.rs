//! A real SurrealDB server (`ws://`) as a process: the binary
//! `scripts/surrealdb-server` builds and caches, on a free port with root
//! credentials and on-disk storage; started again on the same port and
//! data after a kill.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::TopologyError;
use crate::process::{Process, free_port, wait_healthy};

/// The root user the server is started with.
pub const USER: &str = "root";

#[derive(Debug)]
pub struct SurrealServer {
    binary: PathBuf,
    dir: PathBuf,
    port: u16,
    /// The root password, random per server.
    pub password: String,
    process: Option<Process>,
}

impl SurrealServer {
    /// `$VAPORA_SURREAL_BIN` (`scripts/test` and `scripts/cluster` set it).
    pub fn binary_from_env() -> Result<PathBuf, TopologyError> {
        std::env::var("VAPORA_SURREAL_BIN")
            .map(PathBuf::from)
            .map_err(|_| {
                TopologyError::Missing("VAPORA_SURREAL_BIN (scripts/surrealdb-server prints it)".into())
            })
    }

    /// Starts a server with its data under `dir`, and waits until it answers.
    pub async fn start(binary: &Path, dir: &Path) -> Result<Self, TopologyError> {
        std::fs::create_dir_all(dir).map_err(|e| TopologyError::io(dir, e))?;
        let mut server = Self {
            binary: binary.to_owned(),
            dir: dir.to_owned(),
            port: free_port()?,
            password: format!("surreal-{}", uuid::Uuid::new_v4().simple()),
            process: None,
        };
        server.start_again().await?;
        Ok(server)
    }

    /// `ws://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("ws://127.0.0.1:{}", self.port)
    }

    /// `kill -9`: nothing is closed or flushed beyond what was committed.
    pub fn kill(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.kill();
        }
    }

    /// Starts it on the same port and data, and waits until it answers.
    pub async fn start_again(&mut self) -> Result<(), TopologyError> {
        let mut command = Command::new(&self.binary);
        command
            .env("SURREAL_LOG", "warn")
            .args(["start", "--no-banner", "--bind"])
            .arg(format!("127.0.0.1:{}", self.port))
            .args(["--username", USER, "--password", &self.password])
            .arg(format!("surrealkv:{}", self.dir.join("data").display()));
        self.process = Some(Process::spawn(
            "surrealdb",
            &mut command,
            &self.dir.join("surreal.log"),
        )?);
        let health = format!("http://127.0.0.1:{}/health", self.port);
        wait_healthy(
            &reqwest::Client::new(),
            &health,
            "the SurrealDB server",
            Duration::from_secs(60),
        )
        .await?;
        tokio::time::sleep(Duration::from_millis(50)).await;
        Ok(())
    }

    pub fn process(&mut self) -> Option<&mut Process> {
        self.process.as_mut()
    }
}
