//! One attempt: a single call to one target.
//!
//! An attempt is admitted by the provider's circuit breaker, reserves its
//! worst-case cost from the caller's budgets at the prices of the target it
//! is about to call (so the provider that actually serves is the one
//! charged), waits a bounded time for a concurrency slot, and then hands the
//! call to its [`Delivery`]. It succeeds once the first token (or,
//! unstreamed, the whole answer) is in.

use std::sync::Arc;
use std::time::Instant;

use super::billing::Billing;
use super::delivery::Delivery;
use super::plan::Plan;
use super::{Inner, ProviderSlot};
use crate::circuit::Admit;
use crate::route::Target;
use crate::{ChatRequest, LlmError, Usage};

/// Reserves, waits for a slot, and calls one target until the first token.
pub(super) async fn attempt<D: Delivery>(
    inner: Arc<Inner>,
    plan: Plan,
    target: Target,
) -> Result<D::Output, LlmError> {
    let slot = inner
        .providers
        .get(&target.provider)
        .cloned()
        .ok_or_else(|| LlmError::Config(format!("route uses unknown provider {}", target.provider)))?;
    let admit = slot.breaker.admit().ok_or_else(|| LlmError::CircuitOpen {
        provider: slot.name.clone(),
    })?;
    let probe = ProbeGuard {
        slot: &slot,
        armed: admit == Admit::Probe,
    };

    let pricing = slot.pricing(&target.model);
    let input_estimate = conservative_input_tokens(&plan.request);
    let max_tokens = plan.request.max_tokens.unwrap_or(inner.default_max_tokens);
    let worst_case = Usage {
        input_tokens: input_estimate,
        output_tokens: max_tokens as u64,
        estimated: true,
    };
    let reservation = inner
        .budgets
        .reserve(&plan.budget_keys, pricing.cost_usd(&worst_case))?;

    let saturated = || LlmError::Saturated {
        provider: slot.name.clone(),
    };
    let permit = tokio::time::timeout(slot.queue_timeout, slot.concurrency.clone().acquire_owned())
        .await
        .map_err(|_| saturated())?
        // The semaphore is never closed; were it, the provider is unusable.
        .map_err(|_| saturated())?;

    let mut request = plan.request.clone();
    request.model = Some(target.model.clone());
    let billing = Billing {
        inner: inner.clone(),
        slot: slot.clone(),
        target: target.clone(),
        pricing,
        role: plan.role.clone(),
        route: plan.route.name.clone(),
        reservation: Some(reservation),
        worst_case,
        input_estimate: request.estimated_input_tokens(),
        streamed_bytes: None,
        started: Instant::now(),
    };
    let outcome = D::call(&slot, &request, &plan.route, permit, billing).await;
    probe.disarm();
    outcome
}

/// Frees a half-open circuit's probe slot if the attempt ends without a
/// verdict (it was aborted as a losing hedge, say).
struct ProbeGuard<'a> {
    slot: &'a ProviderSlot,
    armed: bool,
}

impl ProbeGuard<'_> {
    fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for ProbeGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.slot.breaker.release_probe();
        }
    }
}

/// Input tokens to reserve for: a token per 2 bytes (rather than the usual
/// 4) plus 16 per message for the chat template, so that the reservation
/// stays an upper bound even for token-dense text. Should a provider still
/// report more, the real cost is recorded: spend is never under-reported.
fn conservative_input_tokens(request: &ChatRequest) -> u64 {
    request
        .messages
        .iter()
        .map(|m| (m.content.len() as u64).div_ceil(2) + 16)
        .sum()
}
