//! Backends on a real SurrealDB server over `ws://` with credentials, as
//! docker-compose.yml runs them: the work goes through, and when the server
//! goes away the API says so at once (503 with `Retry-After`, `/ready` 503,
//! no hang), then carries on by itself once the server is back.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::cluster::{Cluster, eventually, taking};
use vapora_cluster::SurrealServer;
use vapora_cluster::surreal_server::USER;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backends_on_a_surrealdb_server_ride_out_its_restart() {
    let data = tempfile::tempdir().unwrap();
    let binary = SurrealServer::binary_from_env().unwrap();
    let mut surreal = SurrealServer::start(&binary, data.path()).await.unwrap();
    let mut cluster = Cluster::start(taking(10)).await;
    cluster.secrets.push(surreal.password.clone());
    let env = [
        ("VAPORA_DATABASE_USER", USER),
        ("VAPORA_DATABASE_PASS", surreal.password.as_str()),
        ("VAPORA_DATABASE_TIMEOUT_SECS", "2"),
    ];
    let url = surreal.url();
    cluster.spawn_backend(&url, &env).await;
    cluster.spawn_backend(&url, &env).await;
    cluster.start_agent("agent-a", "developer", 4).await;
    let (a, b) = (cluster.api(0), cluster.api(1));
    let project = a.create_project().await;
    let before = a.create_tasks(&project, &["developer"], 10, 4).await;
    b.wait_all_done(&project, &before, 60).await;

    surreal.kill();
    let started = Instant::now();
    let refused = cluster
        .http
        .post(format!("{}/api/v1/projects", cluster.backends[0].url))
        .json(&json!({ "name": "while down" }))
        .send()
        .await
        .unwrap();
    let took = started.elapsed();
    assert_eq!(refused.status(), 503);
    assert!(
        refused.headers().contains_key("retry-after"),
        "{:?}",
        refused.headers()
    );
    assert!(took < Duration::from_secs(10), "answered in {took:?}");
    eprintln!("a write with the SurrealDB server gone: 503 in {took:?}");
    let ready = cluster
        .http
        .get(format!("{}/ready", cluster.backends[1].url))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);

    surreal.start_again().await.unwrap();
    for n in 0..2 {
        let ready_url = format!("{}/ready", cluster.backends[n].url);
        eventually(30, "the backend is ready again", || async {
            cluster
                .http
                .get(&ready_url)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
        })
        .await;
    }
    let after = b.create_tasks(&project, &["developer"], 10, 4).await;
    // Counted in the project: all 20, the ten from before included.
    let all: Vec<String> = before.iter().chain(&after).cloned().collect();
    a.wait_all_done(&project, &all, 60).await;
    a.assert_finished_exactly_once(&all).await;
}
