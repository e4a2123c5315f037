//! `GET /api/v1/budgets`: what the results cost per role, and the LLM
//! budgets they are spent against.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use vapora_llm_router::budget::BudgetStatus;
use vapora_shared::ProjectId;

use crate::api::SharedState;
use crate::api::extract::{Query, project_filter};
use crate::auth::Caller;
use crate::error::{AppError, ErrorBody};
use crate::storage::RoleSpend;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BudgetsQuery {
    /// Only this project's spend.
    #[param(value_type = Option<ProjectId>)]
    project_id: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BudgetReport {
    /// Tokens and cost of the stored results, per role.
    pub spend: Vec<RoleSpend>,
    /// The in-process router's budgets (limit, spent, reserved, period).
    /// Shown to admin keys only: budgets span every project. Empty when
    /// agent servers run the tasks: their budgets are the gateway's
    /// (`GET /api/v1/budgets` on the gateway).
    pub budgets: Vec<BudgetStatus>,
}

#[utoipa::path(get, path = "/budgets", operation_id = "get_budgets", tag = "budgets",
    params(BudgetsQuery),
    responses(
        (status = 200, description = "Spend per role and the budgets", body = BudgetReport),
        (status = 404, description = "No such project within the key's reach", body = ErrorBody),
    ))]
pub async fn report(
    State(state): State<SharedState>,
    caller: Caller,
    Query(query): Query<BudgetsQuery>,
) -> Result<Json<BudgetReport>, AppError> {
    let project = project_filter(&state, &caller, query.project_id.as_deref()).await?;
    let spend = state.db.spend_by_role(project, caller.scope()).await?;
    let budgets = match (&state.budgets, caller.scope()) {
        (Some(budgets), None) => budgets.statuses(),
        _ => Vec::new(),
    };
    Ok(Json(BudgetReport { spend, budgets }))
}
