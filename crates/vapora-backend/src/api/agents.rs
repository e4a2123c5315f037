//! `/api/v1/agents` handlers: read-only views of the agent registry.
//!
//! Agents serve every project, so every key may list them; a member's or
//! viewer's view leaves out `current_task`, which may belong to a project
//! outside its scope.

use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;
use vapora_shared::{Agent, AgentId};

use crate::api::SharedState;
use crate::api::extract::{Json, Path, Query};
use crate::api::paging::{PageQuery, page_limit};
use crate::auth::Caller;
use crate::error::{AppError, ErrorBody};

/// One page of `GET /api/v1/agents`, in id order.
#[derive(Debug, Serialize, ToSchema)]
pub struct AgentPage {
    pub items: Vec<Agent>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<AgentId>,
}

/// The registered agents, in id order.
#[utoipa::path(get, path = "/agents", operation_id = "list_agents", tag = "agents",
    params(PageQuery),
    responses((status = 200, description = "One page", body = AgentPage)))]
pub async fn list(
    State(state): State<SharedState>,
    caller: Caller,
    Query(page): Query<PageQuery>,
) -> Result<Json<AgentPage>, AppError> {
    let limit = page_limit(page.limit)?;
    let after = page.cursor.map(AgentId);
    let (mut items, next_cursor) = state.agent_registry.page(after.as_ref(), limit).await;
    items.iter_mut().for_each(|agent| as_seen_by(&caller, agent));
    Ok(Json(AgentPage { items, next_cursor }))
}

#[utoipa::path(get, path = "/agents/{id}", operation_id = "get_agent", tag = "agents",
    params(("id" = AgentId, Path)),
    responses(
        (status = 200, description = "The agent", body = Agent),
        (status = 404, description = "No such agent", body = ErrorBody),
    ))]
pub async fn get(
    State(state): State<SharedState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Agent>, AppError> {
    let id = AgentId(id);
    let mut agent = state
        .agent_registry
        .get(&id)
        .await
        .ok_or_else(|| AppError::not_found("agent", id))?;
    as_seen_by(&caller, &mut agent);
    Ok(Json(agent))
}

/// Hides the running task from callers limited to some projects.
fn as_seen_by(caller: &Caller, agent: &mut Agent) {
    if caller.scope().is_some() {
        agent.current_task = None;
    }
}
