//! The attempt fence, against workers played by hand: a result for a
//! superseded attempt, and a result from an agent that does not hold the
//! attempt, are recorded as stale and change nothing.

use serde_json::json;
use vapora_llm_router::testing::Script;
use vapora_shared::wire::{TaskReport, report_msg_id};
use vapora_shared::{AgentId, TaskResult};

use crate::cluster::{Cluster, eventually};
use crate::raw_worker::{report, take_attempt};

fn answer(output: &str) -> TaskResult {
    TaskResult {
        output: output.into(),
        provider: "by-hand".into(),
        model: "by-hand".into(),
        tokens_in: 1,
        tokens_out: 1,
        cost_usd: 0.0,
        attempts: 1,
        output_truncated: false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_for_a_superseded_attempt_is_recorded_and_ignored() {
    let mut cluster = Cluster::start(Script::text(&["fresh ", "answer"])).await;
    cluster.start_backend().await;
    let api = cluster.api(0);
    let project = api.create_project().await;
    let (status, task) = api
        .post(
            "/api/v1/tasks",
            json!({"project_id": project, "role": "developer", "title": "slow one", "requires_approval": true}),
        )
        .await;
    assert_eq!(status, 201);
    let id = task["id"].as_str().unwrap().to_owned();

    // A slow worker takes attempt 1, says it started, then goes quiet.
    let client = async_nats::connect(cluster.nats.url()).await.unwrap();
    let (attempt, _unacked) = take_attempt(&client, "developer").await;
    assert_eq!((attempt.task_id.to_string(), attempt.attempt), (id.clone(), 1));
    let slow = AgentId::from("slow-worker");
    let started = TaskReport::Started {
        task_id: attempt.task_id,
        attempt: 1,
        agent_id: slow.clone(),
    };
    report(&client, &started, &report_msg_id(&started)).await;
    eventually(10, "running on the slow worker", || async {
        api.task(&id).await["assigned_agent"] == "slow-worker"
    })
    .await;

    // A real agent server gets attempt 1 once the ack wait ran out, and a
    // reviewer asks for another run: attempt 2, approved.
    cluster.start_agent("agent-a", "developer", 2).await;
    let api = cluster.api(0);
    eventually(30, "attempt 1 in review", || async {
        api.task(&id).await["status"] == "review"
    })
    .await;
    let (status, task) = api.post(&format!("/api/v1/tasks/{id}/retry"), json!({})).await;
    assert_eq!(status, 409, "only failed tasks are retried: {task}");
    let patched = cluster
        .http
        .patch(format!("{}/api/v1/tasks/{id}", cluster.backends[0].url))
        .json(&json!({"status": "queued"}))
        .send()
        .await
        .unwrap();
    assert_eq!(patched.status(), 200);
    eventually(30, "attempt 2 in review", || async {
        let task = api.task(&id).await;
        task["status"] == "review" && task["attempt"] == 2
    })
    .await;
    let approved = cluster
        .http
        .patch(format!("{}/api/v1/tasks/{id}", cluster.backends[0].url))
        .json(&json!({"status": "done"}))
        .send()
        .await
        .unwrap();
    assert_eq!(approved.status(), 200);

    // Now the slow worker answers for attempt 1.
    let late = TaskReport::Succeeded {
        task_id: attempt.task_id,
        attempt: 1,
        agent_id: slow,
        result: answer("stale answer"),
    };
    // Its own message id: JetStream stores it, and only the attempt fence
    // stands between it and the task.
    report(&client, &late, &report_msg_id(&late)).await;
    eventually(10, "the stale result recorded", || async {
        let history = api.get(&format!("/api/v1/tasks/{id}/history")).await;
        history["stale_reports"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["attempt"] == 1 && r["kind"] == "succeeded" && r["agent"] == "slow-worker")
    })
    .await;
    let task = api.task(&id).await;
    assert_eq!(
        (task["status"].clone(), task["attempt"].clone()),
        (json!("done"), json!(2))
    );
    assert_eq!(task["result"]["output"], "fresh answer");
    api.assert_finished_exactly_once(std::slice::from_ref(&id)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_from_an_agent_that_does_not_hold_the_attempt_is_recorded_and_ignored() {
    let mut cluster = Cluster::start(Script::text(&["unused"])).await;
    cluster.start_backend().await;
    let api = cluster.api(0);
    let project = api.create_project().await;
    let id = api.create_task(&project, "developer", "held by one").await;

    // The holder takes attempt 1 and says so.
    let client = async_nats::connect(cluster.nats.url()).await.unwrap();
    let (attempt, _unacked) = take_attempt(&client, "developer").await;
    let holder = AgentId::from("holder");
    let started = TaskReport::Started {
        task_id: attempt.task_id,
        attempt: 1,
        agent_id: holder.clone(),
    };
    report(&client, &started, &report_msg_id(&started)).await;
    eventually(10, "running on the holder", || async {
        api.task(&id).await["assigned_agent"] == "holder"
    })
    .await;

    // Other agents answer for the same attempt (they had it before the
    // holder, or never had it): stale, whatever they say.
    for impostor in [
        TaskReport::Succeeded {
            task_id: attempt.task_id,
            attempt: 1,
            agent_id: AgentId::from("impostor-1"),
            result: answer("not yours"),
        },
        TaskReport::Failed {
            task_id: attempt.task_id,
            attempt: 1,
            agent_id: AgentId::from("impostor-2"),
            error: "not yours either".into(),
        },
    ] {
        report(&client, &impostor, &report_msg_id(&impostor)).await;
    }
    eventually(10, "both answers recorded as stale", || async {
        let history = api.get(&format!("/api/v1/tasks/{id}/history")).await;
        let stale = history["stale_reports"].as_array().unwrap().clone();
        [("succeeded", "impostor-1"), ("failed", "impostor-2")]
            .iter()
            .all(|(kind, agent)| stale.iter().any(|r| r["kind"] == *kind && r["agent"] == *agent))
    })
    .await;
    let task = api.task(&id).await;
    assert_eq!(task["status"], "running", "{task}");
    assert_eq!(task["assigned_agent"], "holder");
    assert!(task["result"].is_null() && task["error"].is_null(), "{task}");

    // The holder's own answer finishes the attempt.
    let finished = TaskReport::Succeeded {
        task_id: attempt.task_id,
        attempt: 1,
        agent_id: holder,
        result: answer("the holder's"),
    };
    report(&client, &finished, &report_msg_id(&finished)).await;
    eventually(10, "done by the holder", || async {
        api.task(&id).await["status"] == "done"
    })
    .await;
    let task = api.task(&id).await;
    assert_eq!(task["result"]["output"], "the holder's");
    assert_eq!(task["assigned_agent"], "holder");
    api.assert_finished_exactly_once(std::slice::from_ref(&id)).await;
}

/// Reports of one task can be applied out of order (replicas share the
/// report consumer; a report that could not be applied comes back later).
/// A redelivered attempt's result that overtakes its worker's `started` is
/// turned away (the attempt still has its first holder), and applied once
/// that `started` makes its worker the holder: the task does not stay
/// running with its result on file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_that_overtook_its_own_start_counts_once_its_worker_holds_the_attempt() {
    let mut cluster = Cluster::start(Script::text(&["unused"])).await;
    cluster.start_backend().await;
    let api = cluster.api(0);
    let project = api.create_project().await;
    let id = api.create_task(&project, "developer", "handed over").await;

    let client = async_nats::connect(cluster.nats.url()).await.unwrap();
    let (attempt, _unacked) = take_attempt(&client, "developer").await;
    let started_by = |agent: &str| TaskReport::Started {
        task_id: attempt.task_id,
        attempt: 1,
        agent_id: AgentId::from(agent),
    };
    let first = started_by("went-quiet");
    report(&client, &first, &report_msg_id(&first)).await;
    eventually(10, "running on the first worker", || async {
        api.task(&id).await["assigned_agent"] == "went-quiet"
    })
    .await;

    // The attempt was redelivered; its new worker's result arrives first.
    let result = TaskReport::Succeeded {
        task_id: attempt.task_id,
        attempt: 1,
        agent_id: AgentId::from("took-over"),
        result: answer("the new worker's"),
    };
    report(&client, &result, &report_msg_id(&result)).await;
    eventually(10, "the early result turned away", || async {
        let history = api.get(&format!("/api/v1/tasks/{id}/history")).await;
        history["stale_reports"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["kind"] == "succeeded" && r["agent"] == "took-over")
    })
    .await;
    assert_eq!(api.task(&id).await["status"], "running");

    let second = started_by("took-over");
    report(&client, &second, &report_msg_id(&second)).await;
    eventually(10, "done with the new worker's result", || async {
        api.task(&id).await["status"] == "done"
    })
    .await;
    let task = api.task(&id).await;
    assert_eq!(task["result"]["output"], "the new worker's");
    assert_eq!(task["assigned_agent"], "took-over");
    api.assert_finished_exactly_once(std::slice::from_ref(&id)).await;
}
