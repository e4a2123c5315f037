//! Chaos: processes die, the broker restarts, an attempt is published or
//! answered twice, and a poison task crashes its worker every time. Each test draws its
//! timing from a seeded [`Schedule`] (replay with `VAPORA_CHAOS_SEED`) and
//! asserts that no task is lost and none finishes twice.

use std::time::Duration;

use serde_json::{Value, json};
use vapora_llm_router::testing::Script;
use vapora_shared::wire::{
    EVENTS_STREAM, MSG_ID_HEADER, PROTOCOL_VERSION, TaskAttempt, TaskReport, attempt_msg_id,
    task_events_subject, task_subject,
};

use crate::cluster::{Cluster, Schedule, eventually, taking};
use crate::raw_worker::report;

async fn wait_until_done_count(cluster: &Cluster, backend: usize, project: &str, count: usize) {
    let api = cluster.api(backend);
    eventually(120, &format!("{count} tasks done"), || async {
        api.tasks_in(project, "done").await.len() >= count
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_an_agent_server_mid_task_hands_its_tasks_to_the_other() {
    let mut schedule = Schedule::new("kill_agent", 0x5eed_0001);
    let mut cluster = Cluster::start(taking(800)).await;
    cluster.start_backend().await;
    cluster.start_agent("agent-a", "developer", 4).await;
    cluster.start_agent("agent-b", "developer", 4).await;
    cluster.wait_for_agents(0, &["agent-a", "agent-b"]).await;
    let api = cluster.api(0);
    let project = api.create_project().await;
    let ids = api.create_tasks(&project, &["developer"], 40, 8).await;

    let kill_after = schedule.pick(2..12) as usize;
    wait_until_done_count(&cluster, 0, &project, kill_after).await;
    // An agent's slots start together and finish together (800 ms each),
    // so the count above is reached at a batch boundary, when the rest of
    // the batch may have sent results the backend has not applied yet:
    // those tasks still read `running` but agent-a already finished them.
    // Half a task later, what reads `running` on agent-a is mid-call.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let running_on_a: Vec<String> = api
        .tasks_in(&project, "running")
        .await
        .into_iter()
        .filter(|t| t["assigned_agent"] == "agent-a")
        .map(|t| t["id"].as_str().unwrap().to_owned())
        .collect();
    cluster.kill_agent("agent-a");
    assert!(!running_on_a.is_empty(), "agent-a was busy when killed");

    let api = cluster.api(0);
    api.wait_all_done(&project, &ids, 120).await;
    api.assert_finished_exactly_once(&ids).await;
    let mut taken_over = 0;
    for id in &running_on_a {
        if api.task(id).await["assigned_agent"] == "agent-b" {
            taken_over += 1;
        }
    }
    assert!(taken_over > 0, "agent-b completed what agent-a was running");
    // The backend saw agent-a go quiet.
    eventually(10, "agent-a offline", || async {
        api.get("/api/v1/agents/agent-a").await["status"] == "offline"
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarting_nats_with_500_tasks_in_flight_loses_none() {
    let mut schedule = Schedule::new("restart_nats", 0x5eed_0002);
    let mut cluster = Cluster::start(taking(200)).await;
    cluster.start_backend().await;
    cluster.start_agent("agent-a", "developer,tester", 16).await;
    cluster.start_agent("agent-b", "developer,tester", 16).await;
    cluster.wait_for_agents(0, &["agent-a", "agent-b"]).await;
    let api = cluster.api(0);
    let project = api.create_project().await;
    let ids = api
        .create_tasks(&project, &["developer", "tester"], 500, 16)
        .await;

    let restart_after = schedule.pick(10..60) as usize;
    let down_for = Duration::from_millis(schedule.pick(300..2_000));
    wait_until_done_count(&cluster, 0, &project, restart_after).await;
    let in_flight = 500 - api.tasks_in(&project, "done").await.len();
    eprintln!("restarting nats-server with {in_flight} tasks in flight, down for {down_for:?}");
    cluster.nats.kill();
    tokio::time::sleep(down_for).await;
    cluster.nats.start_again().await;

    let api = cluster.api(0);
    api.wait_all_done(&project, &ids, 180).await;
    api.assert_finished_exactly_once(&ids).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_the_backend_mid_run_and_a_restart_loses_none() {
    let mut schedule = Schedule::new("kill_backend", 0x5eed_0003);
    let mut cluster = Cluster::start(taking(100)).await;
    cluster.start_backend().await;
    cluster.start_agent("agent-a", "developer,reviewer", 8).await;
    cluster.start_agent("agent-b", "developer,reviewer", 8).await;
    cluster.wait_for_agents(0, &["agent-a", "agent-b"]).await;
    let project = cluster.api(0).create_project().await;
    let ids = cluster
        .api(0)
        .create_tasks(&project, &["developer", "reviewer"], 300, 16)
        .await;

    let kill_after = schedule.pick(5..100) as usize;
    let down_for = Duration::from_millis(schedule.pick(100..1_500));
    wait_until_done_count(&cluster, 0, &project, kill_after).await;
    cluster.kill_backend(0);
    // Workers carry on; their reports wait in JetStream.
    tokio::time::sleep(down_for).await;
    let restarted = cluster.start_backend().await;

    let api = cluster.api(restarted);
    api.wait_all_done(&project, &ids, 180).await;
    api.assert_finished_exactly_once(&ids).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_publish_of_an_attempt_runs_it_once() {
    let mut cluster = Cluster::start(Script::text(&["once"])).await;
    cluster.start_backend().await;
    let api = cluster.api(0);
    let project = api.create_project().await;
    let id = api.create_task(&project, "tester", "exactly once").await;
    eventually(10, "dispatched", || async {
        api.task(&id).await["dispatched_at"].is_string()
    })
    .await;

    // Someone publishes the very same attempt again (a retry after a lost
    // ack, a backend restarting before it recorded the dispatch).
    let task = api.task(&id).await;
    let attempt = TaskAttempt {
        protocol: PROTOCOL_VERSION,
        task_id: id.parse().unwrap(),
        project_id: project.parse().unwrap(),
        attempt: 1,
        role: vapora_shared::Role::parse("tester").unwrap(),
        priority: vapora_shared::Priority::Medium,
        title: task["title"].as_str().unwrap().into(),
        description: String::new(),
        dispatched_at: chrono::Utc::now(),
        context: Vec::new(),
        timeout_secs: None,
    };
    let client = async_nats::connect(cluster.nats.url()).await.unwrap();
    let js = async_nats::jetstream::new(client.clone());
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(MSG_ID_HEADER, attempt_msg_id(attempt.task_id, 1).as_str());
    let ack = js
        .publish_with_headers(
            task_subject(&attempt.role),
            headers,
            serde_json::to_vec(&attempt).unwrap().into(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    assert!(ack.duplicate, "JetStream recognised the attempt");

    cluster.start_agent("agent-a", "tester", 4).await;
    let api = cluster.api(0);
    eventually(30, "done", || async { api.task(&id).await["status"] == "done" }).await;

    // The same result reported twice (under another message id) changes nothing.
    let stream = js.get_stream(EVENTS_STREAM).await.unwrap();
    let stored = stream
        .get_last_raw_message_by_subject(&task_events_subject(attempt.task_id))
        .await
        .unwrap();
    let result: Value = serde_json::from_slice(&stored.payload).unwrap();
    assert_eq!(result["type"], "succeeded");
    let again: TaskReport = serde_json::from_value(result).unwrap();
    report(&client, &again, &format!("{id}.1.result.again")).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(cluster.llm.request_count(), 1, "one model call");
    api.assert_finished_exactly_once(std::slice::from_ref(&id)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_task_is_dead_lettered_and_the_others_finish() {
    let mut schedule = Schedule::new("poison", 0x5eed_0006);
    // Slow enough that the worker is killed before it could answer.
    let mut cluster = Cluster::start(Script {
        delay: Duration::from_millis(400),
        ..Script::text(&["fine"])
    })
    .await;
    cluster.start_backend().await;
    cluster.start_agent("agent-dev", "developer", 4).await;
    cluster.start_agent("agent-test", "tester", 1).await;
    cluster.wait_for_agents(0, &["agent-dev", "agent-test"]).await;
    let api = cluster.api(0);
    let project = api.create_project().await;
    let poison_at = schedule.pick(0..6) as usize;
    let mut ids = Vec::new();
    let mut poison = String::new();
    for i in 0..6 {
        if i == poison_at {
            poison = api
                .create_task(&project, "tester", "POISON: crashes its worker")
                .await;
        }
        ids.push(api.create_task(&project, "tester", &format!("tester {i}")).await);
        ids.push(
            api.create_task(&project, "developer", &format!("developer {i}"))
                .await,
        );
    }

    // Every time a worker sends the poison task to the model, the worker
    // process dies (here: the test kills it, as a crash would) and restarts.
    let mut crashes = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    loop {
        let poison_calls = cluster
            .llm
            .requests()
            .iter()
            .filter(|r| r.to_string().contains("POISON"))
            .count();
        if poison_calls > crashes {
            crashes = poison_calls;
            cluster.kill_agent("agent-test");
            cluster.start_agent("agent-test", "tester", 1).await;
        }
        if cluster.api(0).task(&poison).await["status"] == "failed" {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "poison task never dead-lettered"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let api = cluster.api(0);
    let task = api.task(&poison).await;
    assert!(
        task["error"].as_str().unwrap().starts_with("dead_lettered"),
        "{task}"
    );
    assert_eq!(crashes, 3, "one crash per delivery, max_deliver = 3");
    let failed = api.tasks_in(&project, "failed").await;
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["id"], poison.as_str());
    let letters = api.get("/api/v1/dead-letters").await;
    assert!(
        letters
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["task_id"] == poison.as_str() && l["attempt"] == 1 && l["deliveries"] == 3),
        "{letters}"
    );

    api.wait_all_done(&project, &ids, 60).await;
    api.assert_finished_exactly_once(&ids).await;

    // A person can try again: a new attempt.
    let (status, retried) = api
        .post(&format!("/api/v1/tasks/{poison}/retry"), json!({}))
        .await;
    assert_eq!(status, 200, "{retried}");
    assert_eq!(
        (retried["status"].clone(), retried["attempt"].clone()),
        (json!("queued"), json!(2))
    );
}

/// The known limit of ADR 0005, played by hand: JetStream acknowledged an
/// attempt, the backend marked it dispatched, and then the broker lost it
/// (here: the message is deleted from the stream before any worker took
/// it). The reconciler finds it missing and queues the task again under a
/// new attempt, which an agent server then runs, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attempt_the_broker_lost_after_acknowledging_it_is_dispatched_again() {
    let mut cluster = Cluster::start(Script::text(&["found again"])).await;
    cluster
        .start_backend_with(&[("VAPORA_RECONCILE_AFTER_SECS", "1")])
        .await;
    let api = cluster.api(0);
    let project = api.create_project().await;
    let id = api.create_task(&project, "developer", "lost in the broker").await;
    // Marked dispatched once its grace has passed (no worker started it).
    eventually(20, "the attempt marked dispatched", || async {
        !api.task(&id).await["dispatched_at"].is_null()
    })
    .await;

    let client = async_nats::connect(cluster.nats.url()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let mut stream = js.get_stream(vapora_shared::wire::TASKS_STREAM).await.unwrap();
    let held = stream.info().await.unwrap().state.clone();
    assert_eq!(held.messages, 1, "{held:?}");
    assert!(stream.delete_message(held.last_sequence).await.unwrap());

    eventually(30, "queued again under attempt 2", || async {
        let task = api.task(&id).await;
        task["attempt"] == 2 && task["status"] == "queued"
    })
    .await;
    cluster.start_agent("agent-a", "developer", 1).await;
    let api = cluster.api(0);
    api.wait_all_done(&project, std::slice::from_ref(&id), 30).await;
    let task = api.task(&id).await;
    assert_eq!(
        (task["attempt"].clone(), task["result"]["output"].clone()),
        (json!(2), json!("found again"))
    );
    api.assert_finished_exactly_once(std::slice::from_ref(&id)).await;
    assert_eq!(cluster.llm.request_count(), 1, "the model ran once");
}
