//! The live stream: a provider stream the router has committed to once its
//! first event is in, handed to the caller and billed however it ends.

use std::time::Duration;

use futures::StreamExt;
use tokio::sync::OwnedSemaphorePermit;

use super::ProviderSlot;
use super::billing::Billing;
use crate::route::Route;
use crate::{ChatRequest, CompletionStream, LlmError, StreamEvent};

/// Opens the stream and waits for its first event, within the route's
/// first-token timeout.
pub(super) async fn start_stream(
    slot: &ProviderSlot,
    request: &ChatRequest,
    route: &Route,
    permit: OwnedSemaphorePermit,
    mut billing: Billing,
) -> Result<LiveStream, LlmError> {
    let deadline = tokio::time::Instant::now() + route.total_timeout;
    let first_token_by = (tokio::time::Instant::now() + route.first_token_timeout).min(deadline);
    let timeout_error = |timeout| LlmError::Timeout {
        provider: slot.name.clone(),
        timeout,
    };
    let stream = match tokio::time::timeout_at(first_token_by, slot.client.stream(request)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => return Err(billing.fail(e)),
        Err(_) => return Err(billing.fail(timeout_error(route.first_token_timeout))),
    };
    // The provider accepted the call: from here on, abandoning it still costs.
    billing.stream_started();
    let mut live = LiveStream {
        stream,
        first: None,
        deadline,
        total_timeout: route.total_timeout,
        billing: Some(billing),
        attempts: 1,
        _permit: permit,
    };
    let next = tokio::time::timeout_at(first_token_by, live.stream.next()).await;
    let error = match next {
        Ok(Some(Ok(event))) => {
            // The provider answered: that settles a half-open probe too.
            slot.breaker.record_success();
            live.first = Some(event);
            return Ok(live);
        }
        Ok(Some(Err(e))) => e,
        Ok(None) => LlmError::Truncated {
            provider: slot.name.clone(),
        },
        Err(_) => timeout_error(route.first_token_timeout),
    };
    Err(match live.billing.take() {
        Some(billing) => billing.fail(error),
        None => error,
    })
}

/// A provider stream the router has committed to, billed however it ends.
pub(super) struct LiveStream {
    stream: CompletionStream,
    first: Option<StreamEvent>,
    deadline: tokio::time::Instant,
    total_timeout: Duration,
    /// Taken once the stream is settled; `None` means nothing more to yield.
    /// Dropped unsettled (the caller went away mid-answer, or this was a
    /// losing hedge), it bills what the provider was already producing.
    billing: Option<Billing>,
    pub(super) attempts: u32,
    _permit: OwnedSemaphorePermit,
}

impl LiveStream {
    /// The caller's stream: events until one settles the bill, then the end.
    pub(super) fn into_stream(self) -> CompletionStream {
        futures::stream::unfold(self, Self::next_event).boxed()
    }

    async fn next_event(mut self) -> Option<(Result<StreamEvent, LlmError>, Self)> {
        self.billing.as_ref()?;
        let event = match self.first.take() {
            Some(first) => Some(Ok(first)),
            None => match tokio::time::timeout_at(self.deadline, self.stream.next()).await {
                Ok(event) => event,
                Err(_) => Some(Err(LlmError::Timeout {
                    provider: self.provider(),
                    timeout: self.total_timeout,
                })),
            },
        };
        let item = match event {
            Some(Ok(StreamEvent::Delta(text))) => {
                if let Some(billing) = self.billing.as_mut() {
                    billing.streamed(text.len());
                }
                Ok(StreamEvent::Delta(text))
            }
            Some(Ok(StreamEvent::Finished(mut completion))) => {
                completion.attempts = self.attempts;
                let billing = self.billing.take()?;
                Ok(StreamEvent::Finished(billing.finish(completion)))
            }
            Some(Err(error)) => {
                self.broken(&error);
                Err(error)
            }
            None => {
                let error = LlmError::Truncated {
                    provider: self.provider(),
                };
                self.broken(&error);
                Err(error)
            }
        };
        Some((item, self))
    }

    fn provider(&self) -> String {
        self.billing
            .as_ref()
            .map(|b| b.target.provider.clone())
            .unwrap_or_default()
    }

    /// Bills a stream that broke before its `Finished` event.
    fn broken(&mut self, error: &LlmError) {
        if let Some(billing) = self.billing.take() {
            billing.broken(error);
        }
    }
}
