//! Access to language models for Vapora's agents and for outside programs.
//!
//! Everything that talks to a model goes through the [`LlmClient`] trait, so an
//! agent does not care whether it reaches OpenAI, Anthropic, a local Ollama,
//! or the built-in echo provider. Each provider wire protocol lives in its own
//! module under [`providers`]. The [`Router`] is itself an `LlmClient`: it
//! picks a route per request and runs it (fallback, hedge or race) with
//! retries, timeouts, circuit breakers and exact [`budget`]s. [`config`]
//! builds one from TOML, and the `vapora-llm-gateway` binary serves it as
//! an OpenAI-compatible HTTP API.

pub mod backoff;
pub mod budget;
pub mod budget_store;
pub mod circuit;
pub mod client;
pub mod config;
pub mod error;
pub mod fingerprint;
pub mod framing;
pub mod gateway;
pub mod metrics;
pub mod pricing;
pub mod providers;
pub mod retry_after;
pub mod route;
pub mod router;
pub mod router_config;
#[cfg(feature = "test-support")]
pub mod testing;

pub use client::{
    ChatMessage, ChatRequest, ChatRole, Completion, CompletionStream, LlmClient, StreamEvent, Usage,
};
pub use config::{ProviderConfig, ProviderKind};
pub use error::LlmError;
pub use pricing::Pricing;
pub use route::{Route, Strategy, Target};
pub use router::Router;
pub use router_config::RouterConfig;
