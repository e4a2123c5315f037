//! Billing one attempt: settling its budget reservation and recording its
//! outcome in the circuit breaker and the metrics.
//!
//! A call that ends without a verdict (the caller dropped it, or it lost a
//! hedge or race and was aborted) is charged when its [`Billing`] is
//! dropped, in one place for every such case: once the provider has a
//! request it may be generating, and billing, whether or not anyone reads
//! the answer. What is charged depends on what was seen of the call:
//!
//! - nothing yet (no response head, or an unstreamed answer not yet in):
//!   the reservation's estimate, the worst case this call was allowed;
//! - a stream that had started: the input estimate plus the output that
//!   had arrived.

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
    /// `None` once settled.
    pub(super) reservation: Option<Reservation>,
    /// The usage the reservation was sized for.
    pub(super) worst_case: Usage,
    pub(super) input_estimate: u64,
    /// Output bytes received, once the provider has started a stream.
    pub(super) streamed_bytes: Option<usize>,
    pub(super) started: Instant,
}

impl Billing {
    /// The provider accepted a streamed call: from here on, progress is known.
    pub(super) fn stream_started(&mut self) {
        self.streamed_bytes.get_or_insert(0);
    }

    /// Counts streamed output, for billing a stream that ends unfinished.
    pub(super) fn streamed(&mut self, bytes: usize) {
        let seen = self.streamed_bytes.get_or_insert(0);
        *seen = seen.saturating_add(bytes);
    }

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

    /// A stream that broke after the provider started answering: the tokens
    /// were spent but not reported, so they are estimated.
    pub(super) fn broken(mut self, error: &LlmError) {
        if error.is_provider_fault() {
            self.slot.breaker.record_failure();
        }
        self.inner.metrics.record_attempt_error(&self.target, error);
        self.charge_unfinished();
    }

    /// Charges a call that ended without a reported usage (see the module
    /// documentation for what is charged when).
    fn charge_unfinished(&mut self) {
        let Some(reservation) = self.reservation.take() else {
            return;
        };
        let (usage, cost) = match self.streamed_bytes {
            Some(bytes) => {
                let usage = Usage {
                    input_tokens: self.input_estimate,
                    output_tokens: estimate_tokens_from_bytes(bytes),
                    estimated: true,
                };
                let cost = self.pricing.cost_usd(&usage);
                reservation.settle(cost);
                (usage, cost)
            }
            None => (self.worst_case, reservation.settle_in_full()),
        };
        self.inner
            .metrics
            .record_abandoned(&self.target, &self.role, &usage, cost);
    }
}

impl Drop for Billing {
    /// The attempt was dropped unsettled: cancelled by its caller, or a
    /// losing hedge or race aborted.
    fn drop(&mut self) {
        self.charge_unfinished();
    }
}
