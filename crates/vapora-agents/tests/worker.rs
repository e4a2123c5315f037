//! The NATS worker against a real nats-server and a real fake LLM server.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::{DeliverPolicy, pull};
use async_nats::jetstream::{self as js};
use futures::StreamExt;
use tokio_util::sync::CancellationToken;
use vapora_agents::OutputLimits;
use vapora_agents::RoleCatalog;
use vapora_agents::jetstream::{DeliveryPolicy, ensure_topology};
use vapora_agents::testing::NatsServer;
use vapora_agents::worker::{self, WorkerConfig};
use vapora_llm_router::providers::Endpoint;
use vapora_llm_router::providers::openai::openai;
use vapora_llm_router::testing::{FakeProvider, Script};
use vapora_llm_router::{LlmClient, Pricing};
use vapora_shared::wire::{
    EVENTS_STREAM, HEARTBEAT_SUBJECT, Heartbeat, MSG_ID_HEADER, PROTOCOL_VERSION, TASKS_STREAM, TaskAttempt,
    TaskReport, attempt_msg_id, cancel_subject, task_subject,
};
use vapora_shared::{Priority, ProjectId, Role, TaskId};

struct Rig {
    _server: NatsServer,
    client: async_nats::Client,
    js: js::Context,
    llm: FakeProvider,
    stop: CancellationToken,
    worker: tokio::task::JoinHandle<Result<(), worker::WorkerError>>,
}

fn developer() -> Role {
    Role::parse("developer").unwrap()
}

async fn rig(script: Script) -> Rig {
    let server = NatsServer::start().await;
    let client = async_nats::connect(server.url()).await.unwrap();
    let js = js::new(client.clone());
    ensure_topology(&js, &[developer()], &DeliveryPolicy::default())
        .await
        .unwrap();
    let llm = FakeProvider::start(script).await;
    let provider: Arc<dyn LlmClient> = Arc::new(
        openai(Endpoint {
            name: "fake".into(),
            base_url: llm.base_url(),
            api_key: None,
            model: "m".into(),
            pricing: Pricing {
                input_per_mtok: 1.0,
                output_per_mtok: 2.0,
            },
            timeout: Duration::from_secs(10),
        })
        .unwrap(),
    );
    let config = WorkerConfig {
        agent_id: "worker-1".into(),
        roles: vec![developer()],
        concurrency_per_role: 2,
        heartbeat_every: Duration::from_millis(100),
        in_progress_every: Duration::from_millis(200),
        shutdown_deadline: Duration::from_secs(2),
        limits: OutputLimits::default(),
        alive_file: None,
        metrics: Default::default(),
    };
    let stop = CancellationToken::new();
    let worker = tokio::spawn(worker::run(
        client.clone(),
        provider,
        RoleCatalog::builtin(),
        config,
        stop.clone(),
    ));
    Rig {
        _server: server,
        client,
        js,
        llm,
        stop,
        worker,
    }
}

impl Rig {
    async fn dispatch(&self, attempt: &TaskAttempt) {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(
            MSG_ID_HEADER,
            attempt_msg_id(attempt.task_id, attempt.attempt).as_str(),
        );
        let payload = serde_json::to_vec(attempt).unwrap();
        self.js
            .publish_with_headers(task_subject(&attempt.role), headers, payload.into())
            .await
            .unwrap()
            .await
            .unwrap();
    }

    /// Reports on the events stream for `task`, as a fresh reader sees them.
    async fn reports_until(&self, task: TaskId, done: impl Fn(&TaskReport) -> bool) -> Vec<TaskReport> {
        let stream = self.js.get_stream(EVENTS_STREAM).await.unwrap();
        let consumer = stream
            .create_consumer(pull::Config {
                filter_subject: format!("vapora.events.{task}"),
                deliver_policy: DeliverPolicy::All,
                ..Default::default()
            })
            .await
            .unwrap();
        let mut messages = consumer.messages().await.unwrap();
        let mut reports = Vec::new();
        loop {
            let message = tokio::time::timeout(Duration::from_secs(10), messages.next())
                .await
                .expect("a report within 10 s")
                .unwrap()
                .unwrap();
            message.ack().await.unwrap();
            let report: TaskReport = serde_json::from_slice(&message.payload).unwrap();
            let finished = done(&report);
            reports.push(report);
            if finished {
                return reports;
            }
        }
    }

