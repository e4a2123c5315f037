//! Concurrency keys: at most N tasks of a key are queued or running at
//! once; the others wait without holding up tasks of other keys.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{Value, json};
use vapora_llm_router::testing::Script;

use crate::support::{spawn_app_with, test_settings};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_of_two_never_has_more_than_two_running_and_other_keys_pass() {
    let llm = vapora_llm_router::testing::FakeProvider::start(Script {
        chunks: vec!["slow".into(), " answer".into()],
        chunk_delay: Duration::from_millis(150),
        ..Script::default()
    })
    .await;
    let mut settings = test_settings(&llm);
    // Enough workers that only the key limits how many run.
    settings.workers_per_role = 6;
    let app = spawn_app_with(llm, settings).await;
    let project = app.create_project("p").await;
    let mut events = app
        .websocket(&format!("?project_id={}", project["id"].as_str().unwrap()))
        .await;

    let mut keyed = Vec::new();
    for i in 0..8 {
        let task = app
            .create_task(
                &project["id"],
                json!({ "title": format!("deploy {i}"), "concurrency_key": "prod", "concurrency_limit": 2 }),
            )
            .await;
        keyed.push(task["id"].clone());
    }
    let other = app
        .create_task(
            &project["id"],
            json!({ "title": "other key", "concurrency_key": "staging" }),
        )
        .await;

    // Follow every status change; count the key's holders at each step.
    let mut status: HashMap<String, String> = HashMap::new();
    let mut most_running = 0;
    let mut other_done_while_waiting = false;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "tasks did not finish: {status:?}"
        );
        let event = events.next_event().await;
        if event["type"] != "task.updated" && event["type"] != "task.created" {
            continue;
        }
        let task = &event["data"];
        let id = task["id"].as_str().unwrap().to_owned();
        status.insert(id.clone(), task["status"].as_str().unwrap().to_owned());
        let is_keyed = |id: &str| keyed.iter().any(|k| k == &Value::from(id));
        let running = status
            .iter()
            .filter(|(id, s)| is_keyed(id) && s.as_str() == "running")
            .count();
        most_running = most_running.max(running);
        let waiting = status
            .iter()
            .filter(|(id, s)| is_keyed(id) && s.as_str() == "waiting")
            .count();
        if id == other["id"].as_str().unwrap() && task["status"] == "done" && waiting > 0 {
            other_done_while_waiting = true;
        }
        let finished = keyed
            .iter()
            .all(|k| status.get(k.as_str().unwrap()).is_some_and(|s| s == "done"));
        if finished {
            break;
        }
    }
    println!("concurrency key of 2 over 8 slow tasks: at most {most_running} running at once");
    assert!(
        most_running <= 2,
        "at most 2 of the key ran at once, saw {most_running}"
    );
    assert_eq!(most_running, 2, "the key's two slots were both used");
    assert!(
        other_done_while_waiting,
        "another key's task ran while the key's tasks waited"
    );
    let one = app.task(&keyed[7]).await;
    assert_eq!(one["concurrency"], json!({ "key": "prod", "limit": 2 }));
    assert_eq!(one["waiting_for_slot"], false);
}
