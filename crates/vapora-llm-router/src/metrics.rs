//! Router metrics in Prometheus text format: requests, errors, latency and
//! added-overhead histograms, tokens and cost by provider, model and role.
//!
//! Counters sit in a map behind a `std::sync::Mutex` (a few hundred
//! nanoseconds per request, never held across an `.await`); histograms are
//! fixed buckets of atomics.

use std::collections::BTreeMap;
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

#[derive(Debug, Default)]
struct Counters {
    /// (route, outcome) -> requests.
    requests: BTreeMap<(String, String), u64>,
    /// (provider, model, kind) -> failed attempts.
    attempt_errors: BTreeMap<(String, String, String), u64>,
    /// (provider, model, role) -> usage.
    usage: BTreeMap<(String, String, String), Usage3>,
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
        let u = c
            .usage
            .entry((provider.to_owned(), model.to_owned(), role.to_owned()))
            .or_default();
        u.tokens_in += usage.input_tokens;
        u.tokens_out += usage.output_tokens;
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
        *self
            .lock()
            .requests
            .entry((route.to_owned(), "ok".into()))
            .or_default() += 1;
    }

    pub fn record_failure(&self, route: &str, _role: &str, error: &LlmError, elapsed: Duration) {
        self.latency.observe(elapsed);
        *self
            .lock()
            .requests
            .entry((route.to_owned(), error_kind(error)))
            .or_default() += 1;
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
            out.push_str("# HELP vapora_llm_requests_total Routed requests by route and outcome.\n# TYPE vapora_llm_requests_total counter\n");
            for ((route, outcome), n) in &c.requests {
                let _ = writeln!(
                    out,
                    "vapora_llm_requests_total{{route=\"{route}\",outcome=\"{outcome}\"}} {n}"
                );
            }
            out.push_str("# HELP vapora_llm_attempt_errors_total Failed provider calls.\n# TYPE vapora_llm_attempt_errors_total counter\n");
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
                let kind = "counter";
                let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
                for ((provider, model, role), u) in &c.usage {
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
