//! The router against real local servers speaking each provider's protocol:
//! strategies, retries, timeouts, circuit breakers, cancellation of losers,
//! mid-stream failures, and usage accounting per provider.

mod common;

use std::time::{Duration, Instant};

use vapora_llm_router::testing::{FakeProvider, Protocol, Script, collect_stream};
use vapora_llm_router::{ChatMessage, ChatRequest, LlmClient, LlmError, Router, StreamEvent};

/// A router over `providers` (name, protocol server) with `routes_toml`
/// appended; circuits open after 3 failures and cool down for 300 ms.
async fn router(providers: &[(&str, &FakeProvider)], extra_toml: &str) -> Router {
    let toml = common::config_with(
        providers,
        "failure_threshold = 3\ncooldown_ms = 300\n",
        extra_toml,
    );
    common::build(&toml).await
}

fn request(model: &str) -> ChatRequest {
    ChatRequest {
        messages: vec![ChatMessage::system("be brief"), ChatMessage::user("hello")],
        model: Some(model.into()),
        max_tokens: Some(100),
        ..Default::default()
    }
}

async fn collect(
    router: &Router,
    req: &ChatRequest,
) -> Result<(String, Vec<Result<StreamEvent, LlmError>>), LlmError> {
    Ok(collect_stream(router.stream(req).await?).await)
}

const FAST_RETRY: &str = "retry = { attempts_per_target = 2, backoff_base_ms = 20, backoff_max_ms = 200 }";

#[tokio::test]
async fn fallback_retries_then_moves_to_the_next_target() {
    let a = FakeProvider::start(Script::status(503)).await;
    let b = FakeProvider::start(Script::text(&["from ", "b"])).await;
    let r = router(
        &[("a", &a), ("b", &b)],
        &format!("[routes.default]\ntargets = [\"a/m\", \"b/m\"]\n{FAST_RETRY}\n"),
    )
    .await;

    let done = r.complete(&request("default")).await.unwrap();
    assert_eq!((done.text.as_str(), done.provider.as_str()), ("from b", "b"));
    assert_eq!(done.attempts, 3, "two tries on a, one on b");
    assert_eq!(a.request_count(), 2);

    // Streams fall back the same way, before the first token.
    let (text, events) = collect(&r, &request("default")).await.unwrap();
    assert_eq!(text, "from b");
    assert!(
        matches!(events.last(), Some(Ok(StreamEvent::Finished(c))) if c.provider == "b" && c.attempts == 3)
    );
}

#[tokio::test]
async fn a_request_error_is_not_retried_anywhere() {
    let a = FakeProvider::start(Script::status(400)).await;
    let b = FakeProvider::start(Script::default()).await;
    let r = router(
        &[("a", &a), ("b", &b)],
        &format!("[routes.default]\ntargets = [\"a/m\", \"b/m\"]\n{FAST_RETRY}\n"),
    )
    .await;
    let err = r.complete(&request("default")).await.unwrap_err();
    assert!(matches!(err, LlmError::Status { status: 400, .. }), "{err:?}");
    assert_eq!((a.request_count(), b.request_count()), (1, 0));
}

#[tokio::test]
async fn rate_limits_wait_for_retry_after_with_backoff() {
    let a = FakeProvider::start(Script::default()).await;
    a.push(Script {
        retry_after: Some(1),
        ..Script::status(429)
    });
    let r = router(
        &[("a", &a)],
        "[routes.default]\ntargets = [\"a/m\"]\nretry = { attempts_per_target = 2, backoff_base_ms = 10, backoff_max_ms = 5000 }\n",
    )
    .await;
    let started = Instant::now();
    let done = r.complete(&request("default")).await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "retried before Retry-After: {:?}",
        started.elapsed()
    );
    assert_eq!(done.attempts, 2);
}

