//! `vapora schedule …`: a task every second, what it created listed by
//! schedule, a workflow schedule, delete, and the server's refusals.

use std::time::Duration;

use crate::support::spawn_backend;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_schedule_fires_its_tasks_are_listed_by_schedule_and_delete_stops_it() {
    let app = spawn_backend().await;
    let project = app.project("cron").await;
    // Not the schedule's: never listed by it.
    let by_hand = app.todo_task(&project, &[]).await;
    let created = app
        .vapora(&[
            "--json",
            "schedule",
            "task",
            "--cron",
            "* * * * * *",
            "--name",
            "heartbeat",
            "--project",
            &project,
            "--title",
            "tick",
            "--role",
            "tester",
        ])
        .await
        .json();
    let id = created["id"].as_str().expect("an id").to_owned();
    assert_eq!(created["task"]["role"], "tester", "{created}");

    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let listed = app.vapora(&["schedule", "list", "--project", &project]).await;
    assert!(
        listed.ok().contains(&id)
            && listed.stdout.contains("heartbeat")
            && listed.stdout.contains("task \"tick\" (tester)"),
        "{listed:#?}"
    );
    let deleted = app.vapora(&["--json", "schedule", "delete", &id]).await.json();
    let fired = deleted["fired"].as_u64().expect("fired");
    assert!(fired >= 2, "{deleted}");

    // What it created names it, and is listed by it.
    let page = app
        .vapora(&["--json", "task", "list", "--schedule", &id, "--limit", "500"])
        .await
        .json();
    let tasks = page["items"].as_array().expect("items");
    assert_eq!(tasks.len() as u64, fired, "{page}");
    assert!(
        tasks
            .iter()
            .all(|t| t["schedule_id"] == id.as_str() && t["title"] == "tick")
    );
    assert!(tasks.iter().all(|t| t["id"] != by_hand.as_str()), "{page}");
    let table = app.vapora(&["task", "list", "--schedule", &id]).await;
    assert_eq!(table.ok().matches("tick").count() as u64, fired, "{table:#?}");

    let gone = app.vapora(&["schedule", "show", &id]).await;
    assert_eq!(gone.code, Some(1), "{gone:#?}");
    assert!(
        gone.stderr.contains("404") || gone.stderr.contains("not found"),
        "{gone:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workflow_schedule_starts_runs_and_bad_schedules_are_refused() {
    let app = spawn_backend().await;
    let project = app.project("nightly").await;
    // Not the schedule's: never listed by it.
    app.vapora(&[
        "workflow",
        "run",
        "feature",
        "--project",
        &project,
        "--input",
        "feature=by hand",
    ])
    .await
    .ok();
    let created = app
        .vapora(&[
            "--json",
            "schedule",
            "workflow",
            "feature",
            "--cron",
            "* * * * * *",
            "--project",
            &project,
            "--input",
            "feature=nightly build",
        ])
        .await
        .json();
    let id = created["id"].as_str().expect("an id").to_owned();
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let shown = app.vapora(&["schedule", "show", &id]).await;
    assert!(shown.ok().contains("workflow feature"), "{shown:#?}");
    app.vapora(&["schedule", "delete", &id]).await.ok();
    let runs = app
        .vapora(&["--json", "workflow", "list", "--schedule", &id])
        .await
        .json();
    let runs = runs["items"].as_array().expect("items");
    assert!(!runs.is_empty(), "a slot started a run");
    assert!(
        runs.iter()
            .all(|r| r["schedule_id"] == id.as_str() && r["inputs"]["feature"] == "nightly build")
    );

    let refused = [
        (
            vec![
                "schedule",
                "task",
                "--cron",
                "every tuesday",
                "--project",
                &project,
                "--title",
                "t",
            ],
            "invalid_cron",
        ),
        (
            vec![
                "schedule",
                "workflow",
                "nope",
                "--cron",
                "0 9 * * *",
                "--project",
                &project,
            ],
            "unknown_template",
        ),
    ];
    for (args, code) in refused {
        let run = app.vapora(&args).await;
        assert_eq!(run.code, Some(1), "{run:#?}");
        assert!(
            run.stderr.contains(code) || run.stderr.contains("422"),
            "{code}: {run:#?}"
        );
    }
    let twice = app
        .vapora(&[
            "schedule",
            "workflow",
            "feature",
            "--cron",
            "0 9 * * *",
            "--project",
            &project,
            "--input",
            "feature=a",
            "--input",
            "feature=b",
        ])
        .await;
    assert_eq!(twice.code, Some(2), "a usage error: {twice:#?}");
    let left = app
        .vapora(&["--json", "schedule", "list", "--project", &project])
        .await
        .json();
    assert_eq!(left, serde_json::json!([]), "nothing refused was stored");
}
