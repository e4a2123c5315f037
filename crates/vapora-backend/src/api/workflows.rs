//! `/api/v1/workflows` and `/api/v1/workflow-templates` handlers.
//!
//! A run is as visible as its project (`auth::Caller`), as tasks are.
//! Templates belong to no project: every key reads them, admins add them.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use serde::Deserialize;
use utoipa::IntoParams;
use vapora_shared::{
    NewWorkflow, ProjectId, ScheduleId, WorkflowId, WorkflowRun, WorkflowStatus, WorkflowTemplate,
};

use crate::api::extract::{Json, Path, Query, parse_id};
use crate::api::paging::page_limit;
use crate::api::{AppState, SharedState};
use crate::auth::Caller;
use crate::error::{AppError, ErrorBody};
use crate::idempotency::{IdempotencyKey, Idempotent, create_once};
use crate::storage::RunFilter;
use crate::workflows::WorkflowPage;

/// Query string of `GET /api/v1/workflows`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only this project's runs.
    #[param(value_type = Option<ProjectId>)]
    project_id: Option<String>,
    #[param(value_type = Option<WorkflowStatus>)]
    status: Option<String>,
    /// Only the runs this schedule's slots started.
    #[param(value_type = Option<ScheduleId>)]
    schedule_id: Option<String>,
    /// The `next_cursor` of the previous page.
    #[param(value_type = Option<WorkflowId>)]
    cursor: Option<String>,
    /// Runs per page; 50 when absent.
    #[param(minimum = 1, maximum = 500)]
    limit: Option<usize>,
}

impl ListQuery {
    fn into_filter(self, caller: &Caller) -> Result<RunFilter, AppError> {
        let status = self
            .status
            .map(|s| {
                WorkflowStatus::parse(&s)
                    .ok_or_else(|| AppError::bad_request("invalid_query", format!("unknown status {s:?}")))
            })
            .transpose()?;
        Ok(RunFilter {
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
            after: self
                .cursor
                .as_deref()
                .map(|c| parse_id("cursor", c))
                .transpose()?,
            limit: page_limit(self.limit)?,
        })
    }
}

/// Starts a run of a template in a project: one task per stage, the first
/// stages queued at once (or at `run_at`), the others waiting for theirs.
/// With an `Idempotency-Key`, a repeat within 24 hours gets the first
/// answer back and starts no second run.
#[utoipa::path(post, path = "/workflows", operation_id = "create_workflow", tag = "workflows",
    params(IdempotencyKey),
    request_body = NewWorkflow,
    responses(
        (status = 201, description = "Started (or, with `Idempotent-Replayed: true`, the first answer again)", body = WorkflowRun),
        (status = 403, description = "A viewer key", body = ErrorBody),
        (status = 404, description = "No such project within the key's reach", body = ErrorBody),
        (status = 409, description = "The first request with this `Idempotency-Key` is still running", body = ErrorBody),
        (status = 422, description = "An unknown template or project, or a missing or undeclared input", body = ErrorBody),
    ))]
pub async fn create(
    State(state): State<SharedState>,
    caller: Caller,
    headers: HeaderMap,
    Json(body): Json<NewWorkflow>,
) -> Result<Response, AppError> {
    caller.see_project(body.project_id)?;
    caller.may_write()?;
    let idempotent = Idempotent::from_request(&headers, &caller, "POST /api/v1/workflows", &body)?;
    create_once(&state.db, idempotent, state.workflow_service.create(body)).await
}

/// The runs the key reaches, oldest first, filtered by the query.
#[utoipa::path(get, path = "/workflows", operation_id = "list_workflows", tag = "workflows",
    params(ListQuery),
    responses((status = 200, description = "One page", body = WorkflowPage)))]
pub async fn list(
    State(state): State<SharedState>,
    caller: Caller,
    Query(query): Query<ListQuery>,
) -> Result<Json<WorkflowPage>, AppError> {
    Ok(Json(
        state.workflow_service.list(query.into_filter(&caller)?).await?,
    ))
}

/// A run reachable by the caller, with every stage's task and state as
/// they are now.
async fn visible_run(state: &AppState, caller: &Caller, raw_id: &str) -> Result<WorkflowRun, AppError> {
    let id: WorkflowId = parse_id("workflow", raw_id)?;
    let run = state.workflow_service.get(id).await?;
    if !caller.may_see(run.project_id) {
        return Err(AppError::not_found("workflow", id));
    }
    Ok(run)
}