    async fn queued_attempts(&self) -> u64 {
        self.js
            .get_stream(TASKS_STREAM)
            .await
            .unwrap()
            .info()
            .await
            .unwrap()
            .state
            .messages
    }

    async fn shut_down(&mut self) {
        self.stop.cancel();
        tokio::time::timeout(Duration::from_secs(10), &mut self.worker)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    }
}

fn attempt(title: &str) -> TaskAttempt {
    TaskAttempt {
        protocol: PROTOCOL_VERSION,
        task_id: TaskId::new(),
        project_id: ProjectId::new(),
        attempt: 1,
        role: developer(),
        priority: Priority::High,
        title: title.into(),
        description: String::new(),
        dispatched_at: chrono::Utc::now(),
        context: Vec::new(),
        timeout_secs: None,
    }
}

#[tokio::test]
async fn a_worker_takes_an_attempt_streams_progress_reports_the_result_and_acks() {
    let mut rig = rig(Script {
        usage: Some((30, 3)),
        ..Script::text(&["fn ", "main", "() {}"])
    })
    .await;
    let mut heartbeats = rig.client.subscribe(HEARTBEAT_SUBJECT).await.unwrap();
    let task = attempt("Write main");
    rig.dispatch(&task).await;

    let reports = rig
        .reports_until(task.task_id, |r| {
            matches!(r, TaskReport::Succeeded { .. } | TaskReport::Failed { .. })
        })
        .await;
    assert!(
        matches!(&reports[0], TaskReport::Started { agent_id, attempt: 1, .. } if agent_id.0 == "worker-1"),
        "{reports:?}"
    );
    let chunks: Vec<&str> = reports
        .iter()
        .filter_map(|r| match r {
            TaskReport::Progress { chunk, .. } => Some(chunk.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(chunks.concat(), "fn main() {}");
    let TaskReport::Succeeded { result, .. } = reports.last().unwrap() else {
        panic!("{reports:?}")
    };
    assert_eq!(
        (result.output.as_str(), result.tokens_in, result.tokens_out),
        ("fn main() {}", 30, 3)
    );
    assert!(
        rig.llm.requests()[0]["messages"][1]["content"]
            .as_str()
            .unwrap()
            .contains("Write main")
    );

    // Acked only after the result was stored: the work queue is empty.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(rig.queued_attempts().await, 0);

    let beat = tokio::time::timeout(Duration::from_secs(5), heartbeats.next())
        .await
        .unwrap()
        .unwrap();
    let beat: Heartbeat = serde_json::from_slice(&beat.payload).unwrap();
    assert_eq!((beat.agent_id.0.as_str(), beat.capacity), ("worker-1", 2));
    rig.shut_down().await;
}

#[tokio::test]
async fn cancellation_aborts_the_model_call_and_reports_nothing_more() {
    let slow = Script {
        chunks: (0..100).map(|i| format!("w{i} ")).collect(),
        chunk_delay: Duration::from_millis(50),
        ..Script::default()
    };
    let mut rig = rig(slow).await;
    let task = attempt("long job");
    rig.dispatch(&task).await;
    rig.reports_until(task.task_id, |r| matches!(r, TaskReport::Progress { .. }))
        .await;

    rig.client
        .publish(cancel_subject(task.task_id), "".into())
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while rig.llm.dropped_streams() == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the model call was not aborted"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        rig.queued_attempts().await,
        0,
        "a cancelled attempt is acked, not redelivered"
    );
    let all = rig.reports_until(task.task_id, |_| true).await;
    assert!(
        !all.iter()
            .any(|r| matches!(r, TaskReport::Succeeded { .. } | TaskReport::Failed { .. }))
    );
    rig.shut_down().await;
}

#[tokio::test]
async fn shutdown_hands_unfinished_attempts_back_for_redelivery() {
    let slow = Script {
        chunks: (0..200).map(|i| format!("w{i} ")).collect(),
        chunk_delay: Duration::from_millis(50),
        ..Script::default()
    };
    let mut rig = rig(slow).await;
    let task = attempt("too long for the deadline");
    rig.dispatch(&task).await;
    rig.reports_until(task.task_id, |r| matches!(r, TaskReport::Progress { .. }))
        .await;
    let started = std::time::Instant::now();
    rig.shut_down().await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "stopped within its deadline"
    );
    // Nak'ed, so it is back in the queue for another worker.
    assert_eq!(rig.queued_attempts().await, 1);
}
