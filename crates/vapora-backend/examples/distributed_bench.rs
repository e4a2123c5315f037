//! Distributed benchmark: release `vapora-backend` + two `vapora-agent-server`
//! processes + `nats-server` + an instant fake LLM, all on this machine.
//! `bench/distributed.sh` builds the binaries and runs this; it prints a
//! markdown report (the source of the figures in `docs/benchmarks.md`).
//!
//! 1. Baseline, same run: raw JetStream throughput, one message published
//!    (with a `Nats-Msg-Id`, acked) and consumed (acked) per item, on a
//!    file-backed work-queue stream like `VAPORA_TASKS`.
//! 2. End to end: 10,000 tasks over REST (32 at a time) until the backend
//!    counts 10,000 `done` (`/metrics`); tasks/s from the first request.
//! 3. Latency at a steady 200 tasks/s for 10 s: queued → running from the
//!    stored timestamps (`created_at` → `started_at`), split into the wait
//!    in the backend queue (→ `dispatched_at`) and broker + worker.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::{AckPolicy, PullConsumer, pull};
use async_nats::jetstream::stream::{Config, RetentionPolicy, StorageType};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use secrecy::ExposeSecret;
use serde_json::Value;
use vapora_agents::testing::NatsServer;
use vapora_backend::auth::PresentedKey;
use vapora_llm_router::testing::{FakeProvider, Script};

#[path = "support/backend_process.rs"]
mod backend_process;
#[path = "support/bench_api.rs"]
#[allow(dead_code)] // Shared by the benchmarks; each uses a part.
mod bench_api;
#[path = "support/proc_stat.rs"]
mod proc_stat;
use backend_process::{spawn, wait_for_addr};
use bench_api::{
    all_tasks, create_project, create_task, done_count, keyed_client, percentile, wait_for_agents,
};
use proc_stat::cpu_secs;

const E2E_TASKS: usize = 10_000;
const RAW_MESSAGES: usize = 10_000;
const RATE: u64 = 200;
const RATE_SECS: u64 = 10;
const ROLES: [&str; 3] = ["developer", "tester", "reviewer"];

#[tokio::main]
async fn main() {
    let bin_dir =
        PathBuf::from(std::env::var("VAPORA_BENCH_BIN_DIR").unwrap_or_else(|_| "target/release".into()));
    let work = tempfile::tempdir().unwrap();
    let nats = NatsServer::start().await;
    let llm = FakeProvider::start(Script::text(&["ok"])).await;

    let raw = raw_jetstream(nats.url()).await;

    let delivery_env = [
        ("VAPORA_NATS_URL", nats.url().to_owned()),
        ("NO_COLOR", "1".into()),
    ];
    let backend_log = work.path().join("backend.log");
    let admin_key = PresentedKey::generate().reveal();
    // On-disk SurrealKV by default, as the backend runs out of the box;
    // `VAPORA_BENCH_DATABASE_URL=mem://` shows what the storage engine costs.
    let database_url = std::env::var("VAPORA_BENCH_DATABASE_URL")
        .unwrap_or_else(|_| format!("surrealkv://{}", work.path().join("db").display()));
    let mut processes = vec![spawn(
        Command::new(bin_dir.join("vapora-backend"))
            .envs(delivery_env.clone())
            .env("VAPORA_PORT", "0")
            .env("VAPORA_DATABASE_URL", &database_url)
            .env("VAPORA_QUEUE_CAPACITY", "100000")
            // Builds from before API keys ignore it, and the header below.
            .env("VAPORA_ADMIN_KEY", admin_key.expose_secret())
            // One client creating as fast as it can: no per-key rate limit.
            .env("VAPORA_RATE_LIMIT_PER_SEC", "0")
            .env("RUST_LOG", "warn,vapora_backend::startup=info"),
        &backend_log,
    )];
    for id in ["agent-a", "agent-b"] {
        processes.push(spawn(
            Command::new(bin_dir.join("vapora-agent-server"))
                .envs(delivery_env.clone())
                .env("VAPORA_AGENT_ID", id)
                .env("VAPORA_AGENT_ROLES", ROLES.join(","))
                .env("VAPORA_AGENT_CONCURRENCY", "32")
                .env("VAPORA_LLM_BASE_URL", llm.base_url())
                .env("VAPORA_LLM_MODEL", "fake-model")
                .env("RUST_LOG", "warn"),
            &work.path().join(format!("{id}.log")),
        ));
    }
    let base = format!("http://{}", wait_for_addr(&backend_log).await);
    let http = keyed_client(admin_key.expose_secret());
    wait_for_agents(&http, &base, 2).await;

    let project = create_project(&http, &base).await;
    let started = Instant::now();
    let created = futures::stream::iter(0..E2E_TASKS)
        .map(|i| create_task(&http, &base, &project, ROLES[i % 3], i))
        .buffer_unordered(32)
        .count()
        .await;
    let create_secs = started.elapsed().as_secs_f64();
    assert_eq!(created, E2E_TASKS);
    while done_count(&http, std::slice::from_ref(&base)).await < E2E_TASKS as u64 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let e2e_secs = started.elapsed().as_secs_f64();
    let e2e_rate = E2E_TASKS as f64 / e2e_secs;

    let (latency, split) = steady_rate_latency(&http, &base).await;
    let rss: Vec<u64> = processes.iter().map(|p| rss_mib(p.id())).collect();
    let cpu: Vec<f64> = processes.iter().map(|p| cpu_secs(p.id())).collect();

    println!(
        "# Distributed run {} on {} cores, backend database {database_url}",
        Utc::now().format("%Y-%m-%dT%H:%MZ"),
        num_cpus()
    );
    println!();
    println!("| measure | value |");
    println!("|---|---|");
    println!(
        "| raw JetStream publish+consume (baseline, same run) | {:.0} msg/s |",
        raw
    );
    println!(
        "| end to end, {E2E_TASKS} tasks, 2 agent servers | {e2e_rate:.0} tasks/s ({e2e_secs:.2} s; creating them took {create_secs:.2} s) |"
    );
    println!(
        "| end to end / raw JetStream | {:.2} (a task is 1 attempt + 3 reports on JetStream: started, progress, result) |",
        e2e_rate / raw
    );
    println!(
        "| queued → running at {RATE} tasks/s, p50 / p99 / max | {:.1} / {:.1} / {:.1} ms |",
        latency.0, latency.1, latency.2
    );
    println!(
        "| of which in the backend queue (→ dispatched), p50 / p99 | {:.1} / {:.1} ms |",
        split.0, split.1
    );
    println!(
        "| RSS after the run: backend / agent-a / agent-b | {} / {} / {} MiB |",
        rss[0], rss[1], rss[2]
    );
    println!(
        "| CPU time over the whole run: backend / agent-a / agent-b / this driver (HTTP client, fake LLM) | {:.1} / {:.1} / {:.1} / {:.1} s |",
        cpu[0],
        cpu[1],
        cpu[2],
        cpu_secs(std::process::id())
    );
    for mut p in processes {
        let _ = p.kill();
        let _ = p.wait();
    }
}

