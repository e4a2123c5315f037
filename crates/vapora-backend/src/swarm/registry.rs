//! The agent registry: every known agent and what it is doing.
//!
//! Read on every `GET /agents` and dashboard refresh, written only when an
//! agent changes state, so it sits behind a `tokio::sync::RwLock`: readers
//! share the lock, and a writer holds it only for a map update — never
//! across an `.await` on anything else.
//!
//! Agents that stay offline longer than the eviction delay are forgotten
//! ([`AgentRegistry::evict_offline`]), so agent servers that come and go
//! under fresh ids cannot grow it without bound.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::RwLock;
use vapora_shared::wire::Heartbeat;
use vapora_shared::{Agent, AgentId, AgentStatus, Role, TaskId};

/// What an agent did with a task, as far as the registry cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activity {
    Started,
    Succeeded,
    Failed,
    /// The attempt ended without an outcome: cancelled, or cut by shutdown.
    Stopped,
}

/// What the registry knows about one agent.
pub type AgentState = Agent;

/// How long an agent stays listed after going offline, unless configured.
pub const DEFAULT_EVICT_AFTER: Duration = Duration::from_secs(3600);

#[derive(Debug, Clone)]
pub struct AgentRegistry {
    pub agents: Arc<RwLock<HashMap<AgentId, AgentState>>>,
    evict_after: Duration,
}

impl Default for AgentRegistry {
    fn default() -> Self {
        Self::new(DEFAULT_EVICT_AFTER)
    }
}

impl AgentRegistry {
    /// An empty registry that forgets agents offline for `evict_after`.
    pub fn new(evict_after: Duration) -> Self {
        Self {
            agents: Arc::default(),
            evict_after,
        }
    }

    /// Adds an agent (or resets a known one) as idle; returns its state.
    pub async fn register(&self, id: AgentId, role: Role, location: &str) -> Agent {
        let agent = Agent {
            id: id.clone(),
            role: role.clone(),
            roles: vec![role],
            status: AgentStatus::Idle,
            current_task: None,
            load: 0,
            capacity: 1,
            tasks_completed: 0,
            tasks_failed: 0,
            location: location.to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            last_seen: Utc::now(),
        };
        self.agents.write().await.insert(id, agent.clone());
        agent
    }

    pub async fn set_offline(&self, id: &AgentId) -> Option<Agent> {
        self.update(id, |a| {
            a.status = AgentStatus::Offline;
            a.current_task = None;
            a.load = 0;
        })
        .await
    }

    /// Records a remote agent server's heartbeat, adding it if it is new.
    /// Returns the agent when what a dashboard shows changed (new, back
    /// online, load or status), so quiet beats publish nothing.
    /// A beat naming no role is ignored: such an agent can take nothing.
    pub async fn heartbeat(&self, beat: &Heartbeat) -> Option<Agent> {
        let first_role = beat.roles.first()?.clone();
        let mut agents = self.agents.write().await;
        let status = if beat.load > 0 {
            AgentStatus::Busy
        } else {
            AgentStatus::Idle
        };
        let agent = agents.entry(beat.agent_id.clone()).or_insert_with(|| Agent {
            id: beat.agent_id.clone(),
            role: first_role,
            roles: Vec::new(),
            status: AgentStatus::Offline,
            current_task: None,
            load: 0,
            capacity: 0,
            tasks_completed: 0,
            tasks_failed: 0,
            location: "remote".into(),
            version: String::new(),
            last_seen: Utc::now(),
        });
        let changed = agent.status != status
            || agent.load != beat.load
            || agent.capacity != beat.capacity
            || agent.roles != beat.roles
            || agent.version != beat.version;
        agent.status = status;
        agent.load = beat.load;
        agent.capacity = beat.capacity;
        agent.roles.clone_from(&beat.roles);
        agent.version.clone_from(&beat.version);
        if beat.load == 0 {
            agent.current_task = None;
        }
        agent.last_seen = Utc::now();
        changed.then(|| agent.clone())
    }

