//! Budgets under concurrency, across fallbacks, and across restarts.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use vapora_llm_router::budget_store::{BudgetStore, FileBudgetStore, MemoryBudgetStore};
use vapora_llm_router::testing::{FakeProvider, Script};
use vapora_llm_router::{ChatMessage, ChatRequest, LlmClient, LlmError, Router, RouterConfig};

fn config(pricey: &FakeProvider, cheap: &FakeProvider, budget: &str) -> String {
    format!(
        r#"
        [providers.pricey]
        kind = "openai"
        base_url = "{}"
        max_concurrency = 1000
        failure_threshold = 100000
        models = {{ m = {{ input_per_mtok = 1.0, output_per_mtok = 10.0 }} }}

        [providers.cheap]
        kind = "openai"
        base_url = "{}"
        max_concurrency = 1000
        models = {{ m = {{ input_per_mtok = 1.0, output_per_mtok = 5.0 }} }}

        [routes.default]
        targets = ["pricey/m", "cheap/m"]
        retry = {{ attempts_per_target = 1 }}

        [budgets."role:developer"]
        {budget}
        "#,
        pricey.base_url(),
        cheap.base_url()
    )
}

fn request() -> ChatRequest {
    ChatRequest {
        messages: vec![ChatMessage::user("hi")],
        max_tokens: Some(100),
        role: Some("developer".into()),
        ..Default::default()
    }
}

