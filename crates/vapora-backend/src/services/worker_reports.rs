//! Workers' side of the task lifecycle: reports (from the in-process pool
//! and agent servers alike), dead letters and stalls (broker mode), all
//! through the attempt fence. What happens before a worker reports is in
//! [`super::dispatches`].
//!
//! The fence's rules are [`vapora_shared::lifecycle::judge`]; this module
//! reads and writes the tasks they judge. A stale report (a superseded
//! attempt, a task cancelled meanwhile) is recorded in `stale_report` and
//! dropped; a report about a task that does not exist is answered as such,
//! so a consumer can acknowledge it instead of retrying it forever.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use vapora_shared::lifecycle::{Verdict, judge};
use vapora_shared::wire::TaskReport;
use vapora_shared::{AgentId, Event, Task, TaskId, TaskProgress, TaskStatus};

use super::TaskService;
use crate::error::AppError;
use crate::storage::TaskWrite;

/// What a report did.
#[derive(Debug)]
pub enum ReportOutcome {
    /// The task moved (or changed hands); the stored task.
    Applied(Box<Task>),
    /// Nothing to store: progress, or a repeat of something already applied.
    Unchanged,
    /// About an attempt the task is no longer on: recorded and ignored.
    Stale,
    /// About a task that does not exist (deleted, or never ours).
    UnknownTask,
}

impl TaskService {
    /// Applies one worker report.
    pub async fn apply_report(&self, report: &TaskReport) -> Result<ReportOutcome, AppError> {
        let mut handed_over = false;
        let outcome = self.apply_report_once(report, &mut handed_over).await;
        if handed_over {
            self.apply_turned_away_result(report, &outcome).await;
        }
        outcome
    }

    async fn apply_report_once(
        &self,
        report: &TaskReport,
        handed_over: &mut bool,
    ) -> Result<ReportOutcome, AppError> {
        if let TaskReport::Progress { .. } = report {
            self.publish_progress(report);
            return Ok(ReportOutcome::Unchanged);
        }
        let mut stale = false;
        let change = self
            .update_task(report.task_id(), |task| {
                *handed_over = hands_over(report, task);
                let verdict = judge(report, task, Utc::now(), self.dispatched_at(report));
                stale = matches!(verdict, Verdict::Stale);
                Ok(match verdict {
                    Verdict::Move(next) => Some(*next),
                    Verdict::Stale | Verdict::Unchanged => None,
                })
            })
            .await;
        match change {
            Err(AppError::NotFound { .. }) => Ok(ReportOutcome::UnknownTask),
            change => self.conclude(report, change, stale).await,
        }
    }

    /// Applies a batch of reports (in the order received) with one read
    /// and one transaction, and answers each report as
    /// [`Self::apply_report`] would. A task's successive moves are written
    /// as one write that records each move in its history.
    ///
    /// The batch is only a shortcut: if any task changed meanwhile, or the
    /// read or the write fails, nothing was written and the reports are
    /// applied one by one, which re-reads on lost races and reports errors.
    pub async fn apply_reports(&self, reports: &[TaskReport]) -> Vec<Result<ReportOutcome, AppError>> {
        match self.judge_batch(reports).await {
            Some((verdicts, handed_over)) => {
                let mut outcomes = Vec::with_capacity(reports.len());
                for (report, verdict) in reports.iter().zip(verdicts) {
                    let Some(verdict) = verdict else {
                        outcomes.push(Ok(ReportOutcome::UnknownTask));
                        continue;
                    };
                    outcomes.push(match verdict {
                        Verdict::Move(next) => self.conclude(report, Ok(Some(*next)), false).await,
                        Verdict::Stale => self.conclude(report, Ok(None), true).await,
                        Verdict::Unchanged if matches!(report, TaskReport::Progress { .. }) => {
                            self.publish_progress(report);
                            Ok(ReportOutcome::Unchanged)
                        }
                        Verdict::Unchanged => self.conclude(report, Ok(None), false).await,
                    });
                }
                for (i, report) in reports.iter().enumerate() {
                    if handed_over[i] {
                        self.apply_turned_away_result(report, &outcomes[i]).await;
                    }
                }
                outcomes
            }
            None => {
                let mut outcomes = Vec::with_capacity(reports.len());
                for report in reports {
                    outcomes.push(self.apply_report(report).await);
                }
                outcomes
            }
        }
    }

