//! Following tasks live: `task watch`, `task create --watch`, and
//! approving a task that waits in review. Needs the backend's event feed.

use vapora_llm_router::testing::Script;

use crate::support::{
    SMALL_OUTPUT_LIMIT, STREAMED, limit_output, spawn_backend, spawn_backend_with, streamed_script,
};

#[tokio::test]
async fn watch_prints_the_streamed_output_and_exits_0_when_done() {
    let app = spawn_backend_with(limit_output).await;
    app.llm.set_default(streamed_script());
    let project = app.project("p").await;
    let task = app.todo_task(&project, &[]).await;

    // The watch says so once it follows the todo task; only then is the
    // task queued, so every chunk is streamed to it.
    let mut watch = app.start(&["task", "watch", &task]);
    watch.wait_for_stderr("is in todo").await;
    app.queue(&task).await;
    let run = watch.finish().await;

    // The stored result is cut at the limit: the whole text can only have
    // come from the stream, and nothing of it twice.
    let full: String = STREAMED.concat();
    assert!(full.len() > SMALL_OUTPUT_LIMIT);
    assert_eq!(run.ok(), format!("{full}\n"), "{run:#?}");
    assert!(run.stderr.contains(&format!("task {task} done")), "{run:#?}");
}

#[tokio::test]
async fn create_watch_follows_from_the_first_chunk() {
    let app = spawn_backend_with(limit_output).await;
    app.llm.set_default(streamed_script());
    let project = app.project("p").await;
    let run = app
        .vapora(&["task", "create", "--project", &project, "--title", "t", "--watch"])
        .await;
    assert_eq!(run.ok(), format!("{}\n", STREAMED.concat()), "{run:#?}");
    assert!(run.stderr.contains("created task"), "{run:#?}");
}

#[tokio::test]
async fn watch_with_json_prints_the_final_task_only() {
    let app = spawn_backend().await;
    app.llm.set_default(Script::text(&["Hello", " world"]));
    let project = app.project("p").await;
    let task = app
        .vapora(&[
            "--json",
            "task",
            "create",
            "--project",
            &project,
            "--title",
            "t",
            "--watch",
        ])
        .await
        .json();
    assert_eq!(task["status"], "done");
    assert_eq!(task["result"]["output"], "Hello world");

    // A task that has already ended: its output, at once.
    let id = task["id"].as_str().unwrap();
    let again = app.vapora(&["task", "watch", id]).await;
    assert_eq!(again.ok(), "Hello world\n", "{again:#?}");
}

#[tokio::test]
async fn a_failing_task_exits_3_with_its_error() {
    let app = spawn_backend().await;
    // A 400 is not retried by the router: the attempt fails at once.
    app.llm.set_default(Script::status(400));
    let project = app.project("p").await;
    let run = app
        .vapora(&["task", "create", "--project", &project, "--title", "t", "--watch"])
        .await;
    assert_eq!(run.code, Some(3), "{run:#?}");
    assert!(run.stderr.contains("failed"), "{run:#?}");
    assert!(run.stderr.contains("400"), "the model's error: {run:#?}");

    // Watching it later ends the same way.
    let id = run
        .stderr
        .split("created task ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("the created task's id: {run:#?}"));
    let later = app.vapora(&["task", "watch", id]).await;
    assert_eq!(later.code, Some(3), "{later:#?}");
}

#[tokio::test]
async fn a_cancelled_task_exits_4() {
    let app = spawn_backend().await;
    let project = app.project("p").await;
    let task = app.todo_task(&project, &[]).await;
    let mut watch = app.start(&["task", "watch", &task]);
    watch.wait_for_stderr("is in todo").await;
    app.vapora(&["task", "cancel", &task]).await.ok();
    let run = watch.finish().await;
    assert_eq!(run.code, Some(4), "{run:#?}");
    assert!(run.stderr.contains("cancelled"), "{run:#?}");
}

#[tokio::test]
async fn review_ends_the_watch_and_approve_finishes_the_task() {
    let app = spawn_backend().await;
    let project = app.project("p").await;
    let run = app
        .vapora(&[
            "--json",
            "task",
            "create",
            "--project",
            &project,
            "--title",
            "t",
            "--requires-approval",
            "--watch",
        ])
        .await;
    let task = run.json();
    assert_eq!(task["status"], "review", "{run:#?}");
    assert!(run.stderr.contains("vapora task approve"), "{run:#?}");
    let id = task["id"].as_str().unwrap();

    let approved = app.vapora(&["--json", "task", "approve", id]).await.json();
    assert_eq!(approved["status"], "done");
    assert_eq!(approved["result"]["output"], "Hello, world");

    // Only a task in review can be approved: the server's 409.
    let again = app.vapora(&["task", "approve", id]).await;
    assert_eq!(again.code, Some(1), "{again:#?}");
    assert!(again.stderr.contains("409"), "{again:#?}");
}

#[tokio::test]
async fn reject_sends_a_reviewed_task_back_and_watch_follows_the_new_attempt() {
    let app = spawn_backend().await;
    let project = app.project("p").await;
    let task = app
        .vapora(&[
            "--json",
            "task",
            "create",
            "--project",
            &project,
            "--title",
            "t",
            "--requires-approval",
            "--watch",
        ])
        .await
        .json();
    let id = task["id"].as_str().unwrap();
    app.llm
        .set_default(vapora_llm_router::testing::Script::text(&["Better", " now"]));

    let run = app
        .vapora(&["task", "reject", id, "--comment", "Say it better.", "--watch"])
        .await;
    assert_eq!(run.code, Some(0), "{run:#?}");
    assert!(
        run.stdout.contains("Better now"),
        "the new attempt's output: {run:#?}"
    );
    assert!(run.stderr.contains("attempt 2"), "{run:#?}");
    let prompt = app.llm.requests().last().unwrap()["messages"][1]["content"].clone();
    assert!(
        prompt.as_str().unwrap().contains("Say it better.")
            && prompt.as_str().unwrap().contains("Hello, world"),
        "the new attempt sees the comment and the rejected answer: {prompt}"
    );

    // A blank comment is the server's 422, shown as its message.
    let blank = app.vapora(&["task", "reject", id, "--comment", " "]).await;
    assert_eq!(blank.code, Some(1), "{blank:#?}");
    assert!(blank.stderr.contains("comment"), "{blank:#?}");
}

#[tokio::test]
async fn a_task_past_its_timeout_exits_3_as_timed_out() {
    let app = spawn_backend().await;
    app.llm.set_default(Script {
        chunks: (0..10).map(|i| format!("part{i} ")).collect(),
        chunk_delay: std::time::Duration::from_millis(500),
        ..Script::default()
    });
    let project = app.project("p").await;
    let run = app
        .vapora(&[
            "task",
            "create",
            "--project",
            &project,
            "--title",
            "t",
            "--timeout",
            "1",
            "--watch",
        ])
        .await;
    assert_eq!(run.code, Some(3), "{run:#?}");
    assert!(run.stderr.contains("timed_out"), "{run:#?}");
    assert!(
        run.stdout.contains("part0"),
        "the output streamed before the timeout: {run:#?}"
    );
}
