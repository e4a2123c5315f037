//! Agents: the workers that execute tasks for one role.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{AgentId, Role, TaskId};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentStatus {
    Idle,
    Busy,
    Offline,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Agent {
    pub id: AgentId,
    pub role: Role,
    pub status: AgentStatus,
    pub current_task: Option<TaskId>,
    pub tasks_completed: u64,
    pub tasks_failed: u64,
    /// Where the agent runs: `in-process`, or a remote host name.
    pub location: String,
    pub version: String,
    pub last_seen: DateTime<Utc>,
}
