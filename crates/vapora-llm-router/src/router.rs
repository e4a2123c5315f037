//! The router: picks a route for each request and runs its strategy over
//! the route's targets, with retries, timeouts, per-provider concurrency
//! limits, circuit breakers and budgets.
//!
//! Every provider call is an *attempt*. An attempt is admitted by the
//! provider's circuit breaker, reserves its worst-case cost from the
//! caller's budgets at the prices of the target it is about to call (so the
//! provider that actually serves is the one charged), waits a bounded time
//! for a concurrency slot, and then calls. It succeeds once the first token
//! (or, unstreamed, the whole answer) is in. From then on no other provider
//! is tried: a later failure is reported to the caller as an error, never
//! papered over with another provider's text.
//!
//! `hedge` and `race` run attempts as separate `tokio::spawn`ed tasks; the
//! losers are aborted, which drops their HTTP streams and closes the
//! provider connections. Tokens a loser had already been sent are billed
//! (estimated where the provider had not reported them yet).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::StreamExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

use crate::budget::{Budgets, Exhausted, Reservation};
use crate::circuit::{Admit, CircuitBreaker};
use crate::client::estimate_tokens_from_bytes;
use crate::metrics::RouterMetrics;
use crate::route::{Route, Strategy, Target};
use crate::{ChatRequest, Completion, CompletionStream, LlmClient, LlmError, Pricing, StreamEvent, Usage};

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

/// What a call is for: the route to run and the budgets to charge.
#[derive(Debug, Clone)]
struct Plan {
    route: Arc<Route>,
    request: ChatRequest,
    budget_keys: Vec<String>,
    role: String,
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

