//! Billing one attempt: settling its budget reservation and recording its
//! outcome in the circuit breaker and the metrics.

use std::sync::Arc;
use std::time::Instant;

use super::{Inner, ProviderSlot};
use crate::budget::Reservation;
use crate::client::estimate_tokens_from_bytes;
use crate::route::Target;
use crate::{Completion, LlmError, Pricing, Usage};

/// Settles one attempt's reservation and records its outcome.
pub(super) struct Billing {
    pub(super) inner: Arc<Inner>,
    pub(super) slot: Arc<ProviderSlot>,
    pub(super) target: Target,
    pub(super) pricing: Pricing,
    pub(super) role: String,
    pub(super) route: String,
    pub(super) reservation: Option<Reservation>,
    pub(super) input_estimate: u64,
    pub(super) started: Instant,
}

impl Billing {
    /// A finished call: real usage, priced at this target's prices.
    pub(super) fn finish(mut self, mut completion: Completion) -> Completion {
        completion.cost_usd = self.pricing.cost_usd(&completion.usage);
        completion.provider = self.target.provider.clone();
        completion.upstream_time = self.started.elapsed();
        self.slot.breaker.record_success();
        if let Some(reservation) = self.reservation.take() {
            reservation.settle(completion.cost_usd);
        }
        self.inner
            .metrics
            .record_success(&self.route, &self.role, &completion, self.started.elapsed());
        completion
    }

    /// A call that failed before producing anything billable.
    pub(super) fn fail(mut self, error: LlmError) -> LlmError {
        if error.is_provider_fault() {
            self.slot.breaker.record_failure();
        }
        self.inner.metrics.record_attempt_error(&self.target, &error);
        drop(self.reservation.take());
        error
    }

    /// A call abandoned or broken after the provider started answering: the
    /// tokens were spent but not reported, so they are estimated.
    pub(super) fn abandon(mut self, output_bytes: usize, error: Option<&LlmError>) {
        let usage = Usage {
            input_tokens: self.input_estimate,
            output_tokens: estimate_tokens_from_bytes(output_bytes),
            estimated: true,
        };
        let cost = self.pricing.cost_usd(&usage);
        if let Some(error) = error {
            if error.is_provider_fault() {
                self.slot.breaker.record_failure();
            }
            self.inner.metrics.record_attempt_error(&self.target, error);
        }
        self.inner
            .metrics
            .record_abandoned(&self.target, &self.role, &usage, cost);
        if let Some(reservation) = self.reservation.take() {
            reservation.settle(cost);
        }
    }
}
