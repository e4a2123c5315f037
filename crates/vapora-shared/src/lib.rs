//! Domain types shared by every Vapora service.
//!
//! Everything that crosses a process boundary — REST bodies, WebSocket events,
//! stored records, and (later) NATS messages — is defined here once, so the
//! backend, the agent server and outside clients agree on one vocabulary.
//! This crate deliberately knows nothing about HTTP, databases or brokers
//! (but for the one-line loopback probe of [`healthcheck`]).

pub mod agent;
pub mod concurrency;
pub mod event;
pub mod healthcheck;
pub mod ids;
pub mod lifecycle;
pub mod new_task;
pub mod project;
pub mod prompt;
pub mod role;
pub mod schedule;
pub mod task;
#[cfg(feature = "test-support")]
pub mod testing;
pub mod wire;
pub mod workflow;
pub mod workflow_run;

pub use agent::{Agent, AgentStatus};
pub use concurrency::ConcurrencyLimit;
pub use event::{Event, TaskProgress};
pub use ids::{AgentId, ProjectId, ScheduleId, TaskId, WorkflowId};
pub use new_task::NewTask;
pub use project::{NewProject, Project, ProjectPatch};
pub use prompt::{PromptContext, RejectTask, Rejection, UpstreamResult};
pub use role::{DEFAULT_ROLES, Role, RoleError};
pub use schedule::{NewSchedule, Schedule};
pub use task::{
    Priority, TIMED_OUT, Task, TaskPatch, TaskResult, TaskStatus, TransitionError, UPSTREAM_FAILED,
    UpstreamPolicy, ValidationError,
};
pub use workflow::{StageTemplate, WorkflowTemplate};
pub use workflow_run::{NewWorkflow, StageOf, StageRun, WorkflowRun, WorkflowStatus};
