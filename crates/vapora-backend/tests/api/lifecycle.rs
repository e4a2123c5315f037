//! The task lifecycle over the REST API.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use vapora_llm_router::testing::Script;

use crate::support::{eventually, slow_script, spawn_app};

#[tokio::test]
async fn task_runs_from_queued_to_done_with_result_and_cost() {
    let app = spawn_app().await;
    app.llm.set_default(Script {
        usage: Some((1_000, 500)),
        ..Script::text(&["fn ", "parse()", " {}"])
    });
    let project = app.create_project("compiler").await;

    let task = app
        .create_task(&project["id"], json!({ "title": "Write the parser" }))
        .await;
    assert_eq!(task["status"], "queued");
    assert_eq!(task["attempt"], 1);

    let done = app.wait_for_status(&task["id"], "done").await;
    assert_eq!(done["result"]["output"], "fn parse() {}");
    assert_eq!(done["result"]["provider"], "fake");
    assert_eq!(done["result"]["model"], "fake-model");
    assert_eq!(
        (
            done["result"]["tokens_in"].as_u64(),
            done["result"]["tokens_out"].as_u64()
        ),
        (Some(1_000), Some(500))
    );
    // 1000 in at $1/M + 500 out at $2/M.
    assert!(
        (done["result"]["cost_usd"].as_f64().unwrap() - 0.002).abs() < 1e-12,
        "{done}"
    );
    assert!(done["assigned_agent"].as_str().unwrap().starts_with("developer-"));
    assert!(done["started_at"].is_string() && done["finished_at"].is_string());

    // The agent got the role's system prompt and the task.
    let request = &app.llm.requests()[0];
    assert_eq!(request["messages"][0]["role"], "system");
    assert!(
        request["messages"][0]["content"]
            .as_str()
            .unwrap()
            .contains("developer agent")
    );
    assert!(
        request["messages"][1]["content"]
            .as_str()
            .unwrap()
            .contains("Write the parser")
    );

    // The registry counted the work.
    assert_eq!(app.tasks_completed_by_agents().await, 1);

    // And the metrics saw it.
    let metrics = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "vapora_tasks_created_total 1",
        "vapora_task_transitions_total{status=\"running\"} 1",
        "vapora_task_transitions_total{status=\"done\"} 1",
        "vapora_llm_tokens_in_total 1000",
        "vapora_llm_cost_micro_usd_total 2000",
        "vapora_queue_depth 0",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "missing {line:?} in\n{metrics}"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn approval_tasks_wait_in_review_until_approved() {
    let app = spawn_app().await;
    let project = app.create_project("p").await;
    let task = app
        .create_task(&project["id"], json!({ "requires_approval": true }))
        .await;
    app.wait_for_status(&task["id"], "review").await;

    let id = task["id"].as_str().unwrap();
    let (status, done) = app
        .patch(&format!("/api/v1/tasks/{id}"), &json!({ "status": "done" }))
        .await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(done["status"], "done");
    assert_eq!(done["result"]["output"], "Hello, world");
    app.stop().await;
}

#[tokio::test]
async fn a_rejected_result_runs_again_with_the_comment_and_the_output_in_its_prompt() {
    let app = spawn_app().await;
    let project = app.create_project("p").await;
    let task = app
        .create_task(
            &project["id"],
            json!({ "title": "Name the service", "requires_approval": true }),
        )
        .await;
    app.wait_for_status(&task["id"], "review").await;
    let id = task["id"].as_str().unwrap();

    // Blank comments and tasks not in review are refused, nothing changes.
    let (status, body) = app
        .post(&format!("/api/v1/tasks/{id}/reject"), &json!({ "comment": " " }))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    app.llm.set_default(Script::text(&["Vapora"]));
    let (status, rejected) = app
        .post(
            &format!("/api/v1/tasks/{id}/reject"),
            &json!({ "comment": "One word, please." }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{rejected}");
    assert_eq!(
        (rejected["status"].as_str(), rejected["attempt"].as_u64()),
        (Some("queued"), Some(2))
    );
    assert_eq!(rejected["rejection"]["comment"], "One word, please.");
    assert_eq!(rejected["rejection"]["previous_output"], "Hello, world");

    let again = app.wait_for_status(&task["id"], "review").await;
    assert_eq!(
        (again["attempt"].as_u64(), again["result"]["output"].as_str()),
        (Some(2), Some("Vapora"))
    );
    let requests = app.llm.requests();
    let prompt = requests.last().unwrap()["messages"][1]["content"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(prompt.contains("Task: Name the service"), "{prompt}");
    assert!(
        prompt.contains("Hello, world") && prompt.contains("One word, please."),
        "{prompt}"
    );
    assert!(
        !requests[0]["messages"][1]["content"]
            .as_str()
            .unwrap()
            .contains("One word"),
        "the first attempt had no comment to see"
    );

    let (status, done) = app.post(&format!("/api/v1/tasks/{id}/approve"), &json!({})).await;
    assert_eq!(
        (status, done["status"].as_str()),
        (StatusCode::OK, Some("done")),
        "{done}"
    );
    let (status, body) = app
        .post(
            &format!("/api/v1/tasks/{id}/reject"),
            &json!({ "comment": "too late" }),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    app.stop().await;
}

#[tokio::test]
async fn an_attempt_past_its_timeout_fails_as_timed_out_and_its_model_call_is_aborted() {
    let app = spawn_app().await;
    let project = app.create_project("p").await;
    for bad in [0, 86_401] {
        let (status, body) = app
            .try_create_task(&project["id"], json!({ "timeout_secs": bad }))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("timeout_secs"),
            "{body}"
        );
    }
    // Ten chunks over five seconds, against a one-second timeout.
    app.llm.set_default(Script {
        chunks: (0..10).map(|i| format!("part{i} ")).collect(),
        chunk_delay: Duration::from_millis(500),
        ..Script::default()
    });
    let started = std::time::Instant::now();
    let task = app
        .create_task(&project["id"], json!({ "timeout_secs": 1 }))
        .await;
    assert_eq!(task["timeout_secs"], 1);
    let failed = app.wait_for_status(&task["id"], "failed").await;
    let error = failed["error"].as_str().unwrap();
    assert!(error.starts_with("timed_out:"), "{error}");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "failed only after {:?}",
        started.elapsed()
    );
    eventually(5, "the model call to be aborted", || async {
        app.llm.dropped_streams() == 1
    })
    .await;
    assert_eq!(app.llm.completed_streams(), 0);
    app.stop().await;
}

/// Puts one task in each status and returns them by status name.
async fn one_task_per_status(app: &crate::support::TestApp, project: &Value) -> Vec<(&'static str, Value)> {
    let done = app.create_task(project, json!({ "title": "done" })).await;
    app.wait_for_status(&done["id"], "done").await;
    let review = app
        .create_task(project, json!({ "title": "review", "requires_approval": true }))
        .await;
    app.wait_for_status(&review["id"], "review").await;
    app.llm.push(Script::status(400));
    let failed = app.create_task(project, json!({ "title": "failed" })).await;
    app.wait_for_status(&failed["id"], "failed").await;
    let todo = app
        .create_task(project, json!({ "title": "todo", "dispatch": false }))
        .await;
    let cancelled = app
        .create_task(project, json!({ "title": "cancelled", "dispatch": false }))
        .await;
    let (status, _) = app.cancel(&cancelled["id"]).await;
    assert_eq!(status, StatusCode::OK);

    // One developer worker: the first slow task runs, the next one waits.
    app.llm.set_default(slow_script());
    let running = app.create_task(project, json!({ "title": "running" })).await;
    app.wait_for_status(&running["id"], "running").await;
    let queued = app.create_task(project, json!({ "title": "queued" })).await;
    vec![
        ("todo", todo),
        ("queued", queued),
        ("running", running),
        ("review", review),
        ("done", done),
        ("failed", failed),
        ("cancelled", cancelled),
    ]
}

#[tokio::test]
async fn every_illegal_board_move_is_a_409_and_changes_nothing() {
    let app = spawn_app().await;
    let project = app.create_project("p").await;
    let tasks = one_task_per_status(&app, &project["id"]).await;
    // The moves a person may make; everything else is the agents' business
    // or leaves a final state.
    let legal = [
        ("todo", "queued"),
        ("todo", "cancelled"),
        ("queued", "todo"),
        ("queued", "cancelled"),
        ("running", "cancelled"),
        ("review", "queued"),
        ("review", "done"),
        ("review", "cancelled"),
        ("failed", "queued"),
    ];
    let statuses = [
        "todo",
        "queued",
        "running",
        "review",
        "done",
        "failed",
        "cancelled",
    ];
    let mut refused = 0;
    for (from, task) in &tasks {
        let id = task["id"].as_str().unwrap();
        for to in statuses {
            if to == *from || legal.contains(&(*from, to)) {
                continue;
            }
            let before = app.task(&task["id"]).await;
            assert_eq!(before["status"], *from);
            let (status, body) = app
                .patch(&format!("/api/v1/tasks/{id}"), &json!({ "status": to }))
                .await;
            assert_eq!(status, StatusCode::CONFLICT, "{from} -> {to}: {body}");
            assert_eq!(body["error"]["code"], "invalid_transition", "{from} -> {to}");
            let after = app.task(&task["id"]).await;
            assert_eq!(after["status"], before["status"]);
            assert_eq!(after["attempt"], before["attempt"]);
            refused += 1;
        }
    }
    assert_eq!(refused, 7 * 6 - legal.len());

    // The dedicated endpoints follow the same rules.
    for (from, task) in &tasks {
        if *from == "done" {
            let (status, _) = app.cancel(&task["id"]).await;
            assert_eq!(status, StatusCode::CONFLICT, "cancel from {from}");
        }
        if *from == "cancelled" {
            // Cancelling twice is idempotent: same answer, nothing changes.
            let (status, body) = app.cancel(&task["id"]).await;
            assert_eq!(
                (status, body["status"].as_str()),
                (StatusCode::OK, Some("cancelled"))
            );
        }
        if *from != "failed" {
            let (status, body) = app.retry(&task["id"]).await;
            assert_eq!(status, StatusCode::CONFLICT, "retry from {from}: {body}");
        }
    }
    app.stop().await;
}

#[tokio::test]
async fn cancelling_a_queued_task_means_it_never_runs() {
    let app = spawn_app().await;
    app.llm.set_default(slow_script());
    let project = app.create_project("p").await;
    let running = app.create_task(&project["id"], json!({ "title": "first" })).await;
    app.wait_for_status(&running["id"], "running").await;
    let queued = app
        .create_task(&project["id"], json!({ "title": "second" }))
        .await;

    let (status, cancelled) = app.cancel(&queued["id"]).await;
    assert_eq!(status, StatusCode::OK, "{cancelled}");
    assert_eq!(cancelled["status"], "cancelled");

    // Let the worker free up: cancel the running one too.
    app.cancel(&running["id"]).await;
    app.llm.set_default(Script::default());
    let later = app.create_task(&project["id"], json!({ "title": "third" })).await;
    app.wait_for_status(&later["id"], "done").await;

    let after = app.task(&queued["id"]).await;
    assert_eq!(after["status"], "cancelled");
    assert!(after["assigned_agent"].is_null() && after["result"].is_null());
    let titles: Vec<String> = app
        .llm
        .requests()
        .iter()
        .map(|r| r["messages"][1]["content"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        !titles.iter().any(|t| t.contains("second")),
        "the cancelled task reached the LLM: {titles:?}"
    );
    app.stop().await;
}

#[tokio::test]
async fn cancelling_a_running_task_aborts_its_llm_call() {
    let app = spawn_app().await;
    app.llm.set_default(slow_script());
    let project = app.create_project("p").await;
    let task = app.create_task(&project["id"], json!({})).await;
    let running = app.wait_for_status(&task["id"], "running").await;
    let agent = running["assigned_agent"].as_str().unwrap().to_owned();

    let (status, body) = app.cancel(&task["id"]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "cancelled");

    // The provider connection is closed, not left streaming.
    eventually(5, "the LLM server sees the call aborted", || async {
        app.llm.dropped_streams() > 0
    })
    .await;
    // The agent is free again and the task stays cancelled.
    let agent_url = format!("/api/v1/agents/{agent}");
    eventually(5, "the agent is idle again", || async {
        app.get(&agent_url).await.1["status"] == "idle"
    })
    .await;
    let after = app.task(&task["id"]).await;
    assert_eq!(after["status"], "cancelled");
    assert!(after["result"].is_null());
    app.stop().await;
}

#[tokio::test]
async fn failed_tasks_can_be_retried_as_a_new_attempt() {
    let app = spawn_app().await;
    // A 400 is not retried by the router: the attempt fails at once.
    app.llm.push(Script::status(400));
    let project = app.create_project("p").await;
    let task = app.create_task(&project["id"], json!({})).await;
    let failed = app.wait_for_status(&task["id"], "failed").await;
    assert!(failed["error"].as_str().unwrap().contains("400"), "{failed}");
    assert_eq!(failed["attempt"], 1);

    let (status, retried) = app.retry(&task["id"]).await;
    assert_eq!(status, StatusCode::OK, "{retried}");
    assert_eq!(retried["status"], "queued");
    assert_eq!(retried["attempt"], 2);
    assert!(retried["error"].is_null());

    let done = app.wait_for_status(&task["id"], "done").await;
    assert_eq!(done["attempt"], 2);
    let (status, _) = app.retry(&task["id"]).await;
    assert_eq!(status, StatusCode::CONFLICT);
    app.stop().await;
}

#[tokio::test]
async fn list_filters_and_cursor_pagination() {
    let app = spawn_app().await;
    let a = app.create_project("a").await;
    let b = app.create_project("b").await;
    let mut ids = Vec::new();
    for i in 0..7 {
        let (project, role) = if i % 2 == 0 {
            (&a, "developer")
        } else {
            (&b, "tester")
        };
        let t = app
            .create_task(
                &project["id"],
                json!({ "title": format!("t{i}"), "role": role, "dispatch": false }),
            )
            .await;
        ids.push(t["id"].clone());
    }

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/tasks?limit=3&cursor={c}"),
            None => "/api/v1/tasks?limit=3".into(),
        };
        let (status, page) = app.get(&path).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 3);
        seen.extend(items.iter().map(|t| t["id"].clone()));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, ids, "every task once, in creation order");

    let (_, page) = app
        .get(&format!("/api/v1/tasks?project_id={}", b["id"].as_str().unwrap()))
        .await;
    assert_eq!(page["items"].as_array().unwrap().len(), 3);
    let (_, page) = app.get("/api/v1/tasks?role=developer&status=todo").await;
    assert_eq!(page["items"].as_array().unwrap().len(), 4);
    let (_, page) = app.get("/api/v1/tasks?status=done").await;
    assert_eq!(page["items"].as_array().unwrap().len(), 0);
    app.stop().await;
}

#[tokio::test]
async fn board_groups_tasks_by_column_and_projects_have_crud() {
    let app = spawn_app().await;
    let project = app.create_project("board").await;
    let pid = project["id"].as_str().unwrap();
    let todo = app
        .create_task(&project["id"], json!({ "dispatch": false }))
        .await;
    let done = app.create_task(&project["id"], json!({})).await;
    app.wait_for_status(&done["id"], "done").await;

    let (status, board) = app.get(&format!("/api/v1/projects/{pid}/board")).await;
    assert_eq!(status, StatusCode::OK);
    let columns = board["columns"].as_array().unwrap();
    let names: Vec<&str> = columns.iter().map(|c| c["status"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "todo",
            "queued",
            "running",
            "review",
            "done",
            "failed",
            "cancelled",
            "waiting"
        ]
    );
    assert_eq!(columns[0]["tasks"][0]["id"], todo["id"]);
    assert_eq!(columns[4]["tasks"][0]["id"], done["id"]);

    let (status, renamed) = app
        .patch(&format!("/api/v1/projects/{pid}"), &json!({ "name": "renamed" }))
        .await;
    assert_eq!(
        (status, renamed["name"].as_str()),
        (StatusCode::OK, Some("renamed"))
    );
    let (_, list) = app.get("/api/v1/projects").await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);

    let status = app
        .http
        .delete(app.url(&format!("/api/v1/projects/{pid}")))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = app.get(&format!("/api/v1/projects/{pid}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app
        .get(&format!("/api/v1/tasks/{}", todo["id"].as_str().unwrap()))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "a project's tasks go with it");
    app.stop().await;
}

#[tokio::test]
async fn projects_with_work_in_flight_cannot_be_deleted() {
    let app = spawn_app().await;
    app.llm.set_default(slow_script());
    let project = app.create_project("busy").await;
    let task = app.create_task(&project["id"], json!({})).await;
    app.wait_for_status(&task["id"], "running").await;
    let pid = project["id"].as_str().unwrap();
    let response = app
        .http
        .delete(app.url(&format!("/api/v1/projects/{pid}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CONFLICT);
    assert_eq!(app.task(&task["id"]).await["status"], "running");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_edits_of_one_task_all_apply_without_lost_updates() {
    let app = spawn_app().await;
    let project = app.create_project("p").await;
    let task = app
        .create_task(&project["id"], json!({ "dispatch": false }))
        .await;
    let url = app.url(&format!("/api/v1/tasks/{}", task["id"].as_str().unwrap()));
    let edits = 20;
    let handles: Vec<_> = (0..edits)
        .map(|i| {
            let (http, url) = (app.http.clone(), url.clone());
            tokio::spawn(async move {
                // Alternate two kinds of edit so each write depends on the last.
                let body = if i % 2 == 0 {
                    json!({ "title": format!("title {i}") })
                } else {
                    json!({ "priority": "high" })
                };
                http.patch(&url).json(&body).send().await.unwrap().status()
            })
        })
        .collect();
    for h in handles {
        assert_eq!(h.await.unwrap(), StatusCode::OK);
    }
    // Two cancels racing: both succeed (the second is a no-op), one final state.
    let id = task["id"].as_str().unwrap();
    let (path, cancel_path) = (
        format!("/api/v1/tasks/{id}"),
        format!("/api/v1/tasks/{id}/cancel"),
    );
    let (cancelled, empty) = (json!({ "status": "cancelled" }), json!({}));
    let (a, b) = tokio::join!(app.patch(&path, &cancelled), app.post(&cancel_path, &empty));
    assert!(a.0.is_success() && b.0.is_success(), "{a:?} {b:?}");
    let after = app.task(&task["id"]).await;
    assert_eq!(after["status"], "cancelled");
    assert_eq!(after["priority"], "high");
    app.stop().await;
}

#[tokio::test]
async fn results_record_retries_made_by_the_router() {
    let app = spawn_app().await;
    // One server error, then success: the router retries the same target.
    app.llm.push(Script::status(503));
    let project = app.create_project("p").await;
    let task = app.create_task(&project["id"], json!({})).await;
    let done = app.wait_for_status(&task["id"], "done").await;
    assert_eq!(done["result"]["attempts"], 2, "{done}");
    assert_eq!(done["result"]["provider"], "fake");
    assert_eq!(app.llm.request_count(), 2);
    app.stop().await;
}
