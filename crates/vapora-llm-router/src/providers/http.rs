//! The part every HTTP provider shares: sending, error mapping, and turning
//! a streamed body into [`StreamEvent`]s. A provider module only describes
//! its wire format, by implementing [`WireProtocol`].

use std::collections::VecDeque;
use std::fmt::Debug;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use futures::stream::BoxStream;
use reqwest::header::HeaderMap;
use secrecy::SecretString;
use serde_json::Value;

use crate::client::estimate_tokens_from_bytes;
use crate::framing::{Framing, PayloadDecoder};
use crate::providers::upstream_error::code_of_body;
use crate::retry_after::retry_after;
use crate::{ChatRequest, Completion, CompletionStream, LlmClient, LlmError, Pricing, StreamEvent, Usage};

/// Where and as whom a provider is reached.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// Name recorded as `provider` in results.
    pub name: String,
    /// API root, e.g. `https://api.openai.com/v1`.
    pub base_url: String,
    /// Hidden from `Debug`; read with `ExposeSecret::expose_secret`.
    pub api_key: Option<SecretString>,
    /// Model used when a request names none.
    pub model: String,
    pub pricing: Pricing,
    /// Limit for a whole non-streamed call (streams are timed by the router).
    pub timeout: Duration,
}

/// What a wire format yields from a response body or from one stream chunk.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct WirePiece {
    /// The whole answer (non-streamed) or one delta (streamed).
    pub text: String,
    pub model: Option<String>,
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
    pub finish_reason: Option<String>,
    /// The stream's explicit end (e.g. `[DONE]`, `message_stop`, `done: true`).
    pub done: bool,
    /// An error the provider reported inside a successful response: the
    /// HTTP status it stands for and its sanitised code, if any.
    pub error: Option<(u16, Option<String>)>,
}

/// One provider's wire format.
pub trait WireProtocol: Debug + Send + Sync + 'static {
    const FRAMING: Framing;

    /// The URL, JSON body and extra headers (auth included) of one call.
    fn request(&self, endpoint: &Endpoint, request: &ChatRequest, stream: bool)
    -> (String, Value, HeaderMap);

    /// Reads a non-streamed response body.
    fn parse_response(&self, body: &[u8]) -> Result<WirePiece, String>;

    /// Reads one streamed payload.
    fn parse_chunk(&self, payload: &str) -> Result<WirePiece, String>;

    /// Whether the body closing after a finish reason is a clean end (for
    /// formats with no explicit end marker).
    fn eof_after_finish_is_done(&self) -> bool {
        false
    }
}

/// Why a body could not be read, without quoting it: serde's messages
/// include the offending values, which are upstream text.
pub fn json_fault(error: &serde_json::Error) -> String {
    format!(
        "unreadable JSON ({:?} error at line {} column {})",
        error.classify(),
        error.line(),
        error.column()
    )
}

/// A provider reached over HTTP, speaking wire format `W`.
#[derive(Debug)]
pub struct HttpProvider<W> {
    endpoint: Endpoint,
    wire: std::sync::Arc<W>,
    http: reqwest::Client,
}

// Manual, so that cloning does not require `W: Clone` (it is shared).
impl<W> Clone for HttpProvider<W> {
    fn clone(&self) -> Self {
        Self {
            endpoint: self.endpoint.clone(),
            wire: self.wire.clone(),
            http: self.http.clone(),
        }
    }
}

impl<W: WireProtocol> HttpProvider<W> {
    pub fn new(endpoint: Endpoint, wire: W) -> Result<Self, LlmError> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .pool_max_idle_per_host(256)
            .build()
            .map_err(|e| LlmError::Config(e.to_string()))?;
        Ok(Self {
            endpoint,
            wire: std::sync::Arc::new(wire),
            http,
        })
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    async fn send(&self, request: &ChatRequest, stream: bool) -> Result<reqwest::Response, LlmError> {
        let span = tracing::debug_span!(
            "llm.call",
            provider = %self.endpoint.name,
            model = request.model.as_deref().unwrap_or(&self.endpoint.model),
            stream,
        );
        tracing::Instrument::instrument(self.send_in_span(request, stream, &span), span.clone()).await
    }

