//! The Anthropic Messages API (`POST {base}/v1/messages`).
//!
//! Differences from OpenAI that matter here: the system prompt is a separate
//! field, `max_tokens` is mandatory, and a stream reports input tokens in
//! `message_start` and the output total in `message_delta`.

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::{Value, json};

use super::http::{Endpoint, HttpProvider, WirePiece, WireProtocol, json_fault};
use super::upstream_error::sanitise_str;
use crate::ChatRequest;
use crate::framing::Framing;

pub type AnthropicProvider = HttpProvider<AnthropicWire>;

/// Used when a request sets no `max_tokens` (the API requires one).
pub const DEFAULT_MAX_TOKENS: u32 = 4096;
const API_VERSION: &str = "2023-06-01";

#[derive(Debug, Clone, Copy, Default)]
pub struct AnthropicWire;

#[derive(Debug, Deserialize)]
struct WireUsage {
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
}

#[derive(Debug, Deserialize)]
struct WireMessage {
    model: Option<String>,
    #[serde(default)]
    content: Vec<WireBlock>,
    stop_reason: Option<String>,
    usage: Option<WireUsage>,
}

#[derive(Debug, Deserialize)]
struct WireBlock {
    #[serde(default)]
    text: String,
}

/// One streamed event; `type` says which fields are set.
#[derive(Debug, Deserialize)]
struct WireEvent {
    #[serde(rename = "type")]
    kind: String,
    message: Option<WireMessage>,
    delta: Option<WireDelta>,
    usage: Option<WireUsage>,
    error: Option<WireError>,
}

#[derive(Debug, Deserialize)]
struct WireDelta {
    text: Option<String>,
    stop_reason: Option<String>,
}

#[derive(Debug, Deserialize)]
struct WireError {
    #[serde(rename = "type")]
    kind: String,
}

impl WireError {
    /// The HTTP status the same error has when it is not streamed.
    fn status(&self) -> u16 {
        match self.kind.as_str() {
            "overloaded_error" => 529,
            "rate_limit_error" => 429,
            "api_error" => 500,
            "invalid_request_error" => 400,
            _ => 502,
        }
    }
}

impl WireProtocol for AnthropicWire {
    const FRAMING: Framing = Framing::Sse;

    fn request(
        &self,
        endpoint: &Endpoint,
        request: &ChatRequest,
        stream: bool,
    ) -> (String, Value, HeaderMap) {
        let (system, turns) = request.split_system();
        let system: Vec<&str> = system.iter().map(|m| m.content.as_str()).collect();
        let messages: Vec<Value> = turns
            .iter()
            .map(|m| json!({ "role": m.role, "content": m.content }))
            .collect();
        let mut body = json!({
            "model": request.model.as_deref().unwrap_or(&endpoint.model),
            "max_tokens": request.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS),
            "messages": messages,
            "stream": stream,
        });
        if !system.is_empty() {
            body["system"] = system.join("\n\n").into();
        }
        if let Some(temperature) = request.temperature {
            body["temperature"] = temperature.into();
        }
        let mut headers = HeaderMap::new();
        headers.insert(
            HeaderName::from_static("anthropic-version"),
            HeaderValue::from_static(API_VERSION),
        );
        if let Some(value) = endpoint
            .api_key
            .as_ref()
            .and_then(|k| HeaderValue::from_str(k.expose_secret()).ok())
        {
            headers.insert(HeaderName::from_static("x-api-key"), value);
        }
        (
            format!("{}/v1/messages", endpoint.base_url.trim_end_matches('/')),
            body,
            headers,
        )
    }

    fn parse_response(&self, body: &[u8]) -> Result<WirePiece, String> {
        let message: WireMessage = serde_json::from_slice(body).map_err(|e| json_fault(&e))?;
        Ok(WirePiece {
            text: message.content.into_iter().map(|b| b.text).collect(),
            model: message.model,
            input_tokens: message.usage.as_ref().and_then(|u| u.input_tokens),
            output_tokens: message.usage.as_ref().and_then(|u| u.output_tokens),
            finish_reason: message.stop_reason,
            ..WirePiece::default()
        })
    }

    fn parse_chunk(&self, payload: &str) -> Result<WirePiece, String> {
        let event: WireEvent = serde_json::from_str(payload).map_err(|e| json_fault(&e))?;
        let mut piece = WirePiece::default();
        match event.kind.as_str() {
            "message_start" => {
                if let Some(message) = event.message {
                    piece.model = message.model;
                    piece.input_tokens = message.usage.and_then(|u| u.input_tokens);
                }
            }
            "content_block_delta" => piece.text = event.delta.and_then(|d| d.text).unwrap_or_default(),
            "message_delta" => {
                piece.finish_reason = event.delta.and_then(|d| d.stop_reason);
                // Cumulative: the last one is the total.
                piece.output_tokens = event.usage.and_then(|u| u.output_tokens);
            }
            "message_stop" => piece.done = true,
            "error" => {
                let error = event.error.ok_or("error event without error")?;
                piece.error = Some((error.status(), sanitise_str(&error.kind)));
            }
            _ => {} // ping, content_block_start/stop
        }
        Ok(piece)
    }
}

pub fn anthropic(endpoint: Endpoint) -> Result<AnthropicProvider, crate::LlmError> {
    HttpProvider::new(endpoint, AnthropicWire)
}
