//! `vapora workflow …` against the shipped `feature` template (design →
//! implement + test → review, the review approved by a person): following
//! a run to its end, showing and listing runs, cancelling, retrying a
//! failed stage, and the server's refusals.

use std::time::Duration;

use serde_json::{Value, json};
use vapora_llm_router::testing::Script;

use crate::support::{Backend, spawn_backend};

const STAGES: [&str; 4] = ["design", "implement", "test", "review"];

fn stage<'a>(run: &'a Value, name: &str) -> &'a Value {
    run["stages"]
        .as_array()
        .and_then(|stages| stages.iter().find(|s| s["name"] == name))
        .unwrap_or_else(|| panic!("no stage {name} in {run}"))
}

fn task_of(run: &Value, name: &str) -> String {
    stage(run, name)["task_id"]
        .as_str()
        .expect("a task id")
        .to_owned()
}

/// `workflow run feature --project PROJECT --input feature=…` and `extra`.
fn feature_run<'a>(project: &'a str, feature: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "workflow",
        "run",
        "feature",
        "--project",
        project,
        "--input",
        feature,
    ];
    args.extend_from_slice(extra);
    args
}

/// The project's only run, as `workflow list --json` shows it.
async fn only_run(app: &Backend, project: &str) -> Value {
    let page = app
        .vapora(&["--json", "workflow", "list", "--project", project])
        .await
        .json();
    let items = page["items"].as_array().expect("items");
    assert_eq!(items.len(), 1, "{page}");
    items[0].clone()
}

/// The model's answer to the design stage fails for good (a 400 is not
/// retried), every other stage answers as usual.
fn fail_the_design(app: &Backend) {
    app.llm.respond_with(|request| {
        let prompt = request["messages"][1]["content"].as_str().unwrap_or_default();
        prompt.starts_with("Task: Design:").then(|| Script::status(400))
    });
}

#[tokio::test]
async fn run_watch_follows_the_feature_template_through_approval_to_done() {
    let app = spawn_backend().await;
    let project = app.project("p").await;
    let mut watch = app.start(&feature_run(
        &project,
        "feature=login with passkeys",
        &["--watch"],
    ));
    // The watch names the stage that waits, and goes on waiting.
    watch.wait_for_stderr("stage review waits for approval").await;
    let run = only_run(&app, &project).await;
    assert_eq!(run["status"], "awaiting_approval", "{run}");
    let review = task_of(&run, "review");
    let (status, body) = app.api_post(&format!("tasks/{review}/approve"), &json!({})).await;
    assert_eq!(status, 200, "{body}");

    let finished = watch.finish().await;
    let out = finished.ok();
    assert!(
        finished.stderr.contains(&format!("vapora task approve {review}")),
        "{finished:#?}"
    );
    // Moves within one 20 ms window reach the watch as one change (the
    // backend coalesces a run's updates), so design may go straight from
    // queued to done here.
    assert!(
        finished.stderr.contains("stage design: queued → running")
            || finished.stderr.contains("stage design: queued → done"),
        "{finished:#?}"
    );
    assert!(finished.stderr.contains("run ") && finished.stderr.contains(" done"));
    // The run, then its stages: each done, with its role and task.
    for text in ["feature", "feature=login with passkeys", "4/4"] {
        assert!(out.contains(text), "{text} in {out}");
    }
    for name in STAGES {
        let row = out
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no row for {name}: {out}"));
        assert!(row.contains("done"), "{row}");
        assert!(row.contains(&task_of(&run, name)), "{row}");
    }
}

