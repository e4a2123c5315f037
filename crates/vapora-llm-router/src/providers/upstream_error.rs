//! What is kept of a provider's error answer: its HTTP status and, when the
//! provider's JSON has one, a short error type or code.
//!
//! Free text from an upstream body never goes further (not into
//! [`LlmError`](crate::LlmError) messages, gateway responses or logs):
//! providers echo parts of what they were sent, API key fragments included.

use serde_json::Value;

/// Longest code kept; real ones (`rate_limit_exceeded`,
/// `RESOURCE_EXHAUSTED`, `overloaded_error`) are far shorter.
const MAX_CODE_LEN: usize = 48;

/// The error type or code of an error body, if it has a usable one.
pub fn code_of_body(body: &[u8]) -> Option<String> {
    let value: Value = serde_json::from_slice(body).ok()?;
    code_of_value(&value)
}

/// Looks where the providers put it: `error.code`, `error.type` or
/// `error.status` (OpenAI, Anthropic, Gemini), or at the top level.
pub fn code_of_value(value: &Value) -> Option<String> {
    let error = value.get("error").filter(|e| e.is_object()).unwrap_or(value);
    ["code", "type", "status"]
        .iter()
        .filter_map(|field| error.get(field))
        .find_map(sanitise)
}

/// A code as it may be shown: a small number, or a word of letters, `_`,
/// `.` and `-` (no digits, so nothing key-like passes).
pub fn sanitise(value: &Value) -> Option<String> {
    match value {
        Value::Number(n) => n.as_u64().filter(|n| *n < 10_000).map(|n| n.to_string()),
        Value::String(s) => sanitise_str(s),
        _ => None,
    }
}

/// A code given as text, if it is a short word (see [`sanitise`]).
pub fn sanitise_str(s: &str) -> Option<String> {
    let word = !s.is_empty()
        && s.len() <= MAX_CODE_LEN
        && s.chars()
            .all(|c| c.is_ascii_alphabetic() || matches!(c, '_' | '.' | '-'));
    word.then(|| s.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_short_codes_and_drops_free_text() {
        let openai = br#"{"error":{"message":"Incorrect API key provided: sk-live-SUPERSECRET0123456789","type":"invalid_request_error","code":"invalid_api_key"}}"#;
        assert_eq!(code_of_body(openai).as_deref(), Some("invalid_api_key"));
        let gemini = br#"{"error":{"code":429,"message":"quota","status":"RESOURCE_EXHAUSTED"}}"#;
        assert_eq!(code_of_body(gemini).as_deref(), Some("429"));
        let anthropic = br#"{"type":"error","error":{"type":"overloaded_error","message":"x"}}"#;
        assert_eq!(code_of_body(anthropic).as_deref(), Some("overloaded_error"));
        for hostile in [
            br#"{"error":{"code":"sk-live-SUPERSECRET0123456789"}}"#.as_slice(),
            br#"{"error":"key sk-live-SUPERSECRET0123456789 is wrong"}"#,
            br#"{"error":{"type":"has spaces and \"quotes\""}}"#,
            b"not json sk-live-SUPERSECRET0123456789",
        ] {
            assert_eq!(
                code_of_body(hostile),
                None,
                "{}",
                String::from_utf8_lossy(hostile)
            );
        }
    }
}
