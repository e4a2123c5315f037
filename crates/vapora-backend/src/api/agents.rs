//! `/api/v1/agents` handlers: read-only views of the agent registry.

use axum::extract::State;
use vapora_shared::{Agent, AgentId};

use crate::api::SharedState;
use crate::api::extract::{Json, Path};
use crate::error::AppError;

pub async fn list(State(state): State<SharedState>) -> Json<Vec<Agent>> {
    Json(state.agent_registry.list().await)
}

pub async fn get(State(state): State<SharedState>, Path(id): Path<String>) -> Result<Json<Agent>, AppError> {
    let id = AgentId(id);
    state
        .agent_registry
        .get(&id)
        .await
        .map(Json)
        .ok_or_else(|| AppError::not_found("agent", id))
}