/// A run with every stage: its role, dependencies, task and status.
#[utoipa::path(get, path = "/workflows/{id}", operation_id = "get_workflow", tag = "workflows",
    params(("id" = WorkflowId, Path)),
    responses(
        (status = 200, description = "The run", body = WorkflowRun),
        (status = 404, description = "No such run within the key's reach", body = ErrorBody),
    ))]
pub async fn get(
    State(state): State<SharedState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<WorkflowRun>, AppError> {
    Ok(Json(visible_run(&state, &caller, &id).await?))
}

/// Cancels every unfinished stage of a run.
#[utoipa::path(post, path = "/workflows/{id}/cancel", operation_id = "cancel_workflow", tag = "workflows",
    params(("id" = WorkflowId, Path)),
    responses(
        (status = 200, description = "The cancelled run", body = WorkflowRun),
        (status = 403, description = "A viewer key", body = ErrorBody),
        (status = 404, description = "No such run within the key's reach", body = ErrorBody),
        (status = 409, description = "The run is done or cancelled already", body = ErrorBody),
    ))]
pub async fn cancel(
    State(state): State<SharedState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<WorkflowRun>, AppError> {
    let run = visible_run(&state, &caller, &id).await?;
    caller.may_write()?;
    Ok(Json(state.workflow_service.cancel(run.id).await?))
}

/// Runs a failed stage again (and the stages that failed because of it):
/// the run continues from there.
#[utoipa::path(post, path = "/workflows/{id}/stages/{stage}/retry", operation_id = "retry_workflow_stage", tag = "workflows",
    params(("id" = WorkflowId, Path), ("stage" = String, Path, description = "The stage's name")),
    responses(
        (status = 200, description = "The run, the stage queued again", body = WorkflowRun),
        (status = 403, description = "A viewer key", body = ErrorBody),
        (status = 404, description = "No such run within the key's reach, or no such stage", body = ErrorBody),
        (status = 409, description = "The stage has not failed", body = ErrorBody),
    ))]
pub async fn retry_stage(
    State(state): State<SharedState>,
    caller: Caller,
    Path((id, stage)): Path<(String, String)>,
) -> Result<Json<WorkflowRun>, AppError> {
    let run = visible_run(&state, &caller, &id).await?;
    caller.may_write()?;
    Ok(Json(state.workflow_service.retry_stage(run.id, &stage).await?))
}

/// Every template: those of the templates file, then those added here.
#[utoipa::path(get, path = "/workflow-templates", operation_id = "list_workflow_templates", tag = "workflows",
    responses((status = 200, description = "Every template", body = Vec<WorkflowTemplate>)))]
pub async fn list_templates(
    State(state): State<SharedState>,
    _caller: Caller,
) -> Result<Json<Vec<WorkflowTemplate>>, AppError> {
    Ok(Json(state.workflow_service.templates().list().await?))
}

#[utoipa::path(get, path = "/workflow-templates/{name}", operation_id = "get_workflow_template", tag = "workflows",
    params(("name" = String, Path)),
    responses(
        (status = 200, description = "The template", body = WorkflowTemplate),
        (status = 404, description = "No such template", body = ErrorBody),
    ))]
pub async fn get_template(
    State(state): State<SharedState>,
    _caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<WorkflowTemplate>, AppError> {
    let template = state.workflow_service.templates().get(&name).await?;
    Ok(Json(template.ok_or_else(|| {
        AppError::not_found("workflow template", &name)
    })?))
}

/// Adds a template (admins only). It is checked whole: unique stage names,
/// known roles and dependencies, no cycle, placeholders that name declared
/// inputs and direct dependencies.
#[utoipa::path(post, path = "/workflow-templates", operation_id = "create_workflow_template", tag = "workflows",
    request_body = WorkflowTemplate,
    responses(
        (status = 201, description = "Added", body = WorkflowTemplate),
        (status = 403, description = "Not an admin key", body = ErrorBody),
        (status = 409, description = "A template has this name", body = ErrorBody),
    ))]
pub async fn create_template(
    State(state): State<SharedState>,
    caller: Caller,
    Json(template): Json<WorkflowTemplate>,
) -> Result<Response, AppError> {
    caller.must_be_admin()?;
    create_once(
        &state.db,
        None,
        state.workflow_service.templates().create(template),
    )
    .await
}