    /// An agent reported on a task: note what it works on, count the
    /// outcome once it finished, and free it when it stopped without one.
    /// The load follows the reports; a remote agent's next heartbeat states
    /// its own.
    pub async fn note_activity(&self, id: &AgentId, task: TaskId, activity: Activity) -> Option<Agent> {
        self.update(id, |a| {
            if activity == Activity::Started {
                a.current_task = Some(task);
                a.load = a.load.saturating_add(1);
            } else {
                if a.current_task == Some(task) {
                    a.current_task = None;
                }
                a.load = a.load.saturating_sub(1);
                match activity {
                    Activity::Succeeded => a.tasks_completed += 1,
                    Activity::Failed => a.tasks_failed += 1,
                    Activity::Started | Activity::Stopped => {}
                }
            }
            a.status = if a.load > 0 {
                AgentStatus::Busy
            } else {
                AgentStatus::Idle
            };
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

    /// Forgets the agents that have been offline for longer than the
    /// eviction delay (an offline agent's `last_seen` is when it went
    /// offline, or its last word since); returns their ids.
    pub async fn evict_offline(&self) -> Vec<AgentId> {
        let Ok(keep_for) = chrono::Duration::from_std(self.evict_after) else {
            return Vec::new();
        };
        let cutoff = Utc::now() - keep_for;
        let is_stale = |a: &Agent| a.status == AgentStatus::Offline && a.last_seen < cutoff;
        // Most sweeps find nothing: look under the shared lock first.
        if !self.agents.read().await.values().any(is_stale) {
            return Vec::new();
        }
        let mut evicted = Vec::new();
        self.agents.write().await.retain(|id, agent| {
            let stale = is_stale(agent);
            if stale {
                evicted.push(id.clone());
            }
            !stale
        });
        evicted
    }

    /// Up to `limit` agents with ids after `after`, sorted by id, and the
    /// cursor of the next page if there is one.
    pub async fn page(&self, after: Option<&AgentId>, limit: usize) -> (Vec<Agent>, Option<AgentId>) {
        let mut agents: Vec<Agent> = self
            .agents
            .read()
            .await
            .values()
            .filter(|a| after.is_none_or(|after| a.id > *after))
            .cloned()
            .collect();
        agents.sort_by(|a, b| a.id.cmp(&b.id));
        let next = crate::services::page::cut(&mut agents, limit, |a| a.id.clone());
        (agents, next)
    }

    /// All agents, sorted by id.
    pub async fn list(&self) -> Vec<Agent> {
        let mut agents: Vec<Agent> = self.agents.read().await.values().cloned().collect();
        agents.sort_by(|a, b| a.id.cmp(&b.id));
        agents
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn beat(id: &str) -> Heartbeat {
        Heartbeat {
            protocol: vapora_shared::wire::PROTOCOL_VERSION,
            agent_id: AgentId(id.into()),
            roles: vec![Role::parse("developer").expect("a valid role")],
            load: 0,
            capacity: 2,
            version: "1".into(),
            interval_ms: 1000,
            sent_at: Utc::now(),
        }
    }

    #[tokio::test]
    async fn only_agents_offline_for_longer_than_the_delay_are_evicted() {
        let registry = AgentRegistry::new(Duration::from_millis(100));
        for id in ["gone", "live"] {
            registry.heartbeat(&beat(id)).await;
        }
        registry.set_offline(&AgentId("gone".into())).await;
        // Offline, but not for long enough yet.
        assert!(registry.evict_offline().await.is_empty());
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert_eq!(registry.evict_offline().await, [AgentId("gone".into())]);
        let left: Vec<_> = registry.list().await.into_iter().map(|a| a.id.0).collect();
        assert_eq!(left, ["live"]);
    }

    #[tokio::test]
    async fn pages_follow_the_id_order() {
        let registry = AgentRegistry::default();
        for id in ["c", "a", "b"] {
            registry.heartbeat(&beat(id)).await;
        }
        let (first, next) = registry.page(None, 2).await;
        assert_eq!(
            first.iter().map(|a| a.id.0.as_str()).collect::<Vec<_>>(),
            ["a", "b"]
        );
        let (rest, last) = registry.page(next.as_ref(), 2).await;
        assert_eq!(rest.iter().map(|a| a.id.0.as_str()).collect::<Vec<_>>(), ["c"]);
        assert_eq!(last, None);
    }
}
