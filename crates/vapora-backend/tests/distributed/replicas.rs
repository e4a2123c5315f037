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

use crate::cluster::{ACK_WAIT_SECS, Api, Cluster, MAX_DELIVER};

/// Starts a replica in this process; returns its base URL and a stop handle.
async fn replica(cluster: &Cluster, db: Database) -> (String, oneshot::Sender<()>) {
    let settings = Settings::from_lookup(|key| match key {
        "VAPORA_PORT" => Some("0".into()),
        "VAPORA_NATS_URL" => Some(cluster.nats.url().to_owned()),
        "VAPORA_NATS_ACK_WAIT_SECS" => Some(ACK_WAIT_SECS.into()),
        "VAPORA_NATS_MAX_DELIVER" => Some(MAX_DELIVER.into()),
        "VAPORA_ADMIN_KEY" => Some(cluster.admin_key.clone()),
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
async fn watch(url: &str, key: &str) -> tokio::task::JoinHandle<(HashSet<String>, HashSet<String>)> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut request = format!("{}/api/v1/ws", url.replacen("http", "ws", 1))
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {key}").parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
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
    let watch_a = watch(&url_a, &cluster.admin_key).await;
    let watch_b = watch(&url_b, &cluster.admin_key).await;

    let (api_a, api_b) = (Api::at(&cluster.http, &url_a), Api::at(&cluster.http, &url_b));
    let project = api_a.create_project().await;
    let mut ids = HashSet::new();
    for i in 0..40 {
        // Alternate replicas: each one creates (and dispatches) half.
        let api = if i % 2 == 0 { api_a } else { api_b };
        let role = if i % 3 == 0 { "tester" } else { "developer" };
        ids.insert(api.create_task(&project, role, &format!("task {i}")).await);
    }

    let (created_a, done_a) = watch_a.await.unwrap();
    let (created_b, done_b) = watch_b.await.unwrap();
    assert_eq!(done_a, ids, "replica A's client saw every task finish");
    assert_eq!(done_b, ids, "replica B's client saw every task finish");
    assert_eq!(created_a, ids);
    assert_eq!(created_b, ids);

    // Both answer for every task, and both know the agent.
    for api in [api_a, api_b] {
        assert_eq!(api.tasks_in(&project, "done").await.len(), 40);
        assert_eq!(api.get("/api/v1/agents").await["items"][0]["id"], "agent-a");
    }
}
