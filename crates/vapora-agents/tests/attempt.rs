//! The attempt runner every worker shares, against a scripted model and a
//! sink that records what it is told.

use std::sync::Mutex;

use async_trait::async_trait;
use futures::StreamExt;
use tokio_util::sync::CancellationToken;
use vapora_agents::attempt::AgentContext;
use vapora_agents::{
    Assignment, AttemptOutcome, AttemptSpec, Claim, OutputLimits, ReportSink, RoleCatalog, SinkError,
    run_attempt,
};
use vapora_llm_router::{ChatRequest, Completion, CompletionStream, LlmClient, LlmError, StreamEvent, Usage};
use vapora_shared::wire::TaskReport;
use vapora_shared::{AgentId, ProjectId, Role, TaskId};

/// A model that streams `chunks`, or panics when told to.
#[derive(Debug)]
struct ScriptedModel {
    chunks: Vec<String>,
    panics: bool,
}

#[async_trait]
impl LlmClient for ScriptedModel {
    fn provider(&self) -> &str {
        "scripted"
    }

    fn default_model(&self) -> &str {
        "scripted-1"
    }

    async fn complete(&self, _: &ChatRequest) -> Result<Completion, LlmError> {
        unreachable!("agents stream")
    }

    async fn stream(&self, _: &ChatRequest) -> Result<CompletionStream, LlmError> {
        assert!(!self.panics, "a provider's answer hit a bug");
        let text = self.chunks.concat();
        let done = Completion {
            text,
            provider: "scripted".into(),
            model: "scripted-1".into(),
            usage: Usage::default(),
            cost_usd: 0.0,
            finish_reason: None,
            attempts: 1,
            upstream_time: Default::default(),
        };
        let events = self
            .chunks
            .iter()
            .cloned()
            .map(StreamEvent::Delta)
            .chain([StreamEvent::Finished(done)])
            .map(Ok);
        Ok(futures::stream::iter(events.collect::<Vec<_>>()).boxed())
    }
}

/// Records every report; `claim` is what it answers to `started`.
struct RecordingSink {
    claim: Claim,
    reports: Mutex<Vec<TaskReport>>,
}

impl RecordingSink {
    fn new(claim: Claim) -> Self {
        Self {
            claim,
            reports: Mutex::default(),
        }
    }

    fn reports(&self) -> Vec<TaskReport> {
        self.reports.lock().unwrap().clone()
    }
}

impl ReportSink for RecordingSink {
    async fn started(&self, report: TaskReport) -> Result<Claim, SinkError> {
        self.reports.lock().unwrap().push(report);
        Ok(self.claim)
    }

    fn progress(&self, report: TaskReport) {
        self.reports.lock().unwrap().push(report);
    }

    async fn finished(&self, report: TaskReport) -> Result<(), SinkError> {
        self.reports.lock().unwrap().push(report);
        Ok(())
    }
}

async fn run(
    model: &ScriptedModel,
    sink: &RecordingSink,
    limits: OutputLimits,
    cancel: &CancellationToken,
) -> AttemptOutcome {
    let roles = RoleCatalog::builtin();
    let role = Role::parse("developer").unwrap();
    let agent_id = AgentId::from("agent-1");
    let agent = AgentContext {
        id: &agent_id,
        llm: model,
        roles: &roles,
        limits,
    };
    let spec = AttemptSpec {
        task_id: TaskId::new(),
        project_id: ProjectId::new(),
        attempt: 1,
        assignment: Assignment {
            role: &role,
            title: "t",
            description: "".into(),
            context: Default::default(),
        },
        timeout: None,
    };
    run_attempt(agent, spec, sink, cancel, &CancellationToken::new()).await
}

#[tokio::test]
async fn a_panicking_model_call_fails_the_attempt_and_the_runner_goes_on() {
    let sink = RecordingSink::new(Claim::Proceed);
    let panicking = ScriptedModel {
        chunks: vec![],
        panics: true,
    };
    let outcome = run(
        &panicking,
        &sink,
        OutputLimits::default(),
        &CancellationToken::new(),
    )
    .await;
    assert!(
        matches!(outcome, AttemptOutcome::Reported { succeeded: false }),
        "{outcome:?}"
    );
    let reports = sink.reports();
    let Some(TaskReport::Failed { error, .. }) = reports.last() else {
        panic!("no failed report: {reports:?}");
    };
    assert!(error.contains("failed internally"), "{error}");

    // The same runner, next attempt: business as usual.
    let sink = RecordingSink::new(Claim::Proceed);
    let healthy = ScriptedModel {
        chunks: vec!["fine".into()],
        panics: false,
    };
    let outcome = run(
        &healthy,
        &sink,
        OutputLimits::default(),
        &CancellationToken::new(),
    )
    .await;
    assert!(
        matches!(outcome, AttemptOutcome::Reported { succeeded: true }),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn outputs_and_progress_chunks_respect_the_size_limits() {
    let sink = RecordingSink::new(Claim::Proceed);
    let chatty = ScriptedModel {
        chunks: vec!["é".repeat(50), "tail".into()],
        panics: false,
    };
    let limits = OutputLimits {
        max_output_bytes: 64,
        max_chunk_bytes: 16,
    };
    let outcome = run(&chatty, &sink, limits, &CancellationToken::new()).await;
    assert!(matches!(outcome, AttemptOutcome::Reported { succeeded: true }));
    let reports = sink.reports();
    let chunks: Vec<&str> = reports
        .iter()
        .filter_map(|r| match r {
            TaskReport::Progress { chunk, .. } => Some(chunk.as_str()),
            _ => None,
        })
        .collect();
    assert!(chunks.iter().all(|c| c.len() <= 16), "{chunks:?}");
    // Nothing of the stream is lost, only split.
    assert_eq!(chunks.concat(), format!("{}tail", "é".repeat(50)));
    let seqs: Vec<u64> = reports
        .iter()
        .filter_map(|r| match r {
            TaskReport::Progress { seq, .. } => Some(*seq),
            _ => None,
        })
        .collect();
    assert_eq!(seqs, (0..chunks.len() as u64).collect::<Vec<_>>());
    let Some(TaskReport::Succeeded { result, .. }) = reports.last() else {
        panic!("no result: {reports:?}");
    };
    assert_eq!(result.output, "é".repeat(32));
    assert!(result.output_truncated);
}

#[tokio::test]
async fn a_superseded_attempt_never_calls_the_model() {
    let sink = RecordingSink::new(Claim::Superseded);
    // Calling this model would panic the test (and fail the attempt).
    let untouchable = ScriptedModel {
        chunks: vec![],
        panics: true,
    };
    let outcome = run(
        &untouchable,
        &sink,
        OutputLimits::default(),
        &CancellationToken::new(),
    )
    .await;
    assert!(matches!(outcome, AttemptOutcome::Superseded), "{outcome:?}");
    assert_eq!(sink.reports().len(), 1, "only `started` was sent");
}

#[tokio::test]
async fn a_cancelled_attempt_reports_nothing_more() {
    let sink = RecordingSink::new(Claim::Proceed);
    let model = ScriptedModel {
        chunks: vec!["x".into()],
        panics: false,
    };
    let cancel = CancellationToken::new();
    cancel.cancel();
    let outcome = run(&model, &sink, OutputLimits::default(), &cancel).await;
    assert!(matches!(outcome, AttemptOutcome::Cancelled), "{outcome:?}");
    assert!(
        sink.reports()
            .iter()
            .all(|r| matches!(r, TaskReport::Started { .. }))
    );
}
