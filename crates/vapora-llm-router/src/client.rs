//! The provider-neutral request/response types and the [`LlmClient`] trait.

use std::fmt::Debug;

use async_trait::async_trait;
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};

use crate::LlmError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChatRole {
    System,
    User,
    Assistant,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: ChatRole,
    pub content: String,
}

impl ChatMessage {
    pub fn system(content: impl Into<String>) -> Self {
        Self {
            role: ChatRole::System,
            content: content.into(),
        }
    }
    pub fn user(content: impl Into<String>) -> Self {
        Self {
            role: ChatRole::User,
            content: content.into(),
        }
    }
}

/// One chat completion request, before any provider-specific encoding.
#[derive(Clone, PartialEq, Default)]
pub struct ChatRequest {
    pub messages: Vec<ChatMessage>,
    /// For a provider: overrides its configured model. For the router: a
    /// route name (`role:developer`) or a concrete `provider/model`.
    pub model: Option<String>,
    pub max_tokens: Option<u32>,
    pub temperature: Option<f32>,
    /// Who the call is for: picks the role's route when `model` is unset,
    /// and the role's budget is charged.
    pub role: Option<String>,
    /// Caller identity for per-key budgets (a name, never a secret).
    pub api_key: Option<String>,
}

impl Debug for ChatRequest {
    /// Shows the caller key's fingerprint only: the key may be a secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatRequest")
            .field("messages", &self.messages)
            .field("model", &self.model)
            .field("max_tokens", &self.max_tokens)
            .field("temperature", &self.temperature)
            .field("role", &self.role)
            .field(
                "api_key",
                &self.api_key.as_deref().map(crate::fingerprint::fingerprint),
            )
            .finish()
    }
}

impl ChatRequest {
    /// The system messages and the conversation turns, for APIs that take
    /// the system prompt as a separate field (Anthropic, Gemini).
    pub fn split_system(&self) -> (Vec<&ChatMessage>, Vec<&ChatMessage>) {
        self.messages.iter().partition(|m| m.role == ChatRole::System)
    }

    /// Rough input size in tokens (4 bytes a token), used where a provider
    /// reports no usage and, later, to reserve budget before a call.
    pub fn estimated_input_tokens(&self) -> u64 {
        let bytes: usize = self.messages.iter().map(|m| m.content.len() + 4).sum();
        estimate_tokens_from_bytes(bytes)
    }
}

pub(crate) fn estimate_tokens_from_bytes(bytes: usize) -> u64 {
    (bytes as u64).div_ceil(4)
}

/// Token usage of one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// True when the provider did not report usage and these are estimates.
    pub estimated: bool,
}

/// A finished completion, with who served it and what it cost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Completion {
    pub text: String,
    pub provider: String,
    pub model: String,
    pub usage: Usage,
    pub cost_usd: f64,
    pub finish_reason: Option<String>,
    /// Provider calls made to get this answer (failed ones and retries included).
    pub attempts: u32,
    /// Time spent in the call that served the answer (for overhead metrics).
    #[serde(skip)]
    pub upstream_time: std::time::Duration,
}

/// One item of a streamed completion: text deltas, then exactly one `Finished`.
/// A stream that ends without `Finished` was cut off and must be treated as
/// an error, never as a clean finish.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamEvent {
    Delta(String),
    Finished(Completion),
}

pub type CompletionStream = BoxStream<'static, Result<StreamEvent, LlmError>>;

/// A model provider, or anything that routes to one.
#[async_trait]
pub trait LlmClient: Send + Sync + Debug {
    /// Provider name recorded in results (`openai`, `ollama`, `echo`, …).
    fn provider(&self) -> &str;

    /// The model used when a request does not name one.
    fn default_model(&self) -> &str;

    /// Runs the request to completion.
    async fn complete(&self, request: &ChatRequest) -> Result<Completion, LlmError>;

    /// Runs the request and yields output as it is produced.
    async fn stream(&self, request: &ChatRequest) -> Result<CompletionStream, LlmError>;
}
