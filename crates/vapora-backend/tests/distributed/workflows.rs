//! Workflow runs over JetStream: 500 runs of the shipped four-stage
//! template on two backend replicas, each stage run once; and a backend
//! killed (`kill -9`) mid-run whose run finishes after a restart.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{Value, json};
use vapora_backend::storage::Database;
use vapora_llm_router::testing::Script;

use crate::cluster::{Api, Cluster, taking};
use crate::replicas::replica;

/// Starts a run of the `feature` template.
async fn start_run(api: Api<'_>, project: &str, feature: &str) -> Value {
    let body = json!({ "project_id": project, "template": "feature", "inputs": { "feature": feature } });
    let (status, run) = api
        .post_retrying(
            "/api/v1/workflows",
            body,
            &format!("run-{project}-{}", feature.replace(' ', "-")),
        )
        .await;
    assert_eq!(status, 201, "{run}");
    run
}

/// Every run of the project (all pages).
async fn runs_of(api: Api<'_>, project: &str) -> Vec<Value> {
    let mut all = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = api
            .get(&format!(
                "/api/v1/workflows?project_id={project}&limit=500{cursor}"
            ))
            .await;
        all.extend(page["items"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => return all,
        }
    }
}

/// Approves every task of the project waiting in review (the reviewer's
/// approval gate), spreading the requests over `apis`; how many.
async fn approve_reviews(apis: &[Api<'_>], project: &str) -> usize {
    let waiting = apis[0].tasks_in(project, "review").await;
    let approvals = futures::stream::iter(waiting.iter().enumerate())
        .map(|(i, task)| async move {
            let id = task["id"].as_str().unwrap();
            let (status, body) = apis[i % apis.len()]
                .post_retrying(&format!("/api/v1/tasks/{id}/approve"), json!({}), id)
                .await;
            assert!(status == 200 || status == 409, "approve {id}: {status} {body}");
        })
        .buffer_unordered(16)
        .collect::<Vec<()>>()
        .await;
    approvals.len()
}

/// Every stage task of the runs: stored history shows each finished once,
/// done, on its first attempt.
async fn assert_each_stage_ran_once(api: Api<'_>, runs: &[Value]) -> Vec<String> {
    let ids: Vec<String> = runs
        .iter()
        .flat_map(|run| run["stages"].as_array().unwrap().iter())
        .map(|stage| stage["task_id"].as_str().unwrap().to_owned())
        .collect();
    api.assert_finished_exactly_once(&ids).await;
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_runs_on_two_replicas_run_each_stage_exactly_once() {
    const RUNS: usize = 500;
    let mut cluster = Cluster::start(Script::text(&["stage ", "output"])).await;
    let db = Database::connect("mem://").await.unwrap();
    let (url_a, _stop_a) = replica(&cluster, db.clone()).await;
    let (url_b, _stop_b) = replica(&cluster, db).await;
    cluster
        .start_agent("agent-a", "architect,developer,tester,reviewer", 16)
        .await;
    cluster
        .start_agent("agent-b", "architect,developer,tester,reviewer", 16)
        .await;
    let apis = [Api::at(&cluster.http, &url_a), Api::at(&cluster.http, &url_b)];
    let project = apis[0].create_project().await;

    let started = Instant::now();
    let project = &project;
    let started_runs = futures::stream::iter(0..RUNS)
        .map(|i| async move { start_run(apis[i % 2], project, &format!("feature {i}")).await })
        .buffer_unordered(16)
        .collect::<Vec<Value>>()
        .await;
    assert_eq!(started_runs.len(), RUNS);
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut approved = 0;
    loop {
        approved += approve_reviews(&apis, project).await;
        let done = apis[1]
            .get(&format!(
                "/api/v1/workflows?project_id={project}&status=done&limit=500"
            ))
            .await["items"]
            .as_array()
            .unwrap()
            .len();
        if done == RUNS {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{done}/{RUNS} runs done after 10 minutes"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let elapsed = started.elapsed();

    let finished = runs_of(apis[0], project).await;
    assert_eq!(finished.len(), RUNS);
    assert!(
        finished
            .iter()
            .all(|r| r["status"] == "done" && r["finished_at"].is_string())
    );
    let ids = assert_each_stage_ran_once(apis[0], &finished).await;
    assert_eq!(ids.len(), RUNS * 4);
    let calls = cluster.llm.request_count();
    assert_eq!(calls, RUNS * 4, "one model call per stage");
    let by_title: HashMap<String, usize> =
        cluster.llm.requests().iter().fold(HashMap::new(), |mut seen, r| {
            let prompt = r["messages"][1]["content"].as_str().unwrap_or_default();
            let title = prompt.lines().next().unwrap_or_default().to_owned();
            *seen.entry(title).or_default() += 1;
            seen
        });
    assert!(
        by_title.values().all(|n| *n == 1),
        "no stage's prompt was sent twice"
    );
    println!(
        "{RUNS} runs x 4 stages on two replicas: all done in {:.1} s, {calls} model calls, {approved} approvals, every stage finished once",
        elapsed.as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_killed_mid_run_finishes_the_run_after_a_restart_with_no_stage_run_twice() {
    let mut cluster = Cluster::start(taking(1_500)).await;
    cluster.start_backend().await;
    cluster
        .start_agent("agent-a", "architect,developer,tester,reviewer", 4)
        .await;
    let project = cluster.api(0).create_project().await;
    let run = start_run(cluster.api(0), &project, "durable runs").await;
    let path = format!("/api/v1/workflows/{}", run["id"].as_str().unwrap());

    // Kill it while the developer and tester stages run.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let now = cluster.api(0).get(&path).await;
        let running = now["stages"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["status"] == "running")
            .count();
        if running == 2 {
            break;
        }
        assert!(Instant::now() < deadline, "the middle stages never ran: {now}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cluster.kill_backend(0);
    // The stages finish on the agent server meanwhile; their results wait
    // in JetStream for a backend.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let restarted = cluster.start_backend().await;
    let api = cluster.api(restarted);

    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if approve_reviews(&[api], &project).await > 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the review never came: {}",
            api.get(&path).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let finished = loop {
        let now = api.get(&path).await;
        if now["status"] == "done" {
            break now;
        }
        assert!(Instant::now() < deadline, "the run never finished: {now}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_each_stage_ran_once(api, std::slice::from_ref(&finished)).await;
    assert_eq!(
        cluster.llm.request_count(),
        4,
        "each stage's model call made once"
    );
    println!("run finished after a kill -9 mid-run and a restart: 4 stages, 4 model calls");
}
