//! The gateway over HTTP: OpenAI wire format in and out, streaming, error
//! mapping, and the operational endpoints.

use std::sync::Arc;

use serde_json::{Value, json};
use vapora_llm_router::RouterConfig;
use vapora_llm_router::budget_store::MemoryBudgetStore;
use vapora_llm_router::gateway::keys::hash_key;
use vapora_llm_router::testing::{FakeProvider, Script};

/// The key every test client sends, configured by its hash.
const KEY: &str = "vgk_test-key-0123456789abcdef";

struct Gateway {
    url: String,
    /// Sends [`KEY`].
    http: reqwest::Client,
    _stop: tokio::sync::oneshot::Sender<()>,
}

fn client_with(key: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("authorization", format!("Bearer {key}").parse().unwrap());
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .unwrap()
}

async fn gateway(primary: &FakeProvider, backup: &FakeProvider) -> Gateway {
    gateway_with(primary, backup, "").await
}

/// The test gateway with `extra` TOML appended to its configuration.
async fn gateway_with(primary: &FakeProvider, backup: &FakeProvider, extra: &str) -> Gateway {
    let toml = format!(
        r#"
        [providers.primary]
        kind = "openai"
        base_url = "{}"
        models = {{ m = {{ input_per_mtok = 1.0, output_per_mtok = 2.0 }} }}
        [providers.backup]
        kind = "openai"
        base_url = "{}"
        models = {{ m = {{ input_per_mtok = 1.0, output_per_mtok = 2.0 }} }}
        [routes.default]
        targets = ["primary/m", "backup/m"]
        retry = {{ attempts_per_target = 1 }}
        [routes."role:developer"]
        targets = ["primary/m"]
        retry = {{ attempts_per_target = 1 }}
        [budgets."role:developer"]
        limit_usd = 10.0
        period = "daily"
        [gateway.keys.tester]
        hash = "{}"
        {extra}
        "#,
        primary.base_url(),
        backup.base_url(),
        hash_key(KEY),
    );
    let config = RouterConfig::parse(&toml, []).unwrap();
    let keys = config.gateway_keys().unwrap();
    let router = config
        .build(Arc::new(MemoryBudgetStore::default()))
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(vapora_llm_router::gateway::serve(listener, router, keys, async {
        let _ = stopped.await;
    }));
    Gateway {
        url,
        http: client_with(KEY),
        _stop: stop,
    }
}

impl Gateway {
    async fn chat(&self, body: Value) -> reqwest::Response {
        self.http
            .post(format!("{}/v1/chat/completions", self.url))
            .json(&body)
            .send()
            .await
            .unwrap()
    }
}

