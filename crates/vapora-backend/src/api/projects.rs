//! `/api/v1/projects` handlers.
//!
//! Each one first checks the caller's scope (`auth::Caller`): a project
//! outside it answers 404, a viewer's write 403.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use utoipa::IntoParams;
use vapora_shared::{NewProject, ProjectId, ProjectPatch};

use crate::api::SharedState;
use crate::api::extract::{Json, Path, Query, parse_id};
use crate::api::paging::{PageQuery, page_limit};
use crate::auth::keys::MAX_PROJECTS;
use crate::auth::{Caller, KeyRole};
use crate::error::{AppError, ErrorBody};
use crate::idempotency::{IdempotencyKey, Idempotent, create_once};
use crate::services::{Board, ProjectPage};
use crate::storage::StoredProject;

/// Creates a project; a member's new project joins its key. With an
/// `Idempotency-Key`, a repeat within 24 hours gets the first answer back.
#[utoipa::path(post, path = "/projects", operation_id = "create_project", tag = "projects",
    params(IdempotencyKey),
    request_body = NewProject,
    responses(
        (status = 201, description = "Created (or, with `Idempotent-Replayed: true`, the first answer again)", body = StoredProject),
        (status = 403, description = "A viewer key", body = ErrorBody),
        (status = 409, description = "The member key reaches its most projects, or the first request with this `Idempotency-Key` is still running", body = ErrorBody),
    ))]
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

/// The projects the key reaches, in creation order.
#[utoipa::path(get, path = "/projects", operation_id = "list_projects", tag = "projects",
    params(PageQuery),
    responses((status = 200, description = "One page", body = ProjectPage)))]
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

#[utoipa::path(get, path = "/projects/{id}", operation_id = "get_project", tag = "projects",
    params(("id" = ProjectId, Path)),
    responses(
        (status = 200, description = "The project", body = StoredProject),
        (status = 404, description = "No such project within the key's reach", body = ErrorBody),
    ))]
pub async fn get(
    State(state): State<SharedState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<StoredProject>, AppError> {
    let id: ProjectId = parse_id("project", &id)?;
    caller.see_project(id)?;
    Ok(Json(state.project_service.get(id).await?))
}

/// Changes the fields present in the body.
#[utoipa::path(patch, path = "/projects/{id}", operation_id = "update_project", tag = "projects",
    params(("id" = ProjectId, Path)),
    request_body = ProjectPatch,
    responses(
        (status = 200, description = "The changed project", body = StoredProject),
        (status = 403, description = "A viewer key", body = ErrorBody),
        (status = 404, description = "No such project within the key's reach", body = ErrorBody),
        (status = 409, description = "A concurrent change; retry", body = ErrorBody),
    ))]
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

/// Deletes the project and its tasks, unless one of them is queued or running.
#[utoipa::path(delete, path = "/projects/{id}", operation_id = "delete_project", tag = "projects",
    params(("id" = ProjectId, Path)),
    responses(
        (status = 204, description = "Deleted"),
        (status = 403, description = "A viewer key", body = ErrorBody),
        (status = 404, description = "No such project within the key's reach", body = ErrorBody),
        (status = 409, description = "A task of the project is queued or running, or a concurrent change", body = ErrorBody),
    ))]
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
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct BoardQuery {
    /// Tasks per column.
    #[param(minimum = 1, maximum = 500)]
    limit: Option<usize>,
}

/// The project's tasks by status, one column per status.
#[utoipa::path(get, path = "/projects/{id}/board", operation_id = "get_board", tag = "projects",
    params(("id" = ProjectId, Path), BoardQuery),
    responses(
        (status = 200, description = "The board", body = Board),
        (status = 404, description = "No such project within the key's reach", body = ErrorBody),
    ))]
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
