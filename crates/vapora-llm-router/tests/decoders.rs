//! Every decoder of what a provider sends, fed arbitrary input: the four
//! wire protocols' whole answers and stream chunks, SSE and JSON-lines
//! framing, error bodies and `Retry-After`. Each answers `Ok` or `Err` and
//! never panics; framing does not depend on how the body was chunked.

use proptest::prelude::*;
use reqwest::header::{HeaderMap, HeaderValue, RETRY_AFTER};
use serde_json::{Value, json};
use vapora_llm_router::framing::{Framing, PayloadDecoder};
use vapora_llm_router::providers::WireProtocol;
use vapora_llm_router::providers::anthropic::AnthropicWire;
use vapora_llm_router::providers::gemini::GeminiWire;
use vapora_llm_router::providers::ollama::OllamaWire;
use vapora_llm_router::providers::openai::OpenAiWire;
use vapora_llm_router::providers::upstream_error::code_of_body;
use vapora_llm_router::retry_after::{MAX_RETRY_AFTER, retry_after};
use vapora_shared::testing::{arbitrary_json, mutate};

/// Real answers of each protocol (whole, then stream chunks), as the
/// providers document them.
fn real_answers() -> Vec<Value> {
    vec![
        json!({"id": "chatcmpl-1", "object": "chat.completion", "model": "gpt-4o-mini",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}}),
        json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "model": "gpt-4o-mini",
            "choices": [{"index": 0, "delta": {"content": "h"}, "finish_reason": null}]}),
        json!({"id": "msg_1", "type": "message", "role": "assistant", "model": "claude",
            "content": [{"type": "text", "text": "hi"}], "stop_reason": "end_turn",
            "usage": {"input_tokens": 3, "output_tokens": 1}}),
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "h"}}),
        json!({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 1}}),
        json!({"model": "llama3", "message": {"role": "assistant", "content": "hi"}, "done": true,
            "done_reason": "stop", "prompt_eval_count": 3, "eval_count": 1}),
        json!({"candidates": [{"content": {"parts": [{"text": "hi"}], "role": "model"}, "finishReason": "STOP"}],
            "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 1, "totalTokenCount": 4},
            "modelVersion": "gemini"}),
    ]
}

/// Every protocol reads `bytes` as a whole answer and as a stream chunk.
fn parse_everywhere(bytes: &[u8]) {
    fn one<W: WireProtocol>(wire: W, bytes: &[u8]) {
        let _ = wire.parse_response(bytes);
        let _ = wire.parse_chunk(&String::from_utf8_lossy(bytes));
    }
    one(OpenAiWire, bytes);
    one(AnthropicWire, bytes);
    one(OllamaWire, bytes);
    one(GeminiWire, bytes);
    let _ = code_of_body(bytes);
}

fn payloads(framing: Framing, chunks: &[&[u8]]) -> Vec<String> {
    let mut decoder = PayloadDecoder::new(framing);
    let mut out: Vec<String> = chunks.iter().flat_map(|c| decoder.push(c)).collect();
    out.extend(decoder.finish());
    out
}

/// `body` cut at the given offsets (taken modulo its length).
fn split_at<'a>(body: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (body.len() + 1)).collect();
    cuts.sort_unstable();
    let mut chunks = Vec::new();
    let mut start = 0;
    for cut in cuts {
        chunks.push(&body[start..cut]);
        start = cut;
    }
    chunks.push(&body[start..]);
    chunks
}

/// Bodies that look like streams: lines of SSE fields, JSON and noise.
fn stream_body() -> impl Strategy<Value = Vec<u8>> {
    let line = prop_oneof![
        arbitrary_json().prop_map(|v| format!("data: {v}")),
        Just("data: [DONE]".to_owned()),
        Just(String::new()),
        Just(": keep-alive".to_owned()),
        "event: [a-z_]{1,10}",
        any::<String>(),
    ];
    (prop::collection::vec(line, 0..12), any::<bool>())
        .prop_map(|(lines, crlf)| lines.join(if crlf { "\r\n" } else { "\n" }).into_bytes())
}

#[test]
fn the_real_answers_parse() {
    let parsed = |w: &dyn Fn(&[u8]) -> bool| {
        real_answers()
            .iter()
            .filter(|a| w(&serde_json::to_vec(a).unwrap()))
            .count()
    };
    assert!(parsed(&|b| OpenAiWire.parse_response(b).is_ok()) >= 1);
    assert!(parsed(&|b| AnthropicWire.parse_response(b).is_ok()) >= 1);
    assert!(parsed(&|b| OllamaWire.parse_response(b).is_ok()) >= 1);
    assert!(parsed(&|b| GeminiWire.parse_response(b).is_ok()) >= 1);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1_000))]

    #[test]
    fn arbitrary_bytes_as_answers_and_chunks(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        parse_everywhere(&bytes);
    }

    #[test]
    fn arbitrary_json_as_answers_and_chunks(document in arbitrary_json()) {
        parse_everywhere(&serde_json::to_vec(&document).unwrap());
    }

    #[test]
    fn real_answers_with_one_value_changed(
        which in any::<usize>(),
        pick in any::<usize>(),
        replacement in prop::option::of(arbitrary_json()),
    ) {
        let answers = real_answers();
        let answer = mutate(&answers[which % answers.len()], pick, replacement);
        parse_everywhere(&serde_json::to_vec(&answer).unwrap());
    }

    #[test]
    fn framing_does_not_depend_on_chunking(
        body in prop_oneof![stream_body(), prop::collection::vec(any::<u8>(), 0..512)],
        cuts in prop::collection::vec(any::<usize>(), 0..16),
    ) {
        for framing in [Framing::Sse, Framing::JsonLines] {
            let whole = payloads(framing, &[&body]);
            prop_assert_eq!(payloads(framing, &split_at(&body, &cuts)), whole);
        }
    }

    #[test]
    fn any_retry_after_is_bounded(value in prop_oneof![
        any::<f64>().prop_map(|f| f.to_string()),
        any::<i128>().prop_map(|i| i.to_string()),
        "[ -~]{0,40}",
    ]) {
        let mut headers = HeaderMap::new();
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(RETRY_AFTER, value);
        }
        if let Some(wait) = retry_after(&headers) {
            prop_assert!(wait <= MAX_RETRY_AFTER);
        }
    }
}
