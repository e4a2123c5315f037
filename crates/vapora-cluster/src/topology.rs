//! The whole deployment of docker-compose.yml (with the cluster overlay)
//! as local processes: NATS nodes in one cluster with replicated streams, a
//! SurrealDB server, backend replicas on it, agent servers calling the
//! model through the gateway, and the gateway.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::Duration;

use crate::TopologyError;
use crate::nats_cluster::NatsCluster;
use crate::process::{Process, free_port, tail, wait_healthy};
use crate::surreal_server::{SurrealServer, USER};

/// Where each program of the topology is.
#[derive(Debug, Clone)]
pub struct Binaries {
    pub backend: PathBuf,
    pub agent_server: PathBuf,
    pub gateway: PathBuf,
    pub surreal: PathBuf,
    pub nats_server: PathBuf,
}

impl Binaries {
    /// Vapora's binaries in `dir` (e.g. `target/debug`), the SurrealDB
    /// server from `$VAPORA_SURREAL_BIN`, `nats-server` from
    /// `$NATS_SERVER_BIN` or the `PATH`.
    pub fn in_dir(dir: &Path) -> Result<Self, TopologyError> {
        Ok(Self {
            backend: dir.join("vapora-backend"),
            agent_server: dir.join("vapora-agent-server"),
            gateway: dir.join("vapora-llm-gateway"),
            surreal: SurrealServer::binary_from_env()?,
            nats_server: std::env::var("NATS_SERVER_BIN")
                .map_or_else(|_| "nats-server".into(), PathBuf::from),
        })
    }
}

/// How big the topology is and what the model behind the gateway is.
#[derive(Debug, Clone)]
pub struct Options {
    pub nats_nodes: usize,
    pub backends: usize,
    pub agents: usize,
    /// Comma-separated roles each agent server serves; all when `None`.
    pub agent_roles: Option<String>,
    pub agent_concurrency: usize,
    /// An OpenAI-compatible server the gateway sends every call to (base
    /// URL ending in `/v1`); the built-in echo provider when `None`.
    pub upstream: Option<String>,
    /// Extra settings for every backend and every agent server.
    pub backend_env: Vec<(String, String)>,
    pub agent_env: Vec<(String, String)>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            nats_nodes: 3,
            backends: 2,
            agents: 2,
            agent_roles: None,
            agent_concurrency: 4,
            upstream: None,
            backend_env: Vec::new(),
            agent_env: Vec::new(),
        }
    }
}

#[derive(Debug)]
pub struct Backend {
    pub process: Process,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
}

/// A running topology; every process is killed when it is dropped.
#[derive(Debug)]
pub struct Topology {
    binaries: Binaries,
    options: Options,
    dir: PathBuf,
    pub nats: NatsCluster,
    pub surreal: SurrealServer,
    pub gateway: Process,
    pub gateway_url: String,
    gateway_key: String,
    pub backends: Vec<Backend>,
    pub agents: Vec<Process>,
    admin_key: String,
    pepper: String,
    /// Agent servers started so far, for unique ids.
    agent_starts: usize,
}

impl Topology {
    /// Starts every process under `dir` (logs and data) and waits until the
    /// backends listen.
    pub async fn start(binaries: Binaries, options: Options, dir: &Path) -> Result<Self, TopologyError> {
        std::fs::create_dir_all(dir).map_err(|e| TopologyError::io(dir, e))?;
        let nats = NatsCluster::start(&binaries.nats_server, dir, options.nats_nodes).await?;
        let surreal = SurrealServer::start(&binaries.surreal, &dir.join("surrealdb")).await?;
        let (gateway, gateway_url, gateway_key) =
            start_gateway(&binaries.gateway, dir, options.upstream.as_deref()).await?;
        let mut topology = Self {
            binaries,
            dir: dir.to_owned(),
            nats,
            surreal,
            gateway,
            gateway_url,
            gateway_key,
            backends: Vec::new(),
            agents: Vec::new(),
            admin_key: String::new(),
            pepper: format!("pepper-{}", uuid::Uuid::new_v4().simple()),
            agent_starts: 0,
            options,
        };
        for _ in 0..topology.options.backends {
            topology.start_backend().await?;
        }
        for _ in 0..topology.options.agents {
            topology.add_agent()?;
        }
        Ok(topology)
    }

