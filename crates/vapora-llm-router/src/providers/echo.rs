//! The built-in `echo` provider: answers without any model.
//!
//! It exists so that a fresh checkout runs tasks end to end with no model
//! server at all. It is never chosen silently: start-up logs a warning, and
//! every result it produces is recorded with `provider: "echo"`.

use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;

use crate::client::estimate_tokens_from_bytes;
use crate::{ChatRequest, ChatRole, Completion, CompletionStream, LlmClient, LlmError, StreamEvent, Usage};

pub const ECHO_MODEL: &str = "echo-1";

#[derive(Debug, Clone, Default)]
pub struct EchoProvider {
    /// Pause between streamed words, so progress is visible on a dashboard.
    pub word_delay: Duration,
}

impl EchoProvider {
    pub fn new(word_delay: Duration) -> Self {
        Self { word_delay }
    }

    fn answer(request: &ChatRequest) -> String {
        let prompt = request
            .messages
            .iter()
            .rev()
            .find(|m| m.role == ChatRole::User)
            .map(|m| m.content.as_str())
            .unwrap_or_default();
        format!("[echo provider: no model is configured] {prompt}")
    }

    fn completion(request: &ChatRequest, text: String) -> Completion {
        let usage = Usage {
            input_tokens: request.estimated_input_tokens(),
            output_tokens: estimate_tokens_from_bytes(text.len()),
            estimated: true,
        };
        Completion {
            text,
            provider: "echo".into(),
            model: ECHO_MODEL.into(),
            usage,
            cost_usd: 0.0,
            finish_reason: Some("stop".into()),
            attempts: 1,
            upstream_time: Duration::ZERO,
        }
    }
}

#[async_trait]
impl LlmClient for EchoProvider {
    fn provider(&self) -> &str {
        "echo"
    }

    fn default_model(&self) -> &str {
        ECHO_MODEL
    }

    async fn complete(&self, request: &ChatRequest) -> Result<Completion, LlmError> {
        Ok(Self::completion(request, Self::answer(request)))
    }

    async fn stream(&self, request: &ChatRequest) -> Result<CompletionStream, LlmError> {
        let text = Self::answer(request);
        let words: Vec<String> = text.split_inclusive(' ').map(str::to_owned).collect();
        let finished = Self::completion(request, text);
        let delay = self.word_delay;
        let deltas = futures::stream::iter(words).then(move |word| async move {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            Ok(StreamEvent::Delta(word))
        });
        let end = futures::stream::once(async move { Ok(StreamEvent::Finished(finished)) });
        Ok(deltas.chain(end).boxed())
    }
}
