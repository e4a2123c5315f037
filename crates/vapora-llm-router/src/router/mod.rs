//! The router: picks a route for each request and runs its strategy over
//! the route's targets, with retries, timeouts, per-provider concurrency
//! limits, circuit breakers and budgets.
//!
//! One file per idea: `plan` resolves a request into a route and budgets,
//! `fallback` and `fan_out` are the strategies, `attempt` is one call
//! to one target, `billing` settles that call's budget reservation,
//! `live_stream` is a stream handed to the caller, and `delivery` makes
//! all of them generic over whether the answer is streamed.
//!
//! An attempt succeeds once the first token (or, unstreamed, the whole
//! answer) is in. From then on no other provider is tried: a later failure
//! is reported to the caller as an error, never papered over with another
//! provider's text.

mod attempt;
mod billing;
mod delivery;
mod fallback;
mod fan_out;
mod live_stream;
mod plan;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::sync::Semaphore;

use self::delivery::{Delivery, Streamed, Unstreamed};
use self::plan::Plan;
use crate::budget::Budgets;
use crate::circuit::CircuitBreaker;
use crate::metrics::RouterMetrics;
use crate::route::{Route, Strategy, Target};
use crate::{ChatRequest, Completion, CompletionStream, LlmClient, LlmError, Pricing};

/// A provider as the router holds it.
#[derive(Debug)]
pub struct ProviderSlot {
    pub name: String,
    pub client: Arc<dyn LlmClient>,
    /// Prices per model; a model not listed costs nothing.
    pub models: HashMap<String, Pricing>,
    pub concurrency: Arc<Semaphore>,
    /// Longest wait for a concurrency slot before trying elsewhere.
    pub queue_timeout: Duration,
    pub breaker: CircuitBreaker,
}

impl ProviderSlot {
    fn pricing(&self, model: &str) -> Pricing {
        self.models.get(model).copied().unwrap_or_default()
    }
}

#[derive(Debug)]
struct Inner {
    providers: HashMap<String, Arc<ProviderSlot>>,
    routes: HashMap<String, Arc<Route>>,
    default_route: String,
    budgets: Arc<Budgets>,
    metrics: Arc<RouterMetrics>,
    /// `max_tokens` sent (and reserved for) when a request sets none, so
    /// that every reservation is a true upper bound.
    default_max_tokens: u32,
    /// Timeouts and retries for requests naming a `provider/model` directly.
    direct: Route,
}

/// The LLM router; cheap to clone.
#[derive(Debug, Clone)]
pub struct Router {
    inner: Arc<Inner>,
}

impl Router {
    pub fn new(
        providers: Vec<ProviderSlot>,
        routes: Vec<Route>,
        default_route: String,
        budgets: Arc<Budgets>,
        default_max_tokens: u32,
        direct: Route,
    ) -> Result<Self, LlmError> {
        let providers: HashMap<_, _> = providers
            .into_iter()
            .map(|p| (p.name.clone(), Arc::new(p)))
            .collect();
        for route in &routes {
            for target in &route.targets {
                if !providers.contains_key(&target.provider) {
                    return Err(LlmError::Config(format!(
                        "route {} uses unknown provider {}",
                        route.name, target.provider
                    )));
                }
            }
            if route.targets.is_empty() {
                return Err(LlmError::Config(format!("route {} has no targets", route.name)));
            }
        }
        let routes: HashMap<_, _> = routes
            .into_iter()
            .map(|r| (r.name.clone(), Arc::new(r)))
            .collect();
        if !routes.contains_key(&default_route) {
            return Err(LlmError::Config(format!(
                "the default route {default_route:?} is not defined"
            )));
        }
        Ok(Self {
            inner: Arc::new(Inner {
                providers,
                routes,
                default_route,
                budgets,
                metrics: Arc::new(RouterMetrics::default()),
                default_max_tokens,
                direct,
            }),
        })
    }

    /// What a request that sets no `max_tokens` is sent and reserved.
    pub fn default_max_tokens(&self) -> u32 {
        self.inner.default_max_tokens
    }

    pub fn budgets(&self) -> &Arc<Budgets> {
        &self.inner.budgets
    }

    pub fn metrics(&self) -> &Arc<RouterMetrics> {
        &self.inner.metrics
    }

    /// Routes, sorted by name.
    pub fn routes(&self) -> Vec<Arc<Route>> {
        let mut routes: Vec<_> = self.inner.routes.values().cloned().collect();
        routes.sort_by(|a, b| a.name.cmp(&b.name));
        routes
    }

    /// Every `provider/model` with a configured price, sorted.
    pub fn targets(&self) -> Vec<Target> {
        let mut targets: Vec<Target> = self
            .inner
            .providers
            .values()
            .flat_map(|p| {
                p.models.keys().map(|m| Target {
                    provider: p.name.clone(),
                    model: m.clone(),
                })
            })
            .collect();
        targets.sort_by_key(|t| t.to_string());
        targets
    }

    pub fn provider(&self, name: &str) -> Option<&Arc<ProviderSlot>> {
        self.inner.providers.get(name)
    }

    async fn run<D: Delivery>(&self, plan: Plan) -> Result<D::Output, LlmError> {
        let started = Instant::now();
        let mut result = self.run_route::<D>(&plan).await;
        if let Err(error) = &result
            && let Some(cheaper) = self.downgrade(&plan, error)
        {
            tracing::info!(from = %plan.route.name, to = %cheaper.route.name, "budget exhausted; downgrading");
            result = self.run_route::<D>(&cheaper).await;
        }
        if let Err(error) = &result {
            self.inner
                .metrics
                .record_failure(&plan.route.name, error, started.elapsed());
        }
        result
    }

    async fn run_route<D: Delivery>(&self, plan: &Plan) -> Result<D::Output, LlmError> {
        match plan.route.strategy {
            Strategy::Fallback => self.fallback::<D>(plan).await,
            Strategy::Hedge => self.fan_out::<D>(plan, Some(plan.route.hedge_delay)).await,
            Strategy::Race => self.fan_out::<D>(plan, None).await,
        }
    }
}

#[async_trait]
impl LlmClient for Router {
    fn provider(&self) -> &str {
        "router"
    }

    fn default_model(&self) -> &str {
        &self.inner.default_route
    }

    async fn complete(&self, request: &ChatRequest) -> Result<Completion, LlmError> {
        let plan = self.plan(request)?;
        self.run::<Unstreamed>(plan).await
    }

    async fn stream(&self, request: &ChatRequest) -> Result<CompletionStream, LlmError> {
        let plan = self.plan(request)?;
        Ok(self.run::<Streamed>(plan).await?.into_stream())
    }
}
