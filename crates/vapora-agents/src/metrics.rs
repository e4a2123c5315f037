//! What an agent server exposes at `GET /metrics` (when
//! `VAPORA_AGENT_METRICS_ADDR` is set), in the Prometheus text format
//! through `prometheus-client`:
//!
//! - `vapora_agent_attempts_total{role, outcome}`: attempts ended, by how
//!   (`succeeded`, `failed`, `superseded`, `cancelled`, `interrupted`,
//!   `undelivered`);
//! - `vapora_agent_attempts_in_flight`: attempts running now;
//! - `vapora_agent_attempt_duration_seconds{role}`: how long attempts ran,
//!   the model call being nearly all of it.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use vapora_shared::Role;

use crate::attempt::AttemptOutcome;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AttemptLabels {
    role: String,
    outcome: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RoleLabels {
    role: String,
}

type DurationFamily = Family<RoleLabels, Histogram, fn() -> Histogram>;

/// The agent server's metrics; cheap to clone, shared by every attempt.
#[derive(Debug, Clone)]
pub struct AgentMetrics(Arc<Metrics>);

#[derive(Debug)]
struct Metrics {
    registry: Registry,
    attempts: Family<AttemptLabels, Counter>,
    in_flight: Gauge,
    durations: DurationFamily,
}

impl Default for AgentMetrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Counts an attempt as in flight while it lives.
#[derive(Debug)]
pub struct InFlight(Gauge);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl AgentMetrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("vapora_agent");
        let attempts = Family::<AttemptLabels, Counter>::default();
        registry.register(
            "attempts",
            "Attempts ended, by role and outcome",
            attempts.clone(),
        );
        let in_flight = Gauge::default();
        registry.register("attempts_in_flight", "Attempts running now", in_flight.clone());
        // 10 ms to about 10 minutes.
        let durations: DurationFamily =
            Family::new_with_constructor(|| Histogram::new(exponential_buckets(0.01, 2.0, 16)));
        registry.register(
            "attempt_duration_seconds",
            "How long attempts ran, by role",
            durations.clone(),
        );
        Self(Arc::new(Metrics {
            registry,
            attempts,
            in_flight,
            durations,
        }))
    }

    /// Marks an attempt as running until the guard is dropped.
    pub fn in_flight(&self) -> InFlight {
        self.0.in_flight.inc();
        InFlight(self.0.in_flight.clone())
    }

    /// Records how an attempt of `role` ended and how long it took.
    pub fn attempt_ended(&self, role: &Role, outcome: &AttemptOutcome, took: Duration) {
        let outcome = match outcome {
            AttemptOutcome::Reported { succeeded: true } => "succeeded",
            AttemptOutcome::Reported { succeeded: false } => "failed",
            AttemptOutcome::Superseded => "superseded",
            AttemptOutcome::Cancelled => "cancelled",
            AttemptOutcome::Interrupted => "interrupted",
            AttemptOutcome::Undelivered(_) => "undelivered",
        };
        let role = role.as_str().to_owned();
        self.0
            .attempts
            .get_or_create(&AttemptLabels {
                role: role.clone(),
                outcome: outcome.into(),
            })
            .inc();
        self.0
            .durations
            .get_or_create(&RoleLabels { role })
            .observe(took.as_secs_f64());
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.0.registry).expect("writing to a String");
        text
    }
}

/// `GET /metrics` and `GET /health` for an agent server.
pub fn router(metrics: AgentMetrics) -> axum::Router {
    use axum::http::header;
    use axum::routing::get;
    axum::Router::new()
        .route(
            "/metrics",
            get(move || {
                let metrics = metrics.clone();
                async move {
                    (
                        [(
                            header::CONTENT_TYPE,
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        )],
                        metrics.render(),
                    )
                }
            }),
        )
        .route(
            "/health",
            get(|| async { axum::Json(serde_json::json!({ "status": "ok" })) }),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_and_in_flight_show_in_the_exposition() {
        let metrics = AgentMetrics::new();
        let developer = Role::parse("developer").unwrap();
        {
            let _running = metrics.in_flight();
            assert!(metrics.render().contains("vapora_agent_attempts_in_flight 1"));
        }
        metrics.attempt_ended(
            &developer,
            &AttemptOutcome::Reported { succeeded: true },
            Duration::from_millis(50),
        );
        metrics.attempt_ended(
            &developer,
            &AttemptOutcome::Reported { succeeded: true },
            Duration::from_millis(70),
        );
        metrics.attempt_ended(&developer, &AttemptOutcome::Cancelled, Duration::from_millis(5));
        let text = metrics.render();
        assert!(text.contains("vapora_agent_attempts_in_flight 0"), "{text}");
        assert!(
            text.contains(r#"vapora_agent_attempts_total{role="developer",outcome="succeeded"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"vapora_agent_attempts_total{role="developer",outcome="cancelled"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"vapora_agent_attempt_duration_seconds_count{role="developer"} 3"#),
            "{text}"
        );
    }
}
