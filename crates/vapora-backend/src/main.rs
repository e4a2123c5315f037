//! `vapora-backend`: reads settings from the environment and serves until
//! SIGINT or SIGTERM. `vapora-backend healthcheck` probes a running one.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use vapora_backend::{Application, Settings, shutdown_signal};
use vapora_shared::healthcheck;

// SurrealDB's query engine allocates and copies many short-lived values on
// every statement; under load glibc's allocator showed up at ~10% of the
// backend's CPU in `perf` (see docs/benchmarks.md), mimalloc far less.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(
    version,
    about = "The Vapora API service; settings come from VAPORA_* variables"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Exit 0 if the backend on this host (at `VAPORA_PORT`) is ready, 1 if
    /// not: a container health check that needs no curl in the image.
    Healthcheck,
}

fn main() -> anyhow::Result<ExitCode> {
    if let Some(Command::Healthcheck) = Cli::parse().command {
        return Ok(healthcheck::exit_code(Settings::from_env()?.port, "/ready"));
    }
    // Outside the runtime: the trace exporter's HTTP client has its own.
    let telemetry = vapora_telemetry::init("vapora-backend", DEFAULT_LOG, "vapora_backend")?;
    let served = serve();
    telemetry.shutdown();
    served.map(|()| ExitCode::SUCCESS)
}

#[tokio::main]
async fn serve() -> anyhow::Result<()> {
    let settings = Settings::from_env()?;
    Application::build(settings)
        .await?
        .run_until(shutdown_signal())
        .await?;
    Ok(())
}

/// What is logged unless `RUST_LOG` says otherwise: `info`, with the
/// storage engine's chatter turned down.
///
/// `surrealkv::lsm` is held to errors: at every shutdown, SurrealDB 3.3's
/// commit thread drops its handle to the store outside any runtime, and
/// surrealkv 0.21 then warns "No runtime available for closing the store
/// correctly", although SurrealDB closes the store explicitly right after
/// (flushing memtables and the WAL).
const DEFAULT_LOG: &str = "info,surrealkv=warn,surrealkv::lsm=error,surrealdb=warn";
