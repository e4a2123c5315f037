//! Workflow runs of the shipped `feature` template and of templates made
//! over the API, against a fake model that answers each stage by its
//! prompt: results handed on, parallel stages, approval and rejection,
//! cancelling a run, retrying a failed stage, and what is refused.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use vapora_llm_router::testing::Script;

use crate::support::{TestApp, spawn_app};

/// The user prompt of a model request.
fn prompt(request: &Value) -> &str {
    request["messages"][1]["content"].as_str().unwrap_or_default()
}

/// Every prompt the model got for tasks whose title starts with `title`.
fn prompts_of(app: &TestApp, title: &str) -> Vec<String> {
    app.llm
        .requests()
        .iter()
        .map(|r| prompt(r).to_owned())
        .filter(|p| p.starts_with(&format!("Task: {title}")))
        .collect()
}

/// Answers the `feature` template's stages: each with a marker of its own,
/// the two middle ones slowly enough to be seen running together; a
/// rejected review's next attempt answers differently.
fn answer_feature_stages(app: &TestApp) {
    app.llm.respond_with(|request| {
        let prompt = prompt(request);
        let text = |t: &str| Some(Script::text(&[t]));
        let slow = |t: &str| {
            Some(Script {
                chunks: vec![t.to_owned()],
                chunk_delay: Duration::from_millis(400),
                ..Script::default()
            })
        };
        if prompt.starts_with("Task: Design:") {
            text("DESIGN-OUT")
        } else if prompt.starts_with("Task: Implement:") {
            slow("IMPL-OUT")
        } else if prompt.starts_with("Task: Tests:") {
            slow("TESTS-OUT")
        } else if prompt.starts_with("Task: Review:") && prompt.contains("Check the error paths") {
            text("REVIEW-2")
        } else if prompt.starts_with("Task: Review:") {
            text("REVIEW-1")
        } else {
            None
        }
    });
}

async fn start_run(app: &TestApp, project: &Value, template: &str, inputs: Value) -> Value {
    let (status, run) = app
        .post(
            "/api/v1/workflows",
            &json!({ "project_id": project["id"], "template": template, "inputs": inputs }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{run}");
    run
}

fn stage<'a>(run: &'a Value, name: &str) -> &'a Value {
    run["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no stage {name} in {run}"))
}