    /// The admin key the first backend generated (every backend knows it).
    pub fn admin_key(&self) -> &str {
        &self.admin_key
    }

    /// An HTTP client that sends the admin key with every request.
    pub fn admin_client(&self) -> reqwest::Client {
        let mut headers = reqwest::header::HeaderMap::new();
        let bearer = format!("Bearer {}", self.admin_key);
        if let Ok(value) = reqwest::header::HeaderValue::from_str(&bearer) {
            headers.insert(reqwest::header::AUTHORIZATION, value);
        }
        reqwest::Client::builder()
            .default_headers(headers)
            .pool_max_idle_per_host(64)
            .build()
            .unwrap_or_default()
    }

    /// Where logs and data are.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Settings every Vapora process shares.
    fn shared_env(&self) -> Vec<(String, String)> {
        let replicas = self.options.nats_nodes.min(3).to_string();
        vec![
            ("VAPORA_NATS_URL".into(), self.nats.urls()),
            ("VAPORA_NATS_STREAM_REPLICAS".into(), replicas),
            ("NO_COLOR".into(), "1".into()),
        ]
    }

    /// Starts one more backend replica; returns its index.
    pub async fn start_backend(&mut self) -> Result<usize, TopologyError> {
        self.start_backend_with(&[]).await
    }

    /// As [`Self::start_backend`], with settings of its own over the rest.
    pub async fn start_backend_with(&mut self, env: &[(&str, &str)]) -> Result<usize, TopologyError> {
        let n = self.backends.len();
        let key_file = self.dir.join("admin.key");
        let mut command = Command::new(&self.binaries.backend);
        command
            .envs(self.shared_env())
            .env("VAPORA_HOST", "127.0.0.1")
            .env("VAPORA_PORT", "0")
            .env("VAPORA_ADMIN_KEY_FILE", &key_file)
            .env("VAPORA_KEY_PEPPER", &self.pepper)
            .envs(self.options.backend_env.iter().map(|(k, v)| (k, v)))
            .envs(env.iter().copied());
        // The SurrealDB server, with its credentials, unless the settings
        // name another database (an embedded one takes no credentials).
        let own_database = self
            .options
            .backend_env
            .iter()
            .map(|(k, _)| k.as_str())
            .chain(env.iter().map(|(k, _)| *k))
            .any(|k| k == "VAPORA_DATABASE_URL");
        if !own_database {
            command
                .env("VAPORA_DATABASE_URL", self.surreal.url())
                .env("VAPORA_DATABASE_USER", USER)
                .env("VAPORA_DATABASE_PASS", &self.surreal.password);
        }
        let mut process = Process::spawn(
            &format!("backend-{}", n + 1),
            &mut command,
            &self.dir.join(format!("backend-{}.log", n + 1)),
        )?;
        let addr = process
            .wait_for_log_value("vapora-backend listening", "addr=", Duration::from_secs(120))
            .await?;
        if self.admin_key.is_empty() {
            self.admin_key = std::fs::read_to_string(&key_file)
                .map_err(|e| TopologyError::io(&key_file, e))?
                .trim()
                .to_owned();
        }
        self.backends.push(Backend {
            process,
            url: format!("http://{addr}"),
        });
        Ok(n)
    }

    /// Starts one more agent server (`agent-N`); returns its id.
    pub fn add_agent(&mut self) -> Result<String, TopologyError> {
        self.agent_starts += 1;
        let id = format!("agent-{}", self.agent_starts);
        let mut command = Command::new(&self.binaries.agent_server);
        command
            .envs(self.shared_env())
            .env("VAPORA_AGENT_ID", &id)
            .env(
                "VAPORA_AGENT_CONCURRENCY",
                self.options.agent_concurrency.to_string(),
            )
            .env("VAPORA_LLM_PROVIDER", "openai")
            .env("VAPORA_LLM_BASE_URL", format!("{}/v1", self.gateway_url))
            .env("VAPORA_LLM_MODEL", "default")
            .env("VAPORA_LLM_API_KEY_ENV", "GATEWAY_API_KEY")
            .env("GATEWAY_API_KEY", &self.gateway_key)
            .envs(self.options.agent_env.iter().map(|(k, v)| (k, v)));
        if let Some(roles) = &self.options.agent_roles {
            command.env("VAPORA_AGENT_ROLES", roles);
        }
        let process = Process::spawn(&id, &mut command, &self.dir.join(format!("{id}.log")))?;
        self.agents.push(process);
        Ok(id)
    }

