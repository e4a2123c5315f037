//! `vapora events` and `vapora budgets`. Need the backend's event feed and
//! budget report.

use serde_json::Value;

use crate::support::spawn_backend;

#[tokio::test]
async fn events_follow_and_replay_as_json_lines() {
    let app = spawn_backend().await;

    // Live: what happens once the feed is open shows up, one JSON per line.
    let mut live = app.start(&["--json", "events"]);
    live.wait_for_stderr("following events").await;
    let project = app.project("p").await;
    let mut lines = live.stdout();
    let created = next_event(&mut lines).await;
    assert_eq!(created["type"], "project.created", "{created}");
    assert_eq!(created["data"]["id"], project.as_str());
    let seq = created["seq"].as_u64().expect("a sequence number");
    live.kill().await;

    // `--since` replays what the server still holds after that number,
    // then goes on live.
    let before = (seq - 1).to_string();
    let mut replay = app.start(&["--json", "events", "--since", &before, "--project", &project]);
    let mut lines = replay.stdout();
    assert_eq!(next_event(&mut lines).await, created);
    let task = app.todo_task(&project, &[]).await;
    let event = next_event(&mut lines).await;
    assert_eq!(event["type"], "task.created", "{event}");
    assert_eq!(event["data"]["id"], task.as_str());
    replay.kill().await;

    // A number the server no longer holds: `resync`, passed on.
    let mut stale = app.start(&["events", "--since", "1"]);
    let line = stale
        .stdout()
        .next_line()
        .await
        .expect("stdout reads")
        .expect("a line");
    assert!(line.contains("resync") && line.contains("re-read"), "{line}");
    stale.kill().await;
}

async fn next_event(
    lines: &mut tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
) -> Value {
    let line = tokio::time::timeout(std::time::Duration::from_secs(20), lines.next_line())
        .await
        .expect("an event in time")
        .expect("stdout reads")
        .expect("the feed is still open");
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("not one JSON object ({e}): {line}"))
}

#[tokio::test]
async fn budgets_report_spend_per_role() {
    let app = spawn_backend().await;
    let project = app.project("p").await;
    let task = app
        .vapora(&["--json", "task", "create", "--project", &project, "--title", "t"])
        .await
        .json();
    app.wait_for_status(task["id"].as_str().unwrap(), "done").await;

    let report = app
        .vapora(&["--json", "budgets", "--project", &project])
        .await
        .json();
    let spend = report["spend"].as_array().expect("spend");
    let developer = spend
        .iter()
        .find(|s| s["role"] == "developer")
        .unwrap_or_else(|| panic!("{report}"));
    assert_eq!(developer["tasks"], 1);
    assert!(report["budgets"].is_array(), "{report}");

    let human = app.vapora(&["budgets"]).await;
    assert!(human.ok().contains("developer"), "{human:#?}");
}
