//! What must not wedge or leak: a flood of reports nobody can apply, a
//! worker that dies silently in the middle of an attempt, a provider that
//! asks to be left alone for 1e20 seconds, one whose error carries a key,
//! and a NATS URL list whose first server is gone.

use std::time::Duration;

use serde_json::json;
use vapora_shared::wire::{MSG_ID_HEADER, TaskReport, task_events_subject};
use vapora_shared::{AgentId, TaskId, TaskResult};

use vapora_llm_router::testing::Script;

use crate::cluster::{Cluster, eventually, taking};

/// Publishes `count` reports about tasks that do not exist (one in twenty
/// not even JSON) on `vapora.events.*`, awaiting JetStream's acks in
/// batches so the flood is as fast as the broker takes it.
async fn flood_unknown_reports(client: &async_nats::Client, count: usize) {
    let js = async_nats::jetstream::new(client.clone());
    let mut acks = Vec::with_capacity(1_000);
    for i in 0..count {
        let task_id = TaskId::new();
        let payload = if i % 20 == 0 {
            b"{not a report".to_vec()
        } else {
            let report = TaskReport::Succeeded {
                task_id,
                attempt: 1,
                agent_id: AgentId::from("intruder"),
                result: TaskResult {
                    output: "made up".into(),
                    provider: "none".into(),
                    model: "none".into(),
                    tokens_in: 1,
                    tokens_out: 1,
                    cost_usd: 0.0,
                    attempts: 1,
                    output_truncated: false,
                },
            };
            serde_json::to_vec(&report).unwrap()
        };
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(MSG_ID_HEADER, format!("flood-{i}").as_str());
        acks.push(
            js.publish_with_headers(task_events_subject(task_id), headers, payload.into())
                .await
                .unwrap(),
        );
        if acks.len() == 1_000 {
            for ack in acks.drain(..) {
                ack.await.unwrap();
            }
        }
    }
    for ack in acks {
        ack.await.unwrap();
    }
}

