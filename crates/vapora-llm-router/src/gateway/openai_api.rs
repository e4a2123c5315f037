//! The OpenAI chat-completions wire format, as the gateway speaks it to
//! clients: request parsing and validation, and answer encoding.

use serde::Deserialize;
use serde_json::{Value, json};

use crate::{ChatMessage, ChatRequest, ChatRole, Completion};

#[derive(Debug, Deserialize)]
pub struct ChatCompletionRequest {
    pub model: String,
    pub messages: Vec<WireMessage>,
    #[serde(default)]
    pub stream: bool,
    pub max_tokens: Option<i64>,
    pub max_completion_tokens: Option<i64>,
    pub temperature: Option<f32>,
    pub stream_options: Option<StreamOptions>,
    // Other OpenAI parameters (top_p, user, n=1, …) are accepted and ignored.
}

#[derive(Debug, Deserialize)]
pub struct StreamOptions {
    #[serde(default)]
    pub include_usage: bool,
}

#[derive(Debug, Deserialize)]
pub struct WireMessage {
    pub role: String,
    pub content: Option<WireContent>,
}

/// A message's content: a string, or a list of parts of which the text ones count.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum WireContent {
    Text(String),
    Parts(Vec<WirePart>),
}

#[derive(Debug, Deserialize)]
pub struct WirePart {
    #[serde(rename = "type")]
    pub kind: String,
    pub text: Option<String>,
}

impl ChatCompletionRequest {
    /// Checks the request and turns it into a router request.
    pub fn into_chat_request(
        self,
        role: Option<String>,
        api_key: Option<String>,
    ) -> Result<ChatRequest, (String, &'static str)> {
        if self.messages.is_empty() {
            return Err(("`messages` must contain at least one message".into(), "messages"));
        }
        let max_tokens = match self.max_completion_tokens.or(self.max_tokens) {
            None => None,
            Some(n) if (1..=i64::from(u32::MAX)).contains(&n) => Some(n as u32),
            Some(n) => {
                return Err((
                    format!("`max_tokens` must be a positive integer, got {n}"),
                    "max_tokens",
                ));
            }
        };
        if let Some(t) = self.temperature
            && !(0.0..=2.0).contains(&t)
        {
            return Err((
                format!("`temperature` must be between 0 and 2, got {t}"),
                "temperature",
            ));
        }
        let messages = self
            .messages
            .into_iter()
            .map(|m| {
                let role = match m.role.as_str() {
                    "system" | "developer" => ChatRole::System,
                    "user" => ChatRole::User,
                    "assistant" => ChatRole::Assistant,
                    other => return Err((format!("unsupported message role {other:?}"), "messages")),
                };
                let content = match m.content {
                    None => String::new(),
                    Some(WireContent::Text(text)) => text,
                    Some(WireContent::Parts(parts)) => parts
                        .into_iter()
                        .filter(|p| p.kind == "text")
                        .filter_map(|p| p.text)
                        .collect(),
                };
                Ok(ChatMessage { role, content })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ChatRequest {
            messages,
            model: Some(self.model),
            max_tokens,
            temperature: self.temperature,
            role,
            api_key,
        })
    }
}

fn usage_json(c: &Completion) -> Value {
    json!({
        "prompt_tokens": c.usage.input_tokens,
        "completion_tokens": c.usage.output_tokens,
        // The counts are the provider's word: a huge one must not overflow.
        "total_tokens": c.usage.input_tokens.saturating_add(c.usage.output_tokens),
    })
}

/// Where the answer really came from, for clients that care.
fn vapora_json(c: &Completion) -> Value {
    json!({
        "provider": c.provider,
        "model": c.model,
        "attempts": c.attempts,
        "cost_usd": c.cost_usd,
        "usage_estimated": c.usage.estimated,
    })
}

pub fn completion_json(id: &str, created: u64, c: &Completion) -> Value {
    json!({
        "id": id,
        "object": "chat.completion",
        "created": created,
        "model": format!("{}/{}", c.provider, c.model),
        "choices": [{
            "index": 0,
            "message": { "role": "assistant", "content": c.text },
            "finish_reason": c.finish_reason.as_deref().map(finish_reason).unwrap_or("stop"),
        }],
        "usage": usage_json(c),
        "vapora": vapora_json(c),
    })
}

pub fn chunk_json(id: &str, created: u64, model: &str, delta: Value, finish: Option<&str>) -> Value {
    json!({
        "id": id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{ "index": 0, "delta": delta, "finish_reason": finish }],
    })
}

pub fn usage_chunk_json(id: &str, created: u64, c: &Completion) -> Value {
    json!({
        "id": id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": format!("{}/{}", c.provider, c.model),
        "choices": [],
        "usage": usage_json(c),
        "vapora": vapora_json(c),
    })
}

/// Provider finish reasons in OpenAI's vocabulary.
fn finish_reason(reason: &str) -> &'static str {
    match reason {
        "length" | "max_tokens" | "MAX_TOKENS" => "length",
        "content_filter" | "SAFETY" => "content_filter",
        _ => "stop",
    }
}

pub fn finish_reason_of(c: &Completion) -> &'static str {
    c.finish_reason.as_deref().map(finish_reason).unwrap_or("stop")
}
