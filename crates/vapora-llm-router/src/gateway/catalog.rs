//! What the gateway offers and what its callers have spent:
//! `GET /v1/models` and `GET /api/v1/budgets`.

use std::sync::Arc;

use axum::extract::State;
use axum::{Extension, Json};
use serde::Serialize;
use utoipa::ToSchema;

use super::{Gateway, keys};
use crate::budget::BudgetStatus;
use crate::pricing::Pricing;
use crate::route::Strategy;

/// `GET /v1/models`: OpenAI's model list, with Vapora's details.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelList {
    /// `list`.
    #[schema(value_type = String)]
    pub object: &'static str,
    pub data: Vec<Model>,
}

/// A route (with `strategy` and `targets`) or a concrete `provider/model`
/// target (with `pricing`).
#[derive(Debug, Serialize, ToSchema)]
pub struct Model {
    pub id: String,
    /// `model`.
    #[schema(value_type = String)]
    pub object: &'static str,
    pub created: u64,
    pub owned_by: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub strategy: Option<Strategy>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub targets: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pricing: Option<Pricing>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BudgetList {
    pub budgets: Vec<BudgetStatus>,
}

/// The routes, then every target with its prices.
#[utoipa::path(get, path = "/v1/models", operation_id = "list_models", tag = "chat",
    responses((status = 200, description = "Routes and targets", body = ModelList)))]
pub(super) async fn models(State(Gateway { router, .. }): State<Gateway>) -> Json<ModelList> {
    let routes = router.routes().into_iter().map(|r| Model {
        id: r.name.clone(),
        object: "model",
        created: 0,
        owned_by: "vapora".into(),
        strategy: Some(r.strategy),
        targets: Some(r.targets.iter().map(ToString::to_string).collect()),
        pricing: None,
    });
    let targets = router.targets().into_iter().map(|t| {
        let pricing = router
            .provider(&t.provider)
            .and_then(|p| p.models.get(&t.model).copied())
            .unwrap_or_default();
        Model {
            id: t.to_string(),
            object: "model",
            created: 0,
            owned_by: t.provider.clone(),
            strategy: None,
            targets: None,
            pricing: Some(pricing),
        }
    });
    Json(ModelList {
        object: "list",
        data: routes.chain(targets).collect(),
    })
}

/// The role budgets and the caller's own key budget; other keys' budgets
/// are theirs to see.
#[utoipa::path(get, path = "/api/v1/budgets", operation_id = "list_budgets", tag = "budgets",
    responses((status = 200, description = "Limit, spent, reserved and period of each budget", body = BudgetList)))]
pub(super) async fn budgets(
    State(Gateway { router, .. }): State<Gateway>,
    Extension(caller): Extension<Arc<keys::GatewayKey>>,
) -> Json<BudgetList> {
    let own = crate::fingerprint::api_key_budget(&caller.name);
    let budgets = router
        .budgets()
        .statuses()
        .into_iter()
        .filter(|b| !b.key.starts_with("api_key:") || b.key == own)
        .collect();
    Json(BudgetList { budgets })
}