async fn run_of(app: &TestApp, run: &Value) -> Value {
    let (status, body) = app
        .get(&format!("/api/v1/workflows/{}", run["id"].as_str().unwrap()))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// Polls the run until its status is `status` (panics after 20 s).
async fn wait_for_run(app: &TestApp, run: &Value, status: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let now = run_of(app, run).await;
        if now["status"] == status {
            return now;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "run never reached {status}: {now}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn time(task: &Value, field: &str) -> chrono::DateTime<chrono::Utc> {
    task[field]
        .as_str()
        .unwrap_or_else(|| panic!("no {field}: {task}"))
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_feature_template_hands_results_on_runs_two_stages_together_and_waits_for_approval() {
    let app = spawn_app().await;
    answer_feature_stages(&app);
    let project = app.create_project("p").await;
    let mut events = app
        .websocket(&format!("?project_id={}", project["id"].as_str().unwrap()))
        .await;
    let run = start_run(
        &app,
        &project,
        "feature",
        json!({ "feature": "login with passkeys" }),
    )
    .await;
    assert_eq!(run["status"], "running");
    assert_eq!(run["template"], "feature");
    assert_eq!(stage(&run, "design")["status"], "queued");
    for waiting in ["implement", "test", "review"] {
        assert_eq!(stage(&run, waiting)["status"], "waiting", "{run}");
    }

    let review_id = stage(&run, "review")["task_id"].clone();
    let in_review = app.wait_for_status(&review_id, "review").await;
    let run_now = run_of(&app, &run).await;
    assert_eq!(run_now["status"], "awaiting_approval", "{run_now}");

    // The architect's output reached both middle stages' prompts, once each.
    for title in ["Implement:", "Tests:"] {
        let prompts = prompts_of(&app, title);
        assert_eq!(prompts.len(), 1, "{title} ran once");
        assert_eq!(prompts[0].matches("DESIGN-OUT").count(), 1, "{}", prompts[0]);
        assert!(prompts[0].contains("login with passkeys"), "{}", prompts[0]);
    }
    // The two ran at the same time, and the reviewer only after both.
    let implement = app.task(&stage(&run, "implement")["task_id"]).await;
    let test = app.task(&stage(&run, "test")["task_id"]).await;
    assert!(
        time(&implement, "started_at") < time(&test, "finished_at")
            && time(&test, "started_at") < time(&implement, "finished_at"),
        "the developer and tester stages overlap: {implement} {test}"
    );
    assert!(time(&in_review, "started_at") > time(&implement, "finished_at"));
    assert!(time(&in_review, "started_at") > time(&test, "finished_at"));
    let review_prompt = &prompts_of(&app, "Review:")[0];
    assert!(
        review_prompt.contains("IMPL-OUT") && review_prompt.contains("TESTS-OUT"),
        "{review_prompt}"
    );

    // A rejection runs the review again with the comment and its first answer.
    let review_path = format!("/api/v1/tasks/{}", review_id.as_str().unwrap());
    let (status, body) = app
        .post(
            &format!("{review_path}/reject"),
            &json!({ "comment": "Check the error paths" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let second = app.wait_for_status(&review_id, "review").await;
    assert_eq!(second["result"]["output"], "REVIEW-2");
    let prompts = prompts_of(&app, "Review:");
    assert_eq!(prompts.len(), 2);
    assert!(prompts[1].contains("Check the error paths") && prompts[1].contains("REVIEW-1"));

    let (status, body) = app.post(&format!("{review_path}/approve"), &json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let finished = wait_for_run(&app, &run, "done").await;
    assert!(finished["finished_at"].is_string());
    assert_eq!(app.llm.request_count(), 5, "four stages, the review twice");

    let seen = events.events_until(|e| e["type"] == "workflow.finished").await;
    let of_run = |kind: &str| {
        seen.iter()
            .filter(|e| e["type"] == kind && e["data"]["id"] == run["id"])
            .count()
    };
    assert_eq!(of_run("workflow.created"), 1);
    assert!(of_run("workflow.updated") >= 4, "{seen:?}");
    assert_eq!(of_run("workflow.finished"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_run_cancels_its_unfinished_stages() {
    let app = spawn_app().await;
    app.llm.set_default(crate::support::slow_script());
    let project = app.create_project("p").await;
    let run = start_run(&app, &project, "feature", json!({ "feature": "x" })).await;
    app.wait_for_status(&stage(&run, "design")["task_id"], "running")
        .await;

    let path = format!("/api/v1/workflows/{}/cancel", run["id"].as_str().unwrap());
    let (status, cancelled) = app.post(&path, &json!({})).await;
    assert_eq!(status, StatusCode::OK, "{cancelled}");
    assert_eq!(cancelled["status"], "cancelled");
    for s in cancelled["stages"].as_array().unwrap() {
        assert_eq!(s["status"], "cancelled", "{cancelled}");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(app.llm.request_count(), 1, "no stage after the first started");
    let (status, again) = app.post(&path, &json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{again}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retrying_a_failed_stage_continues_the_run() {
    let app = spawn_app().await;
    answer_feature_stages(&app);
    let project = app.create_project("p").await;
    // The design's first call fails for good.
    app.llm.respond_with(|request| {
        prompt(request)
            .starts_with("Task: Design:")
            .then(|| Script::status(400))
    });
    let run = start_run(&app, &project, "feature", json!({ "feature": "x" })).await;
    let design = stage(&run, "design")["task_id"].clone();
    app.wait_for_status(&design, "failed").await;
    let failed = wait_for_run(&app, &run, "failed").await;
    assert_eq!(
        stage(&failed, "implement")["status"],
        "waiting",
        "the default policy waits"
    );

    answer_feature_stages(&app);
    let path = format!(
        "/api/v1/workflows/{}/stages/design/retry",
        run["id"].as_str().unwrap()
    );
    let (status, body) = app.post(&path, &json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "running", "{body}");
    app.wait_for_status(&stage(&run, "review")["task_id"], "review")
        .await;
    let (status, body) = app.post(&path, &json!({})).await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "a done stage is not retried: {body}"
    );
    let unknown = format!(
        "/api/v1/workflows/{}/stages/nope/retry",
        run["id"].as_str().unwrap()
    );
    assert_eq!(app.post(&unknown, &json!({})).await.0, StatusCode::NOT_FOUND);
}

/// A two-stage template made over the API, its second stage with `policy`.
async fn two_stage_template(app: &TestApp, name: &str, policy: &str) {
    let (status, body) = app
        .post(
            "/api/v1/workflow-templates",
            &json!({
                "name": name,
                "stages": [
                    { "name": "first", "role": "developer", "prompt": "First." },
                    { "name": "second", "role": "tester", "prompt": "Check {{ stages.first.output }}",
                      "depends_on": ["first"], "on_upstream_failure": policy },
                ],
            }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_the_fail_policy_a_stage_fails_with_its_upstream_and_is_retried_with_it() {
    let app = spawn_app().await;
    two_stage_template(&app, "strict", "fail").await;
    let project = app.create_project("p").await;
    app.llm.push(Script::status(400));
    let run = start_run(&app, &project, "strict", json!({})).await;
    let second = stage(&run, "second")["task_id"].clone();
    let failed = app.wait_for_status(&second, "failed").await;
    assert!(
        failed["error"].as_str().unwrap().starts_with("upstream_failed"),
        "{failed}"
    );
    wait_for_run(&app, &run, "failed").await;

    app.llm.set_default(Script::text(&["FIRST-OUT"]));
    let path = format!(
        "/api/v1/workflows/{}/stages/first/retry",
        run["id"].as_str().unwrap()
    );
    let (status, body) = app.post(&path, &json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    wait_for_run(&app, &run, "done").await;
    let prompts = prompts_of(&app, "second");
    assert_eq!(prompts.len(), 1);
    assert!(prompts[0].contains("Check FIRST-OUT"), "{}", prompts[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_templates_and_runs_are_refused_and_nothing_is_stored() {
    let app = spawn_app().await;
    let project = app.create_project("p").await;
    let cycle = json!({
        "name": "loop",
        "stages": [
            { "name": "a", "role": "developer", "prompt": "x", "depends_on": ["b"] },
            { "name": "b", "role": "developer", "prompt": "x", "depends_on": ["a"] },
        ],
    });
    let (status, body) = app.post("/api/v1/workflow-templates", &cycle).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("cycle"),
        "{body}"
    );
    assert_eq!(
        app.get("/api/v1/workflow-templates/loop").await.0,
        StatusCode::NOT_FOUND
    );

    let unknown_role =
        json!({ "name": "r", "stages": [{ "name": "a", "role": "astronaut", "prompt": "x" }] });
    let (status, body) = app.post("/api/v1/workflow-templates", &unknown_role).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("unknown_role"))
    );
    let shadowing =
        json!({ "name": "feature", "stages": [{ "name": "a", "role": "developer", "prompt": "x" }] });
    assert_eq!(
        app.post("/api/v1/workflow-templates", &shadowing).await.0,
        StatusCode::CONFLICT
    );
    let (member, _) = app.issue_key("member", &[&project["id"]]).await;
    let as_member = app.api_as(&member);
    let (status, _) = as_member
        .post(
            "/api/v1/workflow-templates",
            &json!({ "name": "m", "stages": [{ "name": "a", "role": "developer", "prompt": "x" }] }),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, templates) = as_member.get("/api/v1/workflow-templates").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(templates[0]["name"], "feature");

    let refused = [
        (
            json!({ "project_id": project["id"], "template": "nope", "inputs": {} }),
            "unknown_template",
        ),
        (
            json!({ "project_id": project["id"], "template": "feature", "inputs": {} }),
            "validation_failed",
        ),
        (
            json!({ "project_id": project["id"], "template": "feature", "inputs": { "feature": "x", "extra": "y" } }),
            "validation_failed",
        ),
    ];
    for (body, code) in refused {
        let (status, answer) = app.post("/api/v1/workflows", &body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body} -> {answer}");
        assert_eq!(answer["error"]["code"], code, "{answer}");
    }
    let nowhere =
        json!({ "project_id": uuid::Uuid::now_v7(), "template": "feature", "inputs": { "feature": "x" } });
    let (status, answer) = app.post("/api/v1/workflows", &nowhere).await;
    assert!(status.is_client_error(), "{answer}");
    assert_eq!(app.task_count().await, 0, "no stage task was stored");
    let (_, runs) = app.get("/api/v1/workflows").await;
    assert_eq!(runs["items"], json!([]), "no run was stored");
}
