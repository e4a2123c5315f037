//! `/api/v1/tasks` handlers.

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use vapora_shared::{NewTask, Role, Task, TaskId, TaskPatch, TaskStatus};

use crate::api::SharedState;
use crate::api::extract::{Json, Path, Query, parse_id};
use crate::api::paging::{PageQuery, page_limit};
use crate::error::AppError;
use crate::services::{TaskHistory, TaskPage};
use crate::storage::{DeadLetter, TaskFilter};

/// Query string of `GET /api/v1/tasks`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    project_id: Option<String>,
    status: Option<String>,
    role: Option<String>,
    cursor: Option<String>,
    limit: Option<usize>,
}

impl ListQuery {
    fn into_filter(self) -> Result<TaskFilter, AppError> {
        let status = self
            .status
            .map(|s| {
                TaskStatus::parse(&s)
                    .ok_or_else(|| AppError::bad_request("invalid_query", format!("unknown status {s:?}")))
            })
            .transpose()?;
        let role = self
            .role
            .map(|r| Role::parse(&r).map_err(|e| AppError::bad_request("invalid_query", e.to_string())))
            .transpose()?;
        let limit = page_limit(self.limit)?;
        Ok(TaskFilter {
            project_id: self
                .project_id
                .as_deref()
                .map(|p| parse_id("project", p))
                .transpose()?,
            status,
            role,
            after: self
                .cursor
                .as_deref()
                .map(|c| parse_id("cursor", c))
                .transpose()?,
            limit,
        })
    }
}

pub async fn create(
    State(state): State<SharedState>,
    Json(body): Json<NewTask>,
) -> Result<(StatusCode, Json<Task>), AppError> {
    Ok((StatusCode::CREATED, Json(state.task_service.create(body).await?)))
}

pub async fn list(
    State(state): State<SharedState>,
    Query(query): Query<ListQuery>,
) -> Result<Json<TaskPage>, AppError> {
    Ok(Json(state.task_service.list(query.into_filter()?).await?))
}

pub async fn get(State(state): State<SharedState>, Path(id): Path<String>) -> Result<Json<Task>, AppError> {
    let id: TaskId = parse_id("task", &id)?;
    Ok(Json(state.task_service.get(id).await?))
}

pub async fn update(
    State(state): State<SharedState>,
    Path(id): Path<String>,
    Json(patch): Json<TaskPatch>,
) -> Result<Json<Task>, AppError> {
    let id: TaskId = parse_id("task", &id)?;
    Ok(Json(state.task_service.patch(id, patch).await?))
}

pub async fn cancel(
    State(state): State<SharedState>,
    Path(id): Path<String>,
) -> Result<Json<Task>, AppError> {
    let id: TaskId = parse_id("task", &id)?;
    Ok(Json(state.task_service.cancel(id).await?))
}

pub async fn retry(State(state): State<SharedState>, Path(id): Path<String>) -> Result<Json<Task>, AppError> {
    let id: TaskId = parse_id("task", &id)?;
    Ok(Json(state.task_service.retry(id).await?))
}

pub async fn history(
    State(state): State<SharedState>,
    Path(id): Path<String>,
    Query(page): Query<PageQuery>,
) -> Result<Json<TaskHistory>, AppError> {
    let id: TaskId = parse_id("task", &id)?;
    let (limit, from) = page.parse::<usize>("history cursor")?;
    Ok(Json(
        state.task_service.history(id, from.unwrap_or(0), limit).await?,
    ))
}

/// Query string of `GET /api/v1/dead-letters`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeadLetterQuery {
    limit: Option<usize>,
}

pub async fn dead_letters(
    State(state): State<SharedState>,
    Query(query): Query<DeadLetterQuery>,
) -> Result<Json<Vec<DeadLetter>>, AppError> {
    Ok(Json(state.db.dead_letters(page_limit(query.limit)?).await?))
}
