//! Planning: what a request asks for, resolved into the route to run and the
//! budgets to charge, and the cheaper route to fall back to when a budget
//! says so.

use std::sync::Arc;

use super::Router;
use crate::budget::Exhausted;
use crate::fingerprint::api_key_budget;
use crate::route::{Route, Target};
use crate::{ChatRequest, LlmError};

/// What a call is for: the route to run and the budgets to charge.
#[derive(Debug, Clone)]
pub(super) struct Plan {
    pub(super) route: Arc<Route>,
    pub(super) request: ChatRequest,
    pub(super) budget_keys: Vec<String>,
    pub(super) role: String,
}

impl Router {
    /// Resolves what `request` asks for into a route and budgets.
    pub(super) fn plan(&self, request: &ChatRequest) -> Result<Plan, LlmError> {
        let inner = &self.inner;
        if request.messages.is_empty() {
            return Err(LlmError::InvalidRequest("`messages` must not be empty".into()));
        }
        let role = request.role.clone().unwrap_or_else(|| "default".into());
        let route = match request.model.as_deref() {
            Some(name) if inner.routes.contains_key(name) => inner.routes[name].clone(),
            Some(name) => {
                let target = Target::parse(name)
                    .filter(|t| inner.providers.contains_key(&t.provider))
                    .ok_or_else(|| LlmError::UnknownModel(name.to_owned()))?;
                Arc::new(Route {
                    name: name.to_owned(),
                    targets: vec![target],
                    ..inner.direct.clone()
                })
            }
            None => inner
                .routes
                .get(&format!("role:{role}"))
                .unwrap_or(&inner.routes[&inner.default_route])
                .clone(),
        };
        let mut budget_keys = vec![format!("role:{role}")];
        if let Some(key) = &request.api_key {
            budget_keys.push(api_key_budget(key));
        }
        let mut request = request.clone();
        request.max_tokens = Some(request.max_tokens.unwrap_or(inner.default_max_tokens));
        Ok(Plan {
            route,
            request,
            budget_keys,
            role,
        })
    }

    /// The route to serve through when `plan` cannot afford its own.
    pub(super) fn downgrade(&self, plan: &Plan, error: &LlmError) -> Option<Plan> {
        let LlmError::Budget(exceeded) = error else {
            return None;
        };
        let Exhausted::Downgrade { route } = &exceeded.on_exhausted else {
            return None;
        };
        let route = self.inner.routes.get(route)?.clone();
        (route.name != plan.route.name).then(|| Plan {
            route,
            ..plan.clone()
        })
    }
}
