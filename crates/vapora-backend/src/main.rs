//! `vapora-backend`: reads settings from the environment and serves until
//! SIGINT or SIGTERM.

use tracing_subscriber::EnvFilter;
use vapora_backend::{Application, Settings, shutdown_signal};

// SurrealDB's query engine allocates and copies many short-lived values on
// every statement; under load glibc's allocator showed up at ~10% of the
// backend's CPU in `perf` (see docs/benchmarks.md), mimalloc far less.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    init_logging();
    let settings = Settings::from_env()?;
    Application::build(settings)
        .await?
        .run_until(shutdown_signal())
        .await?;
    Ok(())
}

/// `RUST_LOG` decides, defaulting to `info` with the storage engine's chatter
/// turned down. Our own start-up lines (worker threads, storage, provider)
/// stay visible unless `RUST_LOG` mentions `vapora` itself, so that e.g.
/// `RUST_LOG=tokio=debug` still shows them.
///
/// `surrealkv::lsm` is held to errors by default: at every shutdown,
/// SurrealDB 3.3's commit thread drops its handle to the store outside any
/// runtime, and surrealkv 0.21 then warns "No runtime available for closing
/// the store correctly", although SurrealDB closes the store explicitly
/// right after (flushing memtables and the WAL).
fn init_logging() {
    let spec = std::env::var("RUST_LOG")
        .ok()
        .filter(|spec| !spec.trim().is_empty())
        .unwrap_or_else(|| "info,surrealkv=warn,surrealkv::lsm=error,surrealdb=warn".into());
    let mut filter = EnvFilter::try_new(&spec).unwrap_or_else(|_| EnvFilter::new("info"));
    if !spec.contains("vapora") {
        filter = filter.add_directive("vapora_backend=info".parse().expect("valid directive"));
    }
    tracing_subscriber::fmt().with_env_filter(filter).init();
}
