//! Bad input gets a clear 4xx JSON error and changes nothing stored.

use reqwest::StatusCode;
use reqwest::header::CONTENT_TYPE;
use serde_json::{Value, json};

use crate::support::{TestApp, decode, spawn_app};

/// Sends raw bytes with a content type.
async fn send_raw(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    content_type: &str,
    body: Vec<u8>,
) -> (StatusCode, Value) {
    let response = app
        .http
        .request(method, app.url(path))
        .header(CONTENT_TYPE, content_type)
        .body(body)
        .send()
        .await
        .expect("request sent");
    decode(response).await
}

fn assert_error(status: StatusCode, body: &Value, expected_status: u16, expected_code: &str) {
    assert_eq!(status.as_u16(), expected_status, "{body}");
    assert_eq!(body["error"]["code"], expected_code, "{body}");
    assert!(
        body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
}

#[tokio::test]
async fn bad_task_bodies_are_rejected_and_store_nothing() {
    let app = spawn_app().await;
    let project = app.create_project("p").await;
    let pid = project["id"].as_str().unwrap();
    let valid = json!({ "project_id": pid, "title": "t", "role": "developer", "priority": "high" });
    let with = |field: &str, value: Value| {
        let mut body = valid.clone();
        body[field] = value;
        body.to_string().into_bytes()
    };
    let post = reqwest::Method::POST;
    let json_ct = "application/json";
    let cases: Vec<(&str, &str, Vec<u8>, u16, &str)> = vec![
        (
            "malformed JSON",
            json_ct,
            b"{\"title\": ".to_vec(),
            400,
            "malformed_json",
        ),
        ("not an object", json_ct, b"[1, 2]".to_vec(), 422, "invalid_body"),
        (
            "priority of the wrong type",
            json_ct,
            with("priority", json!(5)),
            422,
            "invalid_body",
        ),
        (
            "unknown priority",
            json_ct,
            with("priority", json!("urgent")),
            422,
            "invalid_body",
        ),
        (
            "title of the wrong type",
            json_ct,
            with("title", json!(["x"])),
            422,
            "invalid_body",
        ),
        (
            "missing role",
            json_ct,
            json!({ "project_id": pid, "title": "t" })
                .to_string()
                .into_bytes(),
            422,
            "invalid_body",
        ),
        (
            "malformed role",
            json_ct,
            with("role", json!("Not A Role")),
            422,
            "invalid_body",
        ),
        (
            "unknown role",
            json_ct,
            with("role", json!("astronaut")),
            422,
            "unknown_role",
        ),
        (
            "empty title",
            json_ct,
            with("title", json!("   ")),
            422,
            "validation_failed",
        ),
        (
            "long title",
            json_ct,
            with("title", json!("x".repeat(600))),
            422,
            "validation_failed",
        ),
        (
            "10 MB title",
            json_ct,
            with("title", json!("x".repeat(10 * 1024 * 1024))),
            413,
            "payload_too_large",
        ),
        (
            "unknown field",
            json_ct,
            with("colour", json!("red")),
            422,
            "invalid_body",
        ),
        (
            "malformed project id",
            json_ct,
            with("project_id", json!("nope")),
            422,
            "invalid_body",
        ),
        (
            "unknown project",
            json_ct,
            with("project_id", json!(uuid_v7())),
            422,
            "unknown_project",
        ),
        (
            "wrong content type",
            "text/plain",
            valid.to_string().into_bytes(),
            415,
            "unsupported_media_type",
        ),
    ];
    for (what, content_type, body, status, code) in cases {
        let (got, response) = send_raw(&app, post.clone(), "/api/v1/tasks", content_type, body).await;
        assert_eq!(got.as_u16(), status, "{what}: {response}");
        assert_eq!(response["error"]["code"], code, "{what}: {response}");
        assert!(
            response.to_string().len() < 2_000,
            "{what}: the error must not echo a huge input"
        );
    }
    assert_eq!(app.task_count().await, 0, "no bad request stored anything");
    assert_eq!(app.state.task_queue.queue.lock().await.len(), 0);
    app.stop().await;
}

#[tokio::test]
async fn any_body_over_one_mebibyte_is_413() {
    let app = spawn_app().await;
    let big = json!({ "name": "x".repeat(1024 * 1024 + 1) })
        .to_string()
        .into_bytes();
    let (status, body) = send_raw(
        &app,
        reqwest::Method::POST,
        "/api/v1/projects",
        "application/json",
        big,
    )
    .await;
    assert_error(status, &body, 413, "payload_too_large");
    let (_, projects) = app.get("/api/v1/projects").await;
    assert_eq!(projects["items"], json!([]));
    app.stop().await;
}

#[tokio::test]
async fn unknown_and_malformed_ids_and_routes() {
    let app = spawn_app().await;
    let missing = uuid_v7();
    let (status, body) = app.get(&format!("/api/v1/tasks/{missing}")).await;
    assert_error(status, &body, 404, "not_found");
    let (status, body) = app.get(&format!("/api/v1/projects/{missing}/board")).await;
    assert_error(status, &body, 404, "not_found");
    let (status, body) = app
        .post(&format!("/api/v1/tasks/{missing}/cancel"), &json!({}))
        .await;
    assert_error(status, &body, 404, "not_found");
    let (status, body) = app
        .patch(&format!("/api/v1/tasks/{missing}"), &json!({ "title": "x" }))
        .await;
    assert_error(status, &body, 404, "not_found");
    let (status, body) = app.get("/api/v1/tasks/not-a-uuid").await;
    assert_error(status, &body, 400, "invalid_id");
    let (status, body) = app.get("/api/v1/agents/nobody-1").await;
    assert_error(status, &body, 404, "not_found");
    let (status, body) = app.get("/api/v1/nothing-here").await;
    assert_error(status, &body, 404, "not_found");
    let response = app.http.delete(app.url("/api/v1/tasks")).send().await.unwrap();
    let (status, body) = decode(response).await;
    assert_error(status, &body, 405, "method_not_allowed");
    app.stop().await;
}

#[tokio::test]
async fn bad_queries_and_patches_change_nothing() {
    let app = spawn_app().await;
    let project = app.create_project("p").await;
    let task = app
        .create_task(&project["id"], json!({ "dispatch": false }))
        .await;
    let path = format!("/api/v1/tasks/{}", task["id"].as_str().unwrap());

    for query in [
        "status=bogus",
        "limit=0",
        "limit=abc",
        "limit=100000",
        "cursor=zzz",
        "role=Bad%20Role",
        "color=red",
    ] {
        let (status, body) = app.get(&format!("/api/v1/tasks?{query}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        assert!(body["error"]["code"].is_string(), "{query}: {body}");
    }
    let patches = [
        (json!({ "status": "sleeping" }), 422, "invalid_body"),
        (json!({ "priority": 3 }), 422, "invalid_body"),
        (json!({ "title": "" }), 422, "validation_failed"),
        (json!({ "role": "astronaut" }), 422, "unknown_role"),
        (json!({ "attempt": 99 }), 422, "invalid_body"),
    ];
    for (patch, status, code) in patches {
        let (got, body) = app.patch(&path, &patch).await;
        assert_error(got, &body, status, code);
    }
    assert_eq!(
        app.task(&task["id"]).await,
        task,
        "nothing about the task changed"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_full_queue_answers_503_with_retry_after_and_stores_nothing() {
    let llm = vapora_llm_router::testing::FakeProvider::start(crate::support::slow_script()).await;
    let mut settings = crate::support::test_settings(&llm);
    settings.queue_capacity = 2;
    let app = crate::support::spawn_app_with(llm, settings).await;
    let project = app.create_project("p").await;
    let first = app.create_task(&project["id"], json!({})).await;
    app.wait_for_status(&first["id"], "running").await;
    // The worker is busy: these fill the queue (the one waiting in the
    // dispatcher's hand-off slot still holds its queue place).
    let mut accepted = 1;
    let refused = loop {
        let (status, body) = app.try_create_task(&project["id"], json!({})).await;
        if status == StatusCode::CREATED {
            accepted += 1;
            assert!(accepted <= 4, "the queue never filled up");
            continue;
        }
        break (status, body);
    };
    assert_eq!(refused.0, StatusCode::SERVICE_UNAVAILABLE, "{}", refused.1);
    assert_eq!(refused.1["error"]["code"], "queue_full");
    let response = app
        .http
        .post(app.url("/api/v1/tasks"))
        .json(&json!({
            "project_id": project["id"], "title": "t", "role": "developer"
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(response.headers().get("retry-after").is_some());
    assert_eq!(app.task_count().await, accepted, "refused tasks were not stored");
    app.stop().await;
}

fn uuid_v7() -> String {
    uuid::Uuid::now_v7().to_string()
}
