//! Projects under concurrent writes: edits are compare-and-set on `rev`, and
//! a delete checks for active tasks in the transaction that deletes.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

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
async fn a_project_delete_racing_task_creates_leaves_no_orphan() {
    // A slow model keeps every created task queued or running, so a delete
    // that loses the race must be refused.
    let llm = FakeProvider::start(slow_script()).await;
    let settings = test_settings(&llm);
    let app = spawn_app_with(llm, settings).await;
    for round in 0..50u32 {
        let project = app.create_project(&format!("round {round}")).await;
        let pid = project["id"].as_str().unwrap().to_owned();
        let project_url = format!("/api/v1/projects/{pid}");
        // Creates leave at staggered moments around the delete (finer than
        // a timer can sleep), so that rounds cover every interleaving.
        let start = Instant::now();
        let step = Duration::from_micros(u64::from(round % 10) * 60 + 40);
        let delete = async {
            app.http
                .delete(app.url(&project_url))
                .send()
                .await
                .unwrap()
                .status()
        };
        let creates = join_all((0..4u32).map(|k| {
            let project_id = project["id"].clone();
            let app = &app;
            async move {
                spin_until(start + step * k).await;
                app.try_create_task(&project_id, json!({})).await
            }
        }));
        let (deleted, created) = tokio::join!(delete, creates);

        let (project_status, _) = app.get(&project_url).await;
        let (_, left) = app.get(&format!("/api/v1/tasks?project_id={pid}")).await;
        let stored: Vec<&Value> = left["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| &t["id"])
            .collect();
        let accepted: Vec<&Value> = created
            .iter()
            .filter(|(status, _)| *status == StatusCode::CREATED)
            .map(|(_, task)| &task["id"])
            .collect();
        for (status, body) in &created {
            assert!(
                [
                    StatusCode::CREATED,
                    StatusCode::UNPROCESSABLE_ENTITY,
                    StatusCode::NOT_FOUND
                ]
                .contains(status),
                "round {round}: task create answered {status}: {body}"
            );
        }
        if accepted.is_empty() {
            assert_eq!(deleted, StatusCode::NO_CONTENT, "round {round}: {created:?}");
            assert_eq!(project_status, StatusCode::NOT_FOUND, "round {round}");
        } else {
            assert_eq!(
                deleted,
                StatusCode::CONFLICT,
                "round {round}: a created task's project was deleted"
            );
            assert_eq!(project_status, StatusCode::OK, "round {round}");
        }
        assert_eq!(
            stored, accepted,
            "round {round}: exactly the accepted tasks are stored"
        );
    }
    app.stop().await;
}

/// Waits until `deadline` without giving up the thread to a timer, whose
/// granularity (1 ms) is coarser than the race.
async fn spin_until(deadline: Instant) {
    while Instant::now() < deadline {
        tokio::task::yield_now().await;
    }
}
