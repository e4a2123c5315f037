//! Every answer carries an `x-request-id`: the client's own, or a fresh one.

use reqwest::StatusCode;

use crate::support::spawn_app;

#[tokio::test]
async fn every_answer_has_a_request_id_and_a_clients_own_is_kept() {
    let app = spawn_app().await;
    let anonymous = reqwest::Client::new();
    let mut seen = std::collections::HashSet::new();
    for (path, status) in [
        ("/health", StatusCode::OK),
        ("/api/v1/tasks", StatusCode::UNAUTHORIZED),
        ("/nowhere", StatusCode::NOT_FOUND),
    ] {
        let response = anonymous.get(app.url(path)).send().await.unwrap();
        assert_eq!(response.status(), status, "{path}");
        let id = response.headers()["x-request-id"].to_str().unwrap().to_owned();
        assert!(uuid::Uuid::parse_str(&id).is_ok(), "{path}: {id}");
        assert!(seen.insert(id), "ids are not reused");
    }
    let response = anonymous
        .get(app.url("/health"))
        .header("x-request-id", "client-chosen-42")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "client-chosen-42");
    app.stop().await;
}
