//! `/api/v1/tasks` handlers.
//!
//! A task is as visible as its project (`auth::Caller`): outside the
//! caller's scope it answers 404, and lists leave it out.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use serde::Deserialize;
use utoipa::IntoParams;
use vapora_shared::{NewTask, ProjectId, RejectTask, Role, ScheduleId, Task, TaskId, TaskPatch, TaskStatus};

use crate::api::extract::{Json, Path, Query, parse_id};
use crate::api::paging::{PageQuery, page_limit};
use crate::api::{AppState, SharedState};
use crate::auth::Caller;
use crate::error::{AppError, ErrorBody};
use crate::idempotency::{IdempotencyKey, Idempotent, create_once};
use crate::services::{TaskHistory, TaskPage};
use crate::storage::{DeadLetter, TaskFilter};

/// Query string of `GET /api/v1/tasks`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only this project's tasks.
    #[param(value_type = Option<ProjectId>)]
    project_id: Option<String>,
    #[param(value_type = Option<TaskStatus>)]
    status: Option<String>,
    #[param(value_type = Option<Role>)]
    role: Option<String>,
    /// Only the tasks this schedule's slots started.
    #[param(value_type = Option<ScheduleId>)]
    schedule_id: Option<String>,
    /// The `next_cursor` of the previous page.
    #[param(value_type = Option<TaskId>)]
    cursor: Option<String>,
    /// Tasks per page; 50 when absent.
    #[param(minimum = 1, maximum = 500)]
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
            schedule_id: self
                .schedule_id
                .as_deref()
                .map(|id| parse_id("schedule", id))
                .transpose()?,
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

/// Creates a task in a project and, unless `dispatch` is false, queues it
/// for an agent of its role. With an `Idempotency-Key`, a repeat within 24
/// hours gets the first answer back and makes no second task.
#[utoipa::path(post, path = "/tasks", operation_id = "create_task", tag = "tasks",
    params(IdempotencyKey),
    request_body = NewTask,
    responses(
        (status = 201, description = "Created (or, with `Idempotent-Replayed: true`, the first answer again)", body = Task),
        (status = 403, description = "A viewer key", body = ErrorBody),
        (status = 404, description = "No such project within the key's reach", body = ErrorBody),
        (status = 409, description = "The first request with this `Idempotency-Key` is still running", body = ErrorBody),
    ))]
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

/// The tasks the key reaches, oldest first, filtered by the query.
#[utoipa::path(get, path = "/tasks", operation_id = "list_tasks", tag = "tasks",
    params(ListQuery),
    responses((status = 200, description = "One page", body = TaskPage)))]
pub async fn list(
    State(state): State<SharedState>,
    caller: Caller,
    Query(query): Query<ListQuery>,
) -> Result<Json<TaskPage>, AppError> {
    Ok(Json(state.task_service.list(query.into_filter(&caller)?).await?))
}

#[utoipa::path(get, path = "/tasks/{id}", operation_id = "get_task", tag = "tasks",
    params(("id" = TaskId, Path)),
    responses((status = 200, description = "The task", body = Task), (status = 404, description = "No such task within the key's reach", body = ErrorBody)))]
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

/// Edits the fields present, or moves the task on the board with `status`
/// (`todo`, `queued`, `cancelled`; `done` from `review` approves it).
#[utoipa::path(patch, path = "/tasks/{id}", operation_id = "update_task", tag = "tasks",
    params(("id" = TaskId, Path)),
    request_body = TaskPatch,
    responses(
        (status = 200, description = "The changed task", body = Task),
        (status = 403, description = "A viewer key", body = ErrorBody),
        (status = 404, description = "No such task within the key's reach", body = ErrorBody),
        (status = 409, description = "A move the lifecycle does not allow, an edit while running, or a concurrent change", body = ErrorBody),
    ))]
pub async fn update(
    State(state): State<SharedState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(patch): Json<TaskPatch>,
) -> Result<Json<Task>, AppError> {
    let id = change_task(&state, &caller, &id).await?;
    Ok(Json(state.task_service.patch(id, patch).await?))
}

