//! Recurring schedules: once per slot across replicas, the catch-up after
//! a stop that spans slots, workflow runs on a schedule, and what is refused.

use std::collections::BTreeSet;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use vapora_llm_router::testing::{FakeProvider, Script};

use crate::support::{TestApp, spawn_app, spawn_app_with, spawn_replica, test_settings};

async fn schedule(app: &TestApp, body: Value) -> Value {
    let (status, schedule) = app.post("/api/v1/schedules", &body).await;
    assert_eq!(status, StatusCode::CREATED, "{schedule}");
    schedule
}

fn path(schedule: &Value) -> String {
    format!("/api/v1/schedules/{}", schedule["id"].as_str().unwrap())
}

async fn tasks_of(app: &TestApp, project: &Value) -> Vec<Value> {
    let (_, page) = app
        .get(&format!(
            "/api/v1/tasks?project_id={}&limit=500",
            project["id"].as_str().unwrap()
        ))
        .await;
    page["items"].as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schedule_every_second_fires_once_per_slot_across_two_replicas() {
    let a = spawn_app().await;
    let b = spawn_replica(&a).await;
    let project = a.create_project("cron").await;
    let every_second = schedule(
        &a,
        json!({
            "name": "heartbeat",
            "cron": "* * * * * *",
            "task": { "project_id": project["id"], "title": "tick", "role": "developer" },
        }),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    let (status, deleted) = b
        .api()
        .send(reqwest::Method::DELETE, &path(&every_second), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{deleted}");
    tokio::time::sleep(Duration::from_millis(500)).await;

    let tasks = tasks_of(&a, &project).await;
    let seconds: BTreeSet<String> = tasks
        .iter()
        .map(|t| t["created_at"].as_str().unwrap()[..19].to_owned())
        .collect();
    println!(
        "every-second schedule over 10 s on two replicas: {} tasks, fired {} (skipped {})",
        tasks.len(),
        deleted["fired"],
        deleted["skipped"]
    );
    assert!(
        (9..=11).contains(&tasks.len()),
        "10 ±1 slots fired: {}",
        tasks.len()
    );
    assert_eq!(
        seconds.len(),
        tasks.len(),
        "never two tasks in one slot: {seconds:?}"
    );
    assert_eq!(deleted["fired"].as_u64(), Some(tasks.len() as u64));
    assert_eq!(
        tasks_of(&a, &project).await.len(),
        tasks.len(),
        "nothing fires after the delete"
    );

    // Each task names its schedule, and the schedule's tasks can be listed
    // apart from the project's others.
    assert!(
        tasks.iter().all(|t| t["schedule_id"] == every_second["id"]),
        "{tasks:?}"
    );
    let by_hand = a
        .create_task(&project["id"], json!({ "title": "not scheduled" }))
        .await;
    assert!(by_hand["schedule_id"].is_null(), "{by_hand}");
    let (status, page) = b
        .get(&format!(
            "/api/v1/tasks?schedule_id={}&limit=500",
            every_second["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let listed: BTreeSet<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    let made: BTreeSet<&str> = tasks.iter().map(|t| t["id"].as_str().unwrap()).collect();
    assert_eq!(listed, made, "the schedule's tasks, and only those");
    let (status, refused) = a.get("/api/v1/tasks?schedule_id=yesterday").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_that_spans_slots_fires_the_latest_once_and_counts_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let llm = FakeProvider::start(Script::default()).await;
    let mut settings = test_settings(&llm);
    settings.database_url = format!("surrealkv://{}", dir.path().join("db").display());
    let app = spawn_app_with(llm, settings.clone()).await;
    let project = app.create_project("p").await;
    let every_second = schedule(
        &app,
        json!({ "cron": "* * * * * *", "task": { "project_id": project["id"], "title": "t", "role": "developer" } }),
    )
    .await;
    let llm = app.stop().await;
    let stopped = tasks_before_restart(&settings).await;
    tokio::time::sleep(Duration::from_secs(4)).await;

    let app = spawn_app_with(llm, settings).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let (_, now) = app.get(&path(&every_second)).await;
    let tasks = tasks_of(&app, &project).await;
    assert!(
        now["skipped"].as_u64().unwrap() >= 2,
        "the slots of the stop are skipped: {now}"
    );
    assert_eq!(
        tasks.len() as u64,
        now["fired"].as_u64().unwrap(),
        "each fired slot made one task: {now}"
    );
    assert!(
        tasks.len() <= stopped + 2,
        "one catch-up slot and maybe the current one: {now}"
    );
}

/// The tasks stored when the first life stopped (slots fired before it).
async fn tasks_before_restart(settings: &vapora_backend::config::Settings) -> usize {
    let db = crate::support::open_store_when_unlocked(&settings.database_url).await;
    db.tasks_in_status(&vapora_shared::TaskStatus::ALL)
        .await
        .unwrap()
        .len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schedule_can_start_workflow_runs_and_bad_schedules_are_refused() {
    let app = spawn_app().await;
    let project = app.create_project("p").await;
    let runs = schedule(
        &app,
        json!({
            "cron": "* * * * * *",
            "workflow": { "project_id": project["id"], "template": "feature", "inputs": { "feature": "x" } },
        }),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1_600)).await;
    app.api().send(reqwest::Method::DELETE, &path(&runs), None).await;
    let (_, page) = app
        .get(&format!(
            "/api/v1/workflows?project_id={}",
            project["id"].as_str().unwrap()
        ))
        .await;
    assert!(
        !page["items"].as_array().unwrap().is_empty(),
        "a slot started a run"
    );
    let started = page["items"].as_array().unwrap();
    assert!(
        started.iter().all(|r| r["schedule_id"] == runs["id"]),
        "{started:?}"
    );
    let (_, by_schedule) = app
        .get(&format!(
            "/api/v1/workflows?schedule_id={}",
            runs["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(by_schedule["items"].as_array().unwrap().len(), started.len());
    let (_, stage_tasks) = app
        .get(&format!(
            "/api/v1/tasks?schedule_id={}&limit=500",
            runs["id"].as_str().unwrap()
        ))
        .await;
    let stages: usize = started
        .iter()
        .map(|r| r["stages"].as_array().unwrap().len())
        .sum();
    assert_eq!(
        stage_tasks["items"].as_array().unwrap().len(),
        stages,
        "each run's stage tasks name the schedule too"
    );
    let (_, by_another) = app
        .get(&format!(
            "/api/v1/workflows?schedule_id={}",
            vapora_shared::ScheduleId::new()
        ))
        .await;
    assert_eq!(by_another["items"], json!([]), "{by_another}");

    let task = json!({ "project_id": project["id"], "title": "t", "role": "developer" });
    let refused = [
        (json!({ "cron": "every tuesday", "task": task }), "invalid_cron"),
        (json!({ "cron": "* * * * *" }), "validation_failed"),
        (
            json!({ "cron": "* * * * *", "task": task, "workflow": { "project_id": project["id"], "template": "feature" } }),
            "validation_failed",
        ),
        (
            json!({ "cron": "* * * * *", "workflow": { "project_id": project["id"], "template": "nope" } }),
            "unknown_template",
        ),
        (
            json!({ "cron": "* * * * *", "task": { "project_id": project["id"], "title": "t", "role": "astronaut" } }),
            "unknown_role",
        ),
    ];
    for (body, code) in refused {
        let (status, answer) = app.post("/api/v1/schedules", &body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body} -> {answer}");
        assert_eq!(answer["error"]["code"], code, "{answer}");
    }
    let (viewer, _) = app.issue_key("viewer", &[&project["id"]]).await;
    let (status, _) = app
        .api_as(&viewer)
        .post("/api/v1/schedules", &json!({ "cron": "* * * * *", "task": task }))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (_, left) = app.get("/api/v1/schedules").await;
    assert_eq!(left, json!([]), "nothing refused was stored");
}
