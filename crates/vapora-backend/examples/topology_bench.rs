//! The process topology under load, two ways in one run: two backends on a
//! SurrealDB server (the production topology), and the baseline, one
//! backend on embedded SurrealKV. Everything else is the same: a
//! three-node NATS cluster with R3 streams, two agent servers, the gateway
//! on its echo provider (answers at once). Measures end-to-end tasks/s
//! (creates spread over the backends, until every task is done) and
//! created → running latency at a steady 100 tasks/s. Prints markdown.
//!
//! `bench/topology.sh` builds the release binaries and runs it.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::StreamExt;
use vapora_cluster::{Binaries, Options, Topology};

#[path = "support/bench_api.rs"]
#[allow(dead_code)] // Shared by the benchmarks; each uses a part.
mod bench_api;
use bench_api::{all_tasks, create_project, create_task, done_count, percentile, wait_for_agents};

const TASKS: usize = 5_000;
const RATE: u64 = 100;
const RATE_SECS: u64 = 10;

struct Measured {
    tasks_per_sec: f64,
    seconds: f64,
    running_ms: (f64, f64, f64),
}

#[tokio::main]
async fn main() {
    let bin_dir =
        PathBuf::from(std::env::var("VAPORA_BENCH_BIN_DIR").unwrap_or_else(|_| "target/release".into()));
    let binaries = Binaries::in_dir(&bin_dir).expect("binaries");
    println!(
        "# Topology run {} on {} cores ({TASKS} tasks; then {RATE} tasks/s for {RATE_SECS} s)\n",
        Utc::now().format("%Y-%m-%dT%H:%MZ"),
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!("| setup | end to end | took | created → running p50 / p99 / max |");
    println!("|---|---|---|---|");
    let mut results = Vec::new();
    for (name, backends, embedded) in [
        ("1 backend, embedded SurrealKV (baseline)", 1, true),
        ("2 backends, SurrealDB server", 2, false),
    ] {
        let measured = measure(&binaries, backends, embedded).await;
        let (p50, p99, max) = measured.running_ms;
        println!(
            "| {name} | {:.0} tasks/s | {:.1} s | {p50:.1} / {p99:.1} / {max:.1} ms |",
            measured.tasks_per_sec, measured.seconds
        );
        results.push(measured);
    }
    println!(
        "\nratio, 2 backends on the server / 1 on SurrealKV: {:.2} (tasks/s), {:.2} (p99 created → running)",
        results[1].tasks_per_sec / results[0].tasks_per_sec,
        results[1].running_ms.1 / results[0].running_ms.1
    );
}

async fn measure(binaries: &Binaries, backends: usize, embedded: bool) -> Measured {
    let dir = tempfile::tempdir().unwrap();
    let mut backend_env = vec![
        ("VAPORA_RATE_LIMIT_PER_SEC".to_owned(), "0".to_owned()),
        ("VAPORA_QUEUE_CAPACITY".to_owned(), "100000".to_owned()),
        ("RUST_LOG".to_owned(), "warn,vapora_backend=info".to_owned()),
    ];
    if embedded {
        let url = format!("surrealkv://{}", dir.path().join("embedded-db").display());
        backend_env.push(("VAPORA_DATABASE_URL".to_owned(), url));
    }
    let options = Options {
        backends,
        agents: 2,
        agent_concurrency: 32,
        backend_env,
        agent_env: vec![("RUST_LOG".to_owned(), "warn".to_owned())],
        ..Options::default()
    };
    let topology = Topology::start(binaries.clone(), options, dir.path())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let http = topology.admin_client();
    let urls: Vec<String> = topology.backends.iter().map(|b| b.url.clone()).collect();
    wait_for_agents(&http, &urls[0], 2).await;
    let project = create_project(&http, &urls[0]).await;

    let started = Instant::now();
    futures::stream::iter(0..TASKS)
        .map(|i| create_task(&http, &urls[i % urls.len()], &project, "developer", i))
        .buffer_unordered(64)
        .collect::<Vec<()>>()
        .await;
    while done_count(&http, &urls).await < TASKS as u64 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let seconds = started.elapsed().as_secs_f64();

    let running_ms = steady_rate_latency(&http, &urls).await;
    drop(topology);
    Measured {
        tasks_per_sec: TASKS as f64 / seconds,
        seconds,
        running_ms,
    }
}

/// Creates tasks at a steady rate on the backends in turn; the p50, p99
/// and max of created → started.
async fn steady_rate_latency(http: &reqwest::Client, urls: &[String]) -> (f64, f64, f64) {
    let project = create_project(http, &urls[0]).await;
    let before = done_count(http, urls).await;
    let total = (RATE * RATE_SECS) as usize;
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / RATE));
    let mut requests = Vec::with_capacity(total);
    for i in 0..total {
        tick.tick().await;
        let (http, base, project) = (http.clone(), urls[i % urls.len()].clone(), project.clone());
        requests.push(tokio::spawn(async move {
            create_task(&http, &base, &project, "developer", i).await
        }));
    }
    for request in requests {
        request.await.unwrap();
    }
    while done_count(http, urls).await < before + total as u64 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let tasks = all_tasks(http, &urls[0], &project).await;
    let mut running: Vec<f64> = tasks
        .iter()
        .map(|task| {
            let at = |field: &str| task[field].as_str().unwrap().parse::<DateTime<Utc>>().unwrap();
            (at("started_at") - at("created_at")).num_microseconds().unwrap() as f64 / 1000.0
        })
        .collect();
    (
        percentile(&mut running, 0.50),
        percentile(&mut running, 0.99),
        percentile(&mut running, 1.0),
    )
}
