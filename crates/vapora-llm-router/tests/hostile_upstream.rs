//! Upstream answers no provider should send, over real sockets: each ends
//! in a result or an `LlmError`, never in a panic or a stalled router.

mod common;

use std::time::Duration;

use common::{request, router};
use vapora_llm_router::retry_after::MAX_RETRY_AFTER;
use vapora_llm_router::testing::{FakeProvider, Protocol, Script, collect_stream};
use vapora_llm_router::{LlmClient, LlmError, StreamEvent};

const ONE_TRY: &str = "retry = { attempts_per_target = 1 }";

/// Fails the test if `call` takes longer than a few seconds.
async fn soon<T>(call: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(5), call)
        .await
        .expect("the router stalled")
}

#[tokio::test]
async fn a_retry_after_of_1e20_seconds_falls_back_and_blocks_nothing() {
    let limited = FakeProvider::start(Script::status(429).header("retry-after", "1e20")).await;
    let backup = FakeProvider::start(Script::text(&["from backup"])).await;
    let r = router(
        &[("limited", &limited), ("backup", &backup)],
        "[routes.default]\ntargets = [\"limited/m\", \"backup/m\"]\n\
         retry = { attempts_per_target = 2, backoff_base_ms = 10, backoff_max_ms = 200 }\n",
    )
    .await;
    let done = soon(r.complete(&request())).await.unwrap();
    assert_eq!((done.provider.as_str(), done.attempts), ("backup", 3));
    let (text, _) = soon(async { collect_stream(r.stream(&request()).await.unwrap()).await }).await;
    assert_eq!(text, "from backup", "the next request is not held up");

    // With nowhere to fall back to: a clean error, its wait bounded.
    let alone = router(
        &[("limited", &limited)],
        &format!("[routes.default]\ntargets = [\"limited/m\"]\n{ONE_TRY}\n"),
    )
    .await;
    let err = soon(alone.complete(&request())).await.unwrap_err();
    let LlmError::Status {
        status: 429,
        retry_after: Some(wait),
        ..
    } = err
    else {
        panic!("{err:?}")
    };
    assert!(wait <= MAX_RETRY_AFTER, "{wait:?}");
}

#[tokio::test]
async fn odd_retry_after_values_never_stall_the_retry() {
    for value in [
        "1e20",
        "-5",
        "NaN",
        "inf",
        "Fri, 31 Dec 9999 23:59:59 GMT",
        "soon-ish",
    ] {
        let server = FakeProvider::start(Script::text(&["ok"])).await;
        server.push(Script::status(503).header("retry-after", value));
        let r = router(
            &[("p", &server)],
            "[routes.default]\ntargets = [\"p/m\"]\n\
             retry = { attempts_per_target = 2, backoff_base_ms = 10, backoff_max_ms = 200 }\n",
        )
        .await;
        let done = soon(r.complete(&request())).await;
        assert_eq!(
            done.map(|d| d.text).ok().as_deref(),
            Some("ok"),
            "Retry-After: {value}"
        );
    }
}

#[tokio::test]
async fn odd_upstream_answers_end_in_a_result_or_an_error_never_a_panic() {
    huge_reported_usage().await;
    malformed_answers().await;
}

/// Usage counts at `u64::MAX`: recorded, never overflowing a total.
async fn huge_reported_usage() {
    for protocol in [
        Protocol::OpenAi,
        Protocol::Anthropic,
        Protocol::Ollama,
        Protocol::Gemini,
    ] {
        let server = FakeProvider::start_with(
            protocol,
            Script {
                usage: Some((u64::MAX, u64::MAX)),
                ..Script::text(&["x"])
            },
        )
        .await;
        let r = router(&[("p", &server)], "[routes.default]\ntargets = [\"p/m\"]\n").await;
        // Twice, so that every running total has to add to u64::MAX.
        for _ in 0..2 {
            let done = r.complete(&request()).await.unwrap();
            assert_eq!(done.usage.output_tokens, u64::MAX, "{protocol:?}");
            assert!(done.cost_usd.is_finite(), "{protocol:?}");
            let (_, events) = collect_stream(r.stream(&request()).await.unwrap()).await;
            assert!(
                matches!(events.last(), Some(Ok(StreamEvent::Finished(_)))),
                "{protocol:?}: {events:?}"
            );
        }
        assert!(
            r.metrics().render().contains(&u64::MAX.to_string()),
            "{protocol:?}"
        );
    }
}

/// Bodies that do not follow the protocol, or are not even UTF-8.
async fn malformed_answers() {
    let server = FakeProvider::start(Script::default()).await;
    let r = router(
        &[("p", &server)],
        &format!("[routes.default]\ntargets = [\"p/m\"]\n{ONE_TRY}\n"),
    )
    .await;
    let unstreamed: [&[u8]; 6] = [
        br#"{"choices":[]}"#,
        br#"{"choices":[{"message":{"content":"x"}}],"usage":{"prompt_tokens":-5,"completion_tokens":3}}"#,
        br#"{"choices":[{"message":{"content":"x"}}],"usage":{"prompt_tokens":1e300,"completion_tokens":3}}"#,
        b"{\"choices\":[{\"message\":{\"content\":\"\xff\xfe\"}}]}",
        b"",
        br#"{"error":{}}"#,
    ];
    for body in unstreamed {
        server.push(Script::raw(200, &[body]));
        // A router each, so that the failures do not open the circuit.
        let r = router(
            &[("p", &server)],
            &format!("[routes.default]\ntargets = [\"p/m\"]\n{ONE_TRY}\n"),
        )
        .await;
        let result = r.complete(&request()).await;
        assert!(
            matches!(
                result,
                Err(LlmError::Protocol { .. }) | Err(LlmError::Status { .. }) | Ok(_)
            ),
            "{}: {result:?}",
            String::from_utf8_lossy(body)
        );
    }

    // A character split across two chunks arrives whole; bytes that are
    // not UTF-8 at all become replacement characters.
    server.push(Script::raw(
        200,
        &[
            b"data: {\"choices\":[{\"delta\":{\"content\":\"caf\xc3",
            b"\xa9 \xff\xfe\"}}]}\n\n",
            b"data: {\"choices\":[]}\n\ndata: {\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n",
        ],
    ));
    let (text, events) = collect_stream(r.stream(&request()).await.unwrap()).await;
    assert_eq!(text, "café \u{fffd}\u{fffd}");
    assert!(
        matches!(events.last(), Some(Ok(StreamEvent::Finished(_)))),
        "{events:?}"
    );

    // A stream that is nothing but noise is an error.
    server.push(Script::raw(200, &[b"data: \xff\xff{{\n\n", b"data: [DONE]\n\n"]));
    let result = r.stream(&request()).await;
    assert!(
        matches!(result, Err(LlmError::Protocol { .. })),
        "{:?}",
        result.map(|_| ())
    );
}
