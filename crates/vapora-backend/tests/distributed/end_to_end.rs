//! The production topology end to end.

use vapora_llm_router::testing::Script;

use crate::cluster::{Cluster, eventually};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_tasks_across_three_roles_each_finish_exactly_once() {
    let mut cluster = Cluster::start(Script::text(&["done ", "remotely"])).await;
    cluster.start_backend().await;
    cluster
        .start_agent("agent-a", "developer,tester,reviewer", 8)
        .await;
    cluster
        .start_agent("agent-b", "developer,tester,reviewer", 8)
        .await;
    cluster.wait_for_agents(0, &["agent-a", "agent-b"]).await;

    let api = cluster.api(0);
    let project = api.create_project().await;
    let ids = api
        .create_tasks(&project, &["developer", "tester", "reviewer"], 1_000, 16)
        .await;
    api.wait_all_done(&project, &ids, 120).await;
    api.assert_finished_exactly_once(&ids).await;

    // One model call per task: nothing ran twice.
    assert_eq!(cluster.llm.request_count(), 1_000);
    let done = api.tasks_in(&project, "done").await;
    let by_agent = |agent: &str| done.iter().filter(|t| t["assigned_agent"] == agent).count();
    assert_eq!(by_agent("agent-a") + by_agent("agent-b"), 1_000);
    assert!(
        by_agent("agent-a") > 0 && by_agent("agent-b") > 0,
        "both agent servers worked"
    );
    assert_eq!(done[0]["result"]["output"], "done remotely");
    assert_eq!(done[0]["attempt"], 1);
    // Every task knows when the broker took it, which came before its start
    // (the marks mostly travel with the workers' reports; see
    // `broker::dispatch_marks`).
    let at = |task: &serde_json::Value, field: &str| {
        task[field]
            .as_str()
            .and_then(|t| t.parse::<chrono::DateTime<chrono::Utc>>().ok())
            .unwrap_or_else(|| panic!("{field} of {task}"))
    };
    for task in &done {
        assert!(at(task, "created_at") <= at(task, "dispatched_at"), "{task}");
        assert!(at(task, "dispatched_at") <= at(task, "started_at"), "{task}");
    }

    // The registry counts what the agents reported (updated just after the
    // tasks are stored, so it may trail the last reads by a moment).
    let completed = || async {
        let agents = api.get("/api/v1/agents?limit=500").await;
        agents["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["tasks_completed"].as_u64().unwrap())
            .sum::<u64>()
    };
    eventually(10, "1,000 completions counted", || async {
        completed().await >= 1_000
    })
    .await;
    assert_eq!(completed().await, 1_000);
}

/// Model calls longer than the ack wait (2 s here), with more attempts than
/// free slots: an attempt waiting for a slot must wait in the broker, not
/// in a worker's hands where its ack wait would run out and JetStream would
/// give it to another worker as well.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attempts_waiting_for_a_slot_are_not_run_twice_when_calls_outlast_the_ack_wait() {
    let mut cluster = Cluster::start(crate::cluster::taking(3_000)).await;
    cluster.start_backend().await;
    cluster.start_agent("agent-a", "developer", 2).await;
    cluster.start_agent("agent-b", "developer", 2).await;
    cluster.wait_for_agents(0, &["agent-a", "agent-b"]).await;

    let api = cluster.api(0);
    let project = api.create_project().await;
    let ids = api.create_tasks(&project, &["developer"], 12, 12).await;
    api.wait_all_done(&project, &ids, 90).await;
    api.assert_finished_exactly_once(&ids).await;
    assert_eq!(cluster.llm.request_count(), 12, "one model call per task");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_result_reaches_an_agent_server_with_the_comment_in_its_prompt() {
    let mut cluster = Cluster::start(Script::text(&["first ", "draft"])).await;
    cluster.start_backend().await;
    cluster.start_agent("agent-a", "developer", 2).await;
    cluster.wait_for_agents(0, &["agent-a"]).await;
    let api = cluster.api(0);
    let project = api.create_project().await;
    let id = api
        .create_task_with(
            &project,
            "developer",
            "Draft it",
            serde_json::json!({"requires_approval": true}),
        )
        .await;
    let wait_for_review = |attempt: u64| {
        let id = id.clone();
        async move {
            for _ in 0..300 {
                let task = api.task(&id).await;
                if task["status"] == "review" && task["attempt"] == attempt {
                    return task;
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            panic!("task {id} never reached review as attempt {attempt}");
        }
    };
    wait_for_review(1).await;

    let (status, rejected) = api
        .post(
            &format!("/api/v1/tasks/{id}/reject"),
            serde_json::json!({"comment": "Make it final."}),
        )
        .await;
    assert_eq!(status, 200, "{rejected}");
    let again = wait_for_review(2).await;
    assert_eq!(again["rejection"]["previous_output"], "first draft");
    let requests = cluster.llm.requests();
    assert_eq!(requests.len(), 2, "one model call per attempt");
    let prompt = requests[1]["messages"][1]["content"].as_str().unwrap();
    assert!(
        prompt.contains("Make it final.") && prompt.contains("first draft"),
        "the agent server's second prompt carries the comment and the rejected answer: {prompt}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_server_fails_an_attempt_past_its_timeout_and_aborts_the_call() {
    // Ten chunks over five seconds, against a one-second timeout.
    let mut cluster = Cluster::start(crate::cluster::taking(5_000)).await;
    cluster.start_backend().await;
    cluster.start_agent("agent-a", "developer", 2).await;
    cluster.wait_for_agents(0, &["agent-a"]).await;
    let api = cluster.api(0);
    let project = api.create_project().await;
    let id = api
        .create_task_with(
            &project,
            "developer",
            "Stuck",
            serde_json::json!({"timeout_secs": 1}),
        )
        .await;
    eventually(10, "the attempt to fail as timed out", || async {
        let task = api.task(&id).await;
        task["status"] == "failed"
            && task["error"]
                .as_str()
                .is_some_and(|e| e.starts_with("timed_out:"))
    })
    .await;
    eventually(5, "the agent server to abort the model call", || async {
        cluster.llm.dropped_streams() == 1
    })
    .await;
    assert_eq!(cluster.llm.completed_streams(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dependent_runs_on_an_agent_server_after_its_dependency_with_its_result() {
    let mut cluster = Cluster::start(Script::text(&["upstream ", "answer"])).await;
    cluster.start_backend().await;
    cluster.start_agent("agent-a", "developer,tester", 2).await;
    cluster.wait_for_agents(0, &["agent-a"]).await;
    let api = cluster.api(0);
    let project = api.create_project().await;
    let first = api.create_task(&project, "developer", "Design it").await;
    let second = api
        .create_task_with(
            &project,
            "tester",
            "Test it",
            serde_json::json!({"depends_on": [first]}),
        )
        .await;
    api.wait_all_done(&project, &[first.clone(), second.clone()], 30)
        .await;
    api.assert_finished_exactly_once(&[first, second.clone()]).await;
    let requests = cluster.llm.requests();
    assert_eq!(requests.len(), 2, "one model call each");
    let prompt = requests
        .iter()
        .map(|r| r["messages"][1]["content"].as_str().unwrap().to_owned())
        .find(|p| p.starts_with("Task: Test it"))
        .expect("the dependent's model call");
    assert!(
        prompt.contains("upstream answer"),
        "the dependency's result reached the agent server: {prompt}"
    );
}
