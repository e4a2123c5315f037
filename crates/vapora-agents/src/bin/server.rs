//! `vapora-agent-server`: agent workers for one or more roles, fed over NATS
//! JetStream (see `docs/protocol.md`). Configured by environment:
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `VAPORA_NATS_URL` | `nats://127.0.0.1:4222` | the broker |
//! | `VAPORA_AGENT_ID` | `agent-<pid>` | this server's id in heartbeats and reports |
//! | `VAPORA_AGENT_ROLES` | every role in the catalog | comma-separated roles to serve |
//! | `VAPORA_AGENT_CONCURRENCY` | `4` | attempts run at once, per role |
//! | `VAPORA_ROLES_FILE` | `config/roles.toml`, else built in | system prompts |
//! | `VAPORA_LLM_CONFIG` | unset | router TOML; otherwise the `VAPORA_LLM_*` single provider (which can be the gateway's URL) |
//! | `VAPORA_SHUTDOWN_GRACE_SECS` | `30` | time running attempts get after SIGTERM before they are handed back |
//! | `VAPORA_AGENT_HEARTBEAT_SECS` | `3` | heartbeat interval |
//! | `VAPORA_MAX_OUTPUT_BYTES`, `VAPORA_MAX_CHUNK_BYTES` | 524288, 16384 | a result's output is cut (and marked `output_truncated`) past the first; a progress chunk longer than the second is sent in pieces |
//! | `VAPORA_NATS_ACK_WAIT_SECS`, `VAPORA_NATS_MAX_DELIVER`, `VAPORA_NATS_BACKOFF_SECS`, `VAPORA_NATS_STREAM_REPLICAS` | 30, 5, 30,60,120,240, 1 | delivery policy and stream copies; must match the backend's |
//! | `VAPORA_NATS_USER`/`_PASSWORD`, `_TOKEN`, `_NKEY_SEED`, `_CREDS_FILE`, `_TLS_*` | unset | credentials and TLS (see `vapora_agents::nats_auth`) |
//! | `VAPORA_AGENT_ALIVE_FILE` | unset | a file rewritten at every heartbeat sent while connected to NATS; `vapora-agent-server healthcheck` (a container health check) exits 0 while it is fresh |
//! | `VAPORA_AGENT_METRICS_ADDR` | unset | `host:port` to serve `GET /metrics` (Prometheus: attempts by role and outcome, in flight, durations) and `GET /health` on |
//! | `VAPORA_NATS_CREATE_TOPOLOGY` | `true` | create the streams and consumers at start; `false` for a user whose NATS permissions only allow consuming (it then waits for the backend to create them) |

use std::future::IntoFuture;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;
use vapora_agents::jetstream::{DeliveryPolicy, consumer_name, ensure_topology};
use vapora_agents::metrics::{self, AgentMetrics};
use vapora_agents::nats_auth::NatsCredentials;
use vapora_agents::nats_url::redacted;
use vapora_agents::worker::{self, WorkerConfig};
use vapora_agents::{OutputLimits, RoleCatalog};
use vapora_llm_router::budget_store::MemoryBudgetStore;
use vapora_llm_router::{LlmClient, ProviderConfig, RouterConfig};
use vapora_shared::{AgentId, Role};

fn env(key: &str) -> Option<String> {
    std::env::var(key).ok().filter(|v| !v.trim().is_empty())
}

#[derive(Debug, Parser)]
#[command(
    version,
    about = "Vapora agent workers fed over NATS JetStream; settings come from VAPORA_* variables"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Exit 0 if the agent server on this host wrote `VAPORA_AGENT_ALIVE_FILE`
    /// within three heartbeats (it does so only while connected to NATS), 1
    /// if not: a container health check.
    Healthcheck,
}

fn main() -> anyhow::Result<ExitCode> {
    match Cli::parse().command {
        Some(Command::Healthcheck) => healthcheck(),
        None => {
            // Outside the runtime: the exporter's HTTP client has its own.
            let telemetry = vapora_telemetry::init("vapora-agent-server", "info", "vapora_agent_server")?;
            let served = serve();
            telemetry.shutdown();
            served.map(|()| ExitCode::SUCCESS)
        }
    }
}

