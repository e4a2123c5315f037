//! `/api/v1/tasks` handlers.
//!
//! A task is as visible as its project (`auth::Caller`): outside the
//! caller's scope it answers 404, and lists leave it out.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use serde::Deserialize;
use vapora_shared::{NewTask, Role, Task, TaskId, TaskPatch, TaskStatus};

use crate::api::extract::{Json, Path, Query, parse_id};
use crate::api::paging::{PageQuery, page_limit};
use crate::api::{AppState, SharedState};
use crate::auth::Caller;
use crate::error::AppError;
use crate::idempotency::{Idempotent, create_once};
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
    fn into_filter(self, caller: &Caller) -> Result<TaskFilter, AppError> {
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
            within: caller.scope().map(<[_]>::to_vec),
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

/// 201 with the task; with an `Idempotency-Key`, at most once per key.
pub async fn create(
    State(state): State<SharedState>,
    caller: Caller,
    headers: HeaderMap,
    Json(body): Json<NewTask>,
) -> Result<Response, AppError> {
    caller.see_project(body.project_id)?;
    caller.may_write()?;
    let idempotent = Idempotent::from_request(&headers, &caller, "POST /api/v1/tasks", &body)?;
    create_once(&state.db, idempotent, state.task_service.create(body)).await
}

pub async fn list(
    State(state): State<SharedState>,
    caller: Caller,
    Query(query): Query<ListQuery>,
) -> Result<Json<TaskPage>, AppError> {
    Ok(Json(state.task_service.list(query.into_filter(&caller)?).await?))
}

pub async fn get(
    State(state): State<SharedState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Task>, AppError> {
    let id: TaskId = parse_id("task", &id)?;
    let task = state.task_service.get(id).await?;
    if !caller.may_see(task.project_id) {
        return Err(AppError::not_found("task", id));
    }
    Ok(Json(task))
}

/// 404 unless the task's project is in the caller's scope. Admins reach
/// every project, so their requests skip the read.
async fn see_task(state: &AppState, caller: &Caller, id: TaskId) -> Result<(), AppError> {
    if caller.scope().is_some() && !caller.may_see(state.task_service.get(id).await?.project_id) {
        return Err(AppError::not_found("task", id));
    }
    Ok(())
}

/// A task the caller may change: visible, and the caller no viewer.
async fn change_task(state: &AppState, caller: &Caller, raw_id: &str) -> Result<TaskId, AppError> {
    let id: TaskId = parse_id("task", raw_id)?;
    see_task(state, caller, id).await?;
    caller.may_write()?;
    Ok(id)
}

pub async fn update(
    State(state): State<SharedState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(patch): Json<TaskPatch>,
) -> Result<Json<Task>, AppError> {
    let id = change_task(&state, &caller, &id).await?;
    Ok(Json(state.task_service.patch(id, patch).await?))
}

pub async fn cancel(
    State(state): State<SharedState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Task>, AppError> {
    let id = change_task(&state, &caller, &id).await?;
    Ok(Json(state.task_service.cancel(id).await?))
}

pub async fn retry(
    State(state): State<SharedState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Task>, AppError> {
    let id = change_task(&state, &caller, &id).await?;
    Ok(Json(state.task_service.retry(id).await?))
}

pub async fn history(
    State(state): State<SharedState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(page): Query<PageQuery>,
) -> Result<Json<TaskHistory>, AppError> {
    let id: TaskId = parse_id("task", &id)?;
    see_task(&state, &caller, id).await?;
    // A u32: no history is longer, and storage takes numbers up to i64.
    let (limit, from) = page.parse::<u32>("history cursor")?;
    Ok(Json(
        state
            .task_service
            .history(id, from.unwrap_or(0) as usize, limit)
            .await?,
    ))
}

/// Query string of `GET /api/v1/dead-letters`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeadLetterQuery {
    limit: Option<usize>,
}

/// Admins only: dead letters name tasks of every project.
pub async fn dead_letters(
    State(state): State<SharedState>,
    caller: Caller,
    Query(query): Query<DeadLetterQuery>,
) -> Result<Json<Vec<DeadLetter>>, AppError> {
    caller.must_be_admin()?;
    Ok(Json(state.db.dead_letters(page_limit(query.limit)?).await?))
}