#[tokio::test]
async fn first_token_timeout_moves_on_and_total_timeout_cuts_a_stream() {
    let slow_start = FakeProvider::start(Script {
        delay: Duration::from_millis(3_000),
        ..Script::default()
    })
    .await;
    let b = FakeProvider::start(Script::text(&["quick"])).await;
    let r = router(
        &[("slow", &slow_start), ("b", &b)],
        "[routes.default]\ntargets = [\"slow/m\", \"b/m\"]\nfirst_token_timeout_ms = 150\nretry = { attempts_per_target = 1 }\n",
    )
    .await;
    let started = Instant::now();
    let (text, _) = collect(&r, &request("default")).await.unwrap();
    assert_eq!(text, "quick");
    assert!(
        started.elapsed() < Duration::from_millis(2_500),
        "{:?}",
        started.elapsed()
    );

    let dribble = FakeProvider::start(Script {
        chunks: (0..50).map(|i| format!("{i} ")).collect(),
        chunk_delay: Duration::from_millis(40),
        ..Script::default()
    })
    .await;
    let r = router(
        &[("d", &dribble)],
        "[routes.default]\ntargets = [\"d/m\"]\ntotal_timeout_ms = 300\n",
    )
    .await;
    let (_, events) = collect(&r, &request("default")).await.unwrap();
    assert!(
        matches!(events.last(), Some(Err(LlmError::Timeout { .. }))),
        "{:?}",
        events.last()
    );
    assert!(!events.iter().any(|e| matches!(e, Ok(StreamEvent::Finished(_)))));
}

#[tokio::test]
async fn circuit_opens_after_failures_then_half_opens_and_closes() {
    let flaky = FakeProvider::start(Script::status(500)).await;
    let backup = FakeProvider::start(Script::default()).await;
    let r = router(
        &[("flaky", &flaky), ("backup", &backup)],
        "[routes.default]\ntargets = [\"flaky/m\", \"backup/m\"]\nretry = { attempts_per_target = 1 }\n",
    )
    .await;
    for _ in 0..3 {
        assert_eq!(r.complete(&request("default")).await.unwrap().provider, "backup");
    }
    assert_eq!(flaky.request_count(), 3);
    // Open: the failing provider is skipped without a call.
    for _ in 0..5 {
        r.complete(&request("default")).await.unwrap();
    }
    assert_eq!(
        flaky.request_count(),
        3,
        "an open circuit still called the provider"
    );

    // Half-open after the cooldown: one probe goes through; it succeeds.
    tokio::time::sleep(Duration::from_millis(350)).await;
    flaky.set_default(Script::default());
    assert_eq!(r.complete(&request("default")).await.unwrap().provider, "flaky");
    assert_eq!(
        r.complete(&request("default")).await.unwrap().provider,
        "flaky",
        "closed again"
    );
    assert_eq!(flaky.request_count(), 5);
}

#[tokio::test]
async fn a_failed_probe_reopens_the_circuit() {
    let flaky = FakeProvider::start(Script::status(500)).await;
    let backup = FakeProvider::start(Script::default()).await;
    let r = router(
        &[("flaky", &flaky), ("backup", &backup)],
        "[routes.default]\ntargets = [\"flaky/m\", \"backup/m\"]\nretry = { attempts_per_target = 1 }\n",
    )
    .await;
    for _ in 0..3 {
        r.complete(&request("default")).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(350)).await;
    r.complete(&request("default")).await.unwrap(); // the probe fails over to backup
    assert_eq!(flaky.request_count(), 4);
    r.complete(&request("default")).await.unwrap();
    assert_eq!(flaky.request_count(), 4, "re-opened after the failed probe");
}

/// Answers at once (the response head arrives) but sends its first token
/// only after `first_chunk_after`: a provider that is slow to start.
fn slow_to_start(first_chunk_after: Duration) -> Script {
    Script {
        chunks: (0..20).map(|i| format!("s{i} ")).collect(),
        chunk_delay: first_chunk_after,
        ..Script::default()
    }
}