    /// Judges every report against the stored tasks and writes the moves in
    /// one transaction; `None` when that did not happen (nothing written).
    /// A report about a task that does not exist is judged `None`. Also
    /// tells which reports hand a running attempt over ([`hands_over`]).
    async fn judge_batch(&self, reports: &[TaskReport]) -> Option<(Vec<Option<Verdict>>, Vec<bool>)> {
        let mut ids: Vec<TaskId> = reports
            .iter()
            .filter(|r| !matches!(r, TaskReport::Progress { .. }))
            .map(TaskReport::task_id)
            .collect();
        ids.sort_unstable();
        ids.dedup();
        let mut handed_over = vec![false; reports.len()];
        if ids.is_empty() {
            return Some((
                reports.iter().map(|_| Some(Verdict::Unchanged)).collect(),
                handed_over,
            ));
        }
        let mut writes: HashMap<TaskId, TaskWrite> = match self.db.get_tasks(&ids).await {
            Ok(stored) => stored
                .into_iter()
                .map(|s| (s.task.id, TaskWrite::unchanged(s)))
                .collect(),
            Err(e) => {
                tracing::debug!(error = %e, "batch read failed; applying reports one by one");
                return None;
            }
        };
        let mut changed = HashSet::new();
        let mut verdicts = Vec::with_capacity(reports.len());
        for (i, report) in reports.iter().enumerate() {
            if let TaskReport::Progress { .. } = report {
                verdicts.push(Some(Verdict::Unchanged));
                continue;
            }
            let Some(write) = writes.get_mut(&report.task_id()) else {
                verdicts.push(None);
                continue;
            };
            handed_over[i] = hands_over(report, &write.next);
            let verdict = judge(report, &write.next, Utc::now(), self.dispatched_at(report));
            if let Verdict::Move(next) = &verdict {
                write.then((**next).clone());
                changed.insert(next.id);
            }
            verdicts.push(Some(verdict));
        }
        let writes: Vec<TaskWrite> = writes
            .into_values()
            .filter(|w| changed.contains(&w.next.id))
            .collect();
        if writes.is_empty() {
            return Some((verdicts, handed_over));
        }
        match self.db.replace_tasks(&writes).await {
            Ok(true) => Some((verdicts, handed_over)),
            Ok(false) => None,
            Err(e) => {
                tracing::debug!(error = %e, "batch write failed; applying reports one by one");
                None
            }
        }
    }

    /// When the broker acknowledged the report's attempt, if its mark is
    /// still on the way.
    fn dispatched_at(&self, report: &TaskReport) -> Option<DateTime<Utc>> {
        self.dispatch_times.get(report.task_id(), report.attempt())
    }

    /// Announces what a report did and records it if it was stale.
    async fn conclude(
        &self,
        report: &TaskReport,
        change: Result<Option<Task>, AppError>,
        stale: bool,
    ) -> Result<ReportOutcome, AppError> {
        let (id, attempt, kind) = (report.task_id(), report.attempt(), report_kind(report));
        match self.publish_worker_change(id, attempt, kind, change)? {
            Some(task) => {
                if task.dispatched_at.is_some() {
                    // Stored with the move: no separate mark needed.
                    self.dispatch_times.forget(&[(id, attempt)]);
                }
                Ok(ReportOutcome::Applied(Box::new(task)))
            }
            None if stale => {
                let agent = report_agent(report);
                // A result is kept whole: it may have overtaken its own
                // worker's `started` (see `apply_turned_away_result`).
                let whole = matches!(report, TaskReport::Succeeded { .. } | TaskReport::Failed { .. })
                    .then(|| serde_json::to_string(report).expect("serializable"));
                self.db
                    .record_stale_report(id, attempt, kind, agent, whole)
                    .await?;
                Ok(ReportOutcome::Stale)
            }
            None => Ok(ReportOutcome::Unchanged),
        }
    }

