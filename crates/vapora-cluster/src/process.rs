//! One process of the topology: started with its output in a log file,
//! stopped with SIGTERM (and its exit status kept) or killed with SIGKILL.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::TopologyError;

#[derive(Debug)]
pub struct Process {
    pub name: String,
    child: Option<Child>,
    pub log: PathBuf,
}

impl Process {
    /// Starts `command` with stdout and stderr appended to `log`.
    pub fn spawn(name: &str, command: &mut Command, log: &Path) -> Result<Self, TopologyError> {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|e| TopologyError::io(log, e))?;
        let err = out.try_clone().map_err(|e| TopologyError::io(log, e))?;
        let child = command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|source| TopologyError::Spawn {
                what: name.to_owned(),
                program: command.get_program().to_string_lossy().into_owned(),
                source,
            })?;
        Ok(Self {
            name: name.to_owned(),
            child: Some(child),
            log: log.to_owned(),
        })
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// `kill -9`: nothing is flushed or said goodbye to.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then waits up to `limit` for the exit. `None` if it was not
    /// running; an error if it outlived `limit` (it is killed then).
    pub async fn terminate(&mut self, limit: Duration) -> Result<Option<ExitStatus>, TopologyError> {
        let Some(child) = self.child.as_mut() else {
            return Ok(None);
        };
        if let Some(status) = child.try_wait().map_err(|e| TopologyError::io(&self.log, e))? {
            self.child = None;
            return Ok(Some(status));
        }
        let pid = child.id().to_string();
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .map_err(|e| TopologyError::io(Path::new("kill"), e))?;
        let started = Instant::now();
        loop {
            if let Some(status) = child.try_wait().map_err(|e| TopologyError::io(&self.log, e))? {
                self.child = None;
                return Ok(Some(status));
            }
            if started.elapsed() > limit {
                self.kill();
                return Err(TopologyError::Timeout(format!(
                    "{} to exit after SIGTERM",
                    self.name
                )));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// What it has logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits for a log line containing `marker` and returns the value after
    /// `key` on it (up to the next space).
    pub async fn wait_for_log_value(
        &mut self,
        marker: &str,
        key: &str,
        limit: Duration,
    ) -> Result<String, TopologyError> {
        let deadline = Instant::now() + limit;
        loop {
            let text = self.log_text();
            if let Some(line) = text.lines().find(|l| l.contains(marker))
                && let Some(at) = line.find(key)
                && let Some(value) = line[at + key.len()..].split_whitespace().next()
            {
                return Ok(value.to_owned());
            }
            if !self.is_running() {
                return Err(TopologyError::Exited {
                    what: self.name.clone(),
                    log: tail(&text, 20),
                });
            }
            if Instant::now() > deadline {
                return Err(TopologyError::Timeout(format!(
                    "{marker:?} in {}",
                    self.log.display()
                )));
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The last `n` lines of `text`.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A port free now on 127.0.0.1 (bound and released: a process started
/// right after takes it).
pub fn free_port() -> Result<u16, TopologyError> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|e| TopologyError::io(Path::new("127.0.0.1:0"), e))?;
    Ok(listener
        .local_addr()
        .map_err(|e| TopologyError::io(Path::new("127.0.0.1:0"), e))?
        .port())
}

/// Polls `url` until it answers 2xx, for at most `limit`.
pub async fn wait_healthy(
    http: &reqwest::Client,
    url: &str,
    what: &str,
    limit: Duration,
) -> Result<(), TopologyError> {
    let deadline = Instant::now() + limit;
    loop {
        if http.get(url).send().await.is_ok_and(|r| r.status().is_success()) {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(TopologyError::Timeout(format!("{what} to answer at {url}")));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
