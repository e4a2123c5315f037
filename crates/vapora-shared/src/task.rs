//! Tasks and their lifecycle.
//!
//! The board columns are the statuses: `todo → queued → running → review →
//! done`, plus `failed` and `cancelled`. [`TaskStatus::can_transition_to`] is
//! the single source of truth for which moves exist; services refuse anything
//! else with a conflict instead of quietly fixing the state up.
//!
//! Every dispatch is an *attempt*: entering `queued` bumps `attempt`, and only
//! a result carrying the current attempt number may move the task further.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{AgentId, ProjectId, Rejection, Role, TaskId, UpstreamResult};

pub const MAX_TITLE_LEN: usize = 500;
pub const MAX_DESCRIPTION_LEN: usize = 64 * 1024;
pub const MAX_COMMENT_LEN: usize = 16 * 1024;
/// Longest execution timeout a task may ask for: a day.
pub const MAX_TIMEOUT_SECS: u32 = 86_400;
/// How the error of an attempt that outlived its timeout starts.
pub const TIMED_OUT: &str = "timed_out";
/// How the error of a task failed by a dependency starts.
pub const UPSTREAM_FAILED: &str = "upstream_failed";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    Todo,
    /// Queued as soon as the tasks it depends on are done.
    Waiting,
    Queued,
    Running,
    Review,
    Done,
    Failed,
    Cancelled,
}

impl TaskStatus {
    /// In board order. `waiting` came later than the others and is last,
    /// so that clients that index the board's columns keep working.
    pub const ALL: [TaskStatus; 8] = [
        Self::Todo,
        Self::Queued,
        Self::Running,
        Self::Review,
        Self::Done,
        Self::Failed,
        Self::Cancelled,
        Self::Waiting,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Todo => "todo",
            Self::Waiting => "waiting",
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Review => "review",
            Self::Done => "done",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// `done` and `cancelled` never change again. `failed` is final for its
    /// attempt but may be retried, which starts a new attempt.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Done | Self::Cancelled)
    }

    /// Every legal move of the state machine, whoever makes it.
    pub fn can_transition_to(self, next: TaskStatus) -> bool {
        use TaskStatus::*;
        matches!(
            (self, next),
            (Todo, Queued | Waiting | Cancelled)
                // Waiting → Queued once its dependencies are done; → Failed
                // when one of them failed and the task follows it.
                | (Waiting, Queued | Failed | Todo | Cancelled)
                | (Queued, Todo | Running | Failed | Cancelled)
                // Running → Queued: the worker was lost (restart, crash) and
                // the task is dispatched again under a new attempt.
                | (Running, Queued | Review | Done | Failed | Cancelled)
                // Review → Queued: a reviewer asked for another run.
                | (Review, Queued | Done | Cancelled)
                // Failed → Queued: retry (→ Waiting while a dependency
                // is still unfinished).
                | (Failed, Queued | Waiting)
        )
    }

    /// The subset of moves a person may make on the board (`PATCH status`).
    /// `running`, `review` and `failed` are reported by agents, and `done`
    /// from `running` is the agent's call too; a person approves from `review`.
    pub fn can_be_moved_by_user_to(self, next: TaskStatus) -> bool {
        use TaskStatus::*;
        self.can_transition_to(next)
            && match next {
                Todo | Cancelled => true,
                Queued => matches!(self, Todo | Review | Failed),
                Done => self == Review,
                Waiting | Running | Review | Failed => false,
            }
    }
}

impl fmt::Display for TaskStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Dispatch priority; the queue serves `critical` first, FIFO within one level.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    Low,
    #[default]
    Medium,
    High,
    Critical,
}

impl Priority {
    pub const ALL: [Priority; 4] = [Self::Low, Self::Medium, Self::High, Self::Critical];
}

/// What an agent produced, with the accounting needed for cost reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TaskResult {
    pub output: String,
    pub provider: String,
    pub model: String,
    pub tokens_in: u64,
    pub tokens_out: u64,
    pub cost_usd: f64,
    /// Provider calls it took (retries and fallbacks included).
    #[serde(default = "one")]
    pub attempts: u32,
    /// `output` was cut at the configured maximum size; the model said more.
    #[serde(default)]
    pub output_truncated: bool,
}