    /// Resolves what `request` asks for into a route and budgets.
    fn plan(&self, request: &ChatRequest) -> Result<Plan, LlmError> {
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
            budget_keys.push(format!("api_key:{key}"));
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
    fn downgrade(&self, plan: &Plan, error: &LlmError) -> Option<Plan> {
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

    async fn run(&self, plan: Plan, streaming: bool) -> Result<Answer, LlmError> {
        let started = Instant::now();
        let mut result = self.run_route(&plan, streaming).await;
        if let Err(error) = &result
            && let Some(cheaper) = self.downgrade(&plan, error)
        {
            tracing::info!(from = %plan.route.name, to = %cheaper.route.name, "budget exhausted; downgrading");
            result = self.run_route(&cheaper, streaming).await;
        }
        if let Err(error) = &result {
            self.inner
                .metrics
                .record_failure(&plan.route.name, error, started.elapsed());
        }
        result
    }

    async fn run_route(&self, plan: &Plan, streaming: bool) -> Result<Answer, LlmError> {
        match plan.route.strategy {
            Strategy::Fallback => self.fallback(plan, streaming).await,
            Strategy::Hedge => self.fan_out(plan, streaming, Some(plan.route.hedge_delay)).await,
            Strategy::Race => self.fan_out(plan, streaming, None).await,
        }
    }

    /// Targets in order; retries with backoff on retryable errors.
    async fn fallback(&self, plan: &Plan, streaming: bool) -> Result<Answer, LlmError> {
        let mut last_error = None;
        let mut attempts = 0;
        for target in &plan.route.targets {
            for retry in 0..plan.route.retry.attempts_per_target.max(1) {
                if retry > 0 {
                    let retry_after = match &last_error {
                        Some(LlmError::Status { retry_after, .. }) => *retry_after,
                        _ => None,
                    };
                    tokio::time::sleep(plan.route.retry.delay(retry, retry_after)).await;
                }
                attempts += 1;
                match attempt(self.inner.clone(), plan.clone(), target.clone(), streaming).await {
                    Ok(mut answer) => {
                        answer.set_attempts(attempts);
                        return Ok(answer);
                    }
                    Err(e) if e.rejected_everywhere() => return Err(e),
                    Err(e) => {
                        let again = e.is_retryable() && !matches!(e, LlmError::CircuitOpen { .. });
                        last_error = Some(e);
                        if !again {
                            break;
                        }
                    }
                }
            }
        }
        Err(last_error.unwrap_or_else(|| LlmError::Config("route has no targets".into())))
    }

    /// `race` (no delay: everything at once) and `hedge` (the next target
    /// after `delay` without an answer, or at once after a failure).
    async fn fan_out(
        &self,
        plan: &Plan,
        streaming: bool,
        delay: Option<Duration>,
    ) -> Result<Answer, LlmError> {
        let mut pending = plan.route.targets.iter();
        let mut running = JoinSet::new();
        let mut attempts = 0;
        let mut last_error = None;
        let mut start_next = |running: &mut JoinSet<Result<Answer, LlmError>>, attempts: &mut u32| {
            let Some(target) = pending.next() else {
                return false;
            };
            *attempts += 1;
            running.spawn(attempt(
                self.inner.clone(),
                plan.clone(),
                target.clone(),
                streaming,
            ));
            true
        };
        if delay.is_none() {
            while start_next(&mut running, &mut attempts) {}
        } else {
            start_next(&mut running, &mut attempts);
        }
        loop {
            let hedge_timer = async {
                match delay {
                    Some(d) => tokio::time::sleep(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                joined = running.join_next() => match joined {
                    Some(Ok(Ok(mut answer))) => {
                        answer.set_attempts(attempts);
                        // Dropping `running` aborts the losers.
                        return Ok(answer);
                    }
                    Some(Ok(Err(e))) if e.rejected_everywhere() => return Err(e),
                    Some(Ok(Err(e))) => {
                        last_error = Some(e);
                        // A failed hedge does not wait for the timer: the
                        // next target starts now (in a race, all have).
                        let started = start_next(&mut running, &mut attempts);
                        if running.is_empty() && !started {
                            break;
                        }
                    }
                    Some(Err(join_error)) => {
                        last_error = Some(LlmError::Protocol { provider: "router".into(), message: join_error.to_string() });
                    }
                    None => break,
                },
                () = hedge_timer => {
                    start_next(&mut running, &mut attempts);
                }
            }
        }
        Err(last_error.unwrap_or_else(|| LlmError::Config("route has no targets".into())))
    }
}

/// A won attempt: an answer, or a stream whose first event is in.
enum Answer {
    Done(Completion),
    Stream(Box<LiveStream>),
}

impl Answer {
    fn set_attempts(&mut self, attempts: u32) {
        match self {
            Self::Done(c) => c.attempts = attempts,
            Self::Stream(s) => s.attempts = attempts,
        }
    }
}

/// Reserves, waits for a slot, and calls one target until the first token.
async fn attempt(inner: Arc<Inner>, plan: Plan, target: Target, streaming: bool) -> Result<Answer, LlmError> {
    let slot = inner
        .providers
        .get(&target.provider)
        .expect("routes are validated")
        .clone();
    let admit = slot.breaker.admit().ok_or_else(|| LlmError::CircuitOpen {
        provider: slot.name.clone(),
    })?;
    let probe = ProbeGuard {
        slot: &slot,
        armed: admit == Admit::Probe,
    };

    let pricing = slot.pricing(&target.model);
    let input_estimate = conservative_input_tokens(&plan.request);
    let max_tokens = plan.request.max_tokens.unwrap_or(inner.default_max_tokens);
    let worst_case = pricing.cost_usd(&Usage {
        input_tokens: input_estimate,
        output_tokens: max_tokens as u64,
        estimated: true,
    });
    let reservation = inner.budgets.reserve(&plan.budget_keys, worst_case)?;

    let permit = tokio::time::timeout(slot.queue_timeout, slot.concurrency.clone().acquire_owned())
        .await
        .map_err(|_| LlmError::Saturated {
            provider: slot.name.clone(),
        })?
        .expect("provider semaphores are never closed");

    let mut request = plan.request.clone();
    request.model = Some(target.model.clone());
    let started = Instant::now();
    let billing = Billing {
        inner: inner.clone(),
        slot: slot.clone(),
        target: target.clone(),
        pricing,
        role: plan.role.clone(),
        route: plan.route.name.clone(),
        reservation: Some(reservation),
        input_estimate: request.estimated_input_tokens(),
        started,
    };
    let outcome = if streaming {
        start_stream(&slot, &request, &plan.route, permit, billing)
            .await
            .map(|live| Answer::Stream(Box::new(live)))
    } else {
        let call = tokio::time::timeout(plan.route.total_timeout, slot.client.complete(&request));
        match call.await {
            Ok(Ok(completion)) => Ok(Answer::Done(billing.finish(completion))),
            Ok(Err(e)) => Err(billing.fail(e)),
            Err(_) => Err(billing.fail(LlmError::Timeout {
                provider: slot.name.clone(),
                timeout: plan.route.total_timeout,
            })),
        }
    };
    probe.disarm();
    outcome
}

async fn start_stream(
    slot: &ProviderSlot,
    request: &ChatRequest,
    route: &Route,
    permit: OwnedSemaphorePermit,
    billing: Billing,
) -> Result<LiveStream, LlmError> {
    let deadline = tokio::time::Instant::now() + route.total_timeout;
    let first_token_by = (tokio::time::Instant::now() + route.first_token_timeout).min(deadline);
    let timeout_error = |timeout| LlmError::Timeout {
        provider: slot.name.clone(),
        timeout,
    };
    let stream = match tokio::time::timeout_at(first_token_by, slot.client.stream(request)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => return Err(billing.fail(e)),
        Err(_) => return Err(billing.fail(timeout_error(route.first_token_timeout))),
    };
    // The provider accepted the call: from here on, abandoning it still costs.
    let mut live = LiveStream {
        stream,
        first: None,
        deadline,
        total_timeout: route.total_timeout,
        billing: Some(billing),
        text_len: 0,
        attempts: 1,
        _permit: permit,
    };
    match tokio::time::timeout_at(first_token_by, live.stream.next()).await {
        Ok(Some(Ok(event))) => {
            // The provider answered: that settles a half-open probe too.
            slot.breaker.record_success();
            live.first = Some(event);
            Ok(live)
        }
        Ok(Some(Err(e))) => Err(live.take_billing().fail(e)),
        Ok(None) => Err(live.take_billing().fail(LlmError::Truncated {
            provider: slot.name.clone(),
        })),
        Err(_) => Err(live.take_billing().fail(timeout_error(route.first_token_timeout))),
    }
}

/// Frees a half-open circuit's probe slot if the attempt ends without a
/// verdict (it was aborted as a losing hedge, say).
struct ProbeGuard<'a> {
    slot: &'a ProviderSlot,
    armed: bool,
}

impl ProbeGuard<'_> {
    fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for ProbeGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.slot.breaker.release_probe();
        }
    }
}

