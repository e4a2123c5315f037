//! Two backend replicas on the same NATS and the same database: both serve
//! the API, and both stream every event to their WebSocket clients,
//! whichever replica made the change.
//!
//! Embedded SurrealKV is one process's, so the two replicas run in this
//! test process on one embedded engine (in production they share a SurrealDB
//! server); everything between them goes through NATS as between processes.

use std::collections::HashSet;

use tokio::sync::oneshot;
use vapora_backend::storage::Database;
use vapora_backend::{Application, Settings};
use vapora_llm_router::testing::Script;

use crate::cluster::{ACK_WAIT_SECS, Api, Cluster, MAX_DELIVER, watch};

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
