//! `vapora-llm-gateway`: the LLM router as an OpenAI-compatible HTTP API.
//!
//! Reads the router configuration from `VAPORA_LLM_CONFIG` (default
//! `config/llm.toml`), keeps budget spend in `VAPORA_GATEWAY_BUDGET_FILE`
//! (default `data/gateway-budgets.json`), and listens on
//! `VAPORA_GATEWAY_ADDR` (default `127.0.0.1:8003`) until SIGINT/SIGTERM.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;
use vapora_llm_router::RouterConfig;
use vapora_llm_router::budget_store::FileBudgetStore;

// Every request allocates and frees many small buffers across threads;
// mimalloc measurably beats glibc's allocator at that (see docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .init();
    let config_path =
        PathBuf::from(std::env::var("VAPORA_LLM_CONFIG").unwrap_or_else(|_| "config/llm.toml".into()));
    let budget_file =
        std::env::var("VAPORA_GATEWAY_BUDGET_FILE").unwrap_or_else(|_| "data/gateway-budgets.json".into());
    let addr = std::env::var("VAPORA_GATEWAY_ADDR").unwrap_or_else(|_| "127.0.0.1:8003".into());

    let config = RouterConfig::load(&config_path)
        .await
        .with_context(|| format!("loading {}", config_path.display()))?;
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
    vapora_llm_router::gateway::serve(listener, router, shutdown_signal()).await?;
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