    /// The request to the provider; its `traceparent` names `span`, so a
    /// provider (or our gateway) that traces continues the trace.
    async fn send_in_span(
        &self,
        request: &ChatRequest,
        stream: bool,
        span: &tracing::Span,
    ) -> Result<reqwest::Response, LlmError> {
        let (url, body, mut headers) = self.wire.request(&self.endpoint, request, stream);
        if let Some(traceparent) = vapora_telemetry::trace_context::traceparent_of(span)
            && let Ok(value) = reqwest::header::HeaderValue::from_str(&traceparent)
        {
            headers.insert(vapora_telemetry::trace_context::TRACEPARENT, value);
        }
        let mut builder = self.http.post(url).headers(headers).json(&body);
        if !stream {
            builder = builder.timeout(self.endpoint.timeout);
        }
        let response = builder.send().await.map_err(|e| self.transport_error(e))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let retry_after = retry_after(response.headers());
        let body = response.bytes().await.unwrap_or_default();
        Err(LlmError::Status {
            provider: self.endpoint.name.clone(),
            status: status.as_u16(),
            code: code_of_body(&body),
            retry_after,
        })
    }

    fn transport_error(&self, e: reqwest::Error) -> LlmError {
        let provider = self.endpoint.name.clone();
        if e.is_timeout() {
            LlmError::Timeout {
                provider,
                timeout: self.endpoint.timeout,
            }
        } else if e.is_decode() {
            LlmError::Protocol {
                provider,
                message: e.to_string(),
            }
        } else if e.is_body() {
            LlmError::Truncated { provider }
        } else {
            LlmError::Connect {
                provider,
                message: e.to_string(),
            }
        }
    }

    fn protocol_error(&self, message: String) -> LlmError {
        LlmError::Protocol {
            provider: self.endpoint.name.clone(),
            message,
        }
    }

    fn upstream_error(&self, (status, code): (u16, Option<String>)) -> LlmError {
        LlmError::Status {
            provider: self.endpoint.name.clone(),
            status,
            code,
            retry_after: None,
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
            cost_usd: self.endpoint.pricing.cost_usd(&usage),
            text,
            provider: self.endpoint.name.clone(),
            model,
            usage,
            finish_reason,
            attempts: 1,
            upstream_time: std::time::Duration::ZERO,
        }
    }
}

/// Usage from what the provider reported, estimated where it reported
/// nothing (never zero: an unreported count is unknown, not free).
fn usage_or_estimate(
    input: Option<u64>,
    output: Option<u64>,
    request: &ChatRequest,
    text_len: usize,
) -> Usage {
    match (input, output) {
        (Some(input_tokens), Some(output_tokens)) => Usage {
            input_tokens,
            output_tokens,
            estimated: false,
        },
        _ => Usage {
            input_tokens: input.unwrap_or_else(|| request.estimated_input_tokens()),
            output_tokens: output.unwrap_or_else(|| estimate_tokens_from_bytes(text_len)),
            estimated: true,
        },
    }
}

#[async_trait]
impl<W: WireProtocol> LlmClient for HttpProvider<W> {
    fn provider(&self) -> &str {
        &self.endpoint.name
    }

    fn default_model(&self) -> &str {
        &self.endpoint.model
    }

    async fn complete(&self, request: &ChatRequest) -> Result<Completion, LlmError> {
        let response = self.send(request, false).await?;
        let body = response.bytes().await.map_err(|e| self.transport_error(e))?;
        let piece = self
            .wire
            .parse_response(&body)
            .map_err(|e| self.protocol_error(e))?;
        if let Some(error) = piece.error {
            return Err(self.upstream_error(error));
        }
        let usage = usage_or_estimate(piece.input_tokens, piece.output_tokens, request, piece.text.len());
        let model = piece
            .model
            .or_else(|| request.model.clone())
            .unwrap_or_else(|| self.endpoint.model.clone());
        Ok(self.completion(piece.text, model, usage, piece.finish_reason))
    }