fn body(model: &str, stream: bool) -> Value {
    json!({ "model": model, "stream": stream, "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}] })
}

/// The `data:` payloads of an SSE body.
fn sse_payloads(text: &str) -> Vec<String> {
    text.split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn unstreamed_answers_have_the_openai_shape() {
    let (p, b) = (
        FakeProvider::start(Script {
            usage: Some((7, 3)),
            ..Script::text(&["Hello"])
        })
        .await,
        FakeProvider::start(Script::default()).await,
    );
    let g = gateway(&p, &b).await;
    let response = g.chat(body("default", false)).await;
    assert_eq!(response.status(), 200);
    let v: Value = response.json().await.unwrap();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(
        v["choices"][0]["message"],
        json!({"role": "assistant", "content": "Hello"})
    );
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert_eq!(
        v["usage"],
        json!({"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10})
    );
    assert_eq!(v["model"], "primary/m");
    assert_eq!(v["vapora"]["attempts"], 1);
}

#[tokio::test]
async fn streams_are_sse_chunks_ending_in_done() {
    let (p, b) = (
        FakeProvider::start(Script {
            usage: Some((7, 3)),
            ..Script::text(&["a", "b"])
        })
        .await,
        FakeProvider::start(Script::default()).await,
    );
    let g = gateway(&p, &b).await;
    let mut request = body("default", true);
    request["stream_options"] = json!({ "include_usage": true });
    let response = g.chat(request).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let payloads = sse_payloads(&response.text().await.unwrap());
    assert_eq!(payloads.last().unwrap(), "[DONE]");
    let chunks: Vec<Value> = payloads[..payloads.len() - 1]
        .iter()
        .map(|p| serde_json::from_str(p).unwrap())
        .collect();
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, "ab");
    let finish = chunks
        .iter()
        .find(|c| c["choices"][0]["finish_reason"].is_string())
        .unwrap();
    assert_eq!(finish["choices"][0]["finish_reason"], "stop");
    assert_eq!(chunks.last().unwrap()["usage"]["total_tokens"], 10);
}

#[tokio::test]
async fn a_mid_stream_failure_is_an_error_event_without_done() {
    let p = FakeProvider::start(Script {
        disconnect_after: Some(1),
        ..Script::text(&["a", "b", "c"])
    })
    .await;
    let b = FakeProvider::start(Script::default()).await;
    let g = gateway(&p, &b).await;
    let payloads = sse_payloads(&g.chat(body("default", true)).await.text().await.unwrap());
    assert_ne!(payloads.last().unwrap(), "[DONE]");
    let last: Value = serde_json::from_str(payloads.last().unwrap()).unwrap();
    assert_eq!(last["error"]["type"], "server_error", "{last}");
    assert_eq!(b.request_count(), 0);
}

#[tokio::test]
async fn bad_input_gets_openai_style_4xx_errors() {
    let (p, b) = (
        FakeProvider::start(Script::default()).await,
        FakeProvider::start(Script::default()).await,
    );
    let g = gateway(&p, &b).await;
    let url = format!("{}/v1/chat/completions", g.url);
    let raw = |bytes: Vec<u8>| {
        g.http
            .post(&url)
            .header("content-type", "application/json")
            .body(bytes)
            .send()
    };
    let cases: Vec<(&str, reqwest::Response, u16)> = vec![
        ("malformed JSON", raw(b"{\"model\": ".to_vec()).await.unwrap(), 400),
        ("missing messages", g.chat(json!({ "model": "default" })).await, 400),
        ("empty messages", g.chat(json!({ "model": "default", "messages": [] })).await, 400),
        ("negative max_tokens", g.chat(json!({ "model": "default", "max_tokens": -5, "messages": [{"role": "user", "content": "x"}] })).await, 400),
        ("bad role", g.chat(json!({ "model": "default", "messages": [{"role": "wizard", "content": "x"}] })).await, 400),
        ("unknown model", g.chat(body("no-such-route", false)).await, 404),
        ("unknown provider/model", g.chat(body("nobody/m", false)).await, 404),
        ("oversized body", raw(vec![b' '; 5 * 1024 * 1024]).await.unwrap(), 413),
    ];
    for (what, response, status) in cases {
        assert_eq!(response.status().as_u16(), status, "{what}");
        let v: Value = response
            .json()
            .await
            .unwrap_or_else(|e| panic!("{what}: not JSON: {e}"));
        assert!(
            v["error"]["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{what}: {v}"
        );
        assert!(v["error"]["type"].is_string(), "{what}: {v}");
    }
    assert_eq!(
        p.request_count() + b.request_count(),
        0,
        "no bad request reached a provider"
    );
}

#[tokio::test]
async fn provider_errors_map_to_sensible_statuses() {
    let p = FakeProvider::start(Script {
        retry_after: Some(9),
        ..Script::status(429)
    })
    .await;
    let b = FakeProvider::start(Script {
        retry_after: Some(7),
        ..Script::status(429)
    })
    .await;
    let g = gateway(&p, &b).await;
    let response = g.chat(body("default", false)).await;
    assert_eq!(response.status(), 429);
    assert_eq!(
        response.headers()["retry-after"],
        "7",
        "the last upstream's Retry-After passes through"
    );

    p.set_default(Script::status(500));
    b.set_default(Script::status(503));
    let response = g.chat(body("default", false)).await;
    assert_eq!(response.status(), 502, "upstream 5xx after exhausted fallback");
    let response = g.chat(body("default", true)).await;
    assert_eq!(
        response.status(),
        502,
        "streams fail before the first byte the same way"
    );

    p.set_default(Script::status(400));
    let response = g.chat(body("default", false)).await;
    assert_eq!(response.status(), 400);
}

#[tokio::test]
async fn models_budgets_metrics_and_health() {
    let (p, b) = (
        FakeProvider::start(Script::default()).await,
        FakeProvider::start(Script::default()).await,
    );
    let g = gateway(&p, &b).await;
    let response = g
        .http
        .post(format!("{}/v1/chat/completions", g.url))
        .header("x-vapora-role", "developer")
        .json(&body("role:developer", false))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    let models: Value = g
        .http
        .get(format!("{}/v1/models", g.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["default", "role:developer", "backup/m", "primary/m"]);
    assert_eq!(models["data"][0]["targets"], json!(["primary/m", "backup/m"]));

    let budgets: Value = g
        .http
        .get(format!("{}/api/v1/budgets", g.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let budget = &budgets["budgets"][0];
    assert_eq!(budget["key"], "role:developer");
    assert!(
        budget["spent_usd"].as_f64().unwrap() > 0.0,
        "the role header charged the role's budget: {budget}"
    );
    assert_eq!(budget["reserved_usd"], 0.0);
    assert!(budget["period_end"].is_string());

    let metrics = g
        .http
        .get(format!("{}/metrics", g.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("vapora_llm_requests_total{route=\"role:developer\",outcome=\"ok\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics
            .contains("vapora_llm_tokens_in_total{provider=\"primary\",model=\"m\",role=\"developer\"} 10"),
        "{metrics}"
    );
    assert!(
        metrics.contains("vapora_llm_gateway_overhead_seconds_count 1"),
        "{metrics}"
    );
    let health = g.http.get(format!("{}/health", g.url)).send().await.unwrap();
    assert_eq!(health.status(), 200);
}

#[tokio::test]
async fn huge_upstream_usage_is_answered_not_a_panic() {
    let p = FakeProvider::start(Script {
        usage: Some((u64::MAX, u64::MAX)),
        ..Script::text(&["a"])
    })
    .await;
    let b = FakeProvider::start(Script::default()).await;
    let g = gateway(&p, &b).await;
    let response = g.chat(body("default", false)).await;
    assert_eq!(response.status(), 200);
    let v: Value = response.json().await.unwrap();
    assert_eq!(v["usage"]["total_tokens"].as_u64(), Some(u64::MAX), "{v}");

    let mut request = body("default", true);
    request["stream_options"] = json!({ "include_usage": true });
    let payloads = sse_payloads(&g.chat(request).await.text().await.unwrap());
    assert_eq!(
        payloads.last().map(String::as_str),
        Some("[DONE]"),
        "{payloads:?}"
    );
}

#[tokio::test]
async fn a_request_without_a_configured_key_gets_openais_401() {
    let (p, b) = (
        FakeProvider::start(Script::default()).await,
        FakeProvider::start(Script::default()).await,
    );
    let g = gateway(&p, &b).await;
    for (who, client) in [
        ("no key", reqwest::Client::new()),
        ("a wrong key", client_with("vgk_wrong")),
        ("the key's hash", client_with(&hash_key(KEY))),
    ] {
        for (method, path) in [
            (reqwest::Method::POST, "/v1/chat/completions"),
            (reqwest::Method::GET, "/v1/models"),
            (reqwest::Method::GET, "/api/v1/budgets"),
        ] {
            let response = client
                .request(method, format!("{}{path}", g.url))
                .json(&body("default", false))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 401, "{path} with {who}");
            let error: Value = response.json().await.unwrap();
            assert_eq!(error["error"]["code"], "invalid_api_key", "{error}");
            assert_eq!(error["error"]["type"], "invalid_request_error", "{error}");
        }
    }
    // The key is checked before the body is read.
    let response = reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", g.url))
        .body("{ not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert!(p.requests().is_empty(), "nothing reached the upstream");
    // The probes need no key.
    for path in ["/health", "/metrics"] {
        let response = reqwest::get(format!("{}{path}", g.url)).await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
    }
}

#[tokio::test]
async fn a_key_over_its_requests_per_minute_gets_429_with_retry_after() {
    let (p, b) = (
        FakeProvider::start(Script::default()).await,
        FakeProvider::start(Script::default()).await,
    );
    let g = gateway_with(&p, &b, "requests_per_minute = 2").await;
    assert_eq!(g.chat(body("default", false)).await.status(), 200);
    assert_eq!(g.chat(body("default", false)).await.status(), 200);
    let refused = g.chat(body("default", false)).await;
    assert_eq!(refused.status(), 429);
    let retry_after: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=30).contains(&retry_after), "{retry_after}");
    let error: Value = refused.json().await.unwrap();
    assert_eq!(error["error"]["code"], "rate_limit_exceeded", "{error}");
    assert_eq!(p.requests().len(), 2);
}

#[tokio::test]
async fn tokens_per_minute_meter_what_a_request_may_use() {
    let (p, b) = (
        FakeProvider::start(Script::default()).await,
        FakeProvider::start(Script::default()).await,
    );
    let g = gateway_with(&p, &b, "tokens_per_minute = 1000").await;
    let mut asks_600 = body("default", false);
    asks_600["max_tokens"] = json!(600);
    assert_eq!(g.chat(asks_600.clone()).await.status(), 200);
    assert_eq!(
        g.chat(asks_600).await.status(),
        429,
        "600 more do not fit in the minute"
    );
    let mut too_big = body("default", false);
    too_big["max_tokens"] = json!(5000);
    assert_eq!(
        g.chat(too_big).await.status(),
        400,
        "more than a minute's worth never fits"
    );
}

#[tokio::test]
async fn the_openapi_document_and_docs_page_are_served_without_a_key() {
    let (p, b) = (
        FakeProvider::start(Script::default()).await,
        FakeProvider::start(Script::default()).await,
    );
    let g = gateway(&p, &b).await;
    let anonymous = reqwest::Client::new();
    let response = anonymous
        .get(format!("{}/api-docs/openapi.json", g.url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers().contains_key("x-request-id"),
        "every answer has a request id"
    );
    let document: Value = response.json().await.unwrap();
    assert_eq!(document["openapi"], "3.1.0");
    assert_eq!(
        document["components"]["securitySchemes"]["gateway_key"]["scheme"],
        "bearer"
    );
    for (path, method) in [
        ("/v1/chat/completions", "post"),
        ("/v1/models", "get"),
        ("/api/v1/budgets", "get"),
    ] {
        let responses = &document["paths"][path][method]["responses"];
        assert!(responses["200"].is_object(), "{method} {path}");
        assert!(responses["401"].is_object(), "{method} {path} documents 401");
    }
    // `model` may only name what this gateway serves.
    let model = &document["components"]["schemas"]["ChatCompletionRequest"]["properties"]["model"];
    assert_eq!(
        model["enum"],
        json!(["default", "role:developer", "backup/m", "primary/m"])
    );
    let page = anonymous.get(format!("{}/docs/", g.url)).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("swagger-ui-bundle.js"));
}
