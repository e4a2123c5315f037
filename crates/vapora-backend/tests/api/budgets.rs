//! `GET /api/v1/budgets`: what the results cost per role, within the key's
//! reach.

use reqwest::StatusCode;
use serde_json::json;

use crate::support::spawn_app;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spend_per_role_counts_the_results_within_the_keys_reach() {
    let app = spawn_app().await;
    let mine = app.create_project("mine").await;
    let other = app.create_project("other").await;
    for (project, role) in [
        (&mine, "developer"),
        (&mine, "developer"),
        (&mine, "tester"),
        (&other, "developer"),
    ] {
        let task = app.create_task(&project["id"], json!({ "role": role })).await;
        app.wait_for_status(&task["id"], "done").await;
    }

    let (status, all) = app.get("/api/v1/budgets").await;
    assert_eq!(status, StatusCode::OK, "{all}");
    let tasks_of = |report: &serde_json::Value, role: &str| {
        report["spend"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["role"] == role)
            .map(|s| s["tasks"].as_u64().unwrap())
    };
    assert_eq!(
        (tasks_of(&all, "developer"), tasks_of(&all, "tester")),
        (Some(3), Some(1))
    );
    let developer = all["spend"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["role"] == "developer")
        .unwrap();
    // The fake model reports 10 tokens in and 3 out per call.
    assert_eq!(
        (developer["tokens_in"].as_u64(), developer["tokens_out"].as_u64()),
        (Some(30), Some(9))
    );
    assert!(developer["cost_usd"].as_f64().unwrap() > 0.0, "{developer}");

    let (_, one) = app
        .get(&format!(
            "/api/v1/budgets?project_id={}",
            mine["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(tasks_of(&one, "developer"), Some(2));

    let (key, _) = app.issue_key("member", &[&other["id"]]).await;
    let (status, scoped) = app.api_as(&key).get("/api/v1/budgets").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (tasks_of(&scoped, "developer"), tasks_of(&scoped, "tester")),
        (Some(1), None)
    );
    assert_eq!(
        scoped["budgets"],
        json!([]),
        "budgets span every project: admins only"
    );

    let unknown = vapora_shared::ProjectId::new();
    let (status, body) = app.get(&format!("/api/v1/budgets?project_id={unknown}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    app.stop().await;
}