    /// `kill -9` backend `n`.
    pub fn kill_backend(&mut self, n: usize) {
        self.backends[n].process.kill();
    }

    /// Every process still running, backends and agents first and the
    /// services they need last, as an orchestrator would stop them.
    fn processes_in_stop_order(&mut self) -> Vec<&mut Process> {
        let mut all: Vec<&mut Process> = self.backends.iter_mut().map(|b| &mut b.process).collect();
        all.extend(self.agents.iter_mut());
        all.push(&mut self.gateway);
        all.extend(self.surreal.process());
        all.extend(self.nats.processes());
        all
    }

    /// SIGTERM to every running process, in stop order; each one's name
    /// and exit status.
    pub async fn terminate_all(
        &mut self,
        limit: Duration,
    ) -> Vec<(String, Result<Option<ExitStatus>, TopologyError>)> {
        let mut statuses = Vec::new();
        for process in self.processes_in_stop_order() {
            let status = process.terminate(limit).await;
            statuses.push((process.name.clone(), status));
        }
        statuses
    }

    /// Every log file of the topology.
    pub fn log_files(&self) -> Vec<PathBuf> {
        let mut logs = Vec::new();
        if let Ok(entries) = std::fs::read_dir(&self.dir) {
            logs.extend(
                entries
                    .flatten()
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|e| e == "log")),
            );
        }
        logs.push(self.dir.join("surrealdb").join("surreal.log"));
        logs.sort();
        logs
    }

    /// The end of every log, for a failing test to print.
    pub fn log_tails(&self, lines: usize) -> String {
        self.log_files()
            .iter()
            .map(|log| {
                let text = std::fs::read_to_string(log).unwrap_or_default();
                format!("----- {} -----\n{}\n", log.display(), tail(&text, lines))
            })
            .collect()
    }
}

/// The gateway on a router file of its own: one `default` route to the
/// upstream (or the echo provider), and a generated key for the agents.
async fn start_gateway(
    binary: &Path,
    dir: &Path,
    upstream: Option<&str>,
) -> Result<(Process, String, String), TopologyError> {
    let generated = Command::new(binary)
        .args(["hash-key", "--generate"])
        .output()
        .map_err(|source| TopologyError::Spawn {
            what: "the gateway's hash-key".into(),
            program: binary.display().to_string(),
            source,
        })?;
    let text = String::from_utf8_lossy(&generated.stdout);
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_owned())
            .ok_or_else(|| TopologyError::Missing(format!("{name} in the output of hash-key --generate")))
    };
    let (key, hash) = (field("key:")?, field("hash:")?);
    let provider = match upstream {
        Some(base_url) => format!(
            "[providers.upstream]\nkind = \"openai\"\nbase_url = \"{base_url}\"\nmax_concurrency = 256\nmodels = {{ \"fake-model\" = {{ input_per_mtok = 1.0, output_per_mtok = 2.0 }} }}\n\n[routes.default]\ntargets = [\"upstream/fake-model\"]\n"
        ),
        None => "[providers.echo]\nkind = \"echo\"\nmodels = { \"echo-1\" = { input_per_mtok = 0.0, output_per_mtok = 0.0 } }\n\n[routes.default]\ntargets = [\"echo/echo-1\"]\n".to_owned(),
    };
    let config = dir.join("llm.toml");
    let body =
        format!("default_route = \"default\"\n\n{provider}\n[gateway.keys.agents]\nhash = \"{hash}\"\n");
    std::fs::write(&config, body).map_err(|e| TopologyError::io(&config, e))?;
    let port = free_port()?;
    let mut command = Command::new(binary);
    command
        .env("VAPORA_LLM_CONFIG", &config)
        .env("VAPORA_GATEWAY_ADDR", format!("127.0.0.1:{port}"))
        .env("VAPORA_GATEWAY_BUDGET_FILE", dir.join("gateway-budgets.json"))
        .env("NO_COLOR", "1");
    let process = Process::spawn("gateway", &mut command, &dir.join("gateway.log"))?;
    let url = format!("http://127.0.0.1:{port}");
    wait_healthy(
        &reqwest::Client::new(),
        &format!("{url}/health"),
        "the gateway",
        Duration::from_secs(60),
    )
    .await?;
    Ok((process, url, key))
}
