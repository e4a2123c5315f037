//! What must not leak: upstream error bodies (they can echo key fragments),
//! provider API keys, and the keys callers send for per-key budgets.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{build, config, request};
use vapora_llm_router::gateway::GatewayKeys;
use vapora_llm_router::gateway::keys::hash_key;
use vapora_llm_router::providers::Endpoint;
use vapora_llm_router::providers::openai::openai;
use vapora_llm_router::testing::{FakeProvider, Script};
use vapora_llm_router::{LlmClient, Pricing, Router, RouterConfig};

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

/// Serves `router` as the gateway for `keys`; returns its base URL.
async fn serve(router: Router, keys: GatewayKeys) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(vapora_llm_router::gateway::serve(
        listener,
        router,
        keys,
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
    let caller = "vgk_leak-test";
    let toml = config(
        &[("up", &upstream)],
        &format!(
            "[routes.default]\ntargets = [\"up/m\"]\nretry = {{ attempts_per_target = 1 }}\n\
             [gateway.keys.t]\nhash = \"{}\"\n",
            hash_key(caller)
        ),
    );
    let keys = RouterConfig::parse(&toml, []).unwrap().gateway_keys().unwrap();
    let router = build(&toml).await;

    let mut seen = Vec::new();
    let err = router.complete(&request()).await.unwrap_err();
    assert!(err.to_string().contains("401"), "{err}");
    seen.push(format!("{err} {err:?}"));
    let err = router.stream(&request()).await.err().unwrap();
    seen.push(format!("{err} {err:?}"));
    upstream.push(Script::raw(200, &[in_stream.as_bytes()]));
    let streamed = router.stream(&request()).await;
    seen.push(format!("{:?}", streamed.err()));

    let url = serve(router, keys).await;
    let http = reqwest::Client::new();
    for stream in [false, true] {
        let response = http
            .post(format!("{url}/v1/chat/completions"))
            .bearer_auth(caller)
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
async fn a_keys_budget_is_charged_by_the_key_and_listed_without_it() {
    let caller_key = "vgk_caller-SECRET42";
    let upstream = FakeProvider::start(Script::default()).await;
    let toml = config(
        &[("up", &upstream)],
        &format!(
            "[routes.default]\ntargets = [\"up/m\"]\n\
             [budgets.\"api_key:team-a\"]\nlimit_usd = 10.0\nperiod = \"daily\"\n\
             [budgets.\"api_key:{caller_key}\"]\nlimit_usd = 0.000001\nperiod = \"daily\"\n\
             [gateway.keys.team-a]\nhash = \"{}\"\n",
            hash_key(caller_key)
        ),
    );
    let keys = RouterConfig::parse(&toml, []).unwrap().gateway_keys().unwrap();
    let router = build(&toml).await;
    let url = serve(router.clone(), keys).await;
    let http = reqwest::Client::new();
    // A header naming another budget changes nothing: only the key counts.
    let response = http
        .post(format!("{url}/v1/chat/completions"))
        .bearer_auth(caller_key)
        .header("x-vapora-api-key", caller_key)
        .json(&serde_json::json!({ "model": "default", "messages": [{"role": "user", "content": "hi"}] }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let listing = http
        .get(format!("{url}/api/v1/budgets"))
        .bearer_auth(caller_key)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!listing.contains(caller_key), "{listing}");
    let listing: serde_json::Value = serde_json::from_str(&listing).unwrap();
    let spent = |name: &str| {
        let key = vapora_llm_router::fingerprint::api_key_budget(name);
        let budget = listing["budgets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["key"] == key.as_str())
            .unwrap_or_else(|| panic!("{key} listed: {listing}"))
            .clone();
        budget["spent_usd"].as_f64().unwrap()
    };
    assert!(spent("team-a") > 0.0, "the key's budget was charged: {listing}");
    // Another key's budget is not listed to this key; the router's own
    // accounts show the header charged nothing to it.
    let other = vapora_llm_router::fingerprint::api_key_budget(caller_key);
    assert!(!listing.to_string().contains(&other), "{listing}");
    let untouched = router
        .budgets()
        .statuses()
        .into_iter()
        .find(|b| b.key == other)
        .unwrap();
    assert_eq!(untouched.spent_usd, 0.0, "the header chose nothing");
}
