//! The fake provider's answers, encoded in each protocol's wire format:
//! whole answers, stream frames, and each protocol's usage fields.

use serde_json::{Value, json};

use super::Protocol;

/// Encodes answers in one protocol.
#[derive(Debug, Clone)]
pub(super) struct Wire {
    pub(super) protocol: Protocol,
    pub(super) model: String,
    pub(super) usage: Option<(u64, u64)>,
}

impl Wire {
    pub(super) fn whole(&self, text: &str) -> Value {
        let (p, c) = self.usage.unzip();
        match self.protocol {
            Protocol::OpenAi => {
                let mut v = json!({"id": "chatcmpl-fake", "object": "chat.completion", "model": self.model,
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}]});
                if let (Some(p), Some(c)) = (p, c) {
                    v["usage"] = json!({"prompt_tokens": p, "completion_tokens": c, "total_tokens": p.saturating_add(c)});
                }
                v
            }
            Protocol::Anthropic => {
                let mut v = json!({"id": "msg_fake", "type": "message", "role": "assistant", "model": self.model,
                    "content": [{"type": "text", "text": text}], "stop_reason": "end_turn"});
                if let (Some(p), Some(c)) = (p, c) {
                    v["usage"] = json!({"input_tokens": p, "output_tokens": c});
                }
                v
            }
            Protocol::Ollama => {
                let mut v = json!({"model": self.model, "message": {"role": "assistant", "content": text}, "done": true, "done_reason": "stop"});
                if let (Some(p), Some(c)) = (p, c) {
                    v["prompt_eval_count"] = p.into();
                    v["eval_count"] = c.into();
                }
                v
            }
            Protocol::Gemini => {
                let mut v = json!({"candidates": [{"content": {"parts": [{"text": text}], "role": "model"}, "finishReason": "STOP"}], "modelVersion": self.model});
                if let (Some(p), Some(c)) = (p, c) {
                    v["usageMetadata"] = json!({"promptTokenCount": p, "candidatesTokenCount": c, "totalTokenCount": p.saturating_add(c)});
                }
                v
            }
        }
    }

    pub(super) fn frame(&self, v: Value) -> String {
        match self.protocol {
            Protocol::Ollama => format!("{v}\n"),
            _ => format!("data: {v}\n\n"),
        }
    }

    pub(super) fn start(&self) -> Vec<String> {
        match self.protocol {
            Protocol::Anthropic => {
                let mut message = json!({"id": "msg_fake", "type": "message", "role": "assistant", "model": self.model, "content": []});
                if let Some((p, _)) = self.usage {
                    message["usage"] = json!({"input_tokens": p, "output_tokens": 1});
                }
                vec![
                    self.frame(json!({"type": "message_start", "message": message})),
                    self.frame(json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})),
                    self.frame(json!({"type": "ping"})),
                ]
            }
            _ => Vec::new(),
        }
    }

    pub(super) fn delta(&self, text: &str) -> String {
        self.frame(match self.protocol {
            Protocol::OpenAi => json!({"id": "chatcmpl-fake", "object": "chat.completion.chunk", "model": self.model,
                "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": null}]}),
            Protocol::Anthropic => json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}}),
            Protocol::Ollama => json!({"model": self.model, "message": {"role": "assistant", "content": text}, "done": false}),
            Protocol::Gemini => json!({"candidates": [{"content": {"parts": [{"text": text}], "role": "model"}}], "modelVersion": self.model}),
        })
    }

    pub(super) fn end(&self) -> Vec<String> {
        let (p, c) = self.usage.unzip();
        match self.protocol {
            Protocol::OpenAi => {
                let mut out = vec![self.frame(
                    json!({"id": "chatcmpl-fake", "object": "chat.completion.chunk", "model": self.model,
                    "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}),
                )];
                if let (Some(p), Some(c)) = (p, c) {
                    out.push(self.frame(
                        json!({"id": "chatcmpl-fake", "object": "chat.completion.chunk", "choices": [],
                        "usage": {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p.saturating_add(c)}}),
                    ));
                }
                out.push("data: [DONE]\n\n".into());
                out
            }
            Protocol::Anthropic => {
                let mut delta = json!({"type": "message_delta", "delta": {"stop_reason": "end_turn"}});
                if let Some(c) = c {
                    delta["usage"] = json!({"output_tokens": c});
                }
                vec![
                    self.frame(json!({"type": "content_block_stop", "index": 0})),
                    self.frame(delta),
                    self.frame(json!({"type": "message_stop"})),
                ]
            }
            Protocol::Ollama => {
                let mut last = json!({"model": self.model, "message": {"role": "assistant", "content": ""}, "done": true, "done_reason": "stop"});
                if let (Some(p), Some(c)) = (p, c) {
                    last["prompt_eval_count"] = p.into();
                    last["eval_count"] = c.into();
                }
                vec![self.frame(last)]
            }
            Protocol::Gemini => {
                let mut last = json!({"candidates": [{"content": {"parts": [{"text": ""}], "role": "model"}, "finishReason": "STOP"}], "modelVersion": self.model});
                if let (Some(p), Some(c)) = (p, c) {
                    last["usageMetadata"] = json!({"promptTokenCount": p, "candidatesTokenCount": c, "totalTokenCount": p.saturating_add(c)});
                }
                vec![self.frame(last)]
            }
        }
    }
}
