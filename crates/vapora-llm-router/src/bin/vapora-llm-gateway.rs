//! `vapora-llm-gateway`: the LLM router as an OpenAI-compatible HTTP API.
//!
//! Reads the router configuration from `VAPORA_LLM_CONFIG` (default
//! `config/llm.toml`), keeps budget spend in `VAPORA_GATEWAY_BUDGET_FILE`
//! (default `data/gateway-budgets.json`), and listens on
//! `VAPORA_GATEWAY_ADDR` (default `127.0.0.1:8003`) until SIGINT/SIGTERM.
//!
//! `vapora-llm-gateway hash-key` prints the hash of a key read from stdin,
//! for `[gateway.keys.NAME] hash`; `hash-key --generate` makes a new key and
//! prints it with its hash. `vapora-llm-gateway healthcheck` probes a
//! running gateway.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;
use vapora_llm_router::RouterConfig;
use vapora_llm_router::budget_store::FileBudgetStore;
use vapora_llm_router::gateway::keys::{generate_key, hash_key};

// Every request allocates and frees many small buffers across threads;
// mimalloc measurably beats glibc's allocator at that (see docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(version, about = "The Vapora LLM router as an OpenAI-compatible HTTP API")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the hash of a key read from stdin, for `[gateway.keys.NAME] hash`.
    HashKey {
        /// Make a new random key instead, and print it with its hash.
        #[arg(long)]
        generate: bool,
    },
    /// Exit 0 if the gateway on this host (at `VAPORA_GATEWAY_ADDR`'s port)
    /// answers `/health`, 1 if not: a container health check that needs no
    /// curl in the image.
    Healthcheck,
}

fn main() -> anyhow::Result<ExitCode> {
    match Cli::parse().command {
        Some(Command::HashKey { generate }) => print_hash(generate).map(|()| ExitCode::SUCCESS),
        Some(Command::Healthcheck) => healthcheck(),
        None => {
            // Outside the runtime: the exporter's HTTP client has its own.
            let telemetry = vapora_telemetry::init("vapora-llm-gateway", "info", "vapora_llm_gateway")?;
            let served = serve();
            telemetry.shutdown();
            served.map(|()| ExitCode::SUCCESS)
        }
    }
}

const DEFAULT_ADDR: &str = "127.0.0.1:8003";

fn healthcheck() -> anyhow::Result<ExitCode> {
    let addr: SocketAddr = std::env::var("VAPORA_GATEWAY_ADDR")
        .unwrap_or_else(|_| DEFAULT_ADDR.into())
        .parse()
        .context("VAPORA_GATEWAY_ADDR is not host:port")?;
    Ok(vapora_shared::healthcheck::exit_code(addr.port(), "/health"))
}

fn print_hash(generate: bool) -> anyhow::Result<()> {
    if generate {
        let key = generate_key();
        println!("key:  {key}\nhash: {}", hash_key(&key));
        return Ok(());
    }
    let mut key = String::new();
    std::io::stdin()
        .read_line(&mut key)
        .context("reading the key from stdin")?;
    anyhow::ensure!(!key.trim().is_empty(), "no key on stdin");
    println!("{}", hash_key(&key));
    Ok(())
}

#[tokio::main]
async fn serve() -> anyhow::Result<()> {
    let config_path =
        PathBuf::from(std::env::var("VAPORA_LLM_CONFIG").unwrap_or_else(|_| "config/llm.toml".into()));
    let budget_file =
        std::env::var("VAPORA_GATEWAY_BUDGET_FILE").unwrap_or_else(|_| "data/gateway-budgets.json".into());
    let addr = std::env::var("VAPORA_GATEWAY_ADDR").unwrap_or_else(|_| DEFAULT_ADDR.into());

    let config = RouterConfig::load(&config_path)
        .await
        .with_context(|| format!("loading {}", config_path.display()))?;
    let keys = config.gateway_keys()?;
    if keys.is_empty() {
        tracing::warn!(
            "no [gateway.keys] configured: every request will be refused (see `vapora-llm-gateway hash-key`)"
        );
    }
    let router = config.build(Arc::new(FileBudgetStore::new(budget_file))).await?;
    let stop = CancellationToken::new();
    let persist = tokio::spawn(router.budgets().clone().persist_until(stop.clone()));

    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    tracing::info!(
        addr = %listener.local_addr()?,
        routes = router.routes().len(),
        worker_threads = tokio::runtime::Handle::current().metrics().num_workers(),
        "vapora-llm-gateway listening"
    );
    vapora_llm_router::gateway::serve(listener, router, keys, shutdown_signal()).await?;
    stop.cancel();
    persist.await?;
    tracing::info!("shutdown complete");
    Ok(())
}

async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        () = terminate => {},
    }
}
