//! The agents: who exists ([`registry`]) and the in-process worker pool
//! that runs tasks when no broker is configured ([`pool`]); workers' reports,
//! local or remote, go through [`reports`].

pub mod pool;
pub mod registry;
pub mod reports;
