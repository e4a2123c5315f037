//! A NATS cluster of `nats-server` processes with JetStream, each node
//! routed to the others, with its own store and monitoring port. A node
//! killed and started again comes back on the same ports and store.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::TopologyError;
use crate::process::{Process, free_port, tail, wait_healthy};

#[derive(Debug)]
struct Node {
    client_port: u16,
    monitor_port: u16,
    config: PathBuf,
    process: Option<Process>,
}

#[derive(Debug)]
pub struct NatsCluster {
    binary: PathBuf,
    dir: PathBuf,
    nodes: Vec<Node>,
    http: reqwest::Client,
}

impl NatsCluster {
    /// Starts `size` nodes under `dir` and waits until JetStream is ready
    /// on each (a meta leader elected).
    ///
    /// Ports are picked free and released before a node binds them, so
    /// another process may take one meanwhile, and a loaded machine can be
    /// slow to elect a leader; either way a node never becomes ready. Then
    /// the whole cluster starts over once more, on fresh ports and stores,
    /// after printing what the nodes logged.
    pub async fn start(binary: &Path, dir: &Path, size: usize) -> Result<Self, TopologyError> {
        match Self::start_once(binary, dir, size).await {
            Ok(cluster) => Ok(cluster),
            Err(e) => {
                eprintln!("the NATS cluster did not come up ({e}); starting it over on fresh ports");
                for n in 1..=size {
                    let log = std::fs::read_to_string(dir.join(format!("nats-{n}.log"))).unwrap_or_default();
                    eprintln!("nats-{n} logged, last lines:\n{}", tail(&log, 15));
                }
                Self::start_once(binary, dir, size).await
            }
        }
    }

    async fn start_once(binary: &Path, dir: &Path, size: usize) -> Result<Self, TopologyError> {
        let mut nodes = Vec::with_capacity(size);
        let route_ports: Vec<u16> = (0..size).map(|_| free_port()).collect::<Result<_, _>>()?;
        let routes: Vec<String> = route_ports
            .iter()
            .map(|p| format!("\"nats-route://127.0.0.1:{p}\""))
            .collect();
        for (n, route_port) in route_ports.iter().enumerate() {
            let node_dir = dir.join(format!("nats-{}", n + 1));
            // A fresh store: nothing of an earlier try may linger.
            let _ = std::fs::remove_dir_all(&node_dir);
            std::fs::create_dir_all(&node_dir).map_err(|e| TopologyError::io(&node_dir, e))?;
            let client_port = free_port()?;
            let monitor_port = free_port()?;
            let config = node_dir.join("nats.conf");
            // Like config/nats/cluster.conf, on loopback ports.
            let text = format!(
                "server_name: nats-{name}\n\
                 listen: 127.0.0.1:{client_port}\n\
                 http: 127.0.0.1:{monitor_port}\n\
                 jetstream {{\n  store_dir: \"{store}\"\n  sync_interval: always\n}}\n\
                 cluster {{\n  name: vapora\n  listen: 127.0.0.1:{route_port}\n  routes: [{routes}]\n}}\n",
                name = n + 1,
                store = node_dir.join("store").display(),
                routes = routes.join(", "),
            );
            std::fs::write(&config, text).map_err(|e| TopologyError::io(&config, e))?;
            nodes.push(Node {
                client_port,
                monitor_port,
                config,
                process: None,
            });
        }
        let mut cluster = Self {
            binary: binary.to_owned(),
            dir: dir.to_owned(),
            nodes,
            http: reqwest::Client::new(),
        };
        for n in 0..size {
            cluster.launch(n)?;
        }
        for n in 0..size {
            cluster.wait_ready(n).await?;
        }
        Ok(cluster)
    }

    fn launch(&mut self, n: usize) -> Result<(), TopologyError> {
        let node = &mut self.nodes[n];
        let log = self.dir.join(format!("nats-{}.log", n + 1));
        let mut command = Command::new(&self.binary);
        command.arg("-c").arg(&node.config);
        node.process = Some(Process::spawn(&format!("nats-{}", n + 1), &mut command, &log)?);
        Ok(())
    }

    /// Waits until node `n` reports JetStream healthy.
    async fn wait_ready(&self, n: usize) -> Result<(), TopologyError> {
        let url = format!("http://127.0.0.1:{}/healthz", self.nodes[n].monitor_port);
        wait_healthy(
            &self.http,
            &url,
            &format!("nats-{}", n + 1),
            Duration::from_secs(60),
        )
        .await
    }

    /// Every node's client URL, comma-separated: what clients are given, so
    /// they fail over when one node goes.
    pub fn urls(&self) -> String {
        self.nodes
            .iter()
            .map(|node| format!("nats://127.0.0.1:{}", node.client_port))
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn size(&self) -> usize {
        self.nodes.len()
    }

    /// `kill -9` node `n` (0-based).
    pub fn kill(&mut self, n: usize) {
        if let Some(mut process) = self.nodes[n].process.take() {
            process.kill();
        }
    }

    /// Starts node `n` again on its ports and store, and waits until its
    /// JetStream is back.
    pub async fn start_again(&mut self, n: usize) -> Result<(), TopologyError> {
        self.launch(n)?;
        self.wait_ready(n).await
    }

    /// The running nodes' processes, for SIGTERM at the end.
    pub fn processes(&mut self) -> impl Iterator<Item = &mut Process> {
        self.nodes.iter_mut().filter_map(|node| node.process.as_mut())
    }
}