    /// After `started` handed an attempt over to its worker: that worker's
    /// result may already have come and been turned away, since reports of
    /// one task can be applied out of order (replicas share the report
    /// consumer, and a report that could not be applied is redelivered
    /// later). The fence judged it against the previous holder; now that
    /// its worker holds the attempt it is applied, or the task would stay
    /// running with its result on file. A failure here is logged: the
    /// stall watcher still ends the task if its worker falls silent.
    async fn apply_turned_away_result(
        &self,
        started: &TaskReport,
        outcome: &Result<ReportOutcome, AppError>,
    ) {
        let (
            Ok(ReportOutcome::Applied(_)),
            TaskReport::Started {
                task_id,
                attempt,
                agent_id,
            },
        ) = (outcome, started)
        else {
            return;
        };
        let parked = match self.db.turned_away_result(*task_id, *attempt, agent_id).await {
            Ok(Some(json)) => json,
            Ok(None) => return,
            Err(e) => {
                return tracing::warn!(task = %task_id, error = %e, "cannot look for a turned-away result");
            }
        };
        let Ok(result) = serde_json::from_str::<TaskReport>(&parked) else {
            return;
        };
        tracing::info!(task = %task_id, attempt, agent = %agent_id, "result that overtook its own start applied");
        if let Err(e) = self.apply_report_once(&result, &mut false).await {
            tracing::warn!(task = %task_id, error = %e, "turned-away result not applied");
        }
    }

    /// Streamed output goes straight to dashboards. It is not checked
    /// against the stored attempt (a read per chunk); the event names its
    /// attempt for dashboards to match.
    pub fn publish_progress(&self, report: &TaskReport) {
        if let TaskReport::Progress {
            task_id,
            project_id,
            attempt,
            agent_id,
            seq,
            chunk,
        } = report
        {
            self.events.publish(&Event::TaskProgress(TaskProgress {
                task_id: *task_id,
                project_id: *project_id,
                attempt: *attempt,
                agent_id: agent_id.clone(),
                seq: *seq,
                chunk: chunk.clone(),
            }));
        }
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
        let error = format!(
            "{DEAD_LETTERED}: attempt {attempt} was delivered {deliveries} times and no worker finished it"
        );
        self.fail_attempt(id, attempt, "dead letter", error, |task| {
            matches!(task.status, TaskStatus::Queued | TaskStatus::Running)
        })
        .await
    }

    /// Running tasks (broker mode: the stall watcher's rounds).
    pub async fn running(&self) -> Result<Vec<Task>, AppError> {
        let stored = self.db.tasks_in_status(&[TaskStatus::Running]).await?;
        Ok(stored.into_iter().map(|s| s.task).collect())
    }

    /// Fails `attempt` of a running task whose agent went silent, unless
    /// the task changed since `seen` was read (a report came after all).
    pub async fn fail_stalled(
        &self,
        seen: &Task,
        silent_for: std::time::Duration,
    ) -> Result<Option<Task>, AppError> {
        let agent = seen.assigned_agent.as_ref().map_or("no agent", |a| a.0.as_str());
        let error = format!(
            "{STALLED}: attempt {} got no report or heartbeat from {agent} for {} s",
            seen.attempt,
            silent_for.as_secs()
        );
        let failed = self
            .fail_attempt(seen.id, seen.attempt, "stall", error, |task| {
                task.status == TaskStatus::Running && task.updated_at == seen.updated_at
            })
            .await?;
        if failed.is_some() {
            // Should the worker come back, it stops rather than answering late.
            self.running.cancel(seen.id, seen.attempt).await;
        }
        Ok(failed)
    }

    /// Moves `attempt` of the task to `failed` with `error`, if it is still
    /// the current attempt and `still` holds for the stored task.
    async fn fail_attempt(
        &self,
        id: TaskId,
        attempt: u32,
        what: &str,
        error: String,
        still: impl Fn(&Task) -> bool,
    ) -> Result<Option<Task>, AppError> {
        let now = Utc::now();
        let failed = self
            .update_task(id, |task| {
                if task.attempt != attempt || !still(task) {
                    return Ok(None);
                }
                let mut next = task.clone();
                next.move_to(TaskStatus::Failed, now);
                next.error = Some(error.clone());
                next.updated_at = now;
                Ok(Some(next))
            })
            .await;
        self.publish_worker_change(id, attempt, what, failed)
    }
}

/// Prefix of the error of a task failed because its attempt was dead-lettered.
pub const DEAD_LETTERED: &str = "dead_lettered";
/// Prefix of the error of a task failed because its agent went silent.
pub const STALLED: &str = "stalled";

/// Whether `report` is a `started` that hands the running attempt of
/// `task` over to another worker (it was redelivered).
fn hands_over(report: &TaskReport, task: &Task) -> bool {
    matches!(report, TaskReport::Started { agent_id, attempt, .. }
        if task.status == TaskStatus::Running
            && task.attempt == *attempt
            && task.assigned_agent.as_ref() != Some(agent_id))
}

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
