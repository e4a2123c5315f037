//! Resumable event streams: a client that reconnects with the `seq` of the
//! last event it got receives everything it missed, once and in order,
//! over the WebSocket (`?since=`) and Server-Sent Events (`Last-Event-ID`);
//! one whose events have left the window is told to resync.

use std::collections::HashSet;

use eventsource_stream::Eventsource;
use futures::{StreamExt, stream};
use serde_json::{Value, json};

use crate::support::{TestApp, spawn_app, spawn_app_with, test_settings};
use vapora_llm_router::testing::{FakeProvider, Script};

const MISSED: usize = 500;

/// Creates `n` tasks that wait in `todo` (one `task.created` event each);
/// returns their ids.
async fn create_todo_tasks(app: &TestApp, project: &Value, n: usize) -> HashSet<String> {
    stream::iter(0..n)
        .map(|i| async move {
            let task = app
                .create_task(
                    &project["id"],
                    json!({ "title": format!("missed {i}"), "dispatch": false }),
                )
                .await;
            task["id"].as_str().unwrap().to_owned()
        })
        .buffer_unordered(16)
        .collect()
        .await
}

/// The `seq` of the event the client gets for one more task created now.
async fn seq_of_a_new_event(app: &TestApp, project: &Value, ws: &mut crate::support::WsClient) -> u64 {
    let id = create_todo_tasks(app, project, 1)
        .await
        .into_iter()
        .next()
        .unwrap();
    let event = ws
        .events_until(|e| e["data"]["id"] == id.as_str())
        .await
        .pop()
        .unwrap();
    event["seq"].as_u64().expect("events carry their seq")
}

/// Checks `events` are exactly one `task.created` per id in `ids`, in
/// increasing `seq` order, all after `since`.
fn assert_each_once_in_order(events: &[Value], ids: &HashSet<String>, since: u64) {
    let mut last = since;
    let mut seen = HashSet::new();
    for event in events {
        let seq = event["seq"].as_u64().unwrap();
        assert!(seq > last, "event {seq} came after {last}");
        last = seq;
        assert_eq!(event["type"], "task.created", "{event}");
        let id = event["data"]["id"].as_str().unwrap().to_owned();
        assert!(
            ids.contains(&id),
            "an event for a task not created meanwhile: {id}"
        );
        assert!(seen.insert(id.clone()), "task {id} announced twice");
    }
    assert_eq!(seen.len(), ids.len(), "missed events were not all replayed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_client_resuming_with_since_gets_every_missed_event_once_in_order() {
    let app = spawn_app().await;
    let project = app.create_project("resume").await;
    let query = format!("?project_id={}", project["id"].as_str().unwrap());
    let mut ws = app.websocket(&query).await;
    let since = seq_of_a_new_event(&app, &project, &mut ws).await;
    ws.close().await;

    let missed = create_todo_tasks(&app, &project, MISSED).await;

    let mut ws = app.websocket(&format!("{query}&since={since}")).await;
    let mut replayed = Vec::new();
    for _ in 0..MISSED {
        replayed.push(ws.next_event().await);
    }
    assert_each_once_in_order(&replayed, &missed, since);
    // Then live events, numbered after the replay.
    let last = replayed.last().unwrap()["seq"].as_u64().unwrap();
    let live = seq_of_a_new_event(&app, &project, &mut ws).await;
    assert!(live > last);
    println!(
        "reconnected with since={since}: {MISSED} missed events replayed once each, in order, then live ones"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_sent_events_client_resumes_with_last_event_id() {
    let app = spawn_app().await;
    let project = app.create_project("sse").await;
    let project_id = project["id"].as_str().unwrap().to_owned();
    let mut ws = app.websocket(&format!("?project_id={project_id}")).await;
    let since = seq_of_a_new_event(&app, &project, &mut ws).await;

    let missed = create_todo_tasks(&app, &project, MISSED).await;

    let response = app
        .http
        .get(app.url(&format!("/api/v1/events?project_id={project_id}")))
        .header("Last-Event-ID", since.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut events = response.bytes_stream().eventsource();
    let mut replayed = Vec::new();
    while replayed.len() < MISSED {
        let message = tokio::time::timeout(std::time::Duration::from_secs(10), events.next())
            .await
            .expect("an event within 10 s")
            .expect("stream open")
            .expect("well-formed SSE");
        let event: Value = serde_json::from_str(&message.data).unwrap();
        assert_eq!(
            message.id,
            event["seq"].to_string(),
            "the SSE id is the event's seq"
        );
        replayed.push(event);
    }
    assert_each_once_in_order(&replayed, &missed, since);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_beyond_the_window_is_told_to_resync_then_follows_live_events() {
    let llm = FakeProvider::start(Script::default()).await;
    let mut settings = test_settings(&llm);
    settings.event_window = 100;
    let app = spawn_app_with(llm, settings).await;
    let project = app.create_project("too far behind").await;
    let query = format!("?project_id={}", project["id"].as_str().unwrap());
    let mut ws = app.websocket(&query).await;
    let since = seq_of_a_new_event(&app, &project, &mut ws).await;
    ws.close().await;

    create_todo_tasks(&app, &project, MISSED).await;

    let mut ws = app.websocket(&format!("{query}&since={since}")).await;
    let resync = ws.next_event().await;
    assert_eq!(resync["type"], "resync", "{resync}");
    assert_eq!(resync["data"]["since"], since);
    let from = resync["seq"].as_u64().unwrap();
    assert!(
        from >= since + MISSED as u64,
        "resync names the latest event: {resync}"
    );
    // Nothing of the backlog follows: the next event is a live one.
    let live = seq_of_a_new_event(&app, &project, &mut ws).await;
    assert_eq!(live, from + 1);
    app.stop().await;
}

#[tokio::test]
async fn a_malformed_since_is_a_clear_400_and_an_unknown_project_a_404() {
    let app = spawn_app().await;
    let unknown = vapora_shared::ProjectId::new();
    let (status, body) = app.get(&format!("/api/v1/events?project_id={unknown}")).await;
    assert_eq!(status, 404, "{body}");
    let refused = app
        .websocket_with_key(&format!("?project_id={unknown}"), &app.admin_key)
        .await;
    assert!(
        refused.is_err(),
        "a WebSocket for an unknown project was accepted"
    );
    let (status, body) = app.get("/api/v1/events?since=yesterday").await;
    assert_eq!(status, 400, "{body}");
    let response = app
        .http
        .get(app.url("/api/v1/events"))
        .header("Last-Event-ID", "-1")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_last_event_id");
    app.stop().await;
}
