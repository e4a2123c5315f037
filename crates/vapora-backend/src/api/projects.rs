//! `/api/v1/projects` handlers.
//!
//! Each one first checks the caller's scope (`auth::Caller`): a project
//! outside it answers 404, a viewer's write 403.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use vapora_shared::{NewProject, ProjectId, ProjectPatch};

use crate::api::SharedState;
use crate::api::extract::{Json, Path, Query, parse_id};
use crate::api::paging::{PageQuery, page_limit};
use crate::auth::keys::MAX_PROJECTS;
use crate::auth::{Caller, KeyRole};
use crate::error::AppError;
use crate::idempotency::{Idempotent, create_once};
use crate::services::{Board, ProjectPage};
use crate::storage::StoredProject;

/// 201 with the project; with an `Idempotency-Key`, at most once per key.
pub async fn create(
    State(state): State<SharedState>,
    caller: Caller,
    headers: HeaderMap,
    Json(body): Json<NewProject>,
) -> Result<Response, AppError> {
    caller.may_write()?;
    if caller.role() == KeyRole::Member && caller.scope().is_some_and(|p| p.len() >= MAX_PROJECTS) {
        return Err(AppError::Conflict(format!(
            "this key already reaches {MAX_PROJECTS} projects; ask an admin for another key"
        )));
    }
    let idempotent = Idempotent::from_request(&headers, &caller, "POST /api/v1/projects", &body)?;
    // A member's new project joins its key, so it can go on working on it.
    let owner = (caller.role() == KeyRole::Member).then(|| caller.key_id());
    let create = async {
        let project = state.project_service.create(body, owner).await?;
        if let (Some(owner), Some(keys)) = (owner, &state.keys) {
            keys.refresh(owner);
        }
        Ok(project)
    };
    create_once(&state.db, idempotent, create).await
}

pub async fn list(
    State(state): State<SharedState>,
    caller: Caller,
    Query(page): Query<PageQuery>,
) -> Result<Json<ProjectPage>, AppError> {
    let (limit, after) = page.parse("cursor")?;
    Ok(Json(
        state.project_service.list(after, limit, caller.scope()).await?,
    ))
}

pub async fn get(
    State(state): State<SharedState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<StoredProject>, AppError> {
    let id: ProjectId = parse_id("project", &id)?;
    caller.see_project(id)?;
    Ok(Json(state.project_service.get(id).await?))
}

pub async fn update(
    State(state): State<SharedState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(patch): Json<ProjectPatch>,
) -> Result<Json<StoredProject>, AppError> {
    let id: ProjectId = parse_id("project", &id)?;
    caller.see_project(id)?;
    caller.may_write()?;
    Ok(Json(state.project_service.update(id, patch).await?))
}

pub async fn delete(
    State(state): State<SharedState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, AppError> {
    let id: ProjectId = parse_id("project", &id)?;
    caller.see_project(id)?;
    caller.may_write()?;
    state.project_service.delete(id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Query string of `GET /api/v1/projects/{id}/board`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BoardQuery {
    /// Tasks per column.
    limit: Option<usize>,
}

pub async fn board(
    State(state): State<SharedState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(query): Query<BoardQuery>,
) -> Result<Json<Board>, AppError> {
    let id: ProjectId = parse_id("project", &id)?;
    caller.see_project(id)?;
    Ok(Json(
        state.project_service.board(id, page_limit(query.limit)?).await?,
    ))
}