fn one() -> u32 {
    1
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Task {
    pub id: TaskId,
    pub project_id: ProjectId,
    pub title: String,
    pub description: String,
    pub role: Role,
    pub priority: Priority,
    pub status: TaskStatus,
    /// Ask for a person's approval (`review`) before the task counts as done.
    pub requires_approval: bool,
    /// Number of the current dispatch; 0 until the task is first queued.
    pub attempt: u32,
    pub assigned_agent: Option<AgentId>,
    pub result: Option<TaskResult>,
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// When the current attempt left the backend's queue: handed to an
    /// in-process agent, or acknowledged by the broker. `None` while queued
    /// in the backend.
    #[serde(default)]
    pub dispatched_at: Option<DateTime<Utc>>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    /// The latest result a person sent back from review, with why: the
    /// attempts after it are asked to address the comment.
    #[serde(default)]
    pub rejection: Option<Rejection>,
    /// How long one attempt may run, from its start, before it is cancelled
    /// and the task fails with an error starting `timed_out`.
    #[serde(default)]
    pub timeout_secs: Option<u32>,
    /// Tasks of the same project that must be done before this one runs.
    #[serde(default)]
    pub depends_on: Vec<TaskId>,
    /// Those of `depends_on` not done yet, as last evaluated.
    #[serde(default)]
    pub waiting_on: Vec<TaskId>,
    /// What this task does when a dependency fails or is cancelled.
    #[serde(default)]
    pub on_upstream_failure: UpstreamPolicy,
    /// The dependencies' results, given to the agent with the task.
    #[serde(default)]
    pub upstream: Vec<UpstreamResult>,
    /// Not queued before this instant: asked for at creation, or the next
    /// automatic retry of a failed attempt.
    #[serde(default)]
    pub run_at: Option<DateTime<Utc>>,
    /// Attempts a failure is retried up to, automatically (1: never).
    #[serde(default = "one")]
    pub max_attempts: u32,
    /// Wait before the first automatic retry; doubled for each next one.
    #[serde(default = "default_backoff")]
    pub retry_backoff_secs: u32,
    /// The workflow run and stage this task is, if it is one.
    #[serde(default)]
    pub workflow: Option<crate::StageOf>,
    /// The schedule whose slot created this task, if one did.
    #[serde(default)]
    pub schedule_id: Option<crate::ScheduleId>,
    /// At most `limit` tasks with this key are queued or running at once.
    #[serde(default)]
    pub concurrency: Option<crate::ConcurrencyLimit>,
    /// In `waiting` for a slot of its concurrency key, all of them taken.
    #[serde(default)]
    pub waiting_for_slot: bool,
}

fn default_backoff() -> u32 {
    DEFAULT_RETRY_BACKOFF_SECS
}

/// Most attempts a task may ask for.
pub const MAX_ATTEMPTS: u32 = 20;
/// Longest first backoff before an automatic retry: an hour.
pub const MAX_RETRY_BACKOFF_SECS: u32 = 3_600;
pub const DEFAULT_RETRY_BACKOFF_SECS: u32 = 5;

impl Task {
    /// When a failure of the current attempt is retried by itself, if it
    /// is: attempts left, and not a failure its dependencies caused (those
    /// are theirs to retry). Backoff doubles with each attempt.
    pub fn automatic_retry_at(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let upstream = self
            .error
            .as_deref()
            .is_some_and(|e| e.starts_with(UPSTREAM_FAILED));
        if self.status != TaskStatus::Failed || upstream || self.attempt >= self.max_attempts {
            return None;
        }
        let doublings = self.attempt.saturating_sub(1).min(16);
        let secs = u64::from(self.retry_backoff_secs).saturating_mul(1 << doublings);
        Some(now + chrono::Duration::seconds(secs.min(7 * 24 * 3600) as i64))
    }
}

/// What a task does when one of its dependencies fails or is cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum UpstreamPolicy {
    /// Fail too, with an error starting `upstream_failed`.
    #[default]
    Fail,
    /// Keep waiting: a retried dependency that gets done releases it.
    Wait,
}

/// A field that failed validation, reported to clients as a 422.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct ValidationError {
    pub field: &'static str,
    pub reason: String,
}

/// A move the state machine does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("task is {from}; it cannot move to {to}")]
pub struct TransitionError {
    pub from: TaskStatus,
    pub to: TaskStatus,
}