    async fn stream(&self, request: &ChatRequest) -> Result<CompletionStream, LlmError> {
        let response = self.send(request, true).await?;
        let decoder = StreamDecoder {
            provider: self.clone(),
            request: request.clone(),
            bytes: response.bytes_stream().boxed(),
            payloads: PayloadDecoder::new(W::FRAMING),
            pending: VecDeque::new(),
            text: String::new(),
            model: None,
            input_tokens: None,
            output_tokens: None,
            finish_reason: None,
            ended: false,
        };
        Ok(futures::stream::unfold(decoder, StreamDecoder::next_event).boxed())
    }
}

/// Turns a streamed body into [`StreamEvent`]s.
///
/// Driven by the consumer through `futures::stream::unfold`, with no task of
/// its own: dropping the stream drops the HTTP response, which closes the
/// connection to the provider at once (this is how a losing hedge or a
/// cancelled task stops costing tokens).
struct StreamDecoder<W> {
    provider: HttpProvider<W>,
    request: ChatRequest,
    bytes: BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    payloads: PayloadDecoder,
    pending: VecDeque<Result<StreamEvent, LlmError>>,
    text: String,
    model: Option<String>,
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    finish_reason: Option<String>,
    ended: bool,
}

impl<W: WireProtocol> StreamDecoder<W> {
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
                    for payload in self.payloads.push(&chunk) {
                        self.handle(&payload);
                    }
                }
                // The connection broke mid-answer: the answer is cut off.
                Some(Err(e)) => {
                    let error = match self.provider.transport_error(e) {
                        timeout @ LlmError::Timeout { .. } => timeout,
                        _ => LlmError::Truncated {
                            provider: self.provider.endpoint.name.clone(),
                        },
                    };
                    self.fail(error);
                }
                None => {
                    for payload in self.payloads.finish() {
                        self.handle(&payload);
                    }
                    if self.finish_reason.is_some() && self.provider.wire.eof_after_finish_is_done() {
                        self.finish();
                    } else {
                        // The body closed before the stream's end: cut off.
                        self.fail(LlmError::Truncated {
                            provider: self.provider.endpoint.name.clone(),
                        });
                    }
                }
            }
        }
    }

    fn handle(&mut self, payload: &str) {
        if self.ended {
            return;
        }
        let piece = match self.provider.wire.parse_chunk(payload) {
            Ok(piece) => piece,
            Err(e) => return self.fail(self.provider.protocol_error(format!("bad stream chunk: {e}"))),
        };
        if let Some(error) = piece.error {
            return self.fail(self.provider.upstream_error(error));
        }
        self.model = piece.model.or(self.model.take());
        self.input_tokens = piece.input_tokens.or(self.input_tokens);
        self.output_tokens = piece.output_tokens.or(self.output_tokens);
        self.finish_reason = piece.finish_reason.or(self.finish_reason.take());
        if !piece.text.is_empty() {
            self.text.push_str(&piece.text);
            self.pending.push_back(Ok(StreamEvent::Delta(piece.text)));
        }
        if piece.done {
            self.finish();
        }
    }

    fn fail(&mut self, error: LlmError) {
        if !self.ended {
            self.pending.push_back(Err(error));
            self.ended = true;
        }
    }

    fn finish(&mut self) {
        let usage = usage_or_estimate(
            self.input_tokens,
            self.output_tokens,
            &self.request,
            self.text.len(),
        );
        let model = self
            .model
            .take()
            .or_else(|| self.request.model.clone())
            .unwrap_or_else(|| self.provider.endpoint.model.clone());
        let completion = self.provider.completion(
            std::mem::take(&mut self.text),
            model,
            usage,
            self.finish_reason.take(),
        );
        self.pending.push_back(Ok(StreamEvent::Finished(completion)));
        self.ended = true;
    }
}
