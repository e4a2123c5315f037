//! `GET /metrics`: the Prometheus scrape.
//!
//! Reads the live gauges (queue, agents, WebSocket clients) and renders them
//! with the counters kept in [`crate::metrics::Metrics`].

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use vapora_shared::AgentStatus;

use crate::api::SharedState;
use crate::metrics::Gauges;

/// The Prometheus text format. Needs a key only when
/// `VAPORA_METRICS_REQUIRE_KEY` is set.
#[utoipa::path(get, path = "/metrics", operation_id = "metrics", tag = "operations", security((), ("api_key" = [])),
    responses((status = 200, description = "Prometheus text exposition", body = String, content_type = "text/plain")))]
pub async fn render(State(state): State<SharedState>) -> impl IntoResponse {
    let agents = state.agent_registry.list().await;
    let gauges = Gauges {
        queue_depth: state.task_queue.depth().await as u64,
        queue_capacity: state.task_queue.capacity() as u64,
        agents: [AgentStatus::Idle, AgentStatus::Busy, AgentStatus::Offline]
            .into_iter()
            .map(|s| (s, agents.iter().filter(|a| a.status == s).count() as u64))
            .collect(),
        websocket_clients: state.events.subscribers() as u64,
    };
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(&gauges),
    )
}
