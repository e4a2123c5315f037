//! Errors a provider call can end with.

use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    #[error("could not reach {provider}: {message}")]
    Connect { provider: String, message: String },
    #[error("{provider} did not answer within {timeout:?}")]
    Timeout { provider: String, timeout: Duration },
    #[error("{provider} answered HTTP {status}: {body}")]
    Status {
        provider: String,
        status: u16,
        body: String,
        retry_after: Option<Duration>,
    },
    #[error("{provider} sent something we could not read: {message}")]
    Protocol { provider: String, message: String },
    #[error("{provider} stream ended before the completion finished")]
    Truncated { provider: String },
    #[error("invalid configuration: {0}")]
    Config(String),
}

impl LlmError {
    /// Whether another attempt (here or at another provider) may succeed:
    /// network trouble, timeouts, rate limits and server errors are; a 4xx
    /// that says the request itself is wrong is not.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Connect { .. } | Self::Timeout { .. } | Self::Truncated { .. } => true,
            Self::Status { status, .. } => *status == 429 || *status == 408 || *status >= 500,
            Self::Protocol { .. } | Self::Config(_) => false,
        }
    }
}