#[tokio::test]
async fn hedge_starts_the_next_target_after_the_delay_and_cancels_the_loser() {
    let slow = FakeProvider::start(slow_to_start(Duration::from_millis(1_500))).await;
    let fast = FakeProvider::start(Script::text(&["fast ", "answer"])).await;
    let r = router(
        &[("slow", &slow), ("fast", &fast)],
        "[routes.default]\nstrategy = \"hedge\"\ntargets = [\"slow/m\", \"fast/m\"]\nhedge_delay_ms = 50\n",
    )
    .await;
    let started = Instant::now();
    let (text, events) = collect(&r, &request("default")).await.unwrap();
    assert_eq!(text, "fast answer");
    assert!(
        started.elapsed() < Duration::from_millis(1_200),
        "{:?}",
        started.elapsed()
    );
    assert!(
        matches!(events.last(), Some(Ok(StreamEvent::Finished(c))) if c.provider == "fast" && c.attempts == 2)
    );
    assert_eq!(slow.request_count(), 1, "the first target was started");
    // The loser's connection is dropped rather than left streaming.
    wait_for(|| slow.dropped_streams() == 1).await;
    assert_eq!(slow.completed_streams(), 0);

    // When the first target answers within the delay, no hedge is sent.
    let quick = FakeProvider::start(Script::default()).await;
    let spare = FakeProvider::start(Script::default()).await;
    let r = router(
        &[("quick", &quick), ("spare", &spare)],
        "[routes.default]\nstrategy = \"hedge\"\ntargets = [\"quick/m\", \"spare/m\"]\nhedge_delay_ms = 500\n",
    )
    .await;
    r.complete(&request("default")).await.unwrap();
    assert_eq!(spare.request_count(), 0);
}

#[tokio::test]
async fn race_keeps_the_first_answer_and_the_losers_connection_is_dropped() {
    let slow = FakeProvider::start(slow_to_start(Duration::from_millis(1_500))).await;
    let fast = FakeProvider::start(Script::text(&["won"])).await;
    let r = router(
        &[("slow", &slow), ("fast", &fast)],
        "[routes.default]\nstrategy = \"race\"\ntargets = [\"slow/m\", \"fast/m\"]\n",
    )
    .await;
    let started = Instant::now();
    let (text, _) = collect(&r, &request("default")).await.unwrap();
    assert_eq!(text, "won");
    assert!(
        started.elapsed() < Duration::from_millis(1_200),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        (slow.request_count(), fast.request_count()),
        (1, 1),
        "both were started at once"
    );
    wait_for(|| slow.dropped_streams() == 1).await;

    // Unstreamed races work the same way.
    slow.set_default(Script {
        delay: Duration::from_millis(1_500),
        ..Script::default()
    });
    let done = r.complete(&request("default")).await.unwrap();
    assert_eq!(done.provider, "fast");
}

#[tokio::test]
async fn a_mid_stream_failure_is_an_error_and_never_switches_provider() {
    let breaks = FakeProvider::start(Script {
        disconnect_after: Some(2),
        ..Script::text(&["a", "b", "c", "d"])
    })
    .await;
    let backup = FakeProvider::start(Script::default()).await;
    let r = router(
        &[("breaks", &breaks), ("backup", &backup)],
        "[routes.default]\ntargets = [\"breaks/m\", \"backup/m\"]\n",
    )
    .await;
    let (text, events) = collect(&r, &request("default")).await.unwrap();
    assert_eq!(text, "ab");
    assert!(
        matches!(events.last(), Some(Err(LlmError::Truncated { .. }))),
        "{:?}",
        events.last()
    );
    assert_eq!(backup.request_count(), 0, "no switch after the first byte");
}

