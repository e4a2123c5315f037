//! Projects under concurrent writes: edits are compare-and-set on `rev`, and
//! a delete checks for active tasks in the transaction that deletes.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::future::join_all;
use reqwest::StatusCode;
use serde_json::{Value, json};
use vapora_llm_router::testing::FakeProvider;

use crate::support::{slow_script, spawn_app, spawn_app_with, test_settings};

#[tokio::test]
async fn concurrent_project_patches_lose_no_update() {
    let app = spawn_app().await;
    let project = app.create_project("race").await;
    assert_eq!(project["rev"], 1, "{project}");
    let url = format!("/api/v1/projects/{}", project["id"].as_str().unwrap());
    let patches: Vec<Value> = (0..64)
        .map(|i| {
            if i % 2 == 0 {
                json!({ "name": format!("name-{i}") })
            } else {
                json!({ "description": format!("description-{i}") })
            }
        })
        .collect();
    let answers = join_all(patches.iter().map(|patch| app.patch(&url, patch))).await;

    // Each write that answered 200 made its own revision...
    let mut by_rev: BTreeMap<u64, (&Value, Value)> = BTreeMap::new();
    for (patch, (status, body)) in patches.iter().zip(answers) {
        assert!(
            status == StatusCode::OK || status == StatusCode::CONFLICT,
            "{status}: {body}"
        );
        if status == StatusCode::OK {
            let rev = body["rev"].as_u64().expect("a revision");
            assert!(
                by_rev.insert(rev, (patch, body)).is_none(),
                "two writes made revision {rev}"
            );
        }
    }
    assert!(
        by_rev.len() >= 32,
        "only {} of 64 writes went through",
        by_rev.len()
    );
    // ...on top of the one before: replaying the patches in revision order
    // gives every answer, so none was written over a stale read.
    let mut expected = project.clone();
    for (rev, (patch, answer)) in &by_rev {
        assert_eq!(
            *rev,
            expected["rev"].as_u64().unwrap() + 1,
            "revisions are consecutive"
        );
        for (field, value) in patch.as_object().unwrap() {
            expected[field] = value.clone();
        }
        expected["rev"] = json!(rev);
        for field in ["name", "description", "rev"] {
            assert_eq!(answer[field], expected[field], "revision {rev}: {answer}");
        }
    }
    let (_, stored) = app.get(&url).await;
    for field in ["name", "description", "rev"] {
        assert_eq!(stored[field], expected[field], "{stored}");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_project_delete_racing_a_task_create_leaves_no_orphan() {
    // A slow model keeps every created task queued or running, so a delete
    // that loses the race must be refused.
    let llm = FakeProvider::start(slow_script()).await;
    let settings = test_settings(&llm);
    let app = spawn_app_with(llm, settings).await;
    for round in 0..50u64 {
        let project = app.create_project(&format!("round {round}")).await;
        let pid = project["id"].as_str().unwrap().to_owned();
        let project_url = format!("/api/v1/projects/{pid}");
        // Vary which request leaves first, to cover both orders.
        let head_start = Duration::from_micros((round % 5) * 150);
        let delete = async {
            if round % 2 == 0 {
                tokio::time::sleep(head_start).await;
            }
            app.http
                .delete(app.url(&project_url))
                .send()
                .await
                .unwrap()
                .status()
        };
        let create = async {
            if round % 2 == 1 {
                tokio::time::sleep(head_start).await;
            }
            app.try_create_task(&project["id"], json!({})).await
        };
        let (deleted, (created, task)) = tokio::join!(delete, create);

        let (project_status, _) = app.get(&project_url).await;
        let (_, left) = app.get(&format!("/api/v1/tasks?project_id={pid}")).await;
        match created {
            StatusCode::CREATED => {
                assert_eq!(
                    deleted,
                    StatusCode::CONFLICT,
                    "round {round}: the task's project was deleted"
                );
                assert_eq!(project_status, StatusCode::OK, "round {round}");
                assert_eq!(left["items"][0]["id"], task["id"], "round {round}: {left}");
            }
            StatusCode::UNPROCESSABLE_ENTITY | StatusCode::NOT_FOUND => {
                assert_eq!(deleted, StatusCode::NO_CONTENT, "round {round}: {task}");
                assert_eq!(project_status, StatusCode::NOT_FOUND, "round {round}");
                assert_eq!(
                    left["items"],
                    json!([]),
                    "round {round}: a task outlived its project"
                );
            }
            other => panic!("round {round}: task create answered {other}: {task}"),
        }
    }
    app.stop().await;
}
