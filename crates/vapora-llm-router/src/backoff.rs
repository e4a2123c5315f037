//! Exponential backoff with full jitter, between retries of one target.

use std::time::Duration;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RetryPolicy {
    /// Calls per target, the first included.
    #[serde(default = "default_attempts")]
    pub attempts_per_target: u32,
    #[serde(default = "default_base_ms")]
    pub backoff_base_ms: u64,
    #[serde(default = "default_max_ms")]
    pub backoff_max_ms: u64,
}

fn default_attempts() -> u32 {
    2
}
fn default_base_ms() -> u64 {
    100
}
fn default_max_ms() -> u64 {
    2_000
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts_per_target: default_attempts(),
            backoff_base_ms: default_base_ms(),
            backoff_max_ms: default_max_ms(),
        }
    }
}

impl RetryPolicy {
    /// Wait before retry number `retry` (1 for the first retry): a random
    /// time up to `base × 2^(retry-1)`, capped, and at least what the
    /// provider asked for with `Retry-After` (also capped).
    pub fn delay(&self, retry: u32, retry_after: Option<Duration>) -> Duration {
        let cap = Duration::from_millis(self.backoff_max_ms);
        let ceiling = Duration::from_millis(
            self.backoff_base_ms
                .saturating_mul(1 << retry.saturating_sub(1).min(16)),
        )
        .min(cap);
        let jittered = ceiling.mul_f64(jitter());
        jittered.max(retry_after.unwrap_or_default().min(cap))
    }
}

/// A uniform number in [0, 1) without a dependency: jitter only needs to
/// de-correlate clients, not be unpredictable.
fn jitter() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_are_capped_and_honour_retry_after() {
        let p = RetryPolicy {
            attempts_per_target: 5,
            backoff_base_ms: 100,
            backoff_max_ms: 1_000,
        };
        for retry in 1..10 {
            let d = p.delay(retry, None);
            let ceiling = (100u64 << (retry - 1)).min(1_000);
            assert!(d <= Duration::from_millis(ceiling), "{retry}: {d:?}");
        }
        assert!(p.delay(1, Some(Duration::from_millis(700))) >= Duration::from_millis(700));
        assert_eq!(
            p.delay(1, Some(Duration::from_secs(60))),
            Duration::from_secs(1),
            "Retry-After is capped"
        );
    }
}