/// The Prometheus counter of reports dropped for `reason`.
async fn rejected_reports(cluster: &Cluster, reason: &str) -> u64 {
    let text = cluster
        .http
        .get(format!("{}/metrics", cluster.backends[0].url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let prefix = format!("vapora_worker_reports_rejected_total{{reason=\"{reason}\"}} ");
    text.lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_thousand_reports_for_unknown_tasks_do_not_stop_real_ones() {
    let mut cluster = Cluster::start(taking(20)).await;
    cluster.start_backend().await;
    cluster.start_agent("agent-a", "developer,tester", 8).await;
    cluster.wait_for_agents(0, &["agent-a"]).await;
    let client = async_nats::connect(cluster.nats.url()).await.unwrap();
    let api = cluster.api(0);
    let project = api.create_project().await;

    // The flood goes first, so it fills the report consumer's window before
    // the real reports arrive, and keeps going while the tasks run.
    let flood = {
        let client = client.clone();
        tokio::spawn(async move { flood_unknown_reports(&client, 20_000).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let ids = api.create_tasks(&project, &["developer", "tester"], 200, 8).await;
    flood.await.unwrap();

    api.wait_all_done(&project, &ids, 120).await;
    api.assert_finished_exactly_once(&ids).await;
    // Every bogus report was looked at once and let go, none retried.
    eventually(60, "the flood counted", || async {
        rejected_reports(&cluster, "unknown_task").await == 19_000
            && rejected_reports(&cluster, "unreadable").await == 1_000
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attempt_whose_worker_dies_silently_leaves_running_within_the_stall_timeout() {
    // The model never answers in time: only the worker's death can end it.
    let mut cluster = Cluster::start(taking(600_000)).await;
    cluster
        .start_backend_with(&[("VAPORA_ATTEMPT_STALL_SECS", "3")])
        .await;
    cluster.start_agent("agent-a", "developer", 1).await;
    cluster.wait_for_agents(0, &["agent-a"]).await;
    let api = cluster.api(0);
    let project = api.create_project().await;
    let id = api.create_task(&project, "developer", "never answered").await;
    eventually(30, "the attempt started", || async {
        api.task(&id).await["status"] == "running"
    })
    .await;

    cluster.kill_agent("agent-a");
    let killed = tokio::time::Instant::now();
    let api = cluster.api(0);
    eventually(20, "the task left running", || async {
        api.task(&id).await["status"] != "running"
    })
    .await;
    let waited = killed.elapsed();
    let task = api.task(&id).await;
    assert_eq!(task["status"], "failed", "{task}");
    let error = task["error"].as_str().unwrap();
    assert!(error.starts_with("stalled: attempt 1"), "{error}");
    // Three missed beats (1.5 s) mark the agent offline; 3 s later it counts
    // as silent; a sweep runs every 0.75 s.
    assert!(waited < Duration::from_secs(10), "took {waited:?}");

    // A person can start it again.
    let (status, retried) = api.post(&format!("/api/v1/tasks/{id}/retry"), json!({})).await;
    assert_eq!(status, 200, "{retried}");
    assert_eq!(retried["attempt"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_after_of_1e20_seconds_is_survived_and_the_task_still_runs() {
    let mut cluster = Cluster::start(taking(20)).await;
    cluster.llm.push(Script {
        status: 429,
        headers: vec![("retry-after".into(), "1e20".into())],
        ..Script::default()
    });
    cluster.start_backend().await;
    cluster.start_agent("agent-a", "developer", 1).await;
    cluster.wait_for_agents(0, &["agent-a"]).await;
    let api = cluster.api(0);
    let project = api.create_project().await;

    // The router's retry waits at most its backoff cap, not 1e20 s, and
    // the second call is answered.
    let first = api.create_task(&project, "developer", "asked to wait").await;
    let done = eventually_status(&cluster, &first, "done").await;
    assert_eq!(done["result"]["attempts"], 2, "{done}");
    assert_eq!(cluster.llm.request_count(), 2);
    // The same worker, the same slot, the next task.
    let next = api.create_task(&project, "developer", "next").await;
    eventually_status(&cluster, &next, "done").await;
    let logs = cluster.all_logs();
    assert!(!logs.contains("panicked"), "{logs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_401_carrying_a_key_leaks_into_no_task_response_or_log() {
    const SECRET: &str = "sk-live-SUPERSECRET0123456789";
    let body = format!(
        r#"{{"error":{{"message":"Incorrect API key provided: {SECRET}","type":"invalid_request_error","code":"invalid_api_key"}}}}"#
    );
    let mut cluster = Cluster::start(Script {
        status: 401,
        raw: Some(vec![body.into_bytes()]),
        ..Script::default()
    })
    .await;
    // Everything the processes say, not only what they say by default.
    let verbose = [("RUST_LOG", "debug,async_nats=info,surrealdb=info,surrealkv=info")];
    cluster.start_backend_with(&verbose).await;
    cluster
        .start_agent_with("agent-a", "developer", 1, &verbose)
        .await;
    cluster.wait_for_agents(0, &["agent-a"]).await;
    let api = cluster.api(0);
    let project = api.create_project().await;
    let id = api.create_task(&project, "developer", "refused upstream").await;
    let failed = eventually_status(&cluster, &id, "failed").await;
    assert!(failed["error"].as_str().unwrap().contains("401"), "{failed}");

    let mut seen = vec![
        failed.to_string(),
        api.get(&format!("/api/v1/tasks/{id}/history")).await.to_string(),
        api.get(&format!("/api/v1/projects/{project}/board"))
            .await
            .to_string(),
        api.get(&format!("/api/v1/tasks?project_id={project}"))
            .await
            .to_string(),
    ];
    seen.push(cluster.all_logs());
    for text in seen {
        assert!(!text.contains("SUPERSECRET"), "leaked: {text}");
    }
}

/// Waits for the task to reach `status` and returns it.
async fn eventually_status(cluster: &Cluster, id: &str, status: &str) -> serde_json::Value {
    let api = cluster.api(0);
    eventually(30, &format!("task {id} {status}"), || async {
        api.task(id).await["status"] == status
    })
    .await;
    api.task(id).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nats_url_list_whose_first_server_is_gone_still_connects() {
    let mut cluster = Cluster::start(taking(10)).await;
    // A port nobody listens on, then the real server: how a cluster's node
    // list looks while one node is down.
    let gone = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let servers = format!("nats://{gone},{}", cluster.nats.url());
    let env = [("VAPORA_NATS_URL", servers.as_str())];
    cluster.start_backend_with(&env).await;
    cluster.start_agent_with("agent-a", "developer", 2, &env).await;
    let api = cluster.api(0);
    let project = api.create_project().await;
    let ids = api.create_tasks(&project, &["developer"], 10, 4).await;
    api.wait_all_done(&project, &ids, 60).await;
    api.assert_finished_exactly_once(&ids).await;
}
