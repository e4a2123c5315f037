//! Two backend replicas on the same NATS and the same database: both serve
//! the API, and both stream every event to their WebSocket clients,
//! whichever replica made the change, numbered in one order, so a client
//! resumes on either.
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

use crate::cluster::{ACK_WAIT_SECS, Api, Cluster, MAX_DELIVER, connect_events, watch};

/// Starts a replica in this process; returns its base URL and a stop handle.
pub(crate) async fn replica(cluster: &Cluster, db: Database) -> (String, oneshot::Sender<()>) {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_serve_the_api_and_stream_every_event() {
    let mut cluster = Cluster::start(Script::text(&["from ", "either"])).await;
    let db = Database::connect("mem://").await.unwrap();
    let (url_a, _stop_a) = replica(&cluster, db.clone()).await;
    let (url_b, _stop_b) = replica(&cluster, db).await;
    cluster.start_agent("agent-a", "developer,tester", 4).await;
    let watch_a = watch(&url_a, &cluster.admin_key, 40).await;
    let watch_b = watch(&url_b, &cluster.admin_key, 40).await;

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

/// Every event a WebSocket client of `url` receives (after `since`, if
/// given) until it has seen `until_done` tasks finish.
async fn record_events(
    url: &str,
    key: &str,
    since: Option<u64>,
    until_done: usize,
) -> tokio::task::JoinHandle<Vec<Value>> {
    let query = since.map(|s| format!("?since={s}")).unwrap_or_default();
    let mut ws = connect_events(url, key, &query).await;
    tokio::spawn(async move {
        let (mut events, mut done) = (Vec::new(), 0);
        while done < until_done {
            let next = tokio::time::timeout(Duration::from_secs(60), ws.next()).await;
            let Ok(Some(Ok(message))) = next else { break };
            let Ok(text) = message.to_text() else { continue };
            let event: Value = serde_json::from_str(text).unwrap();
            if event["type"] == "task.updated" && event["data"]["status"] == "done" {
                done += 1;
            }
            events.push(event);
        }
        events
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_replicas_number_events_alike_so_a_client_resumes_on_either() {
    let mut cluster = Cluster::start(Script::text(&["numbered ", "once"])).await;
    let db = Database::connect("mem://").await.unwrap();
    let (url_a, _stop_a) = replica(&cluster, db.clone()).await;
    let (url_b, _stop_b) = replica(&cluster, db).await;
    cluster.start_agent("agent-a", "developer", 4).await;
    let on_a = record_events(&url_a, &cluster.admin_key, None, 20).await;

    let (api_a, api_b) = (Api::at(&cluster.http, &url_a), Api::at(&cluster.http, &url_b));
    let project = api_a.create_project().await;
    for i in 0..20 {
        let api = if i % 2 == 0 { api_a } else { api_b };
        api.create_task(&project, "developer", &format!("task {i}")).await;
    }
    let seen_on_a = on_a.await.unwrap();
    let seqs: Vec<u64> = seen_on_a.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "replica A's events out of order: {seqs:?}"
    );

    // A client that got A's first ten events reconnects to B: B replays
    // exactly what A sent after them, same numbers, same order.
    let since = seqs[9];
    let expected: Vec<&Value> = seen_on_a
        .iter()
        .filter(|e| e["seq"].as_u64().unwrap() > since)
        .collect();
    let done_after = expected
        .iter()
        .filter(|e| e["type"] == "task.updated" && e["data"]["status"] == "done")
        .count();
    let on_b = record_events(&url_b, &cluster.admin_key, Some(since), done_after)
        .await
        .await
        .unwrap();
    let replayed: Vec<&Value> = on_b.iter().take(expected.len()).collect();
    assert_eq!(
        replayed, expected,
        "replica B's replay differs from what replica A sent"
    );
    println!(
        "resumed on replica B after seq {since}: {} events replayed, identical to replica A's",
        expected.len()
    );
}
