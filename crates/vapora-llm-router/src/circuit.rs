//! A per-provider circuit breaker.
//!
//! After `failure_threshold` consecutive failures the circuit *opens*: the
//! provider is skipped without being called. After `cooldown` it goes
//! *half-open*: one probe call is let through; success closes the circuit,
//! failure opens it for another cooldown.

use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CircuitState {
    Closed,
    Open,
    HalfOpen,
}

#[derive(Debug)]
struct Inner {
    consecutive_failures: u32,
    opened_at: Option<Instant>,
    probe_in_flight: bool,
}

#[derive(Debug)]
pub struct CircuitBreaker {
    failure_threshold: u32,
    cooldown: Duration,
    inner: Mutex<Inner>,
}

/// Permission to call the provider; report how the call went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    Yes,
    /// Half-open: this call is the probe.
    Probe,
}

impl CircuitBreaker {
    pub fn new(failure_threshold: u32, cooldown: Duration) -> Self {
        Self {
            failure_threshold: failure_threshold.max(1),
            cooldown,
            inner: Mutex::new(Inner {
                consecutive_failures: 0,
                opened_at: None,
                probe_in_flight: false,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn state(&self) -> CircuitState {
        self.state_at(Instant::now())
    }

    fn state_at(&self, now: Instant) -> CircuitState {
        let inner = self.lock();
        match inner.opened_at {
            None => CircuitState::Closed,
            Some(at) if now.duration_since(at) >= self.cooldown => CircuitState::HalfOpen,
            Some(_) => CircuitState::Open,
        }
    }

    /// Whether a call may go ahead now.
    pub fn admit(&self) -> Option<Admit> {
        self.admit_at(Instant::now())
    }

    fn admit_at(&self, now: Instant) -> Option<Admit> {
        let mut inner = self.lock();
        match inner.opened_at {
            None => Some(Admit::Yes),
            Some(at) if now.duration_since(at) >= self.cooldown && !inner.probe_in_flight => {
                inner.probe_in_flight = true;
                Some(Admit::Probe)
            }
            Some(_) => None,
        }
    }

    pub fn record_success(&self) {
        let mut inner = self.lock();
        inner.consecutive_failures = 0;
        inner.opened_at = None;
        inner.probe_in_flight = false;
    }

    pub fn record_failure(&self) {
        let mut inner = self.lock();
        inner.consecutive_failures += 1;
        if inner.probe_in_flight || inner.consecutive_failures >= self.failure_threshold {
            inner.opened_at = Some(Instant::now());
        }
        inner.probe_in_flight = false;
    }

    /// A probe that ended without a verdict (cancelled) frees the slot.
    pub fn release_probe(&self) {
        self.lock().probe_in_flight = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_threshold_then_probes_once() {
        let cooldown = Duration::from_millis(30);
        let cb = CircuitBreaker::new(2, cooldown);
        cb.record_failure();
        assert_eq!(cb.admit(), Some(Admit::Yes));
        cb.record_failure();
        assert_eq!(cb.state(), CircuitState::Open);
        assert_eq!(cb.admit(), None);
        // Time is passed in rather than slept through.
        let later = Instant::now() + cooldown;
        assert_eq!(cb.state_at(later), CircuitState::HalfOpen);
        assert_eq!(cb.admit_at(later), Some(Admit::Probe));
        assert_eq!(cb.admit_at(later), None, "one probe at a time");
        cb.record_failure();
        assert_eq!(cb.state(), CircuitState::Open, "a failed probe reopens");
        let later = Instant::now() + cooldown;
        assert_eq!(cb.admit_at(later), Some(Admit::Probe));
        cb.record_success();
        assert_eq!(cb.state(), CircuitState::Closed);
    }
}
