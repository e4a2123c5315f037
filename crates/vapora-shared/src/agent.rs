//! Agents: the workers that execute tasks for one role.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{AgentId, Role, TaskId};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AgentStatus {
    Idle,
    Busy,
    Offline,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Agent {
    pub id: AgentId,
    /// The first (for in-process agents, only) role it serves.
    pub role: Role,
    /// Every role it serves: an agent server may pull for several.
    #[serde(default)]
    pub roles: Vec<Role>,
    pub status: AgentStatus,
    /// The task it works on; for an agent server running several at once,
    /// the one it started last.
    pub current_task: Option<TaskId>,
    /// Attempts in progress, and how many it runs at once.
    #[serde(default)]
    pub load: u32,
    #[serde(default)]
    pub capacity: u32,
    pub tasks_completed: u64,
    pub tasks_failed: u64,
    /// Where the agent runs: `in-process`, or a remote host name.
    pub location: String,
    pub version: String,
    pub last_seen: DateTime<Utc>,
}
