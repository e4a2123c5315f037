//! The agent registry: every known agent and what it is doing.
//!
//! Read on every `GET /agents` and dashboard refresh, written only when an
//! agent changes state, so it sits behind a `tokio::sync::RwLock`: readers
//! share the lock, and a writer holds it only for a map update — never
//! across an `.await` on anything else.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::Utc;
use tokio::sync::RwLock;
use vapora_shared::{Agent, AgentId, AgentStatus, Role, TaskId};

/// What the registry knows about one agent.
pub type AgentState = Agent;

#[derive(Debug, Clone, Default)]
pub struct AgentRegistry {
    pub agents: Arc<RwLock<HashMap<AgentId, AgentState>>>,
}

impl AgentRegistry {
    /// Adds an agent (or resets a known one) as idle; returns its state.
    pub async fn register(&self, id: AgentId, role: Role, location: &str) -> Agent {
        let agent = Agent {
            id: id.clone(),
            role,
            status: AgentStatus::Idle,
            current_task: None,
            tasks_completed: 0,
            tasks_failed: 0,
            location: location.to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            last_seen: Utc::now(),
        };
        self.agents.write().await.insert(id, agent.clone());
        agent
    }

    /// Marks the agent busy with `task`.
    pub async fn start_task(&self, id: &AgentId, task: TaskId) -> Option<Agent> {
        self.update(id, |a| {
            a.status = AgentStatus::Busy;
            a.current_task = Some(task);
        })
        .await
    }

    /// Marks the agent idle again, counting the outcome.
    pub async fn finish_task(&self, id: &AgentId, succeeded: bool) -> Option<Agent> {
        self.update(id, |a| {
            a.status = AgentStatus::Idle;
            a.current_task = None;
            if succeeded {
                a.tasks_completed += 1;
            } else {
                a.tasks_failed += 1;
            }
        })
        .await
    }

    pub async fn set_offline(&self, id: &AgentId) -> Option<Agent> {
        self.update(id, |a| {
            a.status = AgentStatus::Offline;
            a.current_task = None;
        })
        .await
    }

    async fn update(&self, id: &AgentId, change: impl FnOnce(&mut Agent)) -> Option<Agent> {
        let mut agents = self.agents.write().await;
        let agent = agents.get_mut(id)?;
        change(agent);
        agent.last_seen = Utc::now();
        Some(agent.clone())
    }

    pub async fn get(&self, id: &AgentId) -> Option<Agent> {
        self.agents.read().await.get(id).cloned()
    }

    /// All agents, sorted by id.
    pub async fn list(&self) -> Vec<Agent> {
        let mut agents: Vec<Agent> = self.agents.read().await.values().cloned().collect();
        agents.sort_by(|a, b| a.id.cmp(&b.id));
        agents
    }
}