#[tokio::test]
async fn usage_is_read_from_each_providers_own_fields() {
    for protocol in [
        Protocol::OpenAi,
        Protocol::Anthropic,
        Protocol::Ollama,
        Protocol::Gemini,
    ] {
        let server = FakeProvider::start_with(
            protocol,
            Script {
                usage: Some((1_000, 500)),
                ..Script::text(&["x", "y"])
            },
        )
        .await;
        let r = router(&[("p", &server)], "[routes.default]\ntargets = [\"p/m\"]\n").await;
        let done = r.complete(&request("default")).await.unwrap();
        assert_eq!(done.text, "xy", "{protocol:?}");
        assert_eq!(
            (
                done.usage.input_tokens,
                done.usage.output_tokens,
                done.usage.estimated
            ),
            (1_000, 500, false),
            "{protocol:?}"
        );
        assert!(
            (done.cost_usd - 0.002).abs() < 1e-12,
            "{protocol:?}: {}",
            done.cost_usd
        );

        let (text, events) = collect(&r, &request("default")).await.unwrap();
        assert_eq!(text, "xy", "{protocol:?} stream");
        let Some(Ok(StreamEvent::Finished(c))) = events.last() else {
            panic!("{protocol:?}: {events:?}")
        };
        assert_eq!(
            (c.usage.input_tokens, c.usage.output_tokens, c.usage.estimated),
            (1_000, 500, false),
            "{protocol:?} stream"
        );

        // Without usage in the answer: estimated, and never zero.
        server.set_default(Script {
            usage: None,
            ..Script::text(&["some words here"])
        });
        let (_, events) = collect(&r, &request("default")).await.unwrap();
        let Some(Ok(StreamEvent::Finished(c))) = events.last() else {
            panic!("{protocol:?}: {events:?}")
        };
        assert!(
            c.usage.estimated && c.usage.input_tokens > 0 && c.usage.output_tokens > 0,
            "{protocol:?}: {:?}",
            c.usage
        );
        assert!(c.cost_usd > 0.0);

        // A cut-off stream is an error for every protocol.
        server.set_default(Script {
            disconnect_after: Some(1),
            ..Script::text(&["a", "b", "c"])
        });
        let (_, events) = collect(&r, &request("default")).await.unwrap();
        assert!(matches!(events.last(), Some(Err(_))), "{protocol:?}: {events:?}");
    }
}

#[tokio::test]
async fn requests_pick_routes_by_name_role_or_provider_model() {
    let a = FakeProvider::start(Script::text(&["a"])).await;
    let b = FakeProvider::start(Script::text(&["b"])).await;
    let r = router(
        &[("a", &a), ("b", &b)],
        "[routes.default]\ntargets = [\"a/m\"]\n[routes.\"role:tester\"]\ntargets = [\"b/m\"]\n",
    )
    .await;
    let mut req = request("default");
    req.model = None;
    req.role = Some("tester".into());
    assert_eq!(r.complete(&req).await.unwrap().text, "b", "the role's route");
    req.role = Some("developer".into());
    assert_eq!(
        r.complete(&req).await.unwrap().text,
        "a",
        "no route for the role: default"
    );
    assert_eq!(
        r.complete(&request("b/m")).await.unwrap().text,
        "b",
        "a concrete provider/model"
    );
    assert!(matches!(
        r.complete(&request("nope/m")).await,
        Err(LlmError::UnknownModel(_))
    ));
    assert!(matches!(
        r.complete(&request("role:nobody")).await,
        Err(LlmError::UnknownModel(_))
    ));
}

async fn wait_for(mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !condition() {
        assert!(Instant::now() < deadline, "condition not met in 5 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_failed_hedge_starts_the_next_target_without_waiting() {
    let failing = FakeProvider::start(Script::status(500)).await;
    let backup = FakeProvider::start(Script::text(&["ok"])).await;
    let r = router(
        &[("failing", &failing), ("backup", &backup)],
        "[routes.default]\nstrategy = \"hedge\"\ntargets = [\"failing/m\", \"backup/m\"]\nhedge_delay_ms = 5000\n",
    )
    .await;
    let started = Instant::now();
    assert_eq!(r.complete(&request("default")).await.unwrap().provider, "backup");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "waited for the hedge timer: {:?}",
        started.elapsed()
    );
}
