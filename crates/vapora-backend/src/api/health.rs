//! Liveness and readiness probes.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::api::SharedState;
use crate::api::extract::Json;
use crate::error::ErrorBody;

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    #[schema(value_type = String, example = "ok")]
    pub status: &'static str,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    #[schema(value_type = String, example = "ready")]
    pub status: &'static str,
    #[schema(value_type = String, example = "ok")]
    pub storage: &'static str,
}

/// Liveness: the process is up and serving HTTP. Deliberately does no I/O,
/// so it stays cheap under load and does not flap with the database.
#[utoipa::path(get, path = "/health", operation_id = "health", tag = "operations", security(()),
    responses((status = 200, description = "The process serves HTTP", body = Health)))]
pub async fn health() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// Readiness: 503 until storage answers.
#[utoipa::path(get, path = "/ready", operation_id = "ready", tag = "operations", security(()),
    responses(
        (status = 200, description = "Storage answers", body = Readiness),
        (status = 503, description = "Storage does not answer", body = ErrorBody),
    ))]
pub async fn ready(State(state): State<SharedState>) -> Response {
    match state.db.ping().await {
        Ok(()) => Json(Readiness {
            status: "ready",
            storage: "ok",
        })
        .into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(ErrorBody::new("not_ready", format!("storage: {e}"))),
        )
            .into_response(),
    }
}
