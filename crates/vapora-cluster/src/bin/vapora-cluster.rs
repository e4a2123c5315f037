//! `vapora-cluster`: runs the production topology as local processes until
//! Ctrl-C or SIGTERM, then stops every process with SIGTERM and reports how
//! each exited. `scripts/cluster` builds what it needs and runs it.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use vapora_cluster::{Binaries, Options, Topology};

#[derive(Debug, Parser)]
#[command(
    about = "Runs NATS nodes, a SurrealDB server, backends, agent servers and the gateway as local processes"
)]
struct Cli {
    /// NATS nodes in the cluster (streams are replicated on up to three).
    #[arg(long, default_value_t = 3)]
    nats_nodes: usize,
    #[arg(long, default_value_t = 2)]
    backends: usize,
    #[arg(long, default_value_t = 2)]
    agents: usize,
    /// An OpenAI-compatible base URL (ending in /v1) for the gateway to
    /// call; without it the gateway answers with its echo provider.
    #[arg(long)]
    upstream: Option<String>,
    /// Where logs and data go.
    #[arg(long, default_value = "target/cluster")]
    dir: PathBuf,
}

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    let exe = std::env::current_exe()?;
    let bin_dir = exe.parent().context("the executable has a directory")?;
    let binaries = Binaries::in_dir(bin_dir)?;
    if cli.dir.exists() {
        std::fs::remove_dir_all(&cli.dir).with_context(|| format!("clearing {}", cli.dir.display()))?;
    }
    let options = Options {
        nats_nodes: cli.nats_nodes,
        backends: cli.backends,
        agents: cli.agents,
        upstream: cli.upstream,
        ..Options::default()
    };
    let mut topology = match Topology::start(binaries, options, &cli.dir).await {
        Ok(topology) => topology,
        Err(e) => anyhow::bail!("{e}\n(logs in {})", cli.dir.display()),
    };
    println!("NATS:      {}", topology.nats.urls());
    println!(
        "SurrealDB: {} (user root, password in the backends' environment)",
        topology.surreal.url()
    );
    println!("gateway:   {}", topology.gateway_url);
    for (n, backend) in topology.backends.iter().enumerate() {
        println!("backend-{}: {}", n + 1, backend.url);
    }
    println!("admin key: in {}", cli.dir.join("admin.key").display());
    println!("logs:      {}/*.log", cli.dir.display());
    println!("Ctrl-C stops everything.");
    stop_requested().await;
    let mut clean = true;
    for (name, status) in topology.terminate_all(Duration::from_secs(30)).await {
        match status {
            Ok(Some(status)) => {
                clean &= status.success();
                println!("{name}: {status}");
            }
            Ok(None) => println!("{name}: was not running"),
            Err(e) => {
                clean = false;
                println!("{name}: {e}");
            }
        }
    }
    Ok(if clean {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Ctrl-C or SIGTERM.
async fn stop_requested() {
    let mut terminate =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("signal handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
}
