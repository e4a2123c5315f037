//! The agent runtime: what an agent does with a task.
//!
//! An agent takes a task, builds a prompt from its role's system prompt
//! ([`roles`]), runs it through an [`vapora_llm_router::LlmClient`] while
//! streaming output chunks, and reports a [`vapora_shared::TaskResult`]
//! ([`executor`]). Where the task comes from — the backend's in-process pool
//! or a NATS subscription — is the caller's business.

pub mod executor;
pub mod jetstream;
pub mod roles;
#[cfg(feature = "test-support")]
pub mod testing;
pub mod worker;

pub use executor::{Assignment, ExecutionError, execute};
pub use roles::{RoleCatalog, RoleCatalogError};
