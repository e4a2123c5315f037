//! The agent runtime: what an agent does with a task.
//!
//! An agent takes a task, builds a prompt from its role's system prompt
//! ([`roles`]), runs it through an [`vapora_llm_router::LlmClient`] while
//! streaming output chunks, and reports a [`vapora_shared::TaskResult`]
//! ([`executor`]). [`attempt`] wraps that in the report protocol every
//! worker follows; where the reports go — the backend's in-process pool or
//! JetStream ([`worker`]) — is a [`attempt::ReportSink`].

pub mod attempt;
pub mod executor;
pub mod jetstream;
pub mod metrics;
pub mod nats_auth;
pub mod nats_url;
pub mod roles;
#[cfg(feature = "test-support")]
pub mod testing;
pub mod worker;

pub use attempt::{AttemptOutcome, AttemptSpec, Claim, OutputLimits, ReportSink, SinkError, run_attempt};
pub use executor::{Assignment, ExecutionError, execute};
pub use roles::{RetryDefaults, RoleCatalog, RoleCatalogError};
