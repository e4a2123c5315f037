//! Graceful shutdown. An agent server under load: SIGTERM stops its pulls,
//! lets running attempts finish within the deadline (or hands them back),
//! and it exits 0; no task is lost or finished twice. The backend, on its
//! default on-disk storage and default log settings: exits 0, having closed
//! the storage, with no warning or error on the way.

use std::time::Duration;

use crate::cluster::{Cluster, eventually, taking};

async fn sigterm_under_load(
    tasks: usize,
    task_millis: u64,
    grace_secs: &str,
) -> (Cluster, Vec<String>, String, Duration) {
    let mut cluster = Cluster::start(taking(task_millis)).await;
    cluster.start_backend().await;
    let grace = [("VAPORA_SHUTDOWN_GRACE_SECS", grace_secs)];
    cluster.start_agent_with("agent-a", "developer", 6, &grace).await;
    cluster.start_agent_with("agent-b", "developer", 6, &grace).await;
    cluster.wait_for_agents(0, &["agent-a", "agent-b"]).await;
    let api = cluster.api(0);
    let project = api.create_project().await;
    let ids = api.create_tasks(&project, &["developer"], tasks, 8).await;
    // Under load: agent-a has attempts running when it is told to stop.
    eventually(30, "agent-a busy", || async {
        api.get("/api/v1/agents/agent-a").await["load"].as_u64() >= Some(3)
    })
    .await;
    let (status, took) = cluster
        .terminate_agent(
            "agent-a",
            Duration::from_secs(grace_secs.parse::<u64>().unwrap() + 10),
        )
        .await;
    assert!(status.success(), "agent-a exited with {status:?}");
    (cluster, ids, project, took)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_running_attempts_finish_and_exits_0() {
    let (cluster, ids, project, took) = sigterm_under_load(60, 1_000, "5").await;
    assert!(
        took < Duration::from_secs(5),
        "exited {took:?} after SIGTERM, deadline 5 s"
    );
    // Nothing was cut off: every model stream that started was read to the end.
    let api = cluster.api(0);
    api.wait_all_done(&project, &ids, 120).await;
    api.assert_finished_exactly_once(&ids).await;
    assert_eq!(cluster.llm.dropped_streams(), 0);
    assert_eq!(cluster.llm.request_count(), 60, "no attempt ran twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_hands_back_what_cannot_finish_by_the_deadline() {
    let (cluster, ids, project, took) = sigterm_under_load(24, 2_500, "1").await;
    assert!(
        took < Duration::from_secs(3),
        "exited {took:?} after SIGTERM, deadline 1 s"
    );
    // The cut attempts were nak'ed and redone by agent-b.
    let api = cluster.api(0);
    api.wait_all_done(&project, &ids, 180).await;
    api.assert_finished_exactly_once(&ids).await;
    assert!(
        cluster.llm.dropped_streams() > 0,
        "attempts were cut at the deadline"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_the_backend_cleanly_and_closes_its_storage() {
    let mut cluster = Cluster::start(taking(10)).await;
    // An empty RUST_LOG: the binary's own default filter.
    cluster.start_backend_with(&[("RUST_LOG", "")]).await;
    cluster.start_agent("agent-a", "developer", 4).await;
    let api = cluster.api(0);
    let project = api.create_project().await;
    let ids = api.create_tasks(&project, &["developer"], 20, 4).await;
    api.wait_all_done(&project, &ids, 60).await;

    let (status, log) = cluster.terminate_backend(0, Duration::from_secs(15)).await;
    assert!(status.success(), "the backend exited with {status:?}:\n{log}");
    assert!(log.contains("shutdown complete"), "{log}");
    let noisy: Vec<&str> = log
        .lines()
        .filter(|line| line.contains(" WARN ") || line.contains(" ERROR "))
        .collect();
    assert!(noisy.is_empty(), "warnings or errors after SIGTERM: {noisy:#?}");

    // The storage was closed properly: a restart finds every task.
    let restarted = cluster.start_backend().await;
    let api = cluster.api(restarted);
    api.wait_all_done(&project, &ids, 30).await;
}
