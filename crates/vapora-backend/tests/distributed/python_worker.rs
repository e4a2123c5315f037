//! A worker written in Python from `docs/protocol.md` alone
//! (`tests/python/protocol_worker.py`, on `nats-py`) takes and completes
//! tasks like the Rust agent server, honours cancellation and stops cleanly
//! on SIGTERM.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};
use vapora_llm_router::testing::Script;
use vapora_shared::wire::{EVENTS_STREAM, TASKS_STREAM, task_events_subject};

use crate::cluster::{self, Cluster, eventually};

const WORKSPACE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
const AGENT: &str = "py-worker-1";

/// `$VAPORA_TEST_PYTHON`, else the test virtualenv's interpreter (where
/// `scripts/test` installs `nats-py`), else `python3` on `PATH`.
fn python() -> PathBuf {
    if let Some(python) = std::env::var_os("VAPORA_TEST_PYTHON") {
        return python.into();
    }
    let venv = Path::new(WORKSPACE).join("target/test-venv/bin/python3");
    if venv.exists() { venv } else { "python3".into() }
}

/// Starts the Python worker as agent `py-worker-1` serving `developer`.
fn start_python_worker(cluster: &mut Cluster) {
    let mut command = Command::new(python());
    command
        .arg(Path::new(WORKSPACE).join("tests/python/protocol_worker.py"))
        .env("VAPORA_NATS_URL", cluster.nats.url())
        .env("VAPORA_LLM_BASE_URL", cluster.llm.base_url())
        .env("VAPORA_ACK_WAIT_SECS", cluster::ACK_WAIT_SECS)
        .env("PYTHONUNBUFFERED", "1");
    cluster.start_external_agent(AGENT, command);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_worker_written_from_the_protocol_document_finishes_every_task_once() {
    let mut cluster = Cluster::start(Script::text(&["written ", "in python"])).await;
    cluster.start_backend().await;
    start_python_worker(&mut cluster);
    cluster.wait_for_agents(0, &[AGENT]).await;

    let api = cluster.api(0);
    let project = api.create_project().await;
    let ids = api.create_tasks(&project, &["developer"], 10, 4).await;
    api.wait_all_done(&project, &ids, 60).await;
    api.assert_finished_exactly_once(&ids).await;

    let done = api.tasks_in(&project, "done").await;
    assert_eq!(done.len(), 10);
    for task in &done {
        assert_eq!(task["assigned_agent"], AGENT, "{task}");
        assert_eq!(task["result"]["output"], "written in python", "{task}");
    }
    assert_eq!(cluster.llm.request_count(), 10, "one model call per task");
    assert!(
        cluster
            .llm
            .requests()
            .iter()
            .all(|r| r.to_string().contains("You are a developer.")),
        "the worker told the model its role"
    );
    let agent = api.get(&format!("/api/v1/agents/{AGENT}")).await;
    assert_eq!(agent["tasks_completed"], 10, "{agent}");

    let (status, took) = cluster.terminate_agent(AGENT, Duration::from_secs(10)).await;
    assert!(
        status.success(),
        "the Python worker exited with {status} after SIGTERM"
    );
    eprintln!("the Python worker stopped {took:?} after SIGTERM");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_task_the_python_worker_runs_stops_it_without_a_result() {
    let mut cluster = Cluster::start(Script {
        delay: Duration::from_secs(5),
        ..Script::text(&["slow"])
    })
    .await;
    cluster.start_backend().await;
    start_python_worker(&mut cluster);
    cluster.wait_for_agents(0, &[AGENT]).await;

    let api = cluster.api(0);
    let project = api.create_project().await;
    let id = api.create_task(&project, "developer", "slow one").await;
    eventually(30, "running on the Python worker", || async {
        let task = api.task(&id).await;
        task["status"] == "running" && task["assigned_agent"] == AGENT
    })
    .await;
    let (status, task) = api.post(&format!("/api/v1/tasks/{id}/cancel"), json!({})).await;
    assert_eq!(
        (status.as_u16(), task["status"].clone()),
        (200, json!("cancelled")),
        "{task}"
    );

    // The worker acks the attempt at once, long before the model answers.
    let client = async_nats::connect(cluster.nats.url()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    eventually(3, "the attempt acked", || async {
        let stream = js.get_stream(TASKS_STREAM).await.unwrap();
        stream.cached_info().state.messages == 0
    })
    .await;

    // Past the slow answer (and a redelivery, had the attempt not been
    // acked): nothing more came from the worker.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let task = api.task(&id).await;
    assert_eq!(task["status"], "cancelled", "{task}");
    let history = api.get(&format!("/api/v1/tasks/{id}/history")).await;
    assert_eq!(history["stale_reports"], json!([]), "{history}");
    let finals: Vec<&Value> = history["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| ["done", "review", "failed", "cancelled"].contains(&t["to_status"].as_str().unwrap()))
        .collect();
    assert_eq!(finals.len(), 1, "{history}");
    let last = js
        .get_stream(EVENTS_STREAM)
        .await
        .unwrap()
        .get_last_raw_message_by_subject(&task_events_subject(id.parse().unwrap()))
        .await
        .unwrap();
    let last: Value = serde_json::from_slice(&last.payload).unwrap();
    assert_eq!(last["type"], "started", "the last report of the task: {last}");
    assert_eq!(cluster.llm.request_count(), 1, "the attempt was not redelivered");
}
