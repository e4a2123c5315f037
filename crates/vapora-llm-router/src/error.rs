//! Errors a provider call can end with.

use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    #[error("could not reach {provider}: {message}")]
    Connect { provider: String, message: String },
    #[error("{provider} did not answer within {timeout:?}")]
    Timeout { provider: String, timeout: Duration },
    /// An error answer, summarised: never the body's text, which can echo
    /// what the provider was sent (key fragments included).
    #[error("{provider} answered HTTP {status}{}", .code.as_deref().map(|c| format!(" ({c})")).unwrap_or_default())]
    Status {
        provider: String,
        status: u16,
        /// The provider's error type or code, when it gave a short one
        /// (see [`crate::providers::upstream_error`]).
        code: Option<String>,
        retry_after: Option<Duration>,
    },
    #[error("{provider} sent something we could not read: {message}")]
    Protocol { provider: String, message: String },
    #[error("{provider} stream ended before the completion finished")]
    Truncated { provider: String },
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("{0}")]
    Budget(#[from] crate::budget::BudgetExceeded),
    #[error("{provider} is failing; its circuit is open")]
    CircuitOpen { provider: String },
    #[error("{provider} is at its concurrency limit")]
    Saturated { provider: String },
    #[error("no route or provider/model named {0:?}")]
    UnknownModel(String),
    #[error("invalid request: {0}")]
    InvalidRequest(String),
}

impl LlmError {
    /// Whether another attempt (here or at another provider) may succeed:
    /// network trouble, timeouts, rate limits and server errors are; a 4xx
    /// that says the request itself is wrong is not.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Connect { .. } | Self::Timeout { .. } | Self::Truncated { .. } => true,
            Self::CircuitOpen { .. } | Self::Saturated { .. } => true,
            Self::Status { status, .. } => *status == 429 || *status == 408 || *status >= 500,
            Self::Protocol { .. }
            | Self::Config(_)
            | Self::Budget(_)
            | Self::UnknownModel(_)
            | Self::InvalidRequest(_) => false,
        }
    }

    /// Whether the request itself is wrong, so every other target would
    /// refuse it too: a fallback chain stops here instead of trying them.
    pub fn rejected_everywhere(&self) -> bool {
        match self {
            Self::Status { status, .. } => matches!(status, 400 | 413 | 422),
            Self::InvalidRequest(_) => true,
            _ => false,
        }
    }

    /// Whether the provider itself misbehaved (counts toward its circuit).
    pub fn is_provider_fault(&self) -> bool {
        match self {
            Self::Connect { .. } | Self::Timeout { .. } | Self::Truncated { .. } | Self::Protocol { .. } => {
                true
            }
            Self::Status { status, .. } => *status >= 500 || *status == 408,
            _ => false,
        }
    }
}
