//! Restarting the backend keeps every project and task, and work that was
//! queued or running when it stopped runs again.

use serde_json::json;
use vapora_backend::storage::TaskWrite;
use vapora_llm_router::testing::{FakeProvider, Script};
use vapora_shared::{TaskId, TaskStatus};

use crate::support::{open_store_when_unlocked, slow_script, spawn_app_with, test_settings};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_keeps_data_and_requeues_interrupted_work() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("surrealkv://{}", dir.path().join("db").display());
    let llm = FakeProvider::start(Script::default()).await;
    let mut settings = test_settings(&llm);
    settings.database_url = url.clone();

    // First life: one task done, one cut off mid-run by the stop, one
    // waiting behind it, one never dispatched.
    let app = spawn_app_with(llm, settings.clone()).await;
    let project = app.create_project("durable").await;
    let done = app
        .create_task(&project["id"], json!({ "title": "done before the stop" }))
        .await;
    let done = app.wait_for_status(&done["id"], "done").await;
    app.llm.set_default(slow_script());
    let running = app
        .create_task(&project["id"], json!({ "title": "running at the stop" }))
        .await;
    app.wait_for_status(&running["id"], "running").await;
    let queued = app
        .create_task(&project["id"], json!({ "title": "queued at the stop" }))
        .await;
    let todo = app
        .create_task(
            &project["id"],
            json!({ "title": "never dispatched", "dispatch": false }),
        )
        .await;
    let llm = app.stop().await;

    // The graceful stop handed the running attempt back.
    {
        let db = open_store_when_unlocked(&url).await;
        let id: TaskId = running["id"].as_str().unwrap().parse().unwrap();
        let stored = db.get_task(id).await.unwrap().unwrap();
        assert_eq!((stored.task.status, stored.task.attempt), (TaskStatus::Queued, 2));
        // Simulate a crash on top: a task left `running` with no worker.
        let queued_id: TaskId = queued["id"].as_str().unwrap().parse().unwrap();
        let stored = db.get_task(queued_id).await.unwrap().unwrap();
        let mut crashed = stored.task.clone();
        crashed.status = TaskStatus::Running;
        let write = TaskWrite::from_stored(&stored, crashed);
        assert!(db.replace_task(&write).await.unwrap(), "write");
    }

    // Second life, with a fast model: everything is there and the
    // interrupted work completes under new attempts.
    llm.set_default(Script::default());
    let app = spawn_app_with(llm, settings).await;
    let (_, projects) = app.get("/api/v1/projects").await;
    assert_eq!(projects["items"][0]["name"], "durable");
    assert_eq!(app.task(&done["id"]).await, done, "finished work is untouched");
    let resumed = app.wait_for_status(&running["id"], "done").await;
    assert_eq!(resumed["attempt"], 2);
    let recovered = app.wait_for_status(&queued["id"], "done").await;
    assert_eq!(recovered["attempt"], 2, "a crashed running attempt is superseded");
    assert_eq!(app.task(&todo["id"]).await["status"], "todo");
    assert_eq!(app.task_count().await, 4);
    app.stop().await;
}

#[tokio::test]
async fn llm_budget_spend_is_stored_in_surrealdb() {
    use vapora_llm_router::budget_store::{BudgetRecord, BudgetStore};
    let dir = tempfile::tempdir().unwrap();
    let url = format!("surrealkv://{}", dir.path().join("db").display());
    let records = vec![
        BudgetRecord {
            key: "role:developer".into(),
            period_start: "2026-11-21T00:00:00Z".parse().unwrap(),
            spent_nanos: 1_234_567,
        },
        BudgetRecord {
            key: "api_key:team-a".into(),
            period_start: "2026-11-16T00:00:00Z".parse().unwrap(),
            spent_nanos: 42,
        },
    ];
    {
        let db = open_store_when_unlocked(&url).await;
        db.save(&records).await.unwrap();
        let mut updated = records.clone();
        updated[0].spent_nanos = 2_000_000;
        db.save(&updated).await.unwrap();
    }
    let db = open_store_when_unlocked(&url).await;
    let mut loaded = db.load().await.unwrap();
    loaded.sort_by(|a, b| a.key.cmp(&b.key));
    assert_eq!(loaded.len(), 2);
    assert_eq!(loaded[0], records[1]);
    assert_eq!(loaded[1].spent_nanos, 2_000_000, "an upsert, not a second row");
    assert_eq!(loaded[1].period_start, records[0].period_start);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_running_tasks_finish_within_the_grace_period() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("surrealkv://{}", dir.path().join("db").display());
    // About a second of streaming, well inside a 10 s grace period.
    let script = Script {
        chunks: (0..20).map(|i| format!("w{i} ")).collect(),
        chunk_delay: std::time::Duration::from_millis(50),
        ..Script::default()
    };
    let llm = FakeProvider::start(script).await;
    let mut settings = test_settings(&llm);
    settings.database_url = url.clone();
    settings.shutdown_grace = std::time::Duration::from_secs(10);
    let app = spawn_app_with(llm, settings).await;
    let project = app.create_project("p").await;
    let task = app.create_task(&project["id"], json!({})).await;
    app.wait_for_status(&task["id"], "running").await;
    let llm = app.stop().await; // returns once the running task has finished
    assert_eq!(llm.completed_streams(), 1, "the LLM call ran to its end");
    assert_eq!(llm.dropped_streams(), 0);

    let db = open_store_when_unlocked(&url).await;
    let id: TaskId = task["id"].as_str().unwrap().parse().unwrap();
    let stored = db.get_task(id).await.unwrap().unwrap().task;
    assert_eq!((stored.status, stored.attempt), (TaskStatus::Done, 1));
    assert!(stored.result.unwrap().output.starts_with("w0 w1"));
}
