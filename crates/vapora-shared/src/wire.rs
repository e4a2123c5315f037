//! The messages that cross NATS between the backend and agent workers.
//!
//! Workers may be written in any language, so this module is the
//! authoritative shape of every subject and message; `docs/protocol.md`
//! describes the same contract for people. Every message is one JSON object.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{AgentId, Priority, ProjectId, PromptContext, Role, TaskId, TaskResult};

/// Version of this protocol, carried by attempts and heartbeats. A change
/// an existing worker could not safely ignore bumps it; a new optional
/// field does not.
pub const PROTOCOL_VERSION: u32 = 1;

fn protocol_version_1() -> u32 {
    1
}

/// JetStream stream holding task attempts, one subject per role.
pub const TASKS_STREAM: &str = "VAPORA_TASKS";
/// JetStream stream holding progress and results reported by workers.
pub const EVENTS_STREAM: &str = "VAPORA_TASK_EVENTS";
/// JetStream stream keeping JetStream's max-deliveries advisories for task
/// attempts: the dead letters, kept until the backend has handled them.
pub const DEAD_LETTERS_STREAM: &str = "VAPORA_DEAD_LETTERS";
/// Advisory subjects JetStream publishes when a `VAPORA_TASKS` consumer gives
/// up on a message (`.<consumer>` follows).
pub const MAX_DELIVERIES_ADVISORY_PREFIX: &str = "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.VAPORA_TASKS";
/// Core NATS subject of agent heartbeats.
pub const HEARTBEAT_SUBJECT: &str = "vapora.agents.heartbeat";
/// Header carrying the attempt's deduplication id (`{task_id}.{attempt}`).
pub const MSG_ID_HEADER: &str = "Nats-Msg-Id";

/// `vapora.tasks.<role>`: where attempts for `role` are published.
pub fn task_subject(role: &Role) -> String {
    format!("vapora.tasks.{role}")
}

/// `vapora.events.<task_id>`: where workers report on a task.
pub fn task_events_subject(task: TaskId) -> String {
    format!("vapora.events.{task}")
}

/// `vapora.cancel.<task_id>`: core subject the backend uses to cancel a task
/// (body: [`CancelRequest`]).
pub fn cancel_subject(task: TaskId) -> String {
    format!("vapora.cancel.{task}")
}

/// The deduplication id of one attempt: re-publishing it is a no-op.
pub fn attempt_msg_id(task: TaskId, attempt: u32) -> String {
    format!("{task}.{attempt}")
}

/// Sent on [`cancel_subject`]: stop working on `attempt` of the task. A
/// worker running another attempt of the same task ignores it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CancelRequest {
    pub task_id: TaskId,
    pub attempt: u32,
}

/// The part of JetStream's max-deliveries advisory
/// (`io.nats.jetstream.advisory.v1.max_deliver`) the backend reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MaxDeliveriesAdvisory {
    pub stream: String,
    pub consumer: String,
    pub stream_seq: u64,
    pub deliveries: u64,
}

/// The `Nats-Msg-Id` of a report, so that JetStream's duplicate window drops
/// a re-sent copy:
///
/// Every id names the agent (`<task>.<attempt>.started.<agent>`,
/// `<task>.<attempt>.progress.<agent>.<seq>`, `<task>.<attempt>.result.<agent>`):
/// when an attempt is redelivered to another worker, its reports are its
/// own, not duplicates of the first worker's. Both workers' results are
/// stored, and the backend's attempt fence keeps the one from the agent
/// holding the attempt; a worker re-sending its own result is deduplicated.
pub fn report_msg_id(report: &TaskReport) -> String {
    let (task, attempt) = (report.task_id(), report.attempt());
    match report {
        TaskReport::Started { agent_id, .. } => format!("{task}.{attempt}.started.{agent_id}"),
        TaskReport::Progress { agent_id, seq, .. } => format!("{task}.{attempt}.progress.{agent_id}.{seq}"),
        TaskReport::Succeeded { agent_id, .. } | TaskReport::Failed { agent_id, .. } => {
            format!("{task}.{attempt}.result.{agent_id}")
        }
    }
}

/// One dispatch of a task, published to [`task_subject`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskAttempt {
    /// [`PROTOCOL_VERSION`] of the backend that published it.
    #[serde(default = "protocol_version_1")]
    pub protocol: u32,
    pub task_id: TaskId,
    pub project_id: ProjectId,
    pub attempt: u32,
    pub role: Role,
    pub priority: Priority,
    pub title: String,
    pub description: String,
    pub dispatched_at: DateTime<Utc>,
    /// What the prompt carries besides title and description, in order
    /// (for now: a rejected answer and the reviewer's comment). Absent
    /// when empty; workers that predate it ignore it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub context: Vec<PromptContext>,
    /// Seconds the attempt may run from its start; past it the worker
    /// aborts the model call and reports `failed` with an error starting
    /// `timed_out`. Absent: no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_secs: Option<u32>,
}

/// What a worker reports on [`task_events_subject`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TaskReport {
    /// The worker has taken the attempt and is calling the model.
    Started {
        task_id: TaskId,
        attempt: u32,
        agent_id: AgentId,
    },
    /// A chunk of streamed output, `seq` from 0 within the attempt.
    Progress {
        task_id: TaskId,
        /// Echoed from the attempt, so dashboards can filter by project.
        project_id: ProjectId,
        attempt: u32,
        agent_id: AgentId,
        seq: u64,
        chunk: String,
    },
    /// The attempt finished with a result.
    Succeeded {
        task_id: TaskId,
        attempt: u32,
        agent_id: AgentId,
        result: TaskResult,
    },
    /// The attempt failed; `error` says why.
    Failed {
        task_id: TaskId,
        attempt: u32,
        agent_id: AgentId,
        error: String,
    },
}

impl TaskReport {
    pub fn task_id(&self) -> TaskId {
        match self {
            Self::Started { task_id, .. }
            | Self::Progress { task_id, .. }
            | Self::Succeeded { task_id, .. }
            | Self::Failed { task_id, .. } => *task_id,
        }
    }

    pub fn attempt(&self) -> u32 {
        match self {
            Self::Started { attempt, .. }
            | Self::Progress { attempt, .. }
            | Self::Succeeded { attempt, .. }
            | Self::Failed { attempt, .. } => *attempt,
        }
    }
}

/// Sent every few seconds on [`HEARTBEAT_SUBJECT`] by every agent server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// [`PROTOCOL_VERSION`] the agent speaks.
    #[serde(default = "protocol_version_1")]
    pub protocol: u32,
    pub agent_id: AgentId,
    pub roles: Vec<Role>,
    /// Attempts in progress.
    pub load: u32,
    /// Attempts it is willing to run at once.
    pub capacity: u32,
    pub version: String,
    /// Milliseconds until the next heartbeat; after three missed ones the
    /// backend shows the agent offline.
    pub interval_ms: u64,
    pub sent_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_are_tagged_json() {
        let report = TaskReport::Failed {
            task_id: TaskId::new(),
            attempt: 2,
            agent_id: AgentId::from("w-1"),
            error: "boom".into(),
        };
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["type"], "failed");
        assert_eq!(json["attempt"], 2);
        assert_eq!(serde_json::from_value::<TaskReport>(json).unwrap(), report);
        let role = Role::parse("project-manager").unwrap();
        assert_eq!(task_subject(&role), "vapora.tasks.project-manager");
    }
}
