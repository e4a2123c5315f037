//! Task dependencies: a task waits for the tasks it depends on, runs with
//! their results in its prompt, and follows its policy when one fails.

use reqwest::StatusCode;
use serde_json::{Value, json};
use vapora_llm_router::testing::Script;

use crate::support::{TestApp, spawn_app};

async fn todo(app: &TestApp, project: &Value, title: &str) -> Value {
    app.create_task(&project["id"], json!({ "title": title, "dispatch": false }))
        .await
}

async fn depending_on(app: &TestApp, project: &Value, title: &str, deps: &[&Value], extra: Value) -> Value {
    let ids: Vec<&Value> = deps.iter().map(|d| &d["id"]).collect();
    let mut body = json!({ "title": title, "depends_on": ids });
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    app.create_task(&project["id"], body).await
}

async fn start(app: &TestApp, task: &Value) {
    let id = task["id"].as_str().unwrap();
    let (status, body) = app
        .patch(&format!("/api/v1/tasks/{id}"), &json!({ "status": "queued" }))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// The prompt the model got for the task titled `title`.
fn prompt_of(app: &TestApp, title: &str) -> String {
    app.llm
        .requests()
        .iter()
        .map(|r| r["messages"][1]["content"].as_str().unwrap().to_owned())
        .find(|p| p.starts_with(&format!("Task: {title}")))
        .unwrap_or_else(|| panic!("no model call for {title}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_waits_for_its_dependencies_and_runs_with_their_results() {
    let app = spawn_app().await;
    let project = app.create_project("p").await;
    let design = todo(&app, &project, "Design").await;
    let tests = todo(&app, &project, "Plan tests").await;
    let build = depending_on(&app, &project, "Build", &[&design, &tests], json!({})).await;
    assert_eq!(build["status"], "waiting");
    let mut waiting_on: Vec<&str> = build["waiting_on"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    waiting_on.sort();
    let mut expected = vec![design["id"].as_str().unwrap(), tests["id"].as_str().unwrap()];
    expected.sort();
    assert_eq!(waiting_on, expected);

    app.llm.set_default(Script::text(&["the design"]));
    start(&app, &design).await;
    app.wait_for_status(&design["id"], "done").await;
    // One of two: still waiting, on the other only.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let still = app.task(&build["id"]).await;
    assert_eq!(still["status"], "waiting", "{still}");
    assert_eq!(still["waiting_on"], json!([tests["id"]]));

    app.llm.set_default(Script::text(&["the test plan"]));
    start(&app, &tests).await;
    let done = app.wait_for_status(&build["id"], "done").await;
    assert_eq!(done["waiting_on"], json!([]));
    assert_eq!(done["upstream"].as_array().unwrap().len(), 2);
    let prompt = prompt_of(&app, "Build");
    assert!(
        prompt.contains("the design") && prompt.contains("the test plan"),
        "the dependent's prompt carries both results: {prompt}"
    );
    assert!(
        prompt.contains("Result of the developer task \"Design\""),
        "{prompt}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_failure_fails_its_dependents_in_turn_under_the_fail_policy() {
    let app = spawn_app().await;
    let project = app.create_project("p").await;
    let first = todo(&app, &project, "First").await;
    let second = depending_on(&app, &project, "Second", &[&first], json!({})).await;
    let third = depending_on(&app, &project, "Third", &[&second], json!({})).await;
    app.llm.set_default(Script::status(400));
    start(&app, &first).await;
    app.wait_for_status(&first["id"], "failed").await;
    for task in [&second, &third] {
        let failed = app.wait_for_status(&task["id"], "failed").await;
        let error = failed["error"].as_str().unwrap();
        assert!(error.starts_with("upstream_failed:"), "{error}");
    }
    // Retrying a task whose failed dependency is not retried is refused.
    let (status, body) = app.retry(&second["id"]).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(app.llm.request_count(), 1, "only the first task called the model");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_the_wait_policy_a_dependent_runs_once_its_failed_dependency_is_retried() {
    let app = spawn_app().await;
    let project = app.create_project("p").await;
    let first = todo(&app, &project, "Flaky").await;
    let second = depending_on(
        &app,
        &project,
        "Patient",
        &[&first],
        json!({ "on_upstream_failure": "wait" }),
    )
    .await;
    app.llm.set_default(Script::status(400));
    start(&app, &first).await;
    app.wait_for_status(&first["id"], "failed").await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(app.task(&second["id"]).await["status"], "waiting");

    app.llm.set_default(Script::text(&["fixed"]));
    let (status, body) = app.retry(&first["id"]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let done = app.wait_for_status(&second["id"], "done").await;
    assert_eq!(done["upstream"][0]["output"], "fixed");
    assert!(prompt_of(&app, "Patient").contains("fixed"));
    app.stop().await;
}

#[tokio::test]
async fn unknown_and_foreign_dependencies_are_422_and_nothing_is_stored() {
    let app = spawn_app().await;
    let project = app.create_project("p").await;
    let other = app.create_project("other").await;
    let foreign = todo(&app, &other, "Elsewhere").await;
    let unknown = vapora_shared::TaskId::new().to_string();
    for (deps, code) in [
        (json!([unknown]), "unknown_dependency"),
        (json!([foreign["id"]]), "foreign_dependency"),
        (json!(["not-an-id"]), "invalid_body"),
    ] {
        let (status, body) = app
            .try_create_task(&project["id"], json!({ "title": "Orphan", "depends_on": deps }))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(body["error"]["code"], code, "{body}");
    }
    let (_, listed) = app
        .get(&format!(
            "/api/v1/tasks?project_id={}",
            project["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(listed["items"], json!([]), "nothing was stored");
    app.stop().await;
}

#[tokio::test]
async fn a_todo_task_with_unfinished_dependencies_waits_when_queued_and_can_be_cancelled() {
    let app = spawn_app().await;
    let project = app.create_project("p").await;
    let first = todo(&app, &project, "First").await;
    let later = app
        .create_task(
            &project["id"],
            json!({ "title": "Later", "dispatch": false, "depends_on": [first["id"]] }),
        )
        .await;
    assert_eq!(later["status"], "todo");
    start(&app, &later).await;
    let waiting = app.task(&later["id"]).await;
    assert_eq!(
        (waiting["status"].as_str(), waiting["attempt"].as_u64()),
        (Some("waiting"), Some(0))
    );
    let (status, body) = app.cancel(&later["id"]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "cancelled");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_lost_between_two_writes_is_made_by_the_sweep() {
    let app = spawn_app().await;
    let project = app.create_project("p").await;
    let first = todo(&app, &project, "First").await;
    let second = depending_on(&app, &project, "Second", &[&first], json!({})).await;
    assert_eq!(second["status"], "waiting");

    // The first task is stored done behind the service's back, as if the
    // process that finished it died before releasing what waits on it.
    let db = &app.state.db;
    let id: vapora_shared::TaskId = serde_json::from_value(first["id"].clone()).unwrap();
    let stored = db.get_task(id).await.unwrap().unwrap();
    let mut done = stored.task.clone();
    done.status = vapora_shared::TaskStatus::Done;
    assert!(
        db.replace_task(&vapora_backend::storage::TaskWrite::from_stored(&stored, done))
            .await
            .unwrap()
    );

    let released = app.wait_for_status(&second["id"], "done").await;
    assert_eq!(released["upstream"][0]["task_id"], first["id"]);
    app.stop().await;
}
