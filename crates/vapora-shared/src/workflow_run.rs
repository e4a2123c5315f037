//! Workflow runs: a template instantiated with inputs in a project, one
//! task per stage.
//!
//! The stage tasks are ordinary tasks (their `workflow` names the run and
//! the stage) wired together with `depends_on`, so waiting, approval,
//! rejection, retries and timeouts are the tasks' own. A run's status is
//! derived from its stages ([`WorkflowStatus::of`]).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{Priority, ProjectId, Role, ScheduleId, TaskId, TaskStatus, WorkflowId};

/// Body of `POST /api/v1/workflows`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewWorkflow {
    pub project_id: ProjectId,
    /// The template's name.
    pub template: String,
    /// A value for each of the template's inputs, and nothing else.
    #[serde(default)]
    pub inputs: BTreeMap<String, String>,
    /// The first stages are not queued before this instant (RFC 3339).
    #[serde(default)]
    pub run_at: Option<DateTime<Utc>>,
    /// Every stage's priority; `medium` by default.
    #[serde(default)]
    pub priority: Priority,
}

/// Which stage of which run a task is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StageOf {
    pub run_id: WorkflowId,
    pub stage: String,
    /// The tasks of the stages that depend on this one.
    #[serde(default)]
    pub dependents: Vec<TaskId>,
}

/// Where a run stands, from its stages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WorkflowStatus {
    /// Stages are waiting, queued or running.
    Running,
    /// A stage's result waits for a person's approval.
    AwaitingApproval,
    /// A stage failed; retrying it continues the run.
    Failed,
    /// Every stage is done.
    Done,
    /// A stage, or the whole run, was cancelled.
    Cancelled,
}

impl WorkflowStatus {
    pub const ALL: [WorkflowStatus; 5] = [
        Self::Running,
        Self::AwaitingApproval,
        Self::Failed,
        Self::Done,
        Self::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::AwaitingApproval => "awaiting_approval",
            Self::Failed => "failed",
            Self::Done => "done",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// `done` and `cancelled` never change again.
    pub fn is_finished(self) -> bool {
        matches!(self, Self::Done | Self::Cancelled)
    }

    /// A run's status from its stages' statuses. A cancelled stage ends
    /// the run; a failed one holds it until it is retried.
    pub fn of(stages: impl IntoIterator<Item = TaskStatus> + Clone) -> Self {
        let any = |wanted: TaskStatus| stages.clone().into_iter().any(|s| s == wanted);
        if any(TaskStatus::Cancelled) {
            Self::Cancelled
        } else if stages.clone().into_iter().all(|s| s == TaskStatus::Done) {
            Self::Done
        } else if any(TaskStatus::Failed) {
            Self::Failed
        } else if any(TaskStatus::Review) {
            Self::AwaitingApproval
        } else {
            Self::Running
        }
    }
}

impl std::fmt::Display for WorkflowStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One stage of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct StageRun {
    pub name: String,
    pub role: Role,
    /// The stages it waits for, by name: the run's graph.
    pub depends_on: Vec<String>,
    pub requires_approval: bool,
    pub task_id: TaskId,
    /// Its task's status.
    pub status: TaskStatus,
}

/// A template's run in a project.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct WorkflowRun {
    pub id: WorkflowId,
    pub project_id: ProjectId,
    pub template: String,
    pub inputs: BTreeMap<String, String>,
    pub status: WorkflowStatus,
    /// In the order they may run: each after its dependencies.
    pub stages: Vec<StageRun>,
    pub run_at: Option<DateTime<Utc>>,
    /// The schedule whose slot started this run, if one did.
    #[serde(default)]
    pub schedule_id: Option<ScheduleId>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

impl WorkflowRun {
    /// The run with its stages' statuses as given (by task id), and the
    /// status, `updated_at` and `finished_at` that follow; `None` when
    /// nothing changed.
    pub fn with_stage_statuses(
        &self,
        status_of: impl Fn(TaskId) -> Option<TaskStatus>,
        now: DateTime<Utc>,
    ) -> Option<Self> {
        let mut next = self.clone();
        for stage in &mut next.stages {
            if let Some(status) = status_of(stage.task_id) {
                stage.status = status;
            }
        }
        next.status = WorkflowStatus::of(next.stages.iter().map(|s| s.status));
        if next == *self {
            return None;
        }
        next.updated_at = now;
        if next.status.is_finished() && self.finished_at.is_none() {
            next.finished_at = Some(now);
        }
        Some(next)
    }

    pub fn stage(&self, name: &str) -> Option<&StageRun> {
        self.stages.iter().find(|s| s.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use TaskStatus::*;

    #[test]
    fn a_run_is_done_only_when_every_stage_is() {
        assert_eq!(WorkflowStatus::of([Done, Done]), WorkflowStatus::Done);
        assert_eq!(WorkflowStatus::of([Done, Waiting]), WorkflowStatus::Running);
        assert_eq!(
            WorkflowStatus::of([Done, Review]),
            WorkflowStatus::AwaitingApproval
        );
        assert_eq!(WorkflowStatus::of([Failed, Review]), WorkflowStatus::Failed);
        assert_eq!(WorkflowStatus::of([Failed, Cancelled]), WorkflowStatus::Cancelled);
    }
}
