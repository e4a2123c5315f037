//! `Idempotency-Key` on creates: one task however often (and however
//! concurrently) a request is repeated, across a restart too; the same key
//! with another body is refused.

use reqwest::StatusCode;
use serde_json::{Value, json};
use vapora_llm_router::testing::{FakeProvider, Script};

use crate::support::{TestApp, decode, spawn_app, spawn_app_with, test_settings};

async fn post_with_key(
    app: &TestApp,
    client: &reqwest::Client,
    path: &str,
    key: &str,
    body: &Value,
) -> (StatusCode, Value, bool) {
    let response = client
        .post(app.url(path))
        .header("idempotency-key", key)
        .json(body)
        .send()
        .await
        .unwrap();
    let replayed = response.headers().get("idempotent-replayed").is_some();
    let (status, body) = decode(response).await;
    (status, body, replayed)
}

fn task_body(project: &Value) -> Value {
    json!({ "project_id": project, "title": "once", "role": "developer", "dispatch": false })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_creates_with_one_key_make_one_task() {
    let app = spawn_app().await;
    let project = app.create_project("p").await["id"].clone();
    let body = task_body(&project);
    let answers = futures::future::join_all(
        (0..50).map(|_| post_with_key(&app, &app.http, "/api/v1/tasks", "create-once-1", &body)),
    )
    .await;
    let first_id = answers[0].1["id"].clone();
    assert!(first_id.is_string(), "{:?}", answers[0]);
    for (status, task, _) in &answers {
        assert_eq!(*status, StatusCode::CREATED, "{task}");
        assert_eq!(task["id"], first_id, "every answer names the one task");
    }
    assert_eq!(
        answers.iter().filter(|(_, _, replayed)| !replayed).count(),
        1,
        "one request ran"
    );
    assert_eq!(app.task_count().await, 1);

    // The same key with another body is refused, and creates nothing.
    let mut other = body.clone();
    other["title"] = json!("twice");
    let (status, error, _) = post_with_key(&app, &app.http, "/api/v1/tasks", "create-once-1", &other).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
    assert_eq!(error["error"]["code"], "idempotency_key_reused");
    // The same body laid out differently (and with a default spelled out) is the same request.
    let same = json!({ "dispatch": false, "role": "developer", "title": "once", "project_id": project, "priority": "medium" });
    let (status, task, replayed) =
        post_with_key(&app, &app.http, "/api/v1/tasks", "create-once-1", &same).await;
    assert_eq!(
        (status, &task["id"], replayed),
        (StatusCode::CREATED, &first_id, true)
    );

    // Keys belong to their API key: another client's same key is its own.
    let (member, _) = app.issue_key("member", &[&project]).await;
    let member = crate::support::client_with_key(&member);
    let (status, theirs, replayed) =
        post_with_key(&app, &member, "/api/v1/tasks", "create-once-1", &body).await;
    assert_eq!((status, replayed), (StatusCode::CREATED, false), "{theirs}");
    assert_ne!(theirs["id"], first_id);
    assert_eq!(app.task_count().await, 2);

    // Unusable keys are refused before anything runs.
    for bad in ["", &"k".repeat(256), "two words"] {
        let (status, error, _) = post_with_key(&app, &app.http, "/api/v1/tasks", bad, &body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad:?}: {error}");
    }
    assert_eq!(app.task_count().await, 2);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_between_repeats_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let llm = FakeProvider::start(Script::default()).await;
    let mut settings = test_settings(&llm);
    settings.database_url = format!("surrealkv://{}", dir.path().join("db").display());

    let app = spawn_app_with(llm, settings.clone()).await;
    let (status, project, _) = post_with_key(
        &app,
        &app.http,
        "/api/v1/projects",
        "project-1",
        &json!({ "name": "p" }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, task, _) = post_with_key(
        &app,
        &app.http,
        "/api/v1/tasks",
        "task-1",
        &task_body(&project["id"]),
    )
    .await;
    let llm = app.stop().await;

    let app = spawn_app_with(llm, settings).await;
    let (status, again, replayed) = post_with_key(
        &app,
        &app.http,
        "/api/v1/projects",
        "project-1",
        &json!({ "name": "p" }),
    )
    .await;
    assert_eq!((status, replayed), (StatusCode::CREATED, true));
    assert_eq!(again["id"], project["id"]);
    let (status, again, replayed) = post_with_key(
        &app,
        &app.http,
        "/api/v1/tasks",
        "task-1",
        &task_body(&project["id"]),
    )
    .await;
    assert_eq!((status, replayed), (StatusCode::CREATED, true));
    assert_eq!(again, task, "the very same answer");
    assert_eq!(app.task_count().await, 1);
    let (_, projects) = app.get("/api/v1/projects").await;
    assert_eq!(projects["items"].as_array().unwrap().len(), 1);
    app.stop().await;
}

#[tokio::test]
async fn a_failed_create_gives_its_key_back() {
    let app = spawn_app().await;
    let missing = vapora_shared::ProjectId::new().to_string();
    let (status, error, _) =
        post_with_key(&app, &app.http, "/api/v1/tasks", "k", &task_body(&json!(missing))).await;
    assert!(status.is_client_error(), "{error}");
    // Nothing was stored under the key: the same request runs (and fails)
    // again instead of replaying.
    let (again, _, replayed) =
        post_with_key(&app, &app.http, "/api/v1/tasks", "k", &task_body(&json!(missing))).await;
    assert_eq!((again, replayed), (status, false));
    // And the key is free for a request that succeeds.
    let project = app.create_project("p").await["id"].clone();
    let (status, _, replayed) =
        post_with_key(&app, &app.http, "/api/v1/tasks", "k", &task_body(&project)).await;
    assert_eq!((status, replayed), (StatusCode::CREATED, false));
    app.stop().await;
}
