//! Domain events, as pushed to WebSocket dashboards.
//!
//! The wire form is `{"type":"task.updated","data":{...}}`; the `type` names
//! are part of the public contract.

use serde::{Deserialize, Serialize};

use crate::{Agent, AgentId, Project, ProjectId, Task, TaskId, WorkflowRun};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum Event {
    #[serde(rename = "project.created")]
    ProjectCreated(Project),
    #[serde(rename = "project.updated")]
    ProjectUpdated(Project),
    #[serde(rename = "project.deleted")]
    ProjectDeleted { id: ProjectId },
    #[serde(rename = "task.created")]
    TaskCreated(Task),
    /// Sent on every status change, always with the full task.
    #[serde(rename = "task.updated")]
    TaskUpdated(Task),
    #[serde(rename = "task.progress")]
    TaskProgress(TaskProgress),
    #[serde(rename = "agent.updated")]
    AgentUpdated(Agent),
    #[serde(rename = "workflow.created")]
    WorkflowCreated(WorkflowRun),
    /// Sent when a stage's status, and with it maybe the run's, changed.
    #[serde(rename = "workflow.updated")]
    WorkflowUpdated(WorkflowRun),
    /// Sent once, for the change that made the run `done` or `cancelled`.
    #[serde(rename = "workflow.finished")]
    WorkflowFinished(WorkflowRun),
}

/// A chunk of output streamed while an agent works.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskProgress {
    pub task_id: TaskId,
    pub project_id: ProjectId,
    pub attempt: u32,
    pub agent_id: AgentId,
    /// Position of this chunk within the attempt, from 0.
    pub seq: u64,
    pub chunk: String,
}

impl Event {
    /// The project an event belongs to, for `?project_id=` filtering.
    /// Agent events belong to no project and reach every subscriber.
    pub fn project_id(&self) -> Option<ProjectId> {
        match self {
            Self::ProjectCreated(p) | Self::ProjectUpdated(p) => Some(p.id),
            Self::ProjectDeleted { id } => Some(*id),
            Self::TaskCreated(t) | Self::TaskUpdated(t) => Some(t.project_id),
            Self::TaskProgress(p) => Some(p.project_id),
            Self::AgentUpdated(_) => None,
            Self::WorkflowCreated(r) | Self::WorkflowUpdated(r) | Self::WorkflowFinished(r) => {
                Some(r.project_id)
            }
        }
    }
}
