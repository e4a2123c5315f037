//! Router metrics in Prometheus text format: requests, errors, latency and
//! added-overhead histograms, tokens and cost by provider, model and role.
//!
//! Counters sit in a map behind a `std::sync::Mutex` (a few hundred
//! nanoseconds per request, never held across an `.await`); histograms are
//! fixed buckets of atomics.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use crate::route::Target;
use crate::{Completion, LlmError, Usage};

/// Upper bounds of the histogram buckets, in seconds.
const BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0, 30.0,
];

#[derive(Debug, Default)]
pub struct Histogram {
    counts: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_nanos: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
            self.counts[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_nanos.fetch_add(d.as_nanos() as u64, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (bound, count) in BUCKETS.iter().zip(&self.counts) {
            cumulative += count.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(
            out,
            "{name}_sum {}",
            self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9
        );
        let _ = writeln!(out, "{name}_count {count}");
    }
}

#[derive(Debug, Default)]
struct Usage3 {
    tokens_in: u64,
    tokens_out: u64,
    cost_usd: f64,
    estimated_calls: u64,
}

/// Nested maps looked up by `&str`, so that counting a request allocates
/// nothing once its labels have been seen.
#[derive(Debug, Default)]
struct Counters {
    /// route -> outcome -> requests.
    requests: HashMap<String, HashMap<String, u64>>,
    /// (provider, model, kind) -> failed attempts (rare: allocating is fine).
    attempt_errors: BTreeMap<(String, String, String), u64>,
    /// provider -> model -> role -> usage.
    usage: HashMap<String, HashMap<String, HashMap<String, Usage3>>>,
}

fn entry<'m, V: Default>(map: &'m mut HashMap<String, V>, key: &str) -> &'m mut V {
    if !map.contains_key(key) {
        map.insert(key.to_owned(), V::default());
    }
    map.get_mut(key).expect("inserted above")
}

/// A map's entries sorted by key, for stable output.
fn sorted<V>(map: &HashMap<String, V>) -> Vec<(&String, &V)> {
    let mut entries: Vec<_> = map.iter().collect();
    entries.sort_by(|a, b| a.0.cmp(b.0));
    entries
}

#[derive(Debug, Default)]
pub struct RouterMetrics {
    counters: Mutex<Counters>,
    pub latency: Histogram,
    /// Time the gateway adds on top of the upstream call.
    pub overhead: Histogram,
}

fn error_kind(error: &LlmError) -> String {
    match error {
        LlmError::Status { status, .. } => format!("http_{status}"),
        LlmError::Connect { .. } => "connect".into(),
        LlmError::Timeout { .. } => "timeout".into(),
        LlmError::Protocol { .. } => "protocol".into(),
        LlmError::Truncated { .. } => "truncated".into(),
        LlmError::Config(_) => "config".into(),
        LlmError::Budget(_) => "budget".into(),
        LlmError::CircuitOpen { .. } => "circuit_open".into(),
        LlmError::Saturated { .. } => "saturated".into(),
        LlmError::UnknownModel(_) => "unknown_model".into(),
        LlmError::InvalidRequest(_) => "invalid_request".into(),
    }
}

impl RouterMetrics {
    fn lock(&self) -> std::sync::MutexGuard<'_, Counters> {
        self.counters.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn add_usage(&self, provider: &str, model: &str, role: &str, usage: &Usage, cost: f64) {
        let mut c = self.lock();
        let u = entry(entry(entry(&mut c.usage, provider), model), role);
        // Token counts are the provider's word: a huge one must not overflow.
        u.tokens_in = u.tokens_in.saturating_add(usage.input_tokens);
        u.tokens_out = u.tokens_out.saturating_add(usage.output_tokens);
        u.cost_usd += cost;
        u.estimated_calls += u64::from(usage.estimated);
    }

    pub fn record_success(&self, route: &str, role: &str, completion: &Completion, elapsed: Duration) {
        self.latency.observe(elapsed);
        self.add_usage(
            &completion.provider,
            &completion.model,
            role,
            &completion.usage,
            completion.cost_usd,
        );
        *entry(entry(&mut self.lock().requests, route), "ok") += 1;
    }

    pub fn record_failure(&self, route: &str, error: &LlmError, elapsed: Duration) {
        self.latency.observe(elapsed);
        *entry(entry(&mut self.lock().requests, route), &error_kind(error)) += 1;
    }

    pub fn record_attempt_error(&self, target: &Target, error: &LlmError) {
        let key = (target.provider.clone(), target.model.clone(), error_kind(error));
        *self.lock().attempt_errors.entry(key).or_default() += 1;
    }

    pub fn record_abandoned(&self, target: &Target, role: &str, usage: &Usage, cost: f64) {
        self.add_usage(&target.provider, &target.model, role, usage, cost);
    }

    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        {
            let c = self.lock();
            out.push_str(
                "# HELP vapora_llm_requests_total Routed requests by route and outcome.\n\
                 # TYPE vapora_llm_requests_total counter\n",
            );
            for (route, outcomes) in sorted(&c.requests) {
                for (outcome, n) in sorted(outcomes) {
                    let _ = writeln!(
                        out,
                        "vapora_llm_requests_total{{route=\"{route}\",outcome=\"{outcome}\"}} {n}"
                    );
                }
            }
            out.push_str(
                "# HELP vapora_llm_attempt_errors_total Failed provider calls.\n\
                 # TYPE vapora_llm_attempt_errors_total counter\n",
            );
            for ((provider, model, kind), n) in &c.attempt_errors {
                let _ = writeln!(
                    out,
                    "vapora_llm_attempt_errors_total{{provider=\"{provider}\",model=\"{model}\",kind=\"{kind}\"}} {n}"
                );
            }
            for (name, help) in [
                ("vapora_llm_tokens_in_total", "Input tokens."),
                ("vapora_llm_tokens_out_total", "Output tokens."),
                ("vapora_llm_cost_usd_total", "Cost in USD."),
                (
                    "vapora_llm_estimated_usage_total",
                    "Calls whose usage was estimated.",
                ),
            ] {
                let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
                for (provider, models) in sorted(&c.usage) {
                    for (model, roles) in sorted(models) {
                        for (role, u) in sorted(roles) {
                            let value = match name {
                                "vapora_llm_tokens_in_total" => u.tokens_in.to_string(),
                                "vapora_llm_tokens_out_total" => u.tokens_out.to_string(),
                                "vapora_llm_cost_usd_total" => u.cost_usd.to_string(),
                                _ => u.estimated_calls.to_string(),
                            };
                            let _ = writeln!(
                                out,
                                "{name}{{provider=\"{provider}\",model=\"{model}\",role=\"{role}\"}} {value}"
                            );
                        }
                    }
                }
            }
        }
        self.latency.render(
            &mut out,
            "vapora_llm_request_duration_seconds",
            "Time to serve a routed request (to the first token for streams).",
        );
        self.overhead.render(
            &mut out,
            "vapora_llm_gateway_overhead_seconds",
            "Time the gateway adds to the upstream call.",
        );
        out
    }
}
