//! The WebSocket event feed.

use std::time::Duration;

use serde_json::{Value, json};
use vapora_llm_router::testing::{FakeProvider, Script};

use crate::support::{spawn_app, spawn_app_with, test_settings};

#[tokio::test]
async fn one_task_emits_created_running_progress_done_in_order() {
    let app = spawn_app().await;
    app.llm.set_default(Script::text(&["alpha ", "beta ", "gamma"]));
    let project = app.create_project("live").await;
    let mut ws = app
        .websocket(&format!("?project_id={}", project["id"].as_str().unwrap()))
        .await;

    let task = app.create_task(&project["id"], json!({})).await;
    let events = ws
        .events_until(|e| e["type"] == "task.updated" && e["data"]["status"] == "done")
        .await;
    let task_events: Vec<&Value> = events.iter().filter(|e| e["type"] != "agent.updated").collect();
    let kinds: Vec<String> = task_events
        .iter()
        .map(|e| match e["type"].as_str().unwrap() {
            "task.progress" => format!("progress:{}", e["data"]["chunk"].as_str().unwrap()),
            kind => format!("{kind}:{}", e["data"]["status"].as_str().unwrap()),
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "task.created:queued",
            "task.updated:running",
            "progress:alpha ",
            "progress:beta ",
            "progress:gamma",
            "task.updated:done"
        ]
    );
    for event in &task_events {
        let id = if event["type"] == "task.progress" {
            &event["data"]["task_id"]
        } else {
            &event["data"]["id"]
        };
        assert_eq!(id, &task["id"]);
    }
    let seqs: Vec<u64> = task_events
        .iter()
        .filter(|e| e["type"] == "task.progress")
        .map(|e| e["data"]["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, [0, 1, 2]);
    // The final event carries the full task, result included.
    assert_eq!(
        task_events.last().unwrap()["data"]["result"]["output"],
        "alpha beta gamma"
    );
    ws.close().await;
    app.stop().await;
}

#[tokio::test]
async fn project_filter_only_lets_that_project_through() {
    let app = spawn_app().await;
    let mine = app.create_project("mine").await;
    let other = app.create_project("other").await;
    let mut ws = app
        .websocket(&format!("?project_id={}", mine["id"].as_str().unwrap()))
        .await;
    app.create_task(&other["id"], json!({ "dispatch": false })).await;
    let task = app.create_task(&mine["id"], json!({ "dispatch": false })).await;
    let event = loop {
        let e = ws.next_event().await;
        if e["type"] != "agent.updated" {
            break e;
        }
    };
    assert_eq!(event["type"], "task.created");
    assert_eq!(
        event["data"]["id"], task["id"],
        "the other project's event was filtered out"
    );
    ws.close().await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_client_does_not_slow_others_and_is_told_to_resync() {
    // Many large progress events: far more than the per-client buffer and
    // than a socket that nobody reads can absorb.
    let chunk = "x".repeat(4 * 1024);
    let script = Script {
        chunks: vec![chunk; 1_500],
        usage: Some((1, 1)),
        ..Script::default()
    };
    let llm = FakeProvider::start(script).await;
    let mut settings = test_settings(&llm);
    settings.ws_buffer = 64;
    // Small enough that what the stalled client misses leaves the window.
    settings.event_window = 256;
    let app = spawn_app_with(llm, settings).await;
    let project = app.create_project("firehose").await;

    let mut stalled = app.websocket("").await; // connected, never reads (for now)
    let mut reader = app.websocket("").await;

    let started = std::time::Instant::now();
    let mut finished = 0;
    let mut tasks = Vec::new();
    for _ in 0..3 {
        tasks.push(app.create_task(&project["id"], json!({})).await["id"].clone());
    }
    // The reading client keeps up and sees every task finish. It may lag too
    // if it is slower than the producer, but it never stops receiving.
    while finished < tasks.len() {
        let event = reader.next_event().await;
        if event["type"] == "task.updated" && event["data"]["status"] == "done" {
            finished += 1;
        }
    }
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_secs(20),
        "the reader was held up: {elapsed:?}"
    );
    // The API stayed responsive throughout.
    let t = std::time::Instant::now();
    let (status, _) = app.get("/api/v1/tasks?limit=10").await;
    assert!(status.is_success());
    assert!(t.elapsed() < Duration::from_secs(2));

    // The stalled client, once it reads, is told to start over: what it
    // missed has left the window. Events keep their order until then.
    let mut saw_resync = false;
    let mut last_seq = 0;
    for _ in 0..10_000 {
        let event = stalled.next_event().await;
        let seq = event["seq"].as_u64().expect("every event has a seq");
        assert!(seq > last_seq, "events out of order: {seq} after {last_seq}");
        last_seq = seq;
        if event["type"] == "resync" {
            assert!(event["data"]["since"].as_u64().unwrap() < seq);
            saw_resync = true;
            break;
        }
    }
    assert!(saw_resync, "the stalled client was never told to resync");
    app.stop().await;
}
