//! How an attempt's answer reaches the caller: whole, or as a live stream.
//!
//! The strategies and the attempt are generic over [`Delivery`], so the
//! compiler guarantees that an unstreamed call can only end in a
//! [`Completion`] and a streamed one only in a [`LiveStream`].

use std::future::Future;

use tokio::sync::OwnedSemaphorePermit;

use super::ProviderSlot;
use super::billing::Billing;
use super::live_stream::{LiveStream, start_stream};
use crate::route::Route;
use crate::{ChatRequest, Completion, LlmError};

/// One way of delivering an answer.
pub(super) trait Delivery: Send + Sync + 'static {
    /// What a won attempt hands back.
    type Output: Send + 'static;

    /// Calls the provider, holding `permit` for as long as the call runs,
    /// and settles `billing` however the call ends.
    fn call(
        slot: &ProviderSlot,
        request: &ChatRequest,
        route: &Route,
        permit: OwnedSemaphorePermit,
        billing: Billing,
    ) -> impl Future<Output = Result<Self::Output, LlmError>> + Send;

    /// Records the number of provider calls it took to get `output`.
    fn set_attempts(output: &mut Self::Output, attempts: u32);
}

/// The whole answer at once.
#[derive(Debug)]
pub(super) struct Unstreamed;

/// Output as it is produced, once the first token is in.
#[derive(Debug)]
pub(super) struct Streamed;

impl Delivery for Unstreamed {
    type Output = Completion;

    async fn call(
        slot: &ProviderSlot,
        request: &ChatRequest,
        route: &Route,
        _permit: OwnedSemaphorePermit,
        billing: Billing,
    ) -> Result<Completion, LlmError> {
        let call = tokio::time::timeout(route.total_timeout, slot.client.complete(request));
        match call.await {
            Ok(Ok(completion)) => Ok(billing.finish(completion)),
            Ok(Err(e)) => Err(billing.fail(e)),
            Err(_) => Err(billing.fail(LlmError::Timeout {
                provider: slot.name.clone(),
                timeout: route.total_timeout,
            })),
        }
    }

    fn set_attempts(completion: &mut Completion, attempts: u32) {
        completion.attempts = attempts;
    }
}

impl Delivery for Streamed {
    type Output = LiveStream;

    async fn call(
        slot: &ProviderSlot,
        request: &ChatRequest,
        route: &Route,
        permit: OwnedSemaphorePermit,
        billing: Billing,
    ) -> Result<LiveStream, LlmError> {
        start_stream(slot, request, route, permit, billing).await
    }

    fn set_attempts(live: &mut LiveStream, attempts: u32) {
        live.attempts = attempts;
    }
}
