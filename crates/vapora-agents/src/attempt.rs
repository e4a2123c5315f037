//! One attempt of a task, from the agent's side: report `started`, run the
//! model while streaming progress, report the outcome.
//!
//! The agent server (reports go to JetStream) and the backend's in-process
//! pool (reports go straight to the backend's attempt fence) both run
//! attempts through [`run_attempt`]; only the [`ReportSink`] differs. So an
//! attempt behaves the same wherever it runs: the same size limits, the same
//! cancellation rules, and a panic in the model call becomes a failed
//! attempt instead of a dead worker.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::time::Duration;

use futures::FutureExt;
use tokio_util::sync::CancellationToken;
use vapora_llm_router::LlmClient;
use vapora_shared::wire::{TaskAttempt, TaskReport};
use vapora_shared::{AgentId, ProjectId, TIMED_OUT, Task, TaskId, TaskResult};

use crate::RoleCatalog;
use crate::executor::{Assignment, ExecutionError, execute};
use crate::jetstream::SettingError;

/// Size limits on what an attempt reports. A report travels as one NATS
/// message (1 MiB by default), so the output is cut well below that.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutputLimits {
    /// Bytes of `result.output` kept; the rest is cut and the result marked
    /// `output_truncated`.
    pub max_output_bytes: usize,
    /// Bytes of one progress report's chunk; a longer chunk is sent as
    /// several reports.
    pub max_chunk_bytes: usize,
}

impl Default for OutputLimits {
    fn default() -> Self {
        Self {
            max_output_bytes: 512 * 1024,
            max_chunk_bytes: 16 * 1024,
        }
    }
}

impl OutputLimits {
    /// Reads `VAPORA_MAX_OUTPUT_BYTES` and `VAPORA_MAX_CHUNK_BYTES` over the
    /// defaults; the backend's in-process pool and agent servers read the same.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, SettingError> {
        let mut limits = Self::default();
        let bytes = |name: &'static str, value: String| {
            value
                .trim()
                .parse::<usize>()
                .ok()
                .filter(|n| *n >= 64)
                .ok_or(SettingError {
                    name,
                    value,
                    reason: "expected a number of bytes, at least 64".into(),
                })
        };
        if let Some(value) = get("VAPORA_MAX_OUTPUT_BYTES") {
            limits.max_output_bytes = bytes("VAPORA_MAX_OUTPUT_BYTES", value)?;
        }
        if let Some(value) = get("VAPORA_MAX_CHUNK_BYTES") {
            limits.max_chunk_bytes = bytes("VAPORA_MAX_CHUNK_BYTES", value)?;
        }
        Ok(limits)
    }
}

/// Longest error message a `failed` report carries.
const MAX_ERROR_BYTES: usize = 4 * 1024;

/// Whether an attempt may go on after its `started` report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    Proceed,
    /// The attempt is no longer current (cancelled, superseded, already
    /// taken): the model is not called.
    Superseded,
}

/// A report could not be delivered.
#[derive(Debug, thiserror::Error)]
#[error("report not delivered: {0}")]
pub struct SinkError(#[source] pub Box<dyn std::error::Error + Send + Sync>);

impl SinkError {
    pub fn new(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self(Box::new(error))
    }
}

/// Where an attempt's reports go.
pub trait ReportSink: Send + Sync {
    /// Delivers `started` and tells whether to go on. A sink that cannot
    /// know (a broker) says [`Claim::Proceed`]; the backend cancels a
    /// stale attempt when the report reaches it.
    fn started(&self, report: TaskReport) -> impl Future<Output = Result<Claim, SinkError>> + Send;

    /// Hands over a progress report without waiting for it: progress is
    /// best effort and must never hold up the model's stream.
    fn progress(&self, report: TaskReport);

    /// Delivers the final report; `Ok` once it is recorded for good.
    fn finished(&self, report: TaskReport) -> impl Future<Output = Result<(), SinkError>> + Send;
}

/// How an attempt ended, for the caller to settle its side (ack or nak a
/// broker message, free a slot).
#[derive(Debug)]
pub enum AttemptOutcome {
    /// The final report was delivered.
    Reported { succeeded: bool },
    /// The fence turned the attempt away before the model was called.
    Superseded,
    /// Cancelled through the API; the backend already moved the task.
    Cancelled,
    /// Cut by our own shutdown: the attempt should be handed back.
    Interrupted,
    /// The outcome is known but its report could not be delivered.
    Undelivered(SinkError),
}

/// The attempt to run and what goes into its prompt.
#[derive(Debug, Clone)]
pub struct AttemptSpec<'a> {
    pub task_id: TaskId,
    pub project_id: ProjectId,
    pub attempt: u32,
    pub assignment: Assignment<'a>,
    /// How long the model call may run once `started` is recorded.
    pub timeout: Option<Duration>,
}

impl<'a> From<&'a TaskAttempt> for AttemptSpec<'a> {
    fn from(attempt: &'a TaskAttempt) -> Self {
        Self {
            task_id: attempt.task_id,
            project_id: attempt.project_id,
            attempt: attempt.attempt,
            assignment: attempt.into(),
            timeout: attempt.timeout_secs.map(|s| Duration::from_secs(s.into())),
        }
    }
}

impl<'a> From<&'a Task> for AttemptSpec<'a> {
    fn from(task: &'a Task) -> Self {
        Self {
            task_id: task.id,
            project_id: task.project_id,
            attempt: task.attempt,
            assignment: task.into(),
            timeout: task.timeout_secs.map(|s| Duration::from_secs(s.into())),
        }
    }
}

