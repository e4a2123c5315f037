//! The OpenAI chat-completions protocol (`POST {base}/chat/completions`).
//!
//! Spoken by OpenAI itself and by most self-hosted servers: vLLM, Together,
//! llama.cpp's server, and Ollama's `/v1` endpoint.

use std::collections::VecDeque;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use serde::Deserialize;
use serde_json::json;

use crate::client::estimate_tokens_from_bytes;
use crate::sse::SseDecoder;
use crate::{ChatRequest, Completion, CompletionStream, LlmClient, LlmError, Pricing, StreamEvent, Usage};

#[derive(Debug, Clone)]
pub struct OpenAiProvider {
    name: String,
    http: reqwest::Client,
    endpoint: String,
    api_key: Option<String>,
    model: String,
    pricing: Pricing,
    timeout: Duration,
}

impl OpenAiProvider {
    /// `base_url` is the API root, e.g. `https://api.openai.com/v1` or
    /// `http://localhost:11434/v1`.
    pub fn new(
        name: impl Into<String>,
        base_url: &str,
        api_key: Option<String>,
        model: impl Into<String>,
        pricing: Pricing,
        timeout: Duration,
    ) -> Result<Self, LlmError> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| LlmError::Config(e.to_string()))?;
        Ok(Self {
            name: name.into(),
            http,
            endpoint: format!("{}/chat/completions", base_url.trim_end_matches('/')),
            api_key,
            model: model.into(),
            pricing,
            timeout,
        })
    }

    fn body(&self, request: &ChatRequest, stream: bool) -> serde_json::Value {
        let mut body = json!({
            "model": request.model.as_deref().unwrap_or(&self.model),
            "messages": request.messages,
            "stream": stream,
        });
        if let Some(max_tokens) = request.max_tokens {
            body["max_tokens"] = max_tokens.into();
        }
        if let Some(temperature) = request.temperature {
            body["temperature"] = temperature.into();
        }
        if stream {
            // Without this, OpenAI-compatible servers send no usage in streams.
            body["stream_options"] = json!({ "include_usage": true });
        }
        body
    }

    async fn send(&self, request: &ChatRequest, stream: bool) -> Result<reqwest::Response, LlmError> {
        let mut builder = self.http.post(&self.endpoint).json(&self.body(request, stream));
        if let Some(key) = &self.api_key {
            builder = builder.bearer_auth(key);
        }
        if !stream {
            builder = builder.timeout(self.timeout);
        }
        let response = builder.send().await.map_err(|e| self.transport_error(e))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let retry_after = retry_after(response.headers());
        let body = response.text().await.unwrap_or_default();
        Err(LlmError::Status {
            provider: self.name.clone(),
            status: status.as_u16(),
            body: body.chars().take(2_000).collect(),
            retry_after,
        })
    }

    fn transport_error(&self, e: reqwest::Error) -> LlmError {
        if e.is_timeout() {
            LlmError::Timeout {
                provider: self.name.clone(),
                timeout: self.timeout,
            }
        } else if e.is_decode() || e.is_body() {
            LlmError::Protocol {
                provider: self.name.clone(),
                message: e.to_string(),
            }
        } else {
            LlmError::Connect {
                provider: self.name.clone(),
                message: e.to_string(),
            }
        }
    }

    fn protocol_error(&self, message: impl Into<String>) -> LlmError {
        LlmError::Protocol {
            provider: self.name.clone(),
            message: message.into(),
        }
    }

    fn completion(
        &self,
        text: String,
        model: String,
        usage: Usage,
        finish_reason: Option<String>,
    ) -> Completion {
        Completion {
            cost_usd: self.pricing.cost_usd(&usage),
            text,
            provider: self.name.clone(),
            model,
            usage,
            finish_reason,
        }
    }
}

fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(Duration::from_secs_f64)
}

#[derive(Debug, Deserialize)]
struct WireUsage {
    prompt_tokens: u64,
    completion_tokens: u64,
}

impl From<WireUsage> for Usage {
    fn from(u: WireUsage) -> Self {
        Usage {
            input_tokens: u.prompt_tokens,
            output_tokens: u.completion_tokens,
            estimated: false,
        }
    }
}

#[derive(Debug, Deserialize)]
struct WireCompletion {
    model: Option<String>,
    choices: Vec<WireChoice>,
    usage: Option<WireUsage>,
}

#[derive(Debug, Deserialize)]
struct WireChoice {
    message: Option<WireMessage>,
    delta: Option<WireMessage>,
    finish_reason: Option<String>,
}

#[derive(Debug, Deserialize)]
struct WireMessage {
    content: Option<String>,
}

