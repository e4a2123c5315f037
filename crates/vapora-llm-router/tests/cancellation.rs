//! What a call that never reports its usage is charged: one the caller
//! dropped mid-call, and a hedge loser aborted before its response head.
//! The provider may already be generating (and billing) either, so each is
//! charged its reservation's estimate, never nothing.

mod common;

use std::time::{Duration, Instant};

use common::{build, config, request};
use vapora_llm_router::testing::{FakeProvider, Script, collect_stream};
use vapora_llm_router::{LlmClient, LlmError, Router};

/// The reservation of `common::request()` at $1/M input and $2/M output:
/// ("hello": 5 bytes / 2, rounded up, + 16 template tokens) input tokens
/// and 100 (`max_tokens`) output tokens.
const ESTIMATE_USD: f64 = (19.0 * 1.0 + 100.0 * 2.0) / 1e6;
/// What the fake's default answer (10 input, 3 output tokens) costs.
const ANSWER_USD: f64 = (10.0 * 1.0 + 3.0 * 2.0) / 1e6;

const BUDGET: &str = "[budgets.\"role:developer\"]\nlimit_usd = 10.0\nperiod = \"daily\"\n";

/// Spend once no reservation is outstanding (aborted tasks settle soon
/// after the winner is returned, not at once).
async fn settled_spend(router: &Router) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let status = &router.budgets().statuses()[0];
        if status.reserved_usd == 0.0 {
            return status.spent_usd;
        }
        assert!(Instant::now() < deadline, "a reservation was never settled");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_cancelled_unstreamed_call_is_charged_its_estimate() {
    let slow = FakeProvider::start(Script {
        delay: Duration::from_secs(3),
        ..Script::default()
    })
    .await;
    let r = build(&config(
        &[("slow", &slow)],
        &format!("[routes.default]\ntargets = [\"slow/m\"]\n{BUDGET}"),
    ))
    .await;
    let request = request();
    let call = tokio::time::timeout(Duration::from_millis(300), r.complete(&request)).await;
    assert!(call.is_err(), "the call was not cut short: {call:?}");
    let spent = settled_spend(&r).await;
    assert!(
        (spent - ESTIMATE_USD).abs() < 1e-9,
        "charged {spent}, estimate {ESTIMATE_USD}"
    );
}

#[tokio::test]
async fn a_hedge_loser_aborted_before_its_response_head_is_charged_its_estimate() {
    let loser = FakeProvider::start(Script {
        delay: Duration::from_millis(1_500),
        ..Script::default()
    })
    .await;
    let winner = FakeProvider::start(Script::default()).await;
    let r = build(&config(
        &[("loser", &loser), ("winner", &winner)],
        &format!(
            "[routes.default]\nstrategy = \"hedge\"\nhedge_delay_ms = 50\ntargets = [\"loser/m\", \"winner/m\"]\n{BUDGET}"
        ),
    ))
    .await;

    let done = r.complete(&request()).await.unwrap();
    assert_eq!(done.provider, "winner");
    let spent = settled_spend(&r).await;
    assert!(
        (spent - (ANSWER_USD + ESTIMATE_USD)).abs() < 1e-9,
        "unstreamed: charged {spent}, expected the answer {ANSWER_USD} + the loser's estimate {ESTIMATE_USD}"
    );

    let (_, events) = collect_stream(r.stream(&request()).await.unwrap()).await;
    assert!(events.last().is_some_and(Result::is_ok), "{events:?}");
    let spent = settled_spend(&r).await;
    assert!(
        (spent - 2.0 * (ANSWER_USD + ESTIMATE_USD)).abs() < 1e-9,
        "streamed: charged {spent} in all"
    );
}

#[tokio::test]
async fn a_huge_reported_cost_spends_the_budget_without_overflowing_it() {
    let server = FakeProvider::start(Script {
        usage: Some((u64::MAX, u64::MAX)),
        ..Script::default()
    })
    .await;
    let r = build(&config(
        &[("p", &server)],
        &format!("[routes.default]\ntargets = [\"p/m\"]\n{BUDGET}"),
    ))
    .await;
    r.complete(&request()).await.unwrap();
    let err = r.complete(&request()).await.unwrap_err();
    assert!(matches!(err, LlmError::Budget(_)), "{err:?}");
}
