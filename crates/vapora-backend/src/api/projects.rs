//! `/api/v1/projects` handlers.

use axum::extract::State;
use axum::http::StatusCode;
use vapora_shared::{NewProject, Project, ProjectId, ProjectPatch};

use crate::api::SharedState;
use crate::api::extract::{Json, Path, parse_id};
use crate::error::AppError;
use crate::services::Board;

pub async fn create(
    State(state): State<SharedState>,
    Json(body): Json<NewProject>,
) -> Result<(StatusCode, Json<Project>), AppError> {
    Ok((
        StatusCode::CREATED,
        Json(state.project_service.create(body).await?),
    ))
}

pub async fn list(State(state): State<SharedState>) -> Result<Json<Vec<Project>>, AppError> {
    Ok(Json(state.project_service.list().await?))
}

pub async fn get(
    State(state): State<SharedState>,
    Path(id): Path<String>,
) -> Result<Json<Project>, AppError> {
    let id: ProjectId = parse_id("project", &id)?;
    Ok(Json(state.project_service.get(id).await?))
}

pub async fn update(
    State(state): State<SharedState>,
    Path(id): Path<String>,
    Json(patch): Json<ProjectPatch>,
) -> Result<Json<Project>, AppError> {
    let id: ProjectId = parse_id("project", &id)?;
    Ok(Json(state.project_service.update(id, patch).await?))
}

pub async fn delete(
    State(state): State<SharedState>,
    Path(id): Path<String>,
) -> Result<StatusCode, AppError> {
    let id: ProjectId = parse_id("project", &id)?;
    state.project_service.delete(id).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn board(
    State(state): State<SharedState>,
    Path(id): Path<String>,
) -> Result<Json<Board>, AppError> {
    let id: ProjectId = parse_id("project", &id)?;
    let project = state.project_service.get(id).await?;
    Ok(Json(state.task_service.board(project).await?))
}
