//! Two backend replicas on the same NATS and the same database: both serve
//! the API, and both stream every event to their WebSocket clients,
//! whichever replica made the change.
//!
//! Embedded SurrealKV is one process's, so the two replicas run in this
//! test process on one embedded engine (in production they share a SurrealDB
//! server); everything between them goes through NATS as between processes.

use std::collections::HashSet;
use std::time::Duration;

use futures::StreamExt;
use serde_json::Value;
use tokio::sync::oneshot;
use vapora_backend::storage::Database;
use vapora_backend::{Application, Settings};
use vapora_llm_router::testing::Script;

use crate::cluster::{ACK_WAIT_SECS, Cluster, MAX_DELIVER};

/// Starts a replica in this process; returns its base URL and a stop handle.
async fn replica(cluster: &Cluster, db: Database) -> (String, oneshot::Sender<()>) {
    let settings = Settings::from_lookup(|key| match key {
        "VAPORA_PORT" => Some("0".into()),
        "VAPORA_NATS_URL" => Some(cluster.nats.url().to_owned()),
        "VAPORA_NATS_ACK_WAIT_SECS" => Some(ACK_WAIT_SECS.into()),
        "VAPORA_NATS_MAX_DELIVER" => Some(MAX_DELIVER.into()),
        _ => None,
    })
    .unwrap();
    let app = Application::build_on(settings, db).await.unwrap();
    let url = format!("http://{}", app.local_addr());
    let (stop, stopped) = oneshot::channel();
    tokio::spawn(app.run_until(async {
        let _ = stopped.await;
    }));
    (url, stop)
}

/// Collects `task.created` and `task.updated`-to-done ids from a WebSocket.
async fn watch(url: &str) -> tokio::task::JoinHandle<(HashSet<String>, HashSet<String>)> {
    let ws_url = format!("{}/api/v1/ws", url.replacen("http", "ws", 1));
    let (mut ws, _) = tokio_tungstenite::connect_async(ws_url).await.unwrap();
    tokio::spawn(async move {
        let (mut created, mut done) = (HashSet::new(), HashSet::new());
        while done.len() < 40 {
            let Ok(Some(Ok(message))) = tokio::time::timeout(Duration::from_secs(60), ws.next()).await else {
                break;
            };
            let Ok(text) = message.to_text() else { continue };
            let Ok(event) = serde_json::from_str::<Value>(text) else {
                continue;
            };
            let id = event["data"]["id"].as_str().unwrap_or_default().to_owned();
            match (event["type"].as_str(), event["data"]["status"].as_str()) {
                (Some("task.created"), _) => {
                    created.insert(id);
                }
                (Some("task.updated"), Some("done")) => {
                    done.insert(id);
                }
                _ => {}
            }
        }
        (created, done)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_serve_the_api_and_stream_every_event() {
    let mut cluster = Cluster::start(Script::text(&["from ", "either"])).await;
    let db = Database::connect("mem://").await.unwrap();
    let (url_a, _stop_a) = replica(&cluster, db.clone()).await;
    let (url_b, _stop_b) = replica(&cluster, db).await;
    cluster.start_agent("agent-a", "developer,tester", 4).await;
    let watch_a = watch(&url_a).await;
    let watch_b = watch(&url_b).await;

    let http = reqwest::Client::new();
    let project: Value = http
        .post(format!("{url_a}/api/v1/projects"))
        .json(&serde_json::json!({"name": "replicated"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let project = project["id"].as_str().unwrap();
    let mut ids = HashSet::new();
    for i in 0..40 {
        // Alternate replicas: each one creates (and dispatches) half.
        let url = if i % 2 == 0 { &url_a } else { &url_b };
        let role = if i % 3 == 0 { "tester" } else { "developer" };
        let task: Value = http
            .post(format!("{url}/api/v1/tasks"))
            .json(&serde_json::json!({"project_id": project, "role": role, "title": format!("task {i}")}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        ids.insert(task["id"].as_str().unwrap().to_owned());
    }

    let (created_a, done_a) = watch_a.await.unwrap();
    let (created_b, done_b) = watch_b.await.unwrap();
    assert_eq!(done_a, ids, "replica A's client saw every task finish");
    assert_eq!(done_b, ids, "replica B's client saw every task finish");
    assert_eq!(created_a, ids);
    assert_eq!(created_b, ids);

    // Both answer for every task, and both know the agent.
    for url in [&url_a, &url_b] {
        let page: Value = http
            .get(format!(
                "{url}/api/v1/tasks?project_id={project}&status=done&limit=100"
            ))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(page["items"].as_array().unwrap().len(), 40);
        let agents: Value = http
            .get(format!("{url}/api/v1/agents"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(agents[0]["id"], "agent-a");
    }
}