fn healthcheck() -> anyhow::Result<ExitCode> {
    let path = env("VAPORA_AGENT_ALIVE_FILE").context("VAPORA_AGENT_ALIVE_FILE is not set")?;
    // Three heartbeats, and never under ten seconds: a busy host may be late.
    let limit = (heartbeat_every()? * 3).max(Duration::from_secs(10));
    Ok(match worker::alive_since(path.as_ref()) {
        Some(age) if age <= limit => ExitCode::SUCCESS,
        Some(age) => {
            eprintln!("{path}: last heartbeat {age:?} ago, more than {limit:?}");
            ExitCode::FAILURE
        }
        None => {
            eprintln!("{path}: missing or unreadable");
            ExitCode::FAILURE
        }
    })
}

fn heartbeat_every() -> anyhow::Result<Duration> {
    Ok(Duration::from_secs_f64(
        env("VAPORA_AGENT_HEARTBEAT_SECS")
            .map(|v| v.parse())
            .transpose()?
            .unwrap_or(3.0),
    ))
}

#[tokio::main]
async fn serve() -> anyhow::Result<()> {
    let catalog = load_catalog().await?;
    let roles = roles_to_serve(&catalog)?;
    let router_config = match env("VAPORA_LLM_CONFIG") {
        Some(path) => RouterConfig::load(path.as_ref()).await?,
        None => ProviderConfig::from_env(env)?.router_config().await,
    };
    let llm: Arc<dyn LlmClient> = Arc::new(
        router_config
            .build(Arc::new(MemoryBudgetStore::default()))
            .await?,
    );

    let url = env("VAPORA_NATS_URL").unwrap_or_else(|| "nats://127.0.0.1:4222".into());
    let shown_url = redacted(&url);
    let options = NatsCredentials::from_env()?
        .apply(async_nats::ConnectOptions::new().name("vapora-agent-server"))
        .await
        .context("reading the NATS credentials file")?;
    let client = options
        .connect(vapora_agents::nats_url::servers(&url))
        .await
        .with_context(|| format!("connecting to {shown_url}"))?;
    let delivery = DeliveryPolicy::from_lookup(env)?;
    let js = async_nats::jetstream::new(client.clone());
    // From here on a SIGTERM ends the process cleanly, even while it waits
    // for JetStream.
    let stop = CancellationToken::new();
    let signal = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .expect("SIGTERM handler");
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {},
                _ = term.recv() => {},
            }
            tracing::info!("shutdown requested: no more pulls");
            stop.cancel();
        })
    };
    let ready = match env("VAPORA_NATS_CREATE_TOPOLOGY").as_deref().map(str::trim) {
        None | Some("true") => create_topology(&js, &roles, &delivery, &stop).await,
        Some("false") => wait_for_consumers(&js, &roles, &stop).await,
        Some(other) => anyhow::bail!("VAPORA_NATS_CREATE_TOPOLOGY must be true or false, not {other:?}"),
    };
    if !ready {
        tracing::info!("shutdown complete");
        return Ok(());
    }
    let config = worker_config(roles, &delivery)?;
    tracing::info!(
        agent = %config.agent_id,
        roles = ?config.roles.iter().map(Role::as_str).collect::<Vec<_>>(),
        worker_threads = tokio::runtime::Handle::current().metrics().num_workers(),
        "vapora-agent-server pulling from {shown_url}"
    );
    if let Some(addr) = env("VAPORA_AGENT_METRICS_ADDR") {
        let listener = tokio::net::TcpListener::bind(&addr)
            .await
            .with_context(|| format!("binding VAPORA_AGENT_METRICS_ADDR {addr}"))?;
        tracing::info!(addr = %listener.local_addr()?, "serving /metrics");
        let stopped = stop.clone();
        tokio::spawn(
            axum::serve(listener, metrics::router(config.metrics.clone()))
                .with_graceful_shutdown(async move { stopped.cancelled().await })
                .into_future(),
        );
    }
    worker::run(client, llm, catalog, config, stop).await?;
    signal.abort();
    tracing::info!("shutdown complete");
    Ok(())
}

