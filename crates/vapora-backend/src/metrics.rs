//! The backend's metrics and their Prometheus text exposition (served by
//! `api::metrics`).
//!
//! Counters are plain atomics bumped where the events happen (no per-request
//! middleware, so the hot paths pay nothing); gauges are read at scrape time
//! by the handler and handed in as [`Gauges`].

use std::fmt::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use vapora_shared::{AgentStatus, Task, TaskStatus};

#[derive(Debug, Default)]
struct Counters {
    tasks_created: AtomicU64,
    /// Indexed like `TaskStatus::ALL`.
    transitions: [AtomicU64; TaskStatus::ALL.len()],
    tokens_in: AtomicU64,
    tokens_out: AtomicU64,
    /// Cost in micro-dollars, so it fits an integer atomic.
    cost_micro_usd: AtomicU64,
    /// Worker reports dropped unapplied, indexed like [`RejectedReport::ALL`].
    rejected_reports: [AtomicU64; 2],
}

/// Why a worker report was dropped without moving a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectedReport {
    /// Not a report: the payload did not parse.
    Unreadable,
    /// About a task this backend does not have.
    UnknownTask,
}

impl RejectedReport {
    const ALL: [RejectedReport; 2] = [Self::Unreadable, Self::UnknownTask];

    fn as_str(self) -> &'static str {
        match self {
            Self::Unreadable => "unreadable",
            Self::UnknownTask => "unknown_task",
        }
    }
}

/// What the scrape reads from live state rather than from counters.
#[derive(Debug, Default)]
pub struct Gauges {
    pub queue_depth: u64,
    pub queue_capacity: u64,
    /// Agents per status.
    pub agents: Vec<(AgentStatus, u64)>,
    pub websocket_clients: u64,
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

    /// Counts a worker report that was dropped, and why.
    pub fn report_rejected(&self, why: RejectedReport) {
        let index = RejectedReport::ALL.iter().position(|r| *r == why).unwrap_or(0);
        self.counters.rejected_reports[index].fetch_add(1, Ordering::Relaxed);
    }

    /// Prometheus text exposition of every counter and of `gauges`.
    pub fn render(&self, gauges: &Gauges) -> String {
        let mut out = Exposition::default();
        self.write_counters(&mut out);
        write_gauges(&mut out, gauges);
        out.0
    }

    fn write_counters(&self, out: &mut Exposition) {
        let c = &self.counters;
        let load = |n: &AtomicU64| n.load(Ordering::Relaxed);
        out.metric(
            "vapora_tasks_created_total",
            "counter",
            "Tasks created.",
            &plain(load(&c.tasks_created)),
        );
        let transitions: Vec<_> = TaskStatus::ALL
            .iter()
            .zip(&c.transitions)
            .map(|(s, n)| (format!("{{status=\"{s}\"}}"), load(n)))
            .collect();
        out.metric(
            "vapora_task_transitions_total",
            "counter",
            "Task status changes, by new status.",
            &transitions,
        );
        out.metric(
            "vapora_llm_tokens_in_total",
            "counter",
            "Input tokens of finished tasks.",
            &plain(load(&c.tokens_in)),
        );
        out.metric(
            "vapora_llm_tokens_out_total",
            "counter",
            "Output tokens of finished tasks.",
            &plain(load(&c.tokens_out)),
        );
        out.metric(
            "vapora_llm_cost_micro_usd_total",
            "counter",
            "Cost of finished tasks in millionths of a USD.",
            &plain(load(&c.cost_micro_usd)),
        );
        let rejected: Vec<_> = RejectedReport::ALL
            .iter()
            .zip(&c.rejected_reports)
            .map(|(r, n)| (format!("{{reason=\"{}\"}}", r.as_str()), load(n)))
            .collect();
        out.metric(
            "vapora_worker_reports_rejected_total",
            "counter",
            "Worker reports dropped without moving a task, by reason.",
            &rejected,
        );
    }
}

fn write_gauges(out: &mut Exposition, gauges: &Gauges) {
    out.metric(
        "vapora_queue_depth",
        "gauge",
        "Tasks waiting in the queue.",
        &plain(gauges.queue_depth),
    );
    out.metric(
        "vapora_queue_capacity",
        "gauge",
        "Capacity of the queue.",
        &plain(gauges.queue_capacity),
    );
    let by_status: Vec<_> = gauges
        .agents
        .iter()
        .map(|(status, n)| {
            let label = serde_json::to_value(status)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            (format!("{{status=\"{label}\"}}"), *n)
        })
        .collect();
    out.metric("vapora_agents", "gauge", "Agents, by status.", &by_status);
    out.metric(
        "vapora_websocket_clients",
        "gauge",
        "Connected WebSocket clients.",
        &plain(gauges.websocket_clients),
    );
}

/// The text being built for one scrape.
#[derive(Default)]
struct Exposition(String);

impl Exposition {
    fn metric(&mut self, name: &str, kind: &str, help: &str, samples: &[(String, u64)]) {
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, value) in samples {
            let _ = writeln!(self.0, "{name}{labels} {value}");
        }
    }
}

/// One unlabelled sample.
fn plain(value: u64) -> Vec<(String, u64)> {
    vec![(String::new(), value)]
}