/// Input tokens to reserve for: a token per 2 bytes (rather than the usual
/// 4) plus 16 per message for the chat template, so that the reservation
/// stays an upper bound even for token-dense text. Should a provider still
/// report more, the real cost is recorded: spend is never under-reported.
fn conservative_input_tokens(request: &ChatRequest) -> u64 {
    request
        .messages
        .iter()
        .map(|m| (m.content.len() as u64).div_ceil(2) + 16)
        .sum()
}

/// Settles one attempt's reservation and records its outcome.
struct Billing {
    inner: Arc<Inner>,
    slot: Arc<ProviderSlot>,
    target: Target,
    pricing: Pricing,
    role: String,
    route: String,
    reservation: Option<Reservation>,
    input_estimate: u64,
    started: Instant,
}

impl Billing {
    /// A finished call: real usage, priced at this target's prices.
    fn finish(mut self, mut completion: Completion) -> Completion {
        completion.cost_usd = self.pricing.cost_usd(&completion.usage);
        completion.provider = self.target.provider.clone();
        completion.upstream_time = self.started.elapsed();
        self.slot.breaker.record_success();
        if let Some(reservation) = self.reservation.take() {
            reservation.settle(completion.cost_usd);
        }
        self.inner
            .metrics
            .record_success(&self.route, &self.role, &completion, self.started.elapsed());
        completion
    }

