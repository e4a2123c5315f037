//! One trace per task across processes: the client's `traceparent` is
//! continued by the backend's HTTP span, the dispatch carries it in the NATS
//! headers, the agent server's execution and its model call join it, and
//! every span reaches an OTLP/HTTP receiver started here.

use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::State;
use axum::routing::post;
use serde_json::{Value, json};
use vapora_llm_router::testing::Script;

use crate::cluster::{Cluster, eventually};

/// A span as the receiver got it.
#[derive(Debug, Clone)]
struct ReceivedSpan {
    service: String,
    name: String,
    trace_id: String,
    span_id: String,
    parent_span_id: String,
}

type Received = Arc<Mutex<Vec<ReceivedSpan>>>;

/// `POST /v1/traces` of OTLP/HTTP with JSON bodies, on a free port.
async fn start_receiver() -> (String, Received) {
    async fn traces(State(received): State<Received>, Json(body): Json<Value>) -> Json<Value> {
        let mut spans = received.lock().unwrap();
        for resource in body["resourceSpans"].as_array().into_iter().flatten() {
            let service = resource["resource"]["attributes"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|a| a["key"] == "service.name")
                .and_then(|a| a["value"]["stringValue"].as_str())
                .unwrap_or_default()
                .to_owned();
            for scope in resource["scopeSpans"].as_array().into_iter().flatten() {
                for span in scope["spans"].as_array().into_iter().flatten() {
                    let field = |name: &str| span[name].as_str().unwrap_or_default().to_lowercase();
                    spans.push(ReceivedSpan {
                        service: service.clone(),
                        name: field("name"),
                        trace_id: field("traceId"),
                        span_id: field("spanId"),
                        parent_span_id: field("parentSpanId"),
                    });
                }
            }
        }
        Json(json!({}))
    }
    let received = Received::default();
    let app = axum::Router::new()
        .route("/v1/traces", post(traces))
        .with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), received)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_is_one_trace_from_the_http_request_to_the_model_call() {
    let (endpoint, received) = start_receiver().await;
    let otel = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
    ];
    let mut cluster = Cluster::start(Script::text(&["traced"])).await;
    // The backend's own default log filter (the harness's would show the
    // storage engine's shutdown chatter).
    let backend_env: Vec<(&str, &str)> = otel.iter().copied().chain([("RUST_LOG", "")]).collect();
    cluster.start_backend_with(&backend_env).await;
    cluster.start_agent_with("agent-a", "developer", 2, &otel).await;
    cluster.wait_for_agents(0, &["agent-a"]).await;
    let api = cluster.api(0);
    let project = api.create_project().await;

    // The client's own trace: the backend continues it.
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let client_span = "00f067aa0ba902b7";
    let created: Value = cluster
        .http
        .post(format!("{}/api/v1/tasks", cluster.backends[0].url))
        .header("traceparent", format!("00-{trace_id}-{client_span}-01"))
        .json(&json!({"project_id": project, "role": "developer", "title": "traced"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    api.wait_all_done(&project, std::slice::from_ref(&id), 30).await;

    let find = |service: &str, name: &str| {
        received
            .lock()
            .unwrap()
            .iter()
            .find(|s| s.trace_id == trace_id && s.service == service && s.name == name)
            .cloned()
    };
    let wanted = [
        ("vapora-backend", "http.request"),
        ("vapora-backend", "task.dispatch"),
        ("vapora-agent-server", "task.execute"),
        ("vapora-agent-server", "llm.call"),
    ];
    eventually(20, "every span of the task in the receiver", || async {
        wanted.iter().all(|(service, name)| find(service, name).is_some())
    })
    .await;
    let [request, dispatch, execute, call] = wanted.map(|(service, name)| find(service, name).unwrap());
    // Each one is the child of the one before.
    assert_eq!(request.parent_span_id, client_span);
    assert_eq!(dispatch.parent_span_id, request.span_id);
    assert_eq!(execute.parent_span_id, dispatch.span_id);
    assert_eq!(call.parent_span_id, execute.span_id);
    // The exporter flushes and stops quietly on SIGTERM.
    let (status, stopping) = cluster
        .terminate_backend(0, std::time::Duration::from_secs(30))
        .await;
    assert!(status.success(), "{status}");
    assert!(
        !stopping.contains(" WARN ") && !stopping.contains(" ERROR "),
        "{stopping}"
    );
    let (status, _) = cluster
        .terminate_agent("agent-a", std::time::Duration::from_secs(30))
        .await;
    assert!(status.success(), "{status}");
    let spans = received.lock().unwrap().len();
    eprintln!(
        "one trace {trace_id}: http.request -> task.dispatch -> task.execute -> llm.call ({spans} spans received in all)"
    );
}