pub fn validate_text(
    field: &'static str,
    value: &str,
    max_len: usize,
    may_be_empty: bool,
) -> Result<(), ValidationError> {
    if !may_be_empty && value.trim().is_empty() {
        return Err(ValidationError {
            field,
            reason: "must not be empty".into(),
        });
    }
    if value.len() > max_len {
        return Err(ValidationError {
            field,
            reason: format!("must be at most {max_len} bytes, got {}", value.len()),
        });
    }
    Ok(())
}

/// Checks the run settings a task may have, wherever they are set (a
/// task, a workflow stage, a role's defaults), against the same bounds.
pub fn validate_run_settings(
    timeout_secs: Option<u32>,
    max_attempts: Option<u32>,
    retry_backoff_secs: Option<u32>,
) -> Result<(), ValidationError> {
    let bounds = [
        ("timeout_secs", timeout_secs, 1, MAX_TIMEOUT_SECS, " seconds"),
        ("max_attempts", max_attempts, 1, MAX_ATTEMPTS, ""),
        (
            "retry_backoff_secs",
            retry_backoff_secs,
            0,
            MAX_RETRY_BACKOFF_SECS,
            " seconds",
        ),
    ];
    for (field, value, min, max, unit) in bounds {
        if let Some(value) = value.filter(|v| !(min..=max).contains(v)) {
            return Err(ValidationError {
                field,
                reason: format!("must be between {min} and {max}{unit}, got {value}"),
            });
        }
    }
    Ok(())
}

/// Body of `PATCH /api/v1/tasks/{id}`: only the fields present change.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskPatch {
    /// Not blank.
    #[schema(min_length = 1, max_length = 500)]
    pub title: Option<String>,
    #[schema(max_length = 65536)]
    pub description: Option<String>,
    pub role: Option<Role>,
    pub priority: Option<Priority>,
    pub requires_approval: Option<bool>,
    pub status: Option<TaskStatus>,
}

impl TaskPatch {
    /// Whether the patch edits the task itself (anything but `status`).
    pub fn edits_fields(&self) -> bool {
        self.title.is_some()
            || self.description.is_some()
            || self.role.is_some()
            || self.priority.is_some()
            || self.requires_approval.is_some()
    }

    /// Applies the non-status fields to a copy of `task`, validating them.
    pub fn apply_fields(&self, task: &Task) -> Result<Task, ValidationError> {
        let mut next = task.clone();
        if let Some(title) = &self.title {
            validate_text("title", title, MAX_TITLE_LEN, false)?;
            next.title = title.clone();
        }
        if let Some(description) = &self.description {
            validate_text("description", description, MAX_DESCRIPTION_LEN, true)?;
            next.description = description.clone();
        }
        if let Some(role) = &self.role {
            next.role = role.clone();
        }
        if let Some(priority) = self.priority {
            next.priority = priority;
        }
        if let Some(requires_approval) = self.requires_approval {
            next.requires_approval = requires_approval;
        }
        Ok(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use TaskStatus::*;

    #[test]
    fn terminal_states_have_no_exits() {
        for to in TaskStatus::ALL {
            assert!(!Done.can_transition_to(to));
            assert!(!Cancelled.can_transition_to(to));
        }
    }

    #[test]
    fn happy_path_and_review_are_legal() {
        let path = [Todo, Queued, Running, Review, Done];
        for w in path.windows(2) {
            assert!(w[0].can_transition_to(w[1]), "{} -> {}", w[0], w[1]);
        }
        assert!(Running.can_transition_to(Done));
        assert!(Failed.can_transition_to(Queued));
    }

    #[test]
    fn users_cannot_play_agent() {
        assert!(!Queued.can_be_moved_by_user_to(Running));
        assert!(!Running.can_be_moved_by_user_to(Done));
        assert!(!Running.can_be_moved_by_user_to(Failed));
        assert!(Review.can_be_moved_by_user_to(Done));
        assert!(Todo.can_be_moved_by_user_to(Queued));
        assert!(Running.can_be_moved_by_user_to(Cancelled));
        assert!(!Done.can_be_moved_by_user_to(Cancelled));
    }

    #[test]
    fn priorities_order_critical_first() {
        assert!(Priority::Critical > Priority::High);
        assert!(Priority::High > Priority::Medium);
        assert!(Priority::Medium > Priority::Low);
    }

    #[test]
    fn status_parse_round_trips() {
        for s in TaskStatus::ALL {
            assert_eq!(TaskStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(TaskStatus::parse("nope"), None);
    }
}