/// The configured roles file, else `config/roles.toml`, else the built-in copy.
async fn load_catalog() -> anyhow::Result<RoleCatalog> {
    let path = env("VAPORA_ROLES_FILE").unwrap_or_else(|| "config/roles.toml".into());
    match tokio::fs::read_to_string(path).await {
        Ok(text) => Ok(RoleCatalog::from_toml(&text)?),
        Err(_) if env("VAPORA_ROLES_FILE").is_none() => Ok(RoleCatalog::builtin()),
        Err(e) => Err(e).context("reading VAPORA_ROLES_FILE"),
    }
}

/// `VAPORA_AGENT_ROLES`, each of which must have a system prompt.
fn roles_to_serve(catalog: &RoleCatalog) -> anyhow::Result<Vec<Role>> {
    let roles: Vec<Role> = match env("VAPORA_AGENT_ROLES") {
        Some(list) => list
            .split(',')
            .map(|r| Role::parse(r.trim()))
            .collect::<Result<_, _>>()?,
        None => catalog.roles().cloned().collect(),
    };
    if let Some(unknown) = roles.iter().find(|r| !catalog.contains(r)) {
        anyhow::bail!("role {unknown} has no system prompt in the roles file");
    }
    Ok(roles)
}

fn worker_config(roles: Vec<Role>, delivery: &DeliveryPolicy) -> anyhow::Result<WorkerConfig> {
    Ok(WorkerConfig {
        agent_id: AgentId(env("VAPORA_AGENT_ID").unwrap_or_else(|| format!("agent-{}", std::process::id()))),
        roles,
        concurrency_per_role: env("VAPORA_AGENT_CONCURRENCY")
            .map(|v| v.parse())
            .transpose()?
            .unwrap_or(4),
        heartbeat_every: heartbeat_every()?,
        // Three in-progress acks per ack wait: one lost ack is not a redelivery.
        in_progress_every: delivery.ack_wait / 3,
        shutdown_deadline: Duration::from_secs(
            env("VAPORA_SHUTDOWN_GRACE_SECS")
                .map(|v| v.parse())
                .transpose()?
                .unwrap_or(30),
        ),
        limits: OutputLimits::from_lookup(env)?,
        alive_file: env("VAPORA_AGENT_ALIVE_FILE").map(Into::into),
        metrics: AgentMetrics::new(),
    })
}

/// Waits until the backend has created every role's consumer: what an agent
/// whose NATS user may only consume does instead of creating them.
async fn wait_for_consumers(
    js: &async_nats::jetstream::Context,
    roles: &[Role],
    stop: &CancellationToken,
) -> bool {
    let mut told = false;
    loop {
        let mut missing = None;
        match js.get_stream(vapora_shared::wire::TASKS_STREAM).await {
            Ok(tasks) => {
                for role in roles {
                    if tasks
                        .get_consumer::<async_nats::jetstream::consumer::pull::Config>(&consumer_name(role))
                        .await
                        .is_err()
                    {
                        missing = Some(consumer_name(role));
                        break;
                    }
                }
            }
            Err(_) => missing = Some(vapora_shared::wire::TASKS_STREAM.to_owned()),
        }
        let Some(missing) = missing else { return true };
        if !told {
            tracing::info!(%missing, "waiting for the backend to create the JetStream topology");
            told = true;
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
            () = stop.cancelled() => return false,
        }
    }
}

/// Creates or updates the streams and consumers, retrying while JetStream
/// cannot answer (a cluster still electing its leaders, a broker away).
/// `false` if stopped first.
async fn create_topology(
    js: &async_nats::jetstream::Context,
    roles: &[Role],
    delivery: &DeliveryPolicy,
    stop: &CancellationToken,
) -> bool {
    let mut delay = Duration::from_millis(200);
    loop {
        match ensure_topology(js, roles, delivery).await {
            Ok(()) => return true,
            Err(e) => tracing::warn!(error = %e, retry_in = ?delay, "JetStream not ready"),
        }
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = stop.cancelled() => return false,
        }
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}