/// What an agent brings to every attempt.
#[derive(Debug, Clone, Copy)]
pub struct AgentContext<'a> {
    pub id: &'a AgentId,
    pub llm: &'a dyn LlmClient,
    pub roles: &'a RoleCatalog,
    pub limits: OutputLimits,
}

/// Runs one attempt: `started`, the model call with progress, then
/// `succeeded` or `failed`. `cancel` is the API's cancellation of this
/// attempt; `abort` is the agent's own shutdown.
pub async fn run_attempt(
    agent: AgentContext<'_>,
    spec: AttemptSpec<'_>,
    sink: &impl ReportSink,
    cancel: &CancellationToken,
    abort: &CancellationToken,
) -> AttemptOutcome {
    let (task_id, attempt, agent_id) = (spec.task_id, spec.attempt, agent.id.clone());
    let started = TaskReport::Started {
        task_id,
        attempt,
        agent_id: agent_id.clone(),
    };
    match sink.started(started).await {
        Ok(Claim::Proceed) => {}
        Ok(Claim::Superseded) => return AttemptOutcome::Superseded,
        // Without a recorded start the attempt may be handed to someone
        // else; calling the model now could only duplicate work.
        Err(e) => return AttemptOutcome::Undelivered(e),
    }

    let mut seq = 0;
    let on_chunk = |chunk: &str| {
        for piece in pieces(chunk, agent.limits.max_chunk_bytes) {
            sink.progress(TaskReport::Progress {
                task_id,
                project_id: spec.project_id,
                attempt,
                agent_id: agent_id.clone(),
                seq,
                chunk: piece.to_owned(),
            });
            seq += 1;
        }
    };
    // A panic anywhere in the call (a provider's odd answer hitting a bug)
    // fails this attempt; the worker and its slot carry on.
    let call = AssertUnwindSafe(execute(agent.llm, agent.roles, spec.assignment, on_chunk)).catch_unwind();
    // Past its timeout the call is dropped, which aborts the model request.
    let deadline = async {
        match spec.timeout {
            Some(timeout) => tokio::time::sleep(timeout).await,
            None => std::future::pending().await,
        }
    };
    let outcome = tokio::select! {
        biased;
        () = abort.cancelled() => return AttemptOutcome::Interrupted,
        () = cancel.cancelled() => return AttemptOutcome::Cancelled,
        outcome = call => Some(outcome),
        () = deadline => None,
    };
    let report = match outcome {
        None => TaskReport::Failed {
            task_id,
            attempt,
            agent_id,
            error: format!(
                "{TIMED_OUT}: the attempt ran longer than its {} s timeout; the model call was aborted",
                spec.timeout.unwrap_or_default().as_secs()
            ),
        },
        Some(outcome) => match outcome {
            Ok(Ok(result)) => TaskReport::Succeeded {
                task_id,
                attempt,
                agent_id,
                result: limit_output(result, agent.limits.max_output_bytes),
            },
            Ok(Err(e)) => TaskReport::Failed {
                task_id,
                attempt,
                agent_id,
                error: clip(e.to_string(), MAX_ERROR_BYTES),
            },
            Err(panic) => {
                tracing::error!(task = %task_id, attempt, panic = panic_message(&panic), "the model call panicked; failing the attempt");
                TaskReport::Failed {
                    task_id,
                    attempt,
                    agent_id,
                    error: ExecutionError::Panicked.to_string(),
                }
            }
        },
    };
    let succeeded = matches!(report, TaskReport::Succeeded { .. });
    match sink.finished(report).await {
        Ok(()) => AttemptOutcome::Reported { succeeded },
        Err(e) => AttemptOutcome::Undelivered(e),
    }
}

fn limit_output(mut result: TaskResult, max: usize) -> TaskResult {
    if result.output.len() > max {
        result.output = clip(std::mem::take(&mut result.output), max);
        result.output_truncated = true;
    }
    result
}

/// `text` cut to at most `max` bytes, on a character boundary.
fn clip(mut text: String, max: usize) -> String {
    text.truncate(text.floor_char_boundary(max));
    text
}

/// `chunk` in pieces of at most `max` bytes, split on character boundaries.
fn pieces(mut chunk: &str, max: usize) -> impl Iterator<Item = &str> {
    std::iter::from_fn(move || {
        if chunk.is_empty() {
            return None;
        }
        // A character longer than `max` still goes out whole.
        let mut cut = chunk.floor_char_boundary(max.max(1));
        if cut == 0 {
            cut = chunk.ceil_char_boundary(1);
        }
        let (piece, rest) = chunk.split_at(cut);
        chunk = rest;
        Some(piece)
    })
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_are_split_on_character_boundaries() {
        let text = "ab€cd€€e";
        let parts: Vec<&str> = pieces(text, 4).collect();
        assert_eq!(parts.concat(), text);
        assert!(parts.iter().all(|p| p.len() <= 4), "{parts:?}");
        assert_eq!(pieces("€", 1).collect::<Vec<_>>(), ["€"]);
        assert_eq!(pieces("", 4).count(), 0);
    }

    #[test]
    fn long_outputs_are_cut_and_marked() {
        let result = TaskResult {
            output: "é".repeat(10),
            provider: "p".into(),
            model: "m".into(),
            tokens_in: 1,
            tokens_out: 1,
            cost_usd: 0.0,
            attempts: 1,
            output_truncated: false,
        };
        let cut = limit_output(result.clone(), 5);
        assert_eq!((cut.output.as_str(), cut.output_truncated), ("éé", true));
        let kept = limit_output(result, 20);
        assert!(!kept.output_truncated);
    }
}
