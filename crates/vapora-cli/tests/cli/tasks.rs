//! `vapora task create|list|show|cancel|retry`, without following.

use vapora_llm_router::testing::Script;

use crate::support::spawn_backend;

#[tokio::test]
async fn tasks_are_created_listed_and_shown() {
    let app = spawn_backend().await;
    let project = app.project("p").await;

    let created = app
        .vapora(&[
            "--json",
            "task",
            "create",
            "--project",
            &project,
            "--title",
            "Write the parser",
            "--description",
            "Parse the config.",
            "--role",
            "reviewer",
            "--priority",
            "high",
            "--requires-approval",
            "--todo",
        ])
        .await
        .json();
    assert_eq!(created["status"], "todo");
    assert_eq!(created["role"], "reviewer");
    assert_eq!(created["priority"], "high");
    assert_eq!(created["requires_approval"], true);
    let id = created["id"].as_str().unwrap();

    let listed = app
        .vapora(&["--json", "task", "list", "--project", &project])
        .await
        .json();
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);
    assert_eq!(listed["items"][0]["id"], id);
    let filtered = app
        .vapora(&["--json", "task", "list", "--status", "done"])
        .await
        .json();
    assert_eq!(filtered["items"], serde_json::json!([]));

    let table = app.vapora(&["task", "list", "--project", &project]).await;
    let row = table
        .ok()
        .lines()
        .find(|l| l.starts_with(id))
        .unwrap_or_else(|| panic!("{table:?}"));
    for cell in ["todo", "high", "reviewer", "Write the parser"] {
        assert!(row.contains(cell), "{cell} in {row}");
    }

    let shown = app.vapora(&["task", "show", id]).await;
    let out = shown.ok();
    for text in ["Write the parser", "Parse the config.", "todo", "required"] {
        assert!(out.contains(text), "{text} in {out}");
    }
    assert_eq!(app.vapora(&["task", "show", id, "--json"]).await.json()["id"], id);
}

#[tokio::test]
async fn tasks_are_cancelled_and_failed_ones_retried() {
    let app = spawn_backend().await;
    let project = app.project("p").await;
    let todo = app.todo_task(&project, &[]).await;
    let cancelled = app.vapora(&["--json", "task", "cancel", &todo]).await.json();
    assert_eq!(cancelled["status"], "cancelled");

    // A 400 from the model is not retried by the router: the task fails.
    app.llm.push(Script::status(400));
    let task = app
        .vapora(&["--json", "task", "create", "--project", &project, "--title", "t"])
        .await
        .json();
    let id = task["id"].as_str().unwrap();
    app.wait_for_status(id, "failed").await;
    let retried = app.vapora(&["--json", "task", "retry", id]).await.json();
    assert_eq!(retried["attempt"], 2);
    app.wait_for_status(id, "done").await;

    // A done task cannot be cancelled: the server's 409 and its message.
    let refused = app.vapora(&["task", "cancel", id]).await;
    assert_eq!(refused.code, Some(1), "{refused:?}");
    assert!(
        refused
            .stderr
            .contains("task is done; it cannot move to cancelled"),
        "{refused:?}"
    );
    assert!(refused.stderr.contains("409"), "{refused:?}");
}

#[tokio::test]
async fn bad_arguments_are_usage_errors() {
    let app = spawn_backend().await;
    let not_an_id = app.vapora(&["task", "show", "not-a-uuid"]).await;
    assert_eq!(not_an_id.code, Some(2), "{not_an_id:?}");
    let bad_role = app
        .vapora(&[
            "task",
            "create",
            "--project",
            "0190a5c2-0000-7000-8000-000000000000",
            "--title",
            "t",
            "--role",
            "Dev Ops",
        ])
        .await;
    assert_eq!(bad_role.code, Some(2), "{bad_role:?}");
    assert!(bad_role.stderr.contains("role"), "{bad_role:?}");
}
