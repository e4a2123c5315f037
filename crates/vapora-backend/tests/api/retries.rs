//! Time on a task: `run_at` (not before), and automatic retries of failed
//! attempts up to `max_attempts`, after a backoff that doubles.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;
use vapora_llm_router::testing::Script;

use crate::support::spawn_app;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_attempt_is_retried_by_itself_after_a_doubling_backoff() {
    let app = spawn_app().await;
    let project = app.create_project("p").await;
    // The first two calls fail (a 400 is not retried by the router), the third answers.
    app.llm.push(Script::status(400));
    app.llm.push(Script::status(400));
    let started = Instant::now();
    let task = app
        .create_task(
            &project["id"],
            json!({ "max_attempts": 3, "retry_backoff_secs": 1 }),
        )
        .await;
    let done = app.wait_for_status(&task["id"], "done").await;
    let took = started.elapsed();
    assert_eq!(done["attempt"], 3, "{done}");
    assert!(
        took >= Duration::from_secs(3),
        "backoffs of 1 s then 2 s, done after {took:?}"
    );
    assert_eq!(app.llm.request_count(), 3);

    let (_, history) = app
        .get(&format!("/api/v1/tasks/{}/history", task["id"].as_str().unwrap()))
        .await;
    let moves: Vec<(String, u64)> = history["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["to_status"].as_str().unwrap().to_owned(),
                t["attempt"].as_u64().unwrap(),
            )
        })
        .collect();
    let failed: Vec<u64> = moves
        .iter()
        .filter(|(s, _)| s == "failed")
        .map(|(_, a)| *a)
        .collect();
    assert_eq!(failed, [1, 2], "each failed attempt is in the history: {moves:?}");
    assert_eq!(
        moves.iter().filter(|(s, _)| s == "waiting").count(),
        2,
        "{moves:?}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_stop_at_max_attempts() {
    let app = spawn_app().await;
    let project = app.create_project("p").await;
    app.llm.set_default(Script::status(400));
    let task = app
        .create_task(
            &project["id"],
            json!({ "max_attempts": 2, "retry_backoff_secs": 0 }),
        )
        .await;
    let mut failed = app.wait_for_status(&task["id"], "failed").await;
    while failed["attempt"] != 2 {
        failed = app.wait_for_status(&task["id"], "failed").await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let last = app.task(&task["id"]).await;
    assert_eq!(
        (last["status"].as_str(), last["attempt"].as_u64()),
        (Some("failed"), Some(2)),
        "{last}"
    );
    assert_eq!(app.llm.request_count(), 2);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_waits_for_its_run_at() {
    let app = spawn_app().await;
    let project = app.create_project("p").await;
    let run_at = chrono::Utc::now() + chrono::Duration::seconds(2);
    let task = app
        .create_task(&project["id"], json!({ "run_at": run_at.to_rfc3339() }))
        .await;
    assert_eq!(task["status"], "waiting", "{task}");
    let done = app.wait_for_status(&task["id"], "done").await;
    let started: chrono::DateTime<chrono::Utc> = serde_json::from_value(done["started_at"].clone()).unwrap();
    assert!(
        started >= run_at,
        "started at {started}, before its run_at {run_at}"
    );
    app.stop().await;
}

#[tokio::test]
async fn out_of_range_retry_settings_are_422() {
    let app = spawn_app().await;
    let project = app.create_project("p").await;
    for bad in [
        json!({ "max_attempts": 0 }),
        json!({ "max_attempts": 21 }),
        json!({ "retry_backoff_secs": 3601 }),
    ] {
        let (status, body) = app.try_create_task(&project["id"], bad.clone()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {body}");
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_sets_the_retry_policy_of_its_tasks_that_ask_for_none() {
    let dir = tempfile::tempdir().unwrap();
    let roles = dir.path().join("roles.toml");
    let shipped =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../config/roles.toml")).unwrap();
    let tester = "[roles.tester]\n";
    assert!(shipped.contains(tester));
    let with_policy = shipped.replace(
        tester,
        "[roles.tester]\nmax_attempts = 3\nretry_backoff_secs = 0\n",
    );
    std::fs::write(&roles, with_policy).unwrap();
    let llm = vapora_llm_router::testing::FakeProvider::start(Script::status(400)).await;
    let mut settings = crate::support::test_settings(&llm);
    settings.roles_file = Some(roles);
    let app = crate::support::spawn_app_with(llm, settings).await;
    let project = app.create_project("p").await;

    let by_role = app.create_task(&project["id"], json!({ "role": "tester" })).await;
    assert_eq!(
        (
            by_role["max_attempts"].as_u64(),
            by_role["retry_backoff_secs"].as_u64()
        ),
        (Some(3), Some(0))
    );
    let own = app
        .create_task(&project["id"], json!({ "role": "tester", "max_attempts": 1 }))
        .await;
    assert_eq!(own["max_attempts"], 1, "the task's own policy wins");
    let other_role = app
        .create_task(&project["id"], json!({ "role": "developer" }))
        .await;
    assert_eq!(other_role["max_attempts"], 1, "roles without a policy: no retry");

    let mut last = app.wait_for_status(&by_role["id"], "failed").await;
    while last["attempt"] != 3 {
        last = app.wait_for_status(&by_role["id"], "failed").await;
    }
    app.wait_for_status(&own["id"], "failed").await;
    let (_, history) = app
        .get(&format!(
            "/api/v1/tasks/{}/history",
            by_role["id"].as_str().unwrap()
        ))
        .await;
    let failures = history["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["to_status"] == "failed")
        .count();
    assert_eq!(failures, 3, "the history shows each attempt's failure: {history}");
    app.stop().await;
}