/// Cancels a task that is not finished. Idempotent: cancelling a
/// cancelled task answers 200 with it, unchanged.
#[utoipa::path(post, path = "/tasks/{id}/cancel", operation_id = "cancel_task", tag = "tasks",
    params(("id" = TaskId, Path)),
    responses(
        (status = 200, description = "The cancelled task (unchanged if it was cancelled already)", body = Task),
        (status = 403, description = "A viewer key", body = ErrorBody),
        (status = 404, description = "No such task within the key's reach", body = ErrorBody),
        (status = 409, description = "The task is done or failed already, or a concurrent change", body = ErrorBody),
    ))]
pub async fn cancel(
    State(state): State<SharedState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Task>, AppError> {
    let id = change_task(&state, &caller, &id).await?;
    Ok(Json(state.task_service.cancel(id).await?))
}

/// Queues a failed task again, as a new attempt.
#[utoipa::path(post, path = "/tasks/{id}/retry", operation_id = "retry_task", tag = "tasks",
    params(("id" = TaskId, Path)),
    responses(
        (status = 200, description = "The queued task", body = Task),
        (status = 403, description = "A viewer key", body = ErrorBody),
        (status = 404, description = "No such task within the key's reach", body = ErrorBody),
        (status = 409, description = "The task has not failed, or a concurrent change", body = ErrorBody),
    ))]
pub async fn retry(
    State(state): State<SharedState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Task>, AppError> {
    let id = change_task(&state, &caller, &id).await?;
    Ok(Json(state.task_service.retry(id).await?))
}

/// Accepts the result of a task in review: it moves to `done`.
#[utoipa::path(post, path = "/tasks/{id}/approve", operation_id = "approve_task", tag = "tasks",
    params(("id" = TaskId, Path)),
    responses(
        (status = 200, description = "The task, done", body = Task),
        (status = 403, description = "A viewer key", body = ErrorBody),
        (status = 404, description = "No such task within the key's reach", body = ErrorBody),
        (status = 409, description = "The task is not in review, or a concurrent change", body = ErrorBody),
    ))]
pub async fn approve(
    State(state): State<SharedState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Task>, AppError> {
    let id = change_task(&state, &caller, &id).await?;
    Ok(Json(state.task_service.approve(id).await?))
}

/// Sends the result of a task in review back with a comment: the task is
/// queued again as a new attempt whose prompt carries the comment and the
/// rejected output (kept in the task's `rejection`).
#[utoipa::path(post, path = "/tasks/{id}/reject", operation_id = "reject_task", tag = "tasks",
    params(("id" = TaskId, Path)),
    request_body = RejectTask,
    responses(
        (status = 200, description = "The task, queued again", body = Task),
        (status = 403, description = "A viewer key", body = ErrorBody),
        (status = 404, description = "No such task within the key's reach", body = ErrorBody),
        (status = 409, description = "The task is not in review, or a concurrent change", body = ErrorBody),
        (status = 422, description = "A blank or oversized comment", body = ErrorBody),
    ))]
pub async fn reject(
    State(state): State<SharedState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(body): Json<RejectTask>,
) -> Result<Json<Task>, AppError> {
    let id = change_task(&state, &caller, &id).await?;
    Ok(Json(state.task_service.reject(id, body.comment).await?))
}

/// The task's status changes, oldest first, and the worker reports its
/// attempt fence refused.
#[utoipa::path(get, path = "/tasks/{id}/history", operation_id = "get_task_history", tag = "tasks",
    params(("id" = TaskId, Path), PageQuery),
    responses((status = 200, description = "One page of the history", body = TaskHistory), (status = 404, description = "No such task within the key's reach", body = ErrorBody)))]
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
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeadLetterQuery {
    /// At most this many; 50 when absent.
    #[param(minimum = 1, maximum = 500)]
    limit: Option<usize>,
}

/// Task messages the broker gave up delivering. Admins only: dead letters
/// name tasks of every project.
#[utoipa::path(get, path = "/dead-letters", operation_id = "list_dead_letters", tag = "tasks",
    params(DeadLetterQuery),
    responses(
        (status = 200, description = "The most recent dead letters", body = Vec<DeadLetter>),
        (status = 403, description = "Not an admin key", body = ErrorBody),
    ))]
pub async fn dead_letters(
    State(state): State<SharedState>,
    caller: Caller,
    Query(query): Query<DeadLetterQuery>,
) -> Result<Json<Vec<DeadLetter>>, AppError> {
    caller.must_be_admin()?;
    Ok(Json(state.db.dead_letters(page_limit(query.limit)?).await?))
}
