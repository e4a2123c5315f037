//! The state every handler shares.
//!
//! `AppState` is shared by every request (as [`SharedState`]), and its
//! fields are cheap handles that workers and services clone in turn:
//! services hold `Arc`s or clonable clients inside, the agent registry is an
//! `Arc<RwLock<..>>` (read-heavy) and the task queue an `Arc<Mutex<..>>`
//! (every access mutates).
//!
//! Lock order: if code ever needs both, it takes `agent_registry` before
//! `task_queue`. No code path holds the two at once. No `std::sync`
//! guard is ever held across an `.await`; the only tokio guard held while
//! waiting is a worker pool's shared receiver (see `swarm::pool`), on purpose.

use tokio_util::sync::CancellationToken;

use crate::auth::{KeyHasher, Keys};
use crate::config::Settings;
use crate::events::EventBus;
use crate::limits::Limits;
use crate::metrics::Metrics;
use crate::queue::SharedTaskQueue;
use crate::services::{ProjectService, TaskService};
use crate::storage::Database;
use crate::swarm::registry::AgentRegistry;
use crate::workflows::{ScheduleService, TemplateCatalog, WorkflowService};

/// The state as handlers receive it: one `Arc` for the whole state, so
/// handing it to a request is a single reference-count bump.
pub type SharedState = std::sync::Arc<AppState>;

#[derive(Debug, Clone)]
pub struct AppState {
    pub project_service: ProjectService,
    pub task_service: TaskService,
    pub workflow_service: WorkflowService,
    pub schedule_service: ScheduleService,
    pub agent_registry: AgentRegistry,
    pub task_queue: SharedTaskQueue,
    pub events: EventBus,
    pub metrics: Metrics,
    pub db: Database,
    /// API keys; `None` when authentication is off (`VAPORA_AUTH=off`).
    pub keys: Option<Keys>,
    /// Per-key request rates and WebSocket caps.
    pub limits: Limits,
    /// Cancelled when the server starts shutting down (closes WebSockets).
    pub shutdown: CancellationToken,
    /// The in-process router's budgets; `None` with agent servers.
    pub budgets: Option<std::sync::Arc<vapora_llm_router::budget::Budgets>>,
    /// Serve the dashboard's files from here instead of the embedded ones.
    pub dashboard_dir: Option<std::path::PathBuf>,
}

impl AppState {
    /// Wires the services over one database, queue and event bus.
    pub fn new(
        settings: &Settings,
        db: Database,
        roles: vapora_agents::RoleCatalog,
        running: crate::services::cancellations::RunningTasks,
        workflows: std::collections::BTreeMap<String, vapora_shared::WorkflowTemplate>,
    ) -> Self {
        let events = EventBus::new(settings.ws_buffer, settings.event_window);
        let task_queue = SharedTaskQueue::new(settings.queue_capacity);
        let metrics = Metrics::default();
        let task_service = TaskService::new(
            db.clone(),
            task_queue.clone(),
            events.clone(),
            roles.clone(),
            running,
            metrics.clone(),
            crate::replicas::new_replica_id(),
        );
        let templates = TemplateCatalog::new(workflows, db.clone(), roles);
        let workflow_service =
            WorkflowService::new(db.clone(), task_service.clone(), events.clone(), templates);
        Self {
            project_service: ProjectService::new(db.clone(), events.clone()),
            schedule_service: ScheduleService::new(
                db.clone(),
                task_service.clone(),
                workflow_service.clone(),
            ),
            workflow_service,
            task_service,
            agent_registry: AgentRegistry::new(settings.agent_evict_after),
            task_queue,
            events,
            metrics: metrics.clone(),
            keys: settings
                .auth
                .then(|| Keys::new(db.clone(), KeyHasher::new(settings.key_pepper.clone()))),
            limits: Limits::new(settings.rate_limit, settings.ws_caps),
            db,
            shutdown: CancellationToken::new(),
            budgets: None,
            dashboard_dir: settings.dashboard_dir.clone(),
        }
    }
}
