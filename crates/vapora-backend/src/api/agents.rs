//! `/api/v1/agents` handlers: read-only views of the agent registry.

use axum::extract::State;
use serde::Serialize;
use vapora_shared::{Agent, AgentId};

use crate::api::SharedState;
use crate::api::extract::{Json, Path, Query};
use crate::api::paging::{PageQuery, page_limit};
use crate::error::AppError;

/// One page of `GET /api/v1/agents`, in id order.
#[derive(Debug, Serialize)]
pub struct AgentPage {
    pub items: Vec<Agent>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<AgentId>,
}

pub async fn list(
    State(state): State<SharedState>,
    Query(page): Query<PageQuery>,
) -> Result<Json<AgentPage>, AppError> {
    let limit = page_limit(page.limit)?;
    let after = page.cursor.map(AgentId);
    let (items, next_cursor) = state.agent_registry.page(after.as_ref(), limit).await;
    Ok(Json(AgentPage { items, next_cursor }))
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
