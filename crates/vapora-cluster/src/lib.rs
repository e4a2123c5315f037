//! The production topology as local processes, for the tests and for
//! anyone without Docker (`scripts/cluster`): what docker-compose.yml with
//! docker-compose.cluster.yml runs, on free loopback ports.
//!
//! - [`nats_cluster`]: `nats-server` nodes in one cluster, JetStream on each.
//! - [`surreal_server`]: the SurrealDB server (`ws://`).
//! - [`topology`]: those, plus backend replicas, agent servers and the
//!   gateway, wired as in the compose files; stopped with SIGTERM in order.
//! - [`process`]: one child process with its log file.

pub mod nats_cluster;
pub mod process;
pub mod surreal_server;
pub mod topology;

use std::path::Path;

pub use nats_cluster::NatsCluster;
pub use surreal_server::SurrealServer;
pub use topology::{Binaries, Options, Topology};

#[derive(Debug, thiserror::Error)]
pub enum TopologyError {
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("could not start {what} ({program}): {source}")]
    Spawn {
        what: String,
        program: String,
        source: std::io::Error,
    },
    #[error("{what} exited; its log ends with:\n{log}")]
    Exited { what: String, log: String },
    #[error("timed out waiting for {0}")]
    Timeout(String),
    #[error("missing {0}")]
    Missing(String),
}

impl TopologyError {
    fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.display().to_string(),
            source,
        }
    }
}
