//! The OpenAI chat-completions protocol (`POST {base}/chat/completions`).
//!
//! Spoken by OpenAI itself and by most self-hosted servers: vLLM, Together,
//! llama.cpp's server, and Ollama's `/v1` endpoint.

use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::{Value, json};

use super::http::{Endpoint, HttpProvider, WirePiece, WireProtocol, json_fault};
use super::upstream_error::code_of_value;
use crate::ChatRequest;
use crate::framing::Framing;

pub type OpenAiProvider = HttpProvider<OpenAiWire>;

#[derive(Debug, Clone, Copy, Default)]
pub struct OpenAiWire;

#[derive(Debug, Deserialize)]
struct WireUsage {
    prompt_tokens: u64,
    completion_tokens: u64,
}

#[derive(Debug, Deserialize)]
struct WireCompletion {
    model: Option<String>,
    #[serde(default)]
    choices: Vec<WireChoice>,
    usage: Option<WireUsage>,
    /// Read for its code only; its message is upstream free text.
    error: Option<Value>,
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

impl WireCompletion {
    fn into_piece(self) -> WirePiece {
        let mut piece = WirePiece {
            model: self.model,
            input_tokens: self.usage.as_ref().map(|u| u.prompt_tokens),
            output_tokens: self.usage.as_ref().map(|u| u.completion_tokens),
            error: self.error.map(|e| (502, code_of_value(&e))),
            ..WirePiece::default()
        };
        for choice in self.choices {
            if let Some(reason) = choice.finish_reason {
                piece.finish_reason = Some(reason);
            }
            if let Some(content) = choice.message.or(choice.delta).and_then(|m| m.content) {
                piece.text.push_str(&content);
            }
        }
        piece
    }
}

impl WireProtocol for OpenAiWire {
    const FRAMING: Framing = Framing::Sse;

    fn request(
        &self,
        endpoint: &Endpoint,
        request: &ChatRequest,
        stream: bool,
    ) -> (String, Value, HeaderMap) {
        let mut body = json!({
            "model": request.model.as_deref().unwrap_or(&endpoint.model),
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
        let mut headers = HeaderMap::new();
        if let Some(value) = endpoint
            .api_key
            .as_ref()
            .and_then(|k| HeaderValue::from_str(&format!("Bearer {}", k.expose_secret())).ok())
        {
            headers.insert(AUTHORIZATION, value);
        }
        let url = format!("{}/chat/completions", endpoint.base_url.trim_end_matches('/'));
        (url, body, headers)
    }

    fn parse_response(&self, body: &[u8]) -> Result<WirePiece, String> {
        let wire: WireCompletion = serde_json::from_slice(body).map_err(|e| json_fault(&e))?;
        if wire.choices.is_empty() && wire.error.is_none() {
            return Err("no choices in the answer".into());
        }
        Ok(wire.into_piece())
    }

    fn parse_chunk(&self, payload: &str) -> Result<WirePiece, String> {
        if payload.trim() == "[DONE]" {
            return Ok(WirePiece {
                done: true,
                ..WirePiece::default()
            });
        }
        let wire: WireCompletion = serde_json::from_str(payload).map_err(|e| json_fault(&e))?;
        Ok(wire.into_piece())
    }
}

/// Builds an OpenAI-protocol provider.
pub fn openai(endpoint: Endpoint) -> Result<OpenAiProvider, crate::LlmError> {
    HttpProvider::new(endpoint, OpenAiWire)
}
