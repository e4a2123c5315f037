//! Per-key request rates and WebSocket caps: a client past them gets 429
//! (503 at the global cap) with `Retry-After`, and nobody else notices.

use std::num::NonZeroU32;

use reqwest::StatusCode;
use vapora_backend::limits::{RateLimit, WsCaps};
use vapora_llm_router::testing::{FakeProvider, Script};

use crate::support::{client_with_key, spawn_app_with, test_settings};

#[tokio::test]
async fn a_key_over_its_rate_gets_429_with_retry_after_and_other_keys_do_not() {
    let llm = FakeProvider::start(Script::default()).await;
    let settings = vapora_backend::Settings {
        rate_limit: Some(RateLimit {
            per_second: NonZeroU32::new(1).unwrap(),
            burst: NonZeroU32::new(5).unwrap(),
        }),
        ..test_settings(&llm)
    };
    let app = spawn_app_with(llm, settings).await;
    // The admin's burst pays for issuing a second key.
    let (other, _) = app.issue_key("admin", &[]).await;
    let mut refused = None;
    for _ in 0..10 {
        let response = app.http.get(app.url("/api/v1/me")).send().await.unwrap();
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            refused = Some(response);
            break;
        }
        assert_eq!(response.status(), StatusCode::OK);
    }
    let refused = refused.expect("the burst ran out");
    let retry_after: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limited");
    // Another key has its own bucket; probes are not metered.
    let response = client_with_key(&other)
        .get(app.url("/api/v1/me"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    for _ in 0..20 {
        assert_eq!(
            app.http.get(app.url("/health")).send().await.unwrap().status(),
            StatusCode::OK
        );
    }
    // The bucket refills.
    tokio::time::sleep(std::time::Duration::from_secs(retry_after)).await;
    assert_eq!(app.get("/api/v1/me").await.0, StatusCode::OK);
    app.stop().await;
}

#[tokio::test]
async fn websockets_past_a_keys_cap_get_429_and_a_closed_one_frees_its_slot() {
    let llm = FakeProvider::start(Script::default()).await;
    let settings = vapora_backend::Settings {
        ws_caps: WsCaps { per_key: 2, total: 3 },
        ..test_settings(&llm)
    };
    let app = spawn_app_with(llm, settings).await;
    let first = app.websocket("").await;
    let _second = app.websocket("").await;
    let refusal = |result: Result<_, tokio_tungstenite::tungstenite::Error>| match result {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert!(response.headers().contains_key("retry-after"));
            response.status()
        }
        Err(other) => panic!("no HTTP answer: {other}"),
        Ok(_) => panic!("the upgrade was accepted"),
    };
    let key = app.admin_key.clone();
    assert_eq!(
        refusal(app.websocket_with_key("", &key).await),
        StatusCode::TOO_MANY_REQUESTS
    );
    // Another key may still connect, up to the global cap.
    let (other, _) = app.issue_key("admin", &[]).await;
    let _third = app.websocket_with_key("", &other).await.unwrap();
    assert_eq!(
        refusal(app.websocket_with_key("", &other).await),
        StatusCode::SERVICE_UNAVAILABLE
    );
    // Closing one frees its slot.
    first.close().await;
    crate::support::eventually(5, "the closed socket's slot comes back", || async {
        app.websocket_with_key("", &key).await.is_ok()
    })
    .await;
    app.stop().await;
}