#[tokio::test]
async fn runs_are_shown_listed_and_templates_read() {
    let app = spawn_backend().await;
    let project = app.project("p").await;
    let run = app
        .vapora(&feature_run(
            &project,
            "feature=x",
            &["--json", "--priority", "high"],
        ))
        .await
        .json();
    let id = run["id"].as_str().unwrap();
    assert_eq!(run["template"], "feature");
    assert_eq!(stage(&run, "design")["status"], "queued", "{run}");

    let shown = app.vapora(&["workflow", "show", id, "--json"]).await.json();
    assert_eq!(shown["id"], id);
    let names: Vec<&str> = shown["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 4);
    for name in STAGES {
        assert!(names.contains(&name), "{name} in {names:?}");
    }
    assert_eq!(stage(&shown, "review")["requires_approval"], true);
    assert_eq!(
        app.wait_for_status(&task_of(&run, "design"), "done").await["priority"],
        "high"
    );

    let table = app.vapora(&["workflow", "show", id]).await;
    let out = table.ok();
    let implement = out.lines().find(|l| l.starts_with("implement ")).unwrap();
    for cell in ["developer", "design", &task_of(&run, "implement")] {
        assert!(implement.contains(cell), "{cell} in {implement}");
    }
    let review = out.lines().find(|l| l.starts_with("review ")).unwrap();
    assert!(
        review.contains("implement, test") && review.contains("required"),
        "{review}"
    );

    let listed = app.vapora(&["workflow", "list", "--project", &project]).await;
    let row = listed
        .ok()
        .lines()
        .find(|l| l.starts_with(id))
        .unwrap_or_else(|| panic!("{listed:#?}"));
    assert!(row.contains("feature") && row.contains(&project), "{row}");
    let none = app
        .vapora(&["--json", "workflow", "list", "--status", "cancelled"])
        .await
        .json();
    assert_eq!(none["items"], json!([]));

    let templates = app.vapora(&["workflow", "templates"]).await;
    let feature = templates
        .ok()
        .lines()
        .find(|l| l.starts_with("feature "))
        .unwrap_or_else(|| panic!("{templates:#?}"));
    assert!(feature.contains("design → implement, test → review"), "{feature}");
    let listed = app.vapora(&["--json", "workflow", "templates"]).await.json();
    assert_eq!(listed[0]["name"], "feature");
    let one = app.vapora(&["workflow", "templates", "feature"]).await;
    assert!(
        one.ok()
            .lines()
            .any(|l| l.starts_with("design ") && l.contains("architect"))
    );
    let unknown = app.vapora(&["workflow", "templates", "nope"]).await;
    assert_eq!(unknown.code, Some(1), "{unknown:#?}");
    assert!(unknown.stderr.contains("404"), "{unknown:#?}");
}

#[tokio::test]
async fn cancelling_a_watched_run_exits_4() {
    let app = spawn_backend().await;
    // The design stage streams slowly: the run is cancelled while it runs.
    app.llm.set_default(Script {
        chunks: (0..200).map(|i| format!("word{i} ")).collect(),
        chunk_delay: Duration::from_millis(50),
        ..Script::default()
    });
    let project = app.project("p").await;
    let mut watch = app.start(&feature_run(&project, "feature=x", &["--watch"]));
    watch.wait_for_stderr("stage design: queued → running").await;
    let id = only_run(&app, &project).await["id"].as_str().unwrap().to_owned();
    let cancelled = app.vapora(&["workflow", "cancel", &id]).await;
    let out = cancelled.ok();
    assert!(
        out.lines()
            .any(|l| l.starts_with("status:") && l.contains("cancelled")),
        "{out}"
    );

    let watched = watch.finish().await;
    assert_eq!(watched.code, Some(4), "{watched:#?}");
    assert!(
        watched.stderr.contains(&format!("run {id} was cancelled")),
        "{watched:#?}"
    );
    assert!(
        watched.stdout.contains("cancelled"),
        "the run is printed: {watched:#?}"
    );

    // Watching it now ends at once, the same way; a second cancel is the
    // server's 409 with its message.
    assert_eq!(app.vapora(&["workflow", "watch", &id]).await.code, Some(4));
    let again = app.vapora(&["workflow", "cancel", &id]).await;
    assert_eq!(again.code, Some(1), "{again:#?}");
    assert!(again.stderr.contains("409"), "{again:#?}");
}

#[tokio::test]
async fn a_failed_stage_exits_3_and_is_retried() {
    let app = spawn_backend().await;
    fail_the_design(&app);
    let project = app.project("p").await;
    let run = app
        .vapora(&feature_run(&project, "feature=x", &["--json", "--watch"]))
        .await;
    assert_eq!(run.code, Some(3), "{run:#?}");
    let failed: Value = serde_json::from_str(&run.stdout).expect("the run as JSON");
    let id = failed["id"].as_str().unwrap();
    assert_eq!(failed["status"], "failed");
    assert_eq!(stage(&failed, "design")["status"], "failed");
    assert!(run.stderr.contains("stage design"), "{run:#?}");
    assert!(run.stderr.contains("400"), "the model's error: {run:#?}");
    assert!(
        run.stderr.contains(&format!("vapora workflow retry {id} design")),
        "{run:#?}"
    );

    // Only a failed stage is retried: the server's 409, and 404 for a
    // stage the run does not have.
    let not_failed = app.vapora(&["workflow", "retry", id, "implement"]).await;
    assert_eq!(not_failed.code, Some(1), "{not_failed:#?}");
    assert!(not_failed.stderr.contains("409"), "{not_failed:#?}");
    let unknown = app.vapora(&["workflow", "retry", id, "nope"]).await;
    assert_eq!(unknown.code, Some(1), "{unknown:#?}");
    assert!(unknown.stderr.contains("404"), "{unknown:#?}");

    app.llm.respond_with(|_| None);
    let retried = app
        .vapora(&["--json", "workflow", "retry", id, "design"])
        .await
        .json();
    assert_eq!(retried["status"], "running", "{retried}");
    app.wait_for_status(&task_of(&failed, "review"), "review").await;
    let now = app.vapora(&["--json", "workflow", "show", id]).await.json();
    assert_eq!(now["status"], "awaiting_approval", "{now}");
}

#[tokio::test]
async fn refused_runs_print_the_servers_message() {
    let app = spawn_backend().await;
    let project = app.project("p").await;
    let unknown = app
        .vapora(&["workflow", "run", "nope", "--project", &project])
        .await;
    assert_eq!(unknown.code, Some(1), "{unknown:#?}");
    assert_eq!(unknown.stdout, "");
    assert!(
        unknown
            .stderr
            .contains("no workflow template is named \"nope\" (HTTP 422 unknown_template)"),
        "{unknown:#?}"
    );
    // --watch refuses the same way, before following anything.
    let watched = app
        .vapora(&["workflow", "run", "nope", "--project", &project, "--watch"])
        .await;
    assert_eq!(watched.code, Some(1), "{watched:#?}");
    assert!(watched.stderr.contains("422"), "{watched:#?}");

    let missing = app
        .vapora(&["workflow", "run", "feature", "--project", &project])
        .await;
    assert_eq!(missing.code, Some(1), "{missing:#?}");
    assert!(missing.stderr.contains("needs input \"feature\""), "{missing:#?}");

    let twice = app
        .vapora(&feature_run(&project, "feature=a", &["--input", "feature=b"]))
        .await;
    assert_eq!(twice.code, Some(2), "{twice:#?}");
    assert!(
        twice.stderr.contains("--input feature is given twice"),
        "{twice:#?}"
    );
    let garbled = app.vapora(&feature_run(&project, "feature", &[])).await;
    assert_eq!(garbled.code, Some(2), "{garbled:#?}");
    assert!(garbled.stderr.contains("NAME=VALUE"), "{garbled:#?}");
}
