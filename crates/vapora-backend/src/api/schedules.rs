//! `/api/v1/schedules` handlers.
//!
//! A schedule is as visible as its project (`auth::Caller`); making or
//! deleting one is a write.

use axum::extract::State;
use axum::response::Response;
use serde::Deserialize;
use utoipa::IntoParams;
use vapora_shared::{NewSchedule, ProjectId, Schedule, ScheduleId};

use crate::api::extract::{Json, Path, Query, parse_id};
use crate::api::{AppState, SharedState};
use crate::auth::Caller;
use crate::error::{AppError, ErrorBody};
use crate::idempotency::create_once;

/// Query string of `GET /api/v1/schedules`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only this project's schedules.
    #[param(value_type = Option<ProjectId>)]
    project_id: Option<String>,
}

/// Adds a schedule: `cron` (UTC; five fields, or six with seconds first)
/// and exactly one of `task` and `workflow`, the body each slot starts.
/// Each slot fires once across replicas; after an outage only the latest
/// missed slot fires (the others are counted in `skipped`).
#[utoipa::path(post, path = "/schedules", operation_id = "create_schedule", tag = "workflows",
    request_body = NewSchedule,
    responses(
        (status = 201, description = "Added; `next_fire_at` is its first slot", body = Schedule),
        (status = 403, description = "A viewer key", body = ErrorBody),
        (status = 404, description = "No such project within the key's reach", body = ErrorBody),
    ))]
pub async fn create(
    State(state): State<SharedState>,
    caller: Caller,
    Json(body): Json<NewSchedule>,
) -> Result<Response, AppError> {
    let project = body
        .task
        .as_ref()
        .map(|t| t.project_id)
        .or(body.workflow.as_ref().map(|w| w.project_id));
    if let Some(project) = project {
        caller.see_project(project)?;
    }
    caller.may_write()?;
    create_once(&state.db, None, state.schedule_service.create(body)).await
}

/// The schedules the key reaches, oldest first.
#[utoipa::path(get, path = "/schedules", operation_id = "list_schedules", tag = "workflows",
    params(ListQuery),
    responses((status = 200, description = "Every schedule within reach (at most 1,000)", body = Vec<Schedule>)))]
pub async fn list(
    State(state): State<SharedState>,
    caller: Caller,
    Query(query): Query<ListQuery>,
) -> Result<Json<Vec<Schedule>>, AppError> {
    let wanted: Option<ProjectId> = query
        .project_id
        .as_deref()
        .map(|p| parse_id("project", p))
        .transpose()?;
    let schedules = match (wanted, caller.scope()) {
        (Some(project), _) => {
            caller.see_project(project)?;
            state.schedule_service.list(Some(&[project])).await?
        }
        (None, scope) => state.schedule_service.list(scope).await?,
    };
    Ok(Json(schedules))
}

async fn visible_schedule(state: &AppState, caller: &Caller, raw_id: &str) -> Result<Schedule, AppError> {
    let id: ScheduleId = parse_id("schedule", raw_id)?;
    let schedule = state.schedule_service.get(id).await?;
    if !caller.may_see(schedule.project_id) {
        return Err(AppError::not_found("schedule", id));
    }
    Ok(schedule)
}

/// A schedule, with its next slot and what it fired so far.
#[utoipa::path(get, path = "/schedules/{id}", operation_id = "get_schedule", tag = "workflows",
    params(("id" = ScheduleId, Path)),
    responses(
        (status = 200, description = "The schedule", body = Schedule),
        (status = 404, description = "No such schedule within the key's reach", body = ErrorBody),
    ))]
pub async fn get(
    State(state): State<SharedState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Schedule>, AppError> {
    Ok(Json(visible_schedule(&state, &caller, &id).await?))
}

/// Deletes a schedule: no slot fires after this answer.
#[utoipa::path(delete, path = "/schedules/{id}", operation_id = "delete_schedule", tag = "workflows",
    params(("id" = ScheduleId, Path)),
    responses(
        (status = 200, description = "The deleted schedule", body = Schedule),
        (status = 403, description = "A viewer key", body = ErrorBody),
        (status = 404, description = "No such schedule within the key's reach", body = ErrorBody),
    ))]
pub async fn delete(
    State(state): State<SharedState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Schedule>, AppError> {
    let schedule = visible_schedule(&state, &caller, &id).await?;
    caller.may_write()?;
    state.schedule_service.delete(schedule.id).await?;
    Ok(Json(schedule))
}
