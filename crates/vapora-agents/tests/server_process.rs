//! `vapora-agent-server` as a separate process: it joins through NATS,
//! completes an attempt, and exits 0 on SIGTERM.

use std::process::{Command, Stdio};
use std::time::Duration;

use futures::StreamExt;
use vapora_agents::testing::NatsServer;
use vapora_llm_router::testing::{FakeProvider, Script};
use vapora_shared::wire::{
    HEARTBEAT_SUBJECT, MSG_ID_HEADER, PROTOCOL_VERSION, TaskAttempt, TaskReport, attempt_msg_id, task_subject,
};
use vapora_shared::{Priority, ProjectId, Role, TaskId};

#[tokio::test]
async fn the_server_process_completes_an_attempt_and_exits_cleanly_on_sigterm() {
    let nats = NatsServer::start().await;
    let llm = FakeProvider::start(Script::text(&["done ", "by a separate process"])).await;
    let client = async_nats::connect(nats.url()).await.unwrap();
    let mut heartbeats = client.subscribe(HEARTBEAT_SUBJECT).await.unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_vapora-agent-server"))
        .env("VAPORA_NATS_URL", nats.url())
        .env("VAPORA_AGENT_ID", "proc-1")
        .env("VAPORA_AGENT_ROLES", "developer")
        .env("VAPORA_LLM_BASE_URL", llm.base_url())
        .env("VAPORA_LLM_MODEL", "m")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    // The first heartbeat says the server is up and pulling.
    tokio::time::timeout(Duration::from_secs(30), heartbeats.next())
        .await
        .expect("a heartbeat")
        .unwrap();

    let js = async_nats::jetstream::new(client.clone());
    let mut reports = client.subscribe("vapora.events.*").await.unwrap();
    let attempt = TaskAttempt {
        protocol: PROTOCOL_VERSION,
        task_id: TaskId::new(),
        project_id: ProjectId::new(),
        attempt: 1,
        role: Role::parse("developer").unwrap(),
        priority: Priority::Medium,
        title: "prove it".into(),
        description: String::new(),
        dispatched_at: chrono::Utc::now(),
        context: Vec::new(),
        timeout_secs: None,
    };
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(MSG_ID_HEADER, attempt_msg_id(attempt.task_id, 1).as_str());
    js.publish_with_headers(
        task_subject(&attempt.role),
        headers,
        serde_json::to_vec(&attempt).unwrap().into(),
    )
    .await
    .unwrap()
    .await
    .unwrap();
    let result = loop {
        let message = tokio::time::timeout(Duration::from_secs(10), reports.next())
            .await
            .expect("reports")
            .unwrap();
        if let TaskReport::Succeeded { result, agent_id, .. } =
            serde_json::from_slice(&message.payload).unwrap()
        {
            assert_eq!(agent_id.0, "proc-1");
            break result;
        }
    };
    assert_eq!(result.output, "done by a separate process");

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no exit within 15 s of SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(exit.success(), "exit status {exit:?}");
}
