//! The agents: who exists ([`registry`]) and the in-process worker pool
//! that runs tasks when no broker is configured ([`pool`]).

pub mod cancellations;
pub mod pool;
pub mod registry;