/// Turns the SSE body of a streamed response into [`StreamEvent`]s.
///
/// Driven by the consumer through `futures::stream::unfold`, with no task of
/// its own: dropping the stream drops the HTTP response and so closes the
/// connection to the provider at once.
struct StreamDecoder {
    provider: OpenAiProvider,
    bytes: futures::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    sse: SseDecoder,
    pending: VecDeque<Result<StreamEvent, LlmError>>,
    text: String,
    model: String,
    usage: Option<Usage>,
    input_estimate: u64,
    finish_reason: Option<String>,
    ended: bool,
}

impl StreamDecoder {
    async fn next_event(mut self) -> Option<(Result<StreamEvent, LlmError>, Self)> {
        loop {
            if let Some(item) = self.pending.pop_front() {
                return Some((item, self));
            }
            if self.ended {
                return None;
            }
            match self.bytes.next().await {
                Some(Ok(chunk)) => {
                    for payload in self.sse.push(&chunk) {
                        self.handle(&payload);
                    }
                }
                // The connection broke mid-answer: the answer is cut off.
                Some(Err(e)) if !e.is_timeout() => self.fail(LlmError::Truncated {
                    provider: self.provider.name.clone(),
                }),
                Some(Err(e)) => self.fail(self.provider.transport_error(e)),
                None => {
                    if let Some(payload) = self.sse.finish() {
                        self.handle(&payload);
                    }
                    // The body closed without `[DONE]`: the answer is cut off.
                    self.fail(LlmError::Truncated {
                        provider: self.provider.name.clone(),
                    });
                }
            }
        }
    }

    fn handle(&mut self, payload: &str) {
        if self.ended {
            return;
        }
        if payload.trim() == "[DONE]" {
            self.finish();
            return;
        }
        let chunk: WireCompletion = match serde_json::from_str(payload) {
            Ok(chunk) => chunk,
            Err(e) => return self.fail(self.provider.protocol_error(format!("bad stream chunk: {e}"))),
        };
        if let Some(model) = chunk.model {
            self.model = model;
        }
        if let Some(usage) = chunk.usage {
            self.usage = Some(usage.into());
        }
        for choice in chunk.choices {
            if let Some(reason) = choice.finish_reason {
                self.finish_reason = Some(reason);
            }
            if let Some(content) = choice.delta.and_then(|d| d.content).filter(|c| !c.is_empty()) {
                self.text.push_str(&content);
                self.pending.push_back(Ok(StreamEvent::Delta(content)));
            }
        }
    }

    fn fail(&mut self, error: LlmError) {
        if !self.ended {
            self.pending.push_back(Err(error));
            self.ended = true;
        }
    }

    fn finish(&mut self) {
        let usage = self.usage.unwrap_or(Usage {
            input_tokens: self.input_estimate,
            output_tokens: estimate_tokens_from_bytes(self.text.len()),
            estimated: true,
        });
        let completion = self.provider.completion(
            std::mem::take(&mut self.text),
            std::mem::take(&mut self.model),
            usage,
            self.finish_reason.take(),
        );
        self.pending.push_back(Ok(StreamEvent::Finished(completion)));
        self.ended = true;
    }
}

#[async_trait]
impl LlmClient for OpenAiProvider {
    fn provider(&self) -> &str {
        &self.name
    }

    fn default_model(&self) -> &str {
        &self.model
    }

    async fn complete(&self, request: &ChatRequest) -> Result<Completion, LlmError> {
        let response = self.send(request, false).await?;
        let wire: WireCompletion = response.json().await.map_err(|e| self.transport_error(e))?;
        let model = wire.model.unwrap_or_else(|| self.model.clone());
        let first = wire
            .choices
            .into_iter()
            .next()
            .ok_or_else(|| self.protocol_error("no choices"))?;
        let text = first.message.and_then(|m| m.content).unwrap_or_default();
        let usage = wire.usage.map(Usage::from).unwrap_or_else(|| Usage {
            input_tokens: request.estimated_input_tokens(),
            output_tokens: estimate_tokens_from_bytes(text.len()),
            estimated: true,
        });
        Ok(self.completion(text, model, usage, first.finish_reason))
    }

    async fn stream(&self, request: &ChatRequest) -> Result<CompletionStream, LlmError> {
        let response = self.send(request, true).await?;
        let decoder = StreamDecoder {
            provider: self.clone(),
            bytes: response.bytes_stream().boxed(),
            sse: SseDecoder::default(),
            pending: VecDeque::new(),
            text: String::new(),
            model: request.model.clone().unwrap_or_else(|| self.model.clone()),
            usage: None,
            input_estimate: request.estimated_input_tokens(),
            finish_reason: None,
            ended: false,
        };
        Ok(futures::stream::unfold(decoder, StreamDecoder::next_event).boxed())
    }
}
