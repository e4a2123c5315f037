//! `GET /metrics`: Prometheus text exposition.
//!
//! Counters are plain atomics bumped where the events happen (no per-request
//! middleware, so the hot paths pay nothing); gauges are read at scrape time.

use std::fmt::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use vapora_shared::{AgentStatus, Task, TaskStatus};

use crate::api::SharedState;

#[derive(Debug, Default)]
struct Counters {
    tasks_created: AtomicU64,
    /// Indexed like `TaskStatus::ALL`.
    transitions: [AtomicU64; 7],
    tokens_in: AtomicU64,
    tokens_out: AtomicU64,
    /// Cost in micro-dollars, so it fits an integer atomic.
    cost_micro_usd: AtomicU64,
}

#[derive(Debug, Clone, Default)]
pub struct Metrics {
    counters: Arc<Counters>,
}

impl Metrics {
    pub fn task_created(&self) {
        self.counters.tasks_created.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a status change; a finished result also counts its usage.
    pub fn task_moved(&self, task: &Task) {
        let index = TaskStatus::ALL
            .iter()
            .position(|s| *s == task.status)
            .expect("every status is listed");
        self.counters.transitions[index].fetch_add(1, Ordering::Relaxed);
        if let (TaskStatus::Done | TaskStatus::Review, Some(result)) = (task.status, &task.result) {
            self.counters
                .tokens_in
                .fetch_add(result.tokens_in, Ordering::Relaxed);
            self.counters
                .tokens_out
                .fetch_add(result.tokens_out, Ordering::Relaxed);
            let micro = (result.cost_usd * 1e6).round().max(0.0) as u64;
            self.counters.cost_micro_usd.fetch_add(micro, Ordering::Relaxed);
        }
    }
}

pub async fn render(State(state): State<SharedState>) -> impl IntoResponse {
    let c = &state.metrics.counters;
    let mut out = String::with_capacity(2048);
    let mut metric = |name: &str, kind: &str, help: &str, samples: &[(String, u64)]| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, value) in samples {
            let _ = writeln!(out, "{name}{labels} {value}");
        }
    };
    let plain = |v: u64| vec![(String::new(), v)];

    metric(
        "vapora_tasks_created_total",
        "counter",
        "Tasks created.",
        &plain(c.tasks_created.load(Ordering::Relaxed)),
    );
    let transitions: Vec<_> = TaskStatus::ALL
        .iter()
        .zip(&c.transitions)
        .map(|(s, n)| (format!("{{status=\"{s}\"}}"), n.load(Ordering::Relaxed)))
        .collect();
    metric(
        "vapora_task_transitions_total",
        "counter",
        "Task status changes, by new status.",
        &transitions,
    );
    metric(
        "vapora_llm_tokens_in_total",
        "counter",
        "Input tokens of finished tasks.",
        &plain(c.tokens_in.load(Ordering::Relaxed)),
    );
    metric(
        "vapora_llm_tokens_out_total",
        "counter",
        "Output tokens of finished tasks.",
        &plain(c.tokens_out.load(Ordering::Relaxed)),
    );
    metric(
        "vapora_llm_cost_micro_usd_total",
        "counter",
        "Cost of finished tasks in millionths of a USD.",
        &plain(c.cost_micro_usd.load(Ordering::Relaxed)),
    );

    let queued = state.task_queue.queue.lock().await.len() as u64;
    metric(
        "vapora_queue_depth",
        "gauge",
        "Tasks waiting in the queue.",
        &plain(queued),
    );
    metric(
        "vapora_queue_capacity",
        "gauge",
        "Capacity of the queue.",
        &plain(state.task_queue.capacity() as u64),
    );
    let agents = state.agent_registry.list().await;
    let by_status: Vec<_> = [AgentStatus::Idle, AgentStatus::Busy, AgentStatus::Offline]
        .into_iter()
        .map(|s| {
            let label = serde_json::to_value(s)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            (
                format!("{{status=\"{label}\"}}"),
                agents.iter().filter(|a| a.status == s).count() as u64,
            )
        })
        .collect();
    metric("vapora_agents", "gauge", "Agents, by status.", &by_status);
    metric(
        "vapora_websocket_clients",
        "gauge",
        "Connected WebSocket clients.",
        &plain(state.events.subscribers() as u64),
    );

    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out)
}
