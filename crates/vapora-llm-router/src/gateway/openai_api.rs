//! The OpenAI chat-completions wire format, as the gateway speaks it to
//! clients: request parsing and validation, and answer encoding.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;

use crate::{ChatMessage, ChatRequest, ChatRole, Completion};

/// Body of `POST /v1/chat/completions`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ChatCompletionRequest {
    /// A route (`role:developer`, `default`) or a concrete `provider/model`
    /// (see `GET /v1/models`).
    #[schema(example = "default")]
    pub model: String,
    #[schema(min_items = 1)]
    pub messages: Vec<WireMessage>,
    /// Answer with server-sent events, ending in `data: [DONE]`.
    #[serde(default)]
    pub stream: bool,
    #[schema(minimum = 1, maximum = 4294967295_i64)]
    pub max_tokens: Option<i64>,
    /// Takes precedence over `max_tokens`.
    #[schema(minimum = 1, maximum = 4294967295_i64)]
    pub max_completion_tokens: Option<i64>,
    #[schema(minimum = 0, maximum = 2)]
    pub temperature: Option<f32>,
    pub stream_options: Option<StreamOptions>,
    // Other OpenAI parameters (top_p, user, n=1, …) are accepted and ignored.
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct StreamOptions {
    /// End the stream with a chunk carrying `usage`.
    #[serde(default)]
    pub include_usage: bool,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct WireMessage {
    /// `system` (or `developer`), `user` or `assistant`.
    #[schema(pattern = "^(system|developer|user|assistant)$")]
    pub role: String,
    pub content: Option<WireContent>,
}

/// A message's content: a string, or a list of parts of which the text ones count.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum WireContent {
    Text(String),
    Parts(Vec<WirePart>),
}

#[derive(Debug, Deserialize, ToSchema)]
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

/// A whole answer (`stream: false`).
#[derive(Debug, Serialize, ToSchema)]
pub struct ChatCompletion {
    pub id: String,
    /// `chat.completion`.
    #[schema(value_type = String)]
    pub object: &'static str,
    /// Unix seconds.
    pub created: u64,
    /// The `provider/model` that answered.
    pub model: String,
    pub choices: Vec<Choice>,
    pub usage: TokenUsage,
    pub vapora: Provenance,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Choice {
    pub index: u32,
    pub message: AssistantMessage,
    /// `stop`, `length` or `content_filter`.
    #[schema(value_type = String)]
    pub finish_reason: &'static str,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AssistantMessage {
    /// `assistant`.
    #[schema(value_type = String)]
    pub role: &'static str,
    pub content: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenUsage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
}

/// Where the answer really came from, for clients that care.
#[derive(Debug, Serialize, ToSchema)]
pub struct Provenance {
    pub provider: String,
    pub model: String,
    /// Provider calls it took, retries and fallbacks included.
    pub attempts: u32,
    pub cost_usd: f64,
    /// The provider reported no usage; the token counts are estimates.
    pub usage_estimated: bool,
}

fn usage_of(c: &Completion) -> TokenUsage {
    TokenUsage {
        prompt_tokens: c.usage.input_tokens,
        completion_tokens: c.usage.output_tokens,
        // The counts are the provider's word: a huge one must not overflow.
        total_tokens: c.usage.input_tokens.saturating_add(c.usage.output_tokens),
    }
}

fn provenance_of(c: &Completion) -> Provenance {
    Provenance {
        provider: c.provider.clone(),
        model: c.model.clone(),
        attempts: c.attempts,
        cost_usd: c.cost_usd,
        usage_estimated: c.usage.estimated,
    }
}

pub fn completion(id: &str, created: u64, c: &Completion) -> ChatCompletion {
    ChatCompletion {
        id: id.to_owned(),
        object: "chat.completion",
        created,
        model: format!("{}/{}", c.provider, c.model),
        choices: vec![Choice {
            index: 0,
            message: AssistantMessage {
                role: "assistant",
                content: c.text.clone(),
            },
            finish_reason: finish_reason_of(c),
        }],
        usage: usage_of(c),
        vapora: provenance_of(c),
    }
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
        "usage": usage_of(c),
        "vapora": provenance_of(c),
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
