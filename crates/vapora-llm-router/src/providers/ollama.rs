//! Ollama's native chat API (`POST {base}/api/chat`), streamed as one JSON
//! object per line; the last one has `done: true` and the token counts.

use reqwest::header::HeaderMap;
use serde::Deserialize;
use serde_json::{Value, json};

use super::http::{Endpoint, HttpProvider, WirePiece, WireProtocol, json_fault};
use crate::ChatRequest;
use crate::framing::Framing;

pub type OllamaProvider = HttpProvider<OllamaWire>;

#[derive(Debug, Clone, Copy, Default)]
pub struct OllamaWire;

#[derive(Debug, Deserialize)]
struct WireChunk {
    model: Option<String>,
    message: Option<WireMessage>,
    #[serde(default)]
    done: bool,
    done_reason: Option<String>,
    prompt_eval_count: Option<u64>,
    eval_count: Option<u64>,
    error: Option<String>,
}

#[derive(Debug, Deserialize)]
struct WireMessage {
    #[serde(default)]
    content: String,
}

impl WireChunk {
    fn into_piece(self) -> WirePiece {
        WirePiece {
            text: self.message.map(|m| m.content).unwrap_or_default(),
            model: self.model,
            input_tokens: self.prompt_eval_count,
            output_tokens: self.eval_count,
            finish_reason: self.done_reason.or_else(|| self.done.then(|| "stop".into())),
            done: self.done,
            // Ollama's error is free text only: nothing of it is kept.
            error: self.error.map(|_| (502, None)),
        }
    }
}

impl WireProtocol for OllamaWire {
    const FRAMING: Framing = Framing::JsonLines;

    fn request(
        &self,
        endpoint: &Endpoint,
        request: &ChatRequest,
        stream: bool,
    ) -> (String, Value, HeaderMap) {
        let mut options = json!({});
        if let Some(max_tokens) = request.max_tokens {
            options["num_predict"] = max_tokens.into();
        }
        if let Some(temperature) = request.temperature {
            options["temperature"] = temperature.into();
        }
        let body = json!({
            "model": request.model.as_deref().unwrap_or(&endpoint.model),
            "messages": request.messages,
            "stream": stream,
            "options": options,
        });
        (
            format!("{}/api/chat", endpoint.base_url.trim_end_matches('/')),
            body,
            HeaderMap::new(),
        )
    }

    fn parse_response(&self, body: &[u8]) -> Result<WirePiece, String> {
        let chunk: WireChunk = serde_json::from_slice(body).map_err(|e| json_fault(&e))?;
        Ok(chunk.into_piece())
    }

    fn parse_chunk(&self, payload: &str) -> Result<WirePiece, String> {
        let chunk: WireChunk = serde_json::from_str(payload).map_err(|e| json_fault(&e))?;
        Ok(chunk.into_piece())
    }
}

pub fn ollama(endpoint: Endpoint) -> Result<OllamaProvider, crate::LlmError> {
    HttpProvider::new(endpoint, OllamaWire)
}
