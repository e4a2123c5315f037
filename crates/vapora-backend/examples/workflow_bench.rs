//! Workflow benchmark: stage-to-stage latency, from a dependency's `done`
//! to its dependent's `queued`, with runs of the shipped `feature` template
//! (design → implement, test → review) started at a steady rate against a
//! release `vapora-backend` on its defaults (embedded SurrealKV, in-process
//! agents) and an instant fake LLM. `bench/workflows.sh` builds and runs it;
//! it prints a markdown report (the source of `docs/benchmarks.md`).
//!
//! Both ends of a hop are the backend's own stored timestamps: the
//! dependency's `finished_at` (the later one, for the review, which waits
//! for two) and the dependent's move to `queued` in its history. The
//! baseline, same run: queued → running of the first stages (`created_at`
//! → `started_at`), the wait of a task that depends on nothing.

use std::process::Command;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::StreamExt;
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use vapora_backend::auth::PresentedKey;
use vapora_llm_router::testing::{FakeProvider, Script};

#[path = "support/backend_process.rs"]
mod backend_process;
#[path = "support/bench_api.rs"]
#[allow(dead_code)] // Shared by the benchmarks; each uses a part.
mod bench_api;
use backend_process::{spawn, wait_for_addr};
use bench_api::{all_tasks, create_project, json_of, keyed_client, percentile};

/// Runs started per second (`VAPORA_BENCH_RATE` to try another), and for
/// how long.
const RATE: u64 = 100;
const SECS: u64 = 10;

fn rate() -> u64 {
    std::env::var("VAPORA_BENCH_RATE")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(RATE)
}

#[tokio::main]
async fn main() {
    let work = tempfile::tempdir().unwrap();
    let llm = FakeProvider::start(Script::text(&["ok"])).await;
    let log = work.path().join("backend.log");
    let admin_key = PresentedKey::generate().reveal();
    let database_url = std::env::var("VAPORA_BENCH_DATABASE_URL")
        .unwrap_or_else(|_| format!("surrealkv://{}", work.path().join("db").display()));
    let mut backend = spawn(
        Command::new("target/release/vapora-backend")
            .env("VAPORA_PORT", "0")
            .env("VAPORA_DATABASE_URL", &database_url)
            .env("VAPORA_ADMIN_KEY", admin_key.expose_secret())
            .env("VAPORA_RATE_LIMIT_PER_SEC", "0")
            .env("VAPORA_QUEUE_CAPACITY", "100000")
            .env("VAPORA_WORKERS_PER_ROLE", "16")
            .env("VAPORA_LLM_PROVIDER", "openai")
            .env("VAPORA_LLM_BASE_URL", llm.base_url())
            .env("VAPORA_LLM_MODEL", "fake-model")
            .env("NO_COLOR", "1")
            .env("RUST_LOG", "warn,vapora_backend::startup=info"),
        &log,
    );
    let base = format!("http://{}", wait_for_addr(&log).await);
    let http = keyed_client(admin_key.expose_secret());
    let project = create_project(&http, &base).await;

    // Open loop: a run every 1/RATE s, whatever the answers take.
    let rate = rate();
    let total = (rate * SECS) as usize;
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / rate));
    let mut requests = Vec::with_capacity(total);
    for i in 0..total {
        tick.tick().await;
        let (http, base, project) = (http.clone(), base.clone(), project.clone());
        requests.push(tokio::spawn(async move {
            let body = json!({ "project_id": project, "template": "feature", "inputs": { "feature": format!("feature {i}") } });
            let response = http.post(format!("{base}/api/v1/workflows")).json(&body).send().await.unwrap();
            assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
        }));
    }
    for request in requests {
        request.await.unwrap();
    }
    let offered = total as f64 / started.elapsed().as_secs_f64();
    // Every run ends at its approval gate: all four stages have run.
    while count_awaiting(&http, &base, &project).await < total {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let tasks = all_tasks(&http, &base, &project).await;
    let queued_at: Vec<(String, DateTime<Utc>)> = futures::stream::iter(
        tasks
            .iter()
            .filter(|t| !t["depends_on"].as_array().unwrap().is_empty()),
    )
    .map(|task| {
        let (http, base) = (http.clone(), base.clone());
        async move {
            let id = task["id"].as_str().unwrap().to_owned();
            let history = json_of(http.get(format!("{base}/api/v1/tasks/{id}/history"))).await;
            let queued = history["transitions"]
                .as_array()
                .unwrap()
                .iter()
                .find(|t| t["to_status"] == "queued")
                .map(|t| time(&t["at"]))
                .expect("a dependent was queued");
            (id, queued)
        }
    })
    .buffer_unordered(32)
    .collect()
    .await;
    let by_id: std::collections::HashMap<&str, &Value> =
        tasks.iter().map(|t| (t["id"].as_str().unwrap(), t)).collect();
    let mut hops: Vec<f64> = queued_at
        .iter()
        .map(|(id, queued)| {
            let task = by_id[id.as_str()];
            let last_dependency_done = task["depends_on"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| time(&by_id[d.as_str().unwrap()]["finished_at"]))
                .max()
                .unwrap();
            millis(last_dependency_done, *queued)
        })
        .collect();
    let mut first_stage_wait: Vec<f64> = tasks
        .iter()
        .filter(|t| t["depends_on"].as_array().unwrap().is_empty())
        .map(|t| millis(time(&t["created_at"]), time(&t["started_at"])))
        .collect();
    let (p50, p99, max) = (
        percentile(&mut hops, 0.50),
        percentile(&mut hops, 0.99),
        percentile(&mut hops, 1.0),
    );
    let (b50, b99) = (
        percentile(&mut first_stage_wait, 0.50),
        percentile(&mut first_stage_wait, 0.99),
    );
    println!(
        "# Workflow run {} on {} cores, backend database {database_url}",
        Utc::now().format("%Y-%m-%dT%H:%MZ"),
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!();
    println!("| measure | value |");
    println!("|---|---|");
    println!(
        "| runs of `feature` started | {total} at {offered:.0} runs/s offered ({rate}/s for {SECS} s), {} stage tasks |",
        tasks.len()
    );
    println!(
        "| stage to stage (dependency done → dependent queued), {} hops, p50 / p99 / max | {p50:.2} / {p99:.2} / {max:.2} ms |",
        hops.len()
    );
    println!("| baseline, same run: first stage queued → running, p50 / p99 | {b50:.2} / {b99:.2} ms |");
    println!("| stage-to-stage p99 / baseline p99 | {:.2} |", p99 / b99);
    let logged = std::fs::read_to_string(&log).unwrap_or_default();
    let problems: Vec<&str> = logged
        .lines()
        .filter(|l| l.contains("WARN") || l.contains("ERROR"))
        .collect();
    println!("| backend WARN/ERROR lines | {} |", problems.len());
    for line in problems.iter().take(5) {
        eprintln!("{line}");
    }
    let _ = backend.kill();
    let _ = backend.wait();
}

/// Runs of the project awaiting approval, over every page.
async fn count_awaiting(http: &reqwest::Client, base: &str, project: &str) -> usize {
    let mut count = 0;
    let mut cursor = String::new();
    loop {
        let page = json_of(http.get(format!(
            "{base}/api/v1/workflows?project_id={project}&status=awaiting_approval&limit=500{cursor}"
        )))
        .await;
        count += page["items"].as_array().unwrap().len();
        match page["next_cursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => return count,
        }
    }
}

fn time(value: &Value) -> DateTime<Utc> {
    value.as_str().unwrap().parse().unwrap()
}

fn millis(from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
    (to - from).num_microseconds().unwrap() as f64 / 1000.0
}
