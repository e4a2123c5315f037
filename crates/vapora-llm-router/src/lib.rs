//! Access to language models for Vapora's agents.
//!
//! Everything that talks to a model goes through the [`LlmClient`] trait, so an
//! agent does not care whether it reaches OpenAI, a local Ollama, or the
//! built-in echo provider. Each provider lives in its own module under
//! [`providers`]; [`config`] decides which one a deployment uses.

pub mod client;
pub mod config;
pub mod error;
pub mod framing;
pub mod pricing;
pub mod providers;
#[cfg(feature = "test-support")]
pub mod testing;

pub use client::{
    ChatMessage, ChatRequest, ChatRole, Completion, CompletionStream, LlmClient, StreamEvent, Usage,
};
pub use config::{ProviderConfig, ProviderKind};
pub use error::LlmError;
pub use pricing::Pricing;