async fn build(text: &str, store: Arc<dyn BudgetStore>) -> Router {
    RouterConfig::parse(text, []).unwrap().build(store).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_concurrent_requests_never_overspend() {
    // Every answer uses exactly `max_tokens` output tokens, so a pricey call
    // costs 10 input tokens at $1/M + 100 output at $10/M = $0.00101, and a
    // cheap one $0.00051. The limit pays for 100 pricey calls.
    let usage = Some((10, 100));
    let pricey = FakeProvider::start(Script {
        usage,
        ..Script::default()
    })
    .await;
    let cheap = FakeProvider::start(Script {
        usage,
        ..Script::default()
    })
    .await;
    // A third of the pricey calls fail and fall back to the cheaper provider.
    for i in 0..1000 {
        pricey.push(if i % 3 == 0 {
            Script::status(503)
        } else {
            Script {
                usage,
                ..Script::default()
            }
        });
    }
    let limit = 100.0 * 0.00101;
    let router = build(
        &config(
            &pricey,
            &cheap,
            &format!("limit_usd = {limit}\nperiod = \"daily\""),
        ),
        Arc::new(MemoryBudgetStore::default()),
    )
    .await;

    let handles: Vec<_> = (0..1000)
        .map(|_| {
            let router = router.clone();
            tokio::spawn(async move { router.complete(&request()).await })
        })
        .collect();
    let (mut served, mut refused, mut cost) = (0, 0, 0.0);
    let mut by_provider = std::collections::HashMap::<String, usize>::new();
    for h in handles {
        match h.await.unwrap() {
            Ok(c) => {
                served += 1;
                cost += c.cost_usd;
                *by_provider.entry(c.provider).or_default() += 1;
            }
            Err(LlmError::Budget(_)) => refused += 1,
            Err(e) => panic!("neither served nor refused for budget: {e}"),
        }
    }
    assert_eq!(served + refused, 1000);
    // During the burst a request is refused while others' reservations are
    // in flight, and some of those are released (a 503, a cheaper fallback)
    // after every request was answered. Reservations are conservative by
    // design, so the money they held is only usable afterwards: spend it one
    // call at a time until the budget itself says no.
    loop {
        match router.complete(&request()).await {
            Ok(c) => {
                served += 1;
                cost += c.cost_usd;
                *by_provider.entry(c.provider).or_default() += 1;
            }
            Err(LlmError::Budget(_)) => break,
            Err(e) => panic!("neither served nor refused for budget: {e}"),
        }
    }
    let status = &router.budgets().statuses()[0];
    assert!(
        status.spent_usd <= status.limit_usd + 1e-12,
        "overspent: {} > {}",
        status.spent_usd,
        status.limit_usd
    );
    assert!(
        (status.spent_usd - cost).abs() < 1e-9,
        "charged {} but served {}",
        status.spent_usd,
        cost
    );
    assert_eq!(status.reserved_usd, 0.0, "reservations leaked");
    assert!(
        served >= 100,
        "the budget pays for at least 100 calls, served {served}"
    );
    assert!(
        by_provider.get("cheap").copied().unwrap_or(0) > 0,
        "some calls fell back: {by_provider:?}"
    );
    println!(
        "served {served} ({by_provider:?}), refused {refused}, spent {} of {}",
        status.spent_usd, status.limit_usd
    );
}

#[tokio::test]
async fn exhausted_budgets_downgrade_or_reject() {
    let pricey = FakeProvider::start(Script {
        usage: Some((10, 100)),
        ..Script::default()
    })
    .await;
    let cheap = FakeProvider::start(Script {
        usage: Some((10, 100)),
        ..Script::default()
    })
    .await;
    // Room for one pricey call only; then the downgrade route (cheap, but
    // also charged) serves until nothing fits.
    let text = config(
        &pricey,
        &cheap,
        "limit_usd = 0.0016\nperiod = \"daily\"\nalert_threshold = 0.4\non_exhausted = { action = \"downgrade\", route = \"cheap\" }",
    ) + "\n[routes.cheap]\ntargets = [\"cheap/m\"]\n";
    let router = build(&text, Arc::new(MemoryBudgetStore::default())).await;
    let mut alerts = router.budgets().subscribe_alerts();
    let mut req = request();
    req.model = Some("pricey/m".into());
    assert_eq!(router.complete(&req).await.unwrap().provider, "pricey");
    assert_eq!(alerts.try_recv().unwrap().key, "role:developer", "crossed 40%");
    assert_eq!(
        router.complete(&req).await.unwrap().provider,
        "cheap",
        "downgraded"
    );
    let err = router.complete(&req).await.unwrap_err();
    assert!(matches!(err, LlmError::Budget(_)), "{err:?}");

    // `reject` refuses outright.
    let text = config(&pricey, &cheap, "limit_usd = 0.0001\nperiod = \"monthly\"");
    let router = build(&text, Arc::new(MemoryBudgetStore::default())).await;
    let err = router.complete(&request()).await.unwrap_err();
    assert!(
        matches!(err, LlmError::Budget(ref b) if b.key == "role:developer"),
        "{err:?}"
    );
    assert_eq!(
        pricey.request_count() + cheap.request_count(),
        2,
        "a refused call reaches no provider"
    );
}

#[tokio::test]
async fn spend_survives_a_restart() {
    let pricey = FakeProvider::start(Script {
        usage: Some((10, 100)),
        ..Script::default()
    })
    .await;
    let cheap = FakeProvider::start(Script::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("budgets.json");
    let text = config(&pricey, &cheap, "limit_usd = 1.0\nperiod = \"weekly\"");

    let router = build(&text, Arc::new(FileBudgetStore::new(&path))).await;
    let stop = CancellationToken::new();
    let writer = tokio::spawn(router.budgets().clone().persist_until(stop.clone()));
    for _ in 0..3 {
        router.complete(&request()).await.unwrap();
    }
    let spent = router.budgets().statuses()[0].spent_usd;
    assert!((spent - 3.0 * 0.00101).abs() < 1e-9, "{spent}");
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(5), writer)
        .await
        .unwrap()
        .unwrap();
    drop(router);

    let router = build(&text, Arc::new(FileBudgetStore::new(&path))).await;
    assert_eq!(
        router.budgets().statuses()[0].spent_usd,
        spent,
        "spend restored from the store"
    );
}

#[tokio::test]
async fn a_cancelled_hedge_loser_is_billed_for_what_it_had_started() {
    // The loser answers at once (its response head arrives) but sends its
    // first token late; the hedge wins meanwhile and the loser is aborted.
    let loser = FakeProvider::start(Script {
        chunks: vec!["late".into()],
        chunk_delay: Duration::from_millis(1_500),
        usage: Some((10, 100)),
        ..Script::default()
    })
    .await;
    let winner = FakeProvider::start(Script {
        usage: Some((10, 100)),
        ..Script::default()
    })
    .await;
    let text = format!(
        r#"
        [providers.pricey]
        kind = "openai"
        base_url = "{}"
        models = {{ m = {{ input_per_mtok = 1000.0, output_per_mtok = 10.0 }} }}
        [providers.cheap]
        kind = "openai"
        base_url = "{}"
        models = {{ m = {{ input_per_mtok = 1.0, output_per_mtok = 5.0 }} }}
        [routes.default]
        strategy = "hedge"
        hedge_delay_ms = 50
        targets = ["pricey/m", "cheap/m"]
        [budgets."role:developer"]
        limit_usd = 10.0
        period = "daily"
        "#,
        loser.base_url(),
        winner.base_url()
    );
    let router = build(&text, Arc::new(MemoryBudgetStore::default())).await;
    let stream = router.stream(&request()).await.unwrap();
    let (_, events) = vapora_llm_router::testing::collect_stream(stream).await;
    let Some(Ok(vapora_llm_router::StreamEvent::Finished(done))) = events.last() else {
        panic!("{events:?}")
    };
    assert_eq!(done.provider, "cheap");
    // Wait until the loser's attempt has been torn down and billed.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while loser.dropped_streams() == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the loser was never cancelled"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    let status = &router.budgets().statuses()[0];
    // The winner's real cost plus the loser's estimated input at $1000/M.
    assert!(
        status.spent_usd > done.cost_usd + 0.0005,
        "loser not billed: {} vs {}",
        status.spent_usd,
        done.cost_usd
    );
    assert_eq!(status.reserved_usd, 0.0);
}
