//! Google Gemini `generateContent` (`POST {base}/v1beta/models/{model}:generateContent`,
//! streamed through `:streamGenerateContent?alt=sse`).
//!
//! A Gemini stream has no end marker: it is complete when a chunk carried a
//! `finishReason` and the body then closed. Every chunk may carry
//! `usageMetadata`; the last one has the totals.

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::{Value, json};

use super::http::{Endpoint, HttpProvider, WirePiece, WireProtocol, json_fault};
use super::upstream_error::code_of_value;
use crate::framing::Framing;
use crate::{ChatRequest, ChatRole};

pub type GeminiProvider = HttpProvider<GeminiWire>;

#[derive(Debug, Clone, Copy, Default)]
pub struct GeminiWire;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireResponse {
    #[serde(default)]
    candidates: Vec<WireCandidate>,
    usage_metadata: Option<WireUsage>,
    model_version: Option<String>,
    /// Read for its status and code only; its message is upstream free text.
    error: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireCandidate {
    content: Option<WireContent>,
    finish_reason: Option<String>,
}

#[derive(Debug, Deserialize)]
struct WireContent {
    #[serde(default)]
    parts: Vec<WirePart>,
}

#[derive(Debug, Deserialize)]
struct WirePart {
    #[serde(default)]
    text: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireUsage {
    prompt_token_count: Option<u64>,
    candidates_token_count: Option<u64>,
}

impl WireResponse {
    fn into_piece(self) -> WirePiece {
        let mut piece = WirePiece {
            model: self.model_version,
            input_tokens: self.usage_metadata.as_ref().and_then(|u| u.prompt_token_count),
            output_tokens: self
                .usage_metadata
                .as_ref()
                .and_then(|u| u.candidates_token_count),
            error: self.error.map(|e| {
                let status = e["code"].as_u64().and_then(|c| u16::try_from(c).ok());
                (status.unwrap_or(502), code_of_value(&e))
            }),
            ..WirePiece::default()
        };
        if let Some(candidate) = self.candidates.into_iter().next() {
            piece.finish_reason = candidate.finish_reason;
            piece.text = candidate
                .content
                .map(|c| c.parts.into_iter().map(|p| p.text).collect())
                .unwrap_or_default();
        }
        piece
    }
}

impl WireProtocol for GeminiWire {
    const FRAMING: Framing = Framing::Sse;

    fn request(
        &self,
        endpoint: &Endpoint,
        request: &ChatRequest,
        stream: bool,
    ) -> (String, Value, HeaderMap) {
        let (system, turns) = request.split_system();
        let system: Vec<Value> = system.iter().map(|m| json!({ "text": m.content })).collect();
        let contents: Vec<Value> = turns
            .iter()
            .map(|m| {
                let role = if m.role == ChatRole::Assistant {
                    "model"
                } else {
                    "user"
                };
                json!({ "role": role, "parts": [{ "text": m.content }] })
            })
            .collect();
        let mut body = json!({ "contents": contents });
        if !system.is_empty() {
            body["systemInstruction"] = json!({ "parts": system });
        }
        let mut config = json!({});
        if let Some(max_tokens) = request.max_tokens {
            config["maxOutputTokens"] = max_tokens.into();
        }
        if let Some(temperature) = request.temperature {
            config["temperature"] = temperature.into();
        }
        body["generationConfig"] = config;
        let model = request.model.as_deref().unwrap_or(&endpoint.model);
        let base = endpoint.base_url.trim_end_matches('/');
        let url = if stream {
            format!("{base}/v1beta/models/{model}:streamGenerateContent?alt=sse")
        } else {
            format!("{base}/v1beta/models/{model}:generateContent")
        };
        let mut headers = HeaderMap::new();
        if let Some(value) = endpoint
            .api_key
            .as_ref()
            .and_then(|k| HeaderValue::from_str(k.expose_secret()).ok())
        {
            headers.insert(HeaderName::from_static("x-goog-api-key"), value);
        }
        (url, body, headers)
    }

    fn parse_response(&self, body: &[u8]) -> Result<WirePiece, String> {
        let response: WireResponse = serde_json::from_slice(body).map_err(|e| json_fault(&e))?;
        Ok(response.into_piece())
    }

    fn parse_chunk(&self, payload: &str) -> Result<WirePiece, String> {
        let response: WireResponse = serde_json::from_str(payload).map_err(|e| json_fault(&e))?;
        Ok(response.into_piece())
    }

    fn eof_after_finish_is_done(&self) -> bool {
        true
    }
}

pub fn gemini(endpoint: Endpoint) -> Result<GeminiProvider, crate::LlmError> {
    HttpProvider::new(endpoint, GeminiWire)
}
