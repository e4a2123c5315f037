//! What must not leak: upstream error bodies (they can echo key fragments),
//! provider API keys, and the keys callers send for per-key budgets.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{build, config, request};
use vapora_llm_router::providers::Endpoint;
use vapora_llm_router::providers::openai::openai;
use vapora_llm_router::testing::{FakeProvider, Script};
use vapora_llm_router::{LlmClient, Pricing, Router};

const SECRET: &str = "sk-live-SUPERSECRET0123456789";

/// Every log line written while it is installed, at every level.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// Serves `router` as the gateway; returns its base URL.
async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(vapora_llm_router::gateway::serve(
        listener,
        router,
        std::future::pending(),
    ));
    url
}

#[tokio::test]
async fn an_upstream_error_body_reaches_no_error_response_or_log() {
    let logs = Logs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let _logging = tracing::subscriber::set_default(subscriber);

    let body = format!(
        r#"{{"error":{{"message":"Incorrect API key provided: {SECRET}","type":"invalid_request_error","code":"invalid_api_key"}}}}"#
    );
    let in_stream = format!("data: {{\"error\":{{\"message\":\"{SECRET}\",\"code\":\"{SECRET}\"}}}}\n\n");
    let upstream = FakeProvider::start(Script::raw(401, &[body.as_bytes()])).await;
    let router = build(&config(
        &[("up", &upstream)],
        "[routes.default]\ntargets = [\"up/m\"]\nretry = { attempts_per_target = 1 }\n",
    ))
    .await;

    let mut seen = Vec::new();
    let err = router.complete(&request()).await.unwrap_err();
    assert!(err.to_string().contains("401"), "{err}");
    seen.push(format!("{err} {err:?}"));
    let err = router.stream(&request()).await.err().unwrap();
    seen.push(format!("{err} {err:?}"));
    upstream.push(Script::raw(200, &[in_stream.as_bytes()]));
    let streamed = router.stream(&request()).await;
    seen.push(format!("{:?}", streamed.err()));

    let url = serve(router).await;
    let http = reqwest::Client::new();
    for stream in [false, true] {
        let response = http
            .post(format!("{url}/v1/chat/completions"))
            .json(&serde_json::json!({ "model": "default", "stream": stream, "messages": [{"role": "user", "content": "hi"}] }))
            .send()
            .await
            .unwrap();
        seen.push(format!("{response:?}"));
        seen.push(response.text().await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    seen.push(logs.text());
    for text in seen {
        assert!(!text.contains("SUPERSECRET"), "leaked: {text}");
    }
}

#[tokio::test]
async fn an_endpoints_debug_hides_its_api_key() {
    let endpoint = Endpoint {
        name: "p".into(),
        base_url: "http://127.0.0.1:9/v1".into(),
        api_key: Some(SECRET.into()),
        model: "m".into(),
        pricing: Pricing::default(),
        timeout: Duration::from_secs(1),
    };
    let provider = openai(endpoint.clone()).unwrap();
    for text in [format!("{endpoint:?}"), format!("{provider:?}")] {
        assert!(!text.contains("SUPERSECRET"), "{text}");
    }
}

#[tokio::test]
async fn the_budget_listing_shows_a_fingerprint_not_the_callers_key() {
    let caller_key = "sk-caller-SECRET42";
    let upstream = FakeProvider::start(Script::default()).await;
    let router = build(&config(
        &[("up", &upstream)],
        &format!(
            "[routes.default]\ntargets = [\"up/m\"]\n\
             [budgets.\"api_key:{caller_key}\"]\nlimit_usd = 10.0\nperiod = \"daily\"\n"
        ),
    ))
    .await;
    let mut keyed = request();
    keyed.api_key = Some(caller_key.into());
    assert!(!format!("{keyed:?}").contains(caller_key), "{keyed:?}");

    let url = serve(router).await;
    let http = reqwest::Client::new();
    let response = http
        .post(format!("{url}/v1/chat/completions"))
        .header("x-vapora-api-key", caller_key)
        .json(&serde_json::json!({ "model": "default", "messages": [{"role": "user", "content": "hi"}] }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let listing = http
        .get(format!("{url}/api/v1/budgets"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!listing.contains(caller_key), "{listing}");
    let listing: serde_json::Value = serde_json::from_str(&listing).unwrap();
    let budget = &listing["budgets"][0];
    assert_eq!(
        budget["key"],
        vapora_llm_router::fingerprint::api_key_budget(caller_key)
    );
    assert!(
        budget["spent_usd"].as_f64().unwrap() > 0.0,
        "the key's budget was charged: {budget}"
    );
}