    /// A call that failed before producing anything billable.
    fn fail(mut self, error: LlmError) -> LlmError {
        if error.is_provider_fault() {
            self.slot.breaker.record_failure();
        }
        self.inner.metrics.record_attempt_error(&self.target, &error);
        drop(self.reservation.take());
        error
    }

    /// A call abandoned or broken after the provider started answering: the
    /// tokens were spent but not reported, so they are estimated.
    fn abandon(mut self, output_bytes: usize, error: Option<&LlmError>) {
        let usage = Usage {
            input_tokens: self.input_estimate,
            output_tokens: estimate_tokens_from_bytes(output_bytes),
            estimated: true,
        };
        let cost = self.pricing.cost_usd(&usage);
        if let Some(error) = error {
            if error.is_provider_fault() {
                self.slot.breaker.record_failure();
            }
            self.inner.metrics.record_attempt_error(&self.target, error);
        }
        self.inner
            .metrics
            .record_abandoned(&self.target, &self.role, &usage, cost);
        if let Some(reservation) = self.reservation.take() {
            reservation.settle(cost);
        }
    }
}

/// A provider stream the router has committed to, billed however it ends.
struct LiveStream {
    stream: CompletionStream,
    first: Option<StreamEvent>,
    deadline: tokio::time::Instant,
    total_timeout: Duration,
    billing: Option<Billing>,
    text_len: usize,
    attempts: u32,
    _permit: OwnedSemaphorePermit,
}

impl LiveStream {
    fn take_billing(&mut self) -> Billing {
        self.billing.take().expect("billed once")
    }

    async fn next_event(mut self) -> Option<(Result<StreamEvent, LlmError>, Self)> {
        self.billing.as_ref()?;
        let event = match self.first.take() {
            Some(first) => Some(Ok(first)),
            None => match tokio::time::timeout_at(self.deadline, self.stream.next()).await {
                Ok(event) => event,
                Err(_) => Some(Err(LlmError::Timeout {
                    provider: self
                        .billing
                        .as_ref()
                        .map(|b| b.target.provider.clone())
                        .unwrap_or_default(),
                    timeout: self.total_timeout,
                })),
            },
        };
        match event {
            Some(Ok(StreamEvent::Delta(text))) => {
                self.text_len += text.len();
                Some((Ok(StreamEvent::Delta(text)), self))
            }
            Some(Ok(StreamEvent::Finished(mut completion))) => {
                completion.attempts = self.attempts;
                let completion = self.take_billing().finish(completion);
                Some((Ok(StreamEvent::Finished(completion)), self))
            }
            Some(Err(error)) => {
                let text_len = self.text_len;
                self.take_billing().abandon(text_len, Some(&error));
                Some((Err(error), self))
            }
            None => {
                let provider = self
                    .billing
                    .as_ref()
                    .map(|b| b.target.provider.clone())
                    .unwrap_or_default();
                let error = LlmError::Truncated { provider };
                let text_len = self.text_len;
                self.take_billing().abandon(text_len, Some(&error));
                Some((Err(error), self))
            }
        }
    }
}

impl Drop for LiveStream {
    /// The caller went away mid-answer (or this was a losing hedge): bill
    /// what the provider was already producing.
    fn drop(&mut self) {
        if let Some(billing) = self.billing.take() {
            billing.abandon(self.text_len, None);
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
        match self.run(plan, false).await? {
            Answer::Done(completion) => Ok(completion),
            Answer::Stream(_) => unreachable!("unstreamed attempts return completions"),
        }
    }

    async fn stream(&self, request: &ChatRequest) -> Result<CompletionStream, LlmError> {
        let plan = self.plan(request)?;
        match self.run(plan, true).await? {
            Answer::Stream(live) => Ok(futures::stream::unfold(*live, LiveStream::next_event).boxed()),
            Answer::Done(_) => unreachable!("streamed attempts return streams"),
        }
    }
}
