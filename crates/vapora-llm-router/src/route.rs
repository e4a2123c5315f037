//! Routes: which targets serve a request, and how they are tried.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::backoff::RetryPolicy;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    /// One target at a time, in order, moving on after retryable failures.
    #[default]
    Fallback,
    /// Start the next target when the current one has not produced a first
    /// token within `hedge_delay`; keep the first to answer.
    Hedge,
    /// Start every target at once; keep the first to answer.
    Race,
}

/// A provider and a model of it (`provider/model`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Target {
    pub provider: String,
    pub model: String,
}

impl Target {
    pub fn parse(s: &str) -> Option<Self> {
        let (provider, model) = s.split_once('/')?;
        (!provider.is_empty() && !model.is_empty()).then(|| Self {
            provider: provider.to_owned(),
            model: model.to_owned(),
        })
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.provider, self.model)
    }
}

/// A named chain of targets and the way to try them.
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    pub name: String,
    pub strategy: Strategy,
    pub targets: Vec<Target>,
    /// Limit until the first token (streams) or the whole answer's head.
    pub first_token_timeout: Duration,
    /// Limit for the whole call.
    pub total_timeout: Duration,
    pub hedge_delay: Duration,
    pub retry: RetryPolicy,
}
