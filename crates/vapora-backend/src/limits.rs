//! Per-key request rates and WebSocket connection caps: what keeps one
//! client from taking the service from the others.
//!
//! Requests are metered per API key with `governor`'s keyed token bucket
//! (`VAPORA_RATE_LIMIT_PER_SEC`, `VAPORA_RATE_LIMIT_BURST`); past it a
//! request answers 429 with `Retry-After`. Only authenticated keys get a
//! bucket, so the limiter's memory is bounded by the number of keys in use.
//! WebSockets are counted per key and in total: past a key's cap a new one
//! answers 429, past the global cap 503, both with `Retry-After`.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::error::AppError;

/// When a refused WebSocket client should try again.
const WS_RETRY_AFTER: Duration = Duration::from_secs(5);

/// Requests per second and burst allowed to each key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub per_second: NonZeroU32,
    pub burst: NonZeroU32,
}

/// WebSocket connections allowed per key and in total.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WsCaps {
    pub per_key: usize,
    pub total: usize,
}

#[derive(Clone)]
pub struct Limits {
    rate: Option<Arc<DefaultKeyedRateLimiter<String>>>,
    ws_caps: WsCaps,
    /// Open WebSockets per key; the sum is the total.
    ws_open: Arc<Mutex<HashMap<String, usize>>>,
}

impl std::fmt::Debug for Limits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limits")
            .field("rate_limited", &self.rate.is_some())
            .field("ws_caps", &self.ws_caps)
            .finish_non_exhaustive()
    }
}

impl Limits {
    /// `rate: None` meters nothing.
    pub fn new(rate: Option<RateLimit>, ws_caps: WsCaps) -> Self {
        Self {
            rate: rate.map(|r| {
                Arc::new(RateLimiter::keyed(
                    Quota::per_second(r.per_second).allow_burst(r.burst),
                ))
            }),
            ws_caps,
            ws_open: Arc::default(),
        }
    }

    /// Takes one request from `key`'s bucket, or says when to come back.
    pub fn admit(&self, key: &str) -> Result<(), AppError> {
        let Some(rate) = &self.rate else { return Ok(()) };
        // `check_key` takes the key by reference but stores an owned copy
        // only for a key it has not seen.
        rate.check_key(&key.to_owned()).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            tracing::info!(key_id = key, "request denied: rate limit");
            AppError::RateLimited {
                message: "this API key is over its request rate; slow down".into(),
                retry_after: wait,
            }
        })
    }

    /// Counts a new WebSocket of `key` until the returned slot is dropped.
    pub fn open_ws(&self, key: &str) -> Result<WsSlot, AppError> {
        let mut open = self.ws_open.lock().expect("ws count lock");
        let total: usize = open.values().sum();
        if total >= self.ws_caps.total {
            return Err(AppError::Overloaded {
                message: format!(
                    "the server holds its maximum of {} WebSockets",
                    self.ws_caps.total
                ),
                retry_after: WS_RETRY_AFTER,
            });
        }
        let mine = open.entry(key.to_owned()).or_default();
        if *mine >= self.ws_caps.per_key {
            tracing::info!(key_id = key, "WebSocket denied: per-key cap");
            return Err(AppError::RateLimited {
                message: format!("this API key already holds {} WebSockets", self.ws_caps.per_key),
                retry_after: WS_RETRY_AFTER,
            });
        }
        *mine += 1;
        Ok(WsSlot {
            open: self.ws_open.clone(),
            key: key.to_owned(),
        })
    }

    /// Forgets buckets that have refilled; called now and then.
    pub fn forget_idle(&self) {
        if let Some(rate) = &self.rate {
            rate.retain_recent();
        }
    }
}

/// One open WebSocket, counted until dropped.
#[derive(Debug)]
pub struct WsSlot {
    open: Arc<Mutex<HashMap<String, usize>>>,
    key: String,
}

impl Drop for WsSlot {
    fn drop(&mut self) {
        let mut open = self.open.lock().expect("ws count lock");
        if let Some(count) = open.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(per_second: u32, burst: u32, per_key: usize, total: usize) -> Limits {
        Limits::new(
            Some(RateLimit {
                per_second: NonZeroU32::new(per_second).unwrap(),
                burst: NonZeroU32::new(burst).unwrap(),
            }),
            WsCaps { per_key, total },
        )
    }

    #[test]
    fn a_key_past_its_burst_waits_and_others_do_not() {
        let limits = limits(1, 3, 1, 1);
        for _ in 0..3 {
            limits.admit("a").unwrap();
        }
        match limits.admit("a") {
            Err(AppError::RateLimited { retry_after, .. }) => {
                assert!(retry_after > Duration::ZERO && retry_after <= Duration::from_secs(1));
            }
            other => panic!("expected a rate limit, got {other:?}"),
        }
        limits.admit("b").unwrap();
    }

    #[test]
    fn websocket_slots_are_capped_per_key_and_in_total_and_freed_on_drop() {
        let limits = limits(1, 1, 2, 3);
        let a1 = limits.open_ws("a").unwrap();
        let _a2 = limits.open_ws("a").unwrap();
        assert!(matches!(limits.open_ws("a"), Err(AppError::RateLimited { .. })));
        let _b1 = limits.open_ws("b").unwrap();
        assert!(matches!(limits.open_ws("c"), Err(AppError::Overloaded { .. })));
        drop(a1);
        let _c1 = limits.open_ws("c").unwrap();
    }
}
