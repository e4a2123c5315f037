//! Test support: real HTTP servers that speak provider wire protocols.
//!
//! Tests start them on port 0 and script each response (delay, status,
//! chunks, usage, abrupt disconnect), so provider code is exercised over
//! real sockets instead of against mocks.

mod fake_provider;
mod wire;

pub use fake_provider::{FakeProvider, Protocol, Script};

use futures::StreamExt;

use crate::{CompletionStream, LlmError, StreamEvent};

/// Drains a completion stream: the concatenated text deltas, and every event
/// (so tests can look at how it ended).
pub async fn collect_stream(stream: CompletionStream) -> (String, Vec<Result<StreamEvent, LlmError>>) {
    let events: Vec<_> = stream.collect().await;
    let text = events
        .iter()
        .filter_map(|e| match e {
            Ok(StreamEvent::Delta(d)) => Some(d.as_str()),
            _ => None,
        })
        .collect();
    (text, events)
}
