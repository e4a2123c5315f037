//! Concurrency keys: at most `limit` tasks sharing a `key` hold a slot
//! (are queued or running) at once; the others wait in `waiting`, marked
//! `waiting_for_slot`, and tasks of other keys pass them by.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::task::ValidationError;

/// Longest concurrency key.
pub const MAX_KEY_LEN: usize = 200;
/// Largest limit a key may have.
pub const MAX_LIMIT: u32 = 1_000;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ConcurrencyLimit {
    pub key: String,
    pub limit: u32,
}

impl ConcurrencyLimit {
    /// From a request's `concurrency_key` and `concurrency_limit` (1 when
    /// only a key is given); a limit without a key is refused.
    pub fn from_request(key: Option<String>, limit: Option<u32>) -> Result<Option<Self>, ValidationError> {
        let invalid = |field, reason: String| ValidationError { field, reason };
        let Some(key) = key else {
            return match limit {
                None => Ok(None),
                Some(_) => Err(invalid("concurrency_limit", "needs a concurrency_key".into())),
            };
        };
        if key.trim().is_empty() || key.len() > MAX_KEY_LEN {
            return Err(invalid(
                "concurrency_key",
                format!("must be 1 to {MAX_KEY_LEN} bytes, not blank"),
            ));
        }
        let limit = limit.unwrap_or(1);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(invalid(
                "concurrency_limit",
                format!("must be between 1 and {MAX_LIMIT}, got {limit}"),
            ));
        }
        Ok(Some(Self { key, limit }))
    }
}
