//! The Vapora API service.
//!
//! Clients create projects and tasks over REST; tasks wait in a bounded
//! priority queue ([`queue`]) until an agent of the right role
//! takes them: in-process ([`swarm`]) or, with NATS configured, agent
//! servers over JetStream ([`broker`]); every change is stored in SurrealDB
//! ([`storage`]) and streamed to WebSocket dashboards ([`events`]).
//! Every API call needs a key ([`auth`]); people watch and steer through
//! the [`dashboard`] served at `/`.
//! [`startup::Application`] wires it all together.

pub mod api;
pub mod auth;
pub mod broker;
pub mod config;
pub mod dashboard;
pub mod error;
pub mod events;
pub mod idempotency;
pub mod limits;
pub mod metrics;
pub mod openapi;
pub mod queue;
pub mod replicas;
pub mod server;
pub mod services;
pub mod startup;
pub mod storage;
pub mod swarm;
pub mod workflows;

pub use config::Settings;
pub use startup::{Application, shutdown_signal};