/// Messages/s for publish (acked, with a message id) + consume (acked).
async fn raw_jetstream(url: &str) -> f64 {
    let client = async_nats::connect(url).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let stream = js
        .create_stream(Config {
            name: "BENCH_RAW".into(),
            subjects: vec!["bench.raw".into()],
            retention: RetentionPolicy::WorkQueue,
            storage: StorageType::File,
            duplicate_window: Duration::from_secs(120),
            ..Default::default()
        })
        .await
        .unwrap();
    let consumer: PullConsumer = stream
        .create_consumer(pull::Config {
            durable_name: Some("bench".into()),
            ack_policy: AckPolicy::Explicit,
            max_ack_pending: 10_000,
            ..Default::default()
        })
        .await
        .unwrap();
    let started = Instant::now();
    let consume = tokio::spawn(async move {
        let mut messages = consumer
            .stream()
            .max_messages_per_batch(500)
            .messages()
            .await
            .unwrap();
        for _ in 0..RAW_MESSAGES {
            let message = messages.next().await.unwrap().unwrap();
            message.ack().await.unwrap();
        }
    });
    let payload = bytes::Bytes::from(vec![b'x'; 300]);
    let mut pending = FuturesUnordered::new();
    for i in 0..RAW_MESSAGES {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", i.to_string().as_str());
        pending.push(
            js.publish_with_headers("bench.raw", headers, payload.clone())
                .await
                .unwrap()
                .into_future(),
        );
        if pending.len() >= 256 {
            pending.next().await.unwrap().unwrap();
        }
    }
    while let Some(ack) = pending.next().await {
        ack.unwrap();
    }
    consume.await.unwrap();
    RAW_MESSAGES as f64 / started.elapsed().as_secs_f64()
}

/// Sends tasks at a steady rate, waits for them, and returns the queued →
/// running percentiles (p50, p99, max) and the backend-queue share (p50, p99).
async fn steady_rate_latency(http: &reqwest::Client, base: &str) -> ((f64, f64, f64), (f64, f64)) {
    let project = create_project(http, base).await;
    let before = done_count(http, &[base.to_owned()]).await;
    let total = (RATE * RATE_SECS) as usize;
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / RATE));
    let mut requests = Vec::with_capacity(total);
    for i in 0..total {
        tick.tick().await;
        let (http, base, project) = (http.clone(), base.to_owned(), project.clone());
        requests.push(tokio::spawn(async move {
            create_task(&http, &base, &project, ROLES[i % 3], i).await
        }));
    }
    for request in requests {
        request.await.unwrap();
    }
    while done_count(http, &[base.to_owned()]).await < before + total as u64 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let tasks = all_tasks(http, base, &project).await;
    let millis = |from: &str, to: &str, task: &Value| -> f64 {
        let at = |field: &str| task[field].as_str().unwrap().parse::<DateTime<Utc>>().unwrap();
        (at(to) - at(from)).num_microseconds().unwrap() as f64 / 1000.0
    };
    let mut running: Vec<f64> = tasks
        .iter()
        .map(|t| millis("created_at", "started_at", t))
        .collect();
    let mut queued: Vec<f64> = tasks
        .iter()
        .map(|t| millis("created_at", "dispatched_at", t))
        .collect();
    (
        (
            percentile(&mut running, 0.50),
            percentile(&mut running, 0.99),
            percentile(&mut running, 1.0),
        ),
        (percentile(&mut queued, 0.50), percentile(&mut queued, 0.99)),
    )
}

fn rss_mib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb / 1024)
}

/// User + system CPU seconds of a process so far.
fn num_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
