//! Remote workers' side of the task lifecycle (broker mode): dispatch
//! bookkeeping, reports, and dead letters, all through the attempt fence.
//!
//! A report moves a task only if it is about the attempt the task is on and
//! the move makes sense from the stored state. Anything else is *stale* (a
//! superseded attempt, a task cancelled meanwhile): it is recorded in
//! `stale_report` and dropped. JetStream delivers at least once and two
//! replicas may share the work, so reports can come twice or out of order;
//! every rule below is idempotent, and a result may arrive before its
//! `started`.

use chrono::Utc;
use vapora_shared::wire::TaskReport;
use vapora_shared::{AgentId, Event, Task, TaskId, TaskProgress, TaskStatus};

use super::TaskService;
use super::tasks::{move_to, record_outcome};
use crate::error::AppError;

/// What a report did.
#[derive(Debug)]
pub enum ReportOutcome {
    /// The task moved (or changed hands); the stored task.
    Applied(Box<Task>),
    /// Nothing to store: progress, or a repeat of something already applied.
    Unchanged,
    /// About an attempt the task is no longer on: recorded and ignored.
    Stale,
}

impl TaskService {
    /// The tasks behind queue entries whose attempt still waits to be
    /// dispatched (not cancelled, superseded or already handed over), in
    /// the order asked.
    pub async fn awaiting_dispatch(&self, attempts: &[(TaskId, u32)]) -> Result<Vec<Task>, AppError> {
        let ids: Vec<TaskId> = attempts.iter().map(|(id, _)| *id).collect();
        let mut stored: std::collections::HashMap<TaskId, Task> = self
            .db
            .get_tasks(&ids)
            .await?
            .into_iter()
            .map(|s| (s.task.id, s.task))
            .collect();
        Ok(attempts
            .iter()
            .filter_map(|(id, attempt)| stored.remove(id).filter(|t| t.attempt == *attempt))
            .filter(|t| t.status == TaskStatus::Queued && t.dispatched_at.is_none())
            .collect())
    }

    /// Records that the broker acknowledged these attempts (one
    /// transaction). Attempts no longer current are skipped. The mark is
    /// bookkeeping, not a move, so it is not announced on the WebSocket.
    pub async fn mark_dispatched(&self, attempts: &[(TaskId, u32)]) -> Result<usize, AppError> {
        Ok(self.db.mark_dispatched(attempts, Utc::now()).await?)
    }

    /// Applies one worker report.
    pub async fn apply_report(&self, report: &TaskReport) -> Result<ReportOutcome, AppError> {
        let (id, attempt) = (report.task_id(), report.attempt());
        let now = Utc::now();
        let mut stale = false;
        let change = match report {
            TaskReport::Progress {
                project_id,
                agent_id,
                seq,
                chunk,
                ..
            } => {
                // Not checked against the stored attempt (a read per chunk);
                // the event names its attempt for dashboards to match.
                self.events.publish(&Event::TaskProgress(TaskProgress {
                    task_id: id,
                    project_id: *project_id,
                    attempt,
                    agent_id: agent_id.clone(),
                    seq: *seq,
                    chunk: chunk.clone(),
                }));
                return Ok(ReportOutcome::Unchanged);
            }
            TaskReport::Started { agent_id, .. } => {
                self.update_task(id, |task| {
                    stale = task.attempt != attempt
                        || !matches!(task.status, TaskStatus::Queued | TaskStatus::Running);
                    if stale || task.assigned_agent.as_ref() == Some(agent_id) {
                        return Ok(None);
                    }
                    let mut next = task.clone();
                    if task.status == TaskStatus::Queued {
                        move_to(&mut next, TaskStatus::Running);
                        next.dispatched_at.get_or_insert(now);
                        next.started_at = Some(now);
                    }
                    // Running already: the attempt was redelivered to another
                    // worker after the first one went quiet.
                    next.assigned_agent = Some(agent_id.clone());
                    next.updated_at = now;
                    Ok(Some(next))
                })
                .await
            }
            TaskReport::Succeeded { agent_id, result, .. } => {
                self.finish_reported(id, attempt, agent_id, Ok(result), &mut stale)
                    .await
            }
            TaskReport::Failed { agent_id, error, .. } => {
                self.finish_reported(id, attempt, agent_id, Err(error), &mut stale)
                    .await
            }
        };
        let kind = report_kind(report);
        match self.publish_worker_change(id, attempt, kind, change)? {
            Some(task) => Ok(ReportOutcome::Applied(Box::new(task))),
            None if stale => {
                let agent = report_agent(report);
                self.db.record_stale_report(id, attempt, kind, agent).await?;
                Ok(ReportOutcome::Stale)
            }
            None => Ok(ReportOutcome::Unchanged),
        }
    }

    async fn finish_reported(
        &self,
        id: TaskId,
        attempt: u32,
        agent: &AgentId,
        outcome: Result<&vapora_shared::TaskResult, &String>,
        stale: &mut bool,
    ) -> Result<Option<Task>, AppError> {
        let now = Utc::now();
        self.update_task(id, |task| {
            let open = matches!(task.status, TaskStatus::Queued | TaskStatus::Running);
            // A repeat of a result already applied is a duplicate, not stale.
            *stale =
                task.attempt != attempt || matches!(task.status, TaskStatus::Cancelled | TaskStatus::Todo);
            if task.attempt != attempt || !open {
                return Ok(None);
            }
            let mut next = task.clone();
            if task.status == TaskStatus::Queued {
                // The result overtook its `started`.
                next.dispatched_at.get_or_insert(now);
                next.started_at = Some(now);
            }
            next.assigned_agent = Some(agent.clone());
            record_outcome(&mut next, outcome);
            next.updated_at = now;
            Ok(Some(next))
        })
        .await
    }

    /// JetStream gave up on `attempt` after `deliveries` deliveries: the
    /// task fails with `dead_lettered` (a person may retry it). Recorded in
    /// the dead-letter listing whether or not the attempt was still current.
    pub async fn fail_dead_lettered(
        &self,
        id: TaskId,
        attempt: u32,
        role: &vapora_shared::Role,
        deliveries: u64,
        stream_seq: u64,
    ) -> Result<Option<Task>, AppError> {
        self.db
            .record_dead_letter(id, attempt, role, deliveries, stream_seq)
            .await?;
        let now = Utc::now();
        let failed = self
            .update_task(id, |task| {
                if task.attempt != attempt || !matches!(task.status, TaskStatus::Queued | TaskStatus::Running)
                {
                    return Ok(None);
                }
                let mut next = task.clone();
                move_to(&mut next, TaskStatus::Failed);
                next.error = Some(format!(
                    "{DEAD_LETTERED}: attempt {attempt} was delivered {deliveries} times and no worker finished it"
                ));
                next.updated_at = now;
                Ok(Some(next))
            })
            .await;
        self.publish_worker_change(id, attempt, "dead letter", failed)
    }
}

/// Prefix of the error of a task failed because its attempt was dead-lettered.
pub const DEAD_LETTERED: &str = "dead_lettered";

fn report_kind(report: &TaskReport) -> &'static str {
    match report {
        TaskReport::Started { .. } => "started",
        TaskReport::Progress { .. } => "progress",
        TaskReport::Succeeded { .. } => "succeeded",
        TaskReport::Failed { .. } => "failed",
    }
}

fn report_agent(report: &TaskReport) -> &AgentId {
    match report {
        TaskReport::Started { agent_id, .. }
        | TaskReport::Progress { agent_id, .. }
        | TaskReport::Succeeded { agent_id, .. }
        | TaskReport::Failed { agent_id, .. } => agent_id,
    }
}
