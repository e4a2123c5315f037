//! Liveness and readiness probes.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::json;

use crate::api::SharedState;

/// Liveness: the process is up and serving HTTP. Deliberately does no I/O,
/// so it stays cheap under load and does not flap with the database.
pub async fn health() -> impl IntoResponse {
    axum::Json(json!({ "status": "ok" }))
}

/// Readiness: 503 until storage answers.
pub async fn ready(State(state): State<SharedState>) -> impl IntoResponse {
    match state.db.ping().await {
        Ok(()) => (
            StatusCode::OK,
            axum::Json(json!({ "status": "ready", "storage": "ok" })),
        ),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({ "error": { "code": "not_ready", "message": format!("storage: {e}") } })),
        ),
    }
}
