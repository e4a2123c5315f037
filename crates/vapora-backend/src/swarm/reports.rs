//! Workers' reports, from wherever they come: the in-process pool or agent
//! servers over JetStream. Both hand them to [`ReportIntake::apply`], so a
//! report moves a task through the same attempt fence
//! ([`TaskService::apply_reports`]) and has the same effects after the
//! write, whoever ran the attempt.

use vapora_shared::wire::TaskReport;
use vapora_shared::{AgentId, Event, TaskId};

use crate::error::AppError;
use crate::events::EventBus;
use crate::metrics::{Metrics, RejectedReport};
use crate::services::{ReportOutcome, TaskService};
use crate::swarm::registry::{Activity, AgentRegistry};

/// Applies reports to tasks and the agent registry; cheap to clone.
#[derive(Debug, Clone)]
pub struct ReportIntake {
    pub tasks: TaskService,
    pub registry: AgentRegistry,
    pub events: EventBus,
    pub metrics: Metrics,
}

impl ReportIntake {
    /// Applies `reports` (in the order received) and answers each. The task
    /// service publishes the task moves; here the agent registry follows,
    /// and a worker still running an attempt nobody wants is told to stop.
    pub async fn apply(&self, reports: &[TaskReport]) -> Vec<Result<ReportOutcome, AppError>> {
        let outcomes = self.tasks.apply_reports(reports).await;
        for (report, outcome) in reports.iter().zip(&outcomes) {
            match outcome {
                Ok(ReportOutcome::Applied(_)) => self.note_in_registry(report).await,
                Ok(ReportOutcome::Stale) if matches!(report, TaskReport::Started { .. }) => {
                    self.tasks
                        .running_tasks()
                        .cancel(report.task_id(), report.attempt())
                        .await;
                }
                Ok(ReportOutcome::UnknownTask) => {
                    tracing::debug!(task = %report.task_id(), "report for an unknown task dropped");
                    self.metrics.report_rejected(RejectedReport::UnknownTask);
                }
                _ => {}
            }
        }
        outcomes
    }

    async fn note_in_registry(&self, report: &TaskReport) {
        let (agent, activity) = match report {
            TaskReport::Started { agent_id, .. } => (agent_id, Activity::Started),
            TaskReport::Succeeded { agent_id, .. } => (agent_id, Activity::Succeeded),
            TaskReport::Failed { agent_id, .. } => (agent_id, Activity::Failed),
            TaskReport::Progress { .. } => return,
        };
        self.note(agent, report.task_id(), activity).await;
    }

    /// An in-process agent's attempt ended without a final report
    /// (cancelled, or cut by shutdown): the agent is free again.
    pub async fn attempt_stopped(&self, agent: &AgentId, task: TaskId) {
        self.note(agent, task, Activity::Stopped).await;
    }

    async fn note(&self, agent: &AgentId, task: TaskId, activity: Activity) {
        if let Some(agent) = self.registry.note_activity(agent, task, activity).await {
            self.events.publish(&Event::AgentUpdated(agent));
        }
    }
}
