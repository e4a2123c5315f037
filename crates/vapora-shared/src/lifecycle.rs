//! How a task's state changes: the bookkeeping of a status move, and the
//! attempt fence that decides what a worker's report does to a task.
//!
//! These are pure functions of the stored task, the report and the time
//! (`now` is always an argument), so every process and every test applies
//! the same rules, and a replay gives the same answer. Persisting the
//! result, and the effects that follow a successful write, are the
//! backend's business.
//!
//! The fence: a report moves a task only if it is about the attempt the
//! task is on, comes from the agent holding that attempt (the last one to
//! report `started`; before any has, whoever answers first) and the move
//! makes sense from the stored state. Anything else is *stale* (a
//! superseded attempt, a task cancelled meanwhile, a worker whose attempt
//! was handed to another after it went quiet). Reports
//! can arrive twice or out of order (at-least-once delivery, several
//! replicas), so every rule is idempotent, and a result may arrive before
//! its `started`.

use chrono::{DateTime, Utc};

use crate::task::{MAX_COMMENT_LEN, validate_text};
use crate::wire::TaskReport;
use crate::{AgentId, Rejection, Task, TaskPatch, TaskResult, TaskStatus, TransitionError, ValidationError};

/// What a person asks of a task, through the API.
#[derive(Debug, Clone)]
pub enum UserChange {
    Patch(TaskPatch),
    Cancel,
    Retry,
    /// A person accepts the result of a task in review.
    Approve,
    /// A person sends the result of a task in review back, saying why: it
    /// runs again as a new attempt that sees the comment and the output.
    Reject {
        comment: String,
    },
}

/// Why a person's change was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ChangeRefused {
    #[error("the task is running; cancel it (or wait for it) before editing")]
    EditWhileRunning,
    #[error("only failed tasks can be retried; this one is {0}")]
    NotRetryable(TaskStatus),
    #[error("only tasks in review can be {0}; this one is {1}")]
    NotInReview(&'static str, TaskStatus),
    #[error(transparent)]
    Transition(#[from] TransitionError),
    #[error(transparent)]
    Invalid(#[from] ValidationError),
}

impl UserChange {
    /// The task after this change, or why it is refused. Queue room and
    /// the side effects of the move are the caller's business.
    pub fn apply(&self, task: &Task, now: DateTime<Utc>) -> Result<Task, ChangeRefused> {
        let (mut next, target) = match self {
            UserChange::Patch(patch) => {
                if patch.edits_fields() && task.status == TaskStatus::Running {
                    return Err(ChangeRefused::EditWhileRunning);
                }
                (patch.apply_fields(task)?, patch.status)
            }
            UserChange::Cancel => (task.clone(), Some(TaskStatus::Cancelled)),
            UserChange::Retry if task.status != TaskStatus::Failed => {
                return Err(ChangeRefused::NotRetryable(task.status));
            }
            UserChange::Retry => (task.clone(), Some(TaskStatus::Queued)),
            UserChange::Approve | UserChange::Reject { .. } if task.status != TaskStatus::Review => {
                let action = if matches!(self, UserChange::Approve) {
                    "approved"
                } else {
                    "rejected"
                };
                return Err(ChangeRefused::NotInReview(action, task.status));
            }
            UserChange::Approve => (task.clone(), Some(TaskStatus::Done)),
            UserChange::Reject { comment } => {
                validate_text("comment", comment, MAX_COMMENT_LEN, false)?;
                let mut next = task.clone();
                next.rejection = Some(Rejection {
                    attempt: task.attempt,
                    comment: comment.clone(),
                    previous_output: task.result.as_ref().map(|r| r.output.clone()).unwrap_or_default(),
                    at: now,
                });
                (next, Some(TaskStatus::Queued))
            }
        };
        if let Some(to) = target.filter(|to| *to != task.status) {
            if !task.status.can_be_moved_by_user_to(to) {
                return Err(TransitionError {
                    from: task.status,
                    to,
                }
                .into());
            }
            next.move_to(to, now);
        }
        next.updated_at = now;
        Ok(next)
    }
}

impl Task {
    /// Moves the task to `to` with the bookkeeping that goes with it: a new
    /// dispatch is a new attempt with a clean slate; reaching a final state
    /// stamps the end.
    pub fn move_to(&mut self, to: TaskStatus, now: DateTime<Utc>) {
        match to {
            TaskStatus::Queued => {
                self.attempt += 1;
                self.assigned_agent = None;
                self.dispatched_at = None;
                self.result = None;
                self.error = None;
                self.started_at = None;
                self.finished_at = None;
            }
            TaskStatus::Done | TaskStatus::Failed | TaskStatus::Cancelled | TaskStatus::Review => {
                self.finished_at = Some(now);
            }
            TaskStatus::Waiting => {
                // Back from `failed` (a retry): the old outcome goes.
                self.result = None;
                self.error = None;
                self.finished_at = None;
            }
            TaskStatus::Todo | TaskStatus::Running => {}
        }
        self.status = to;
    }

    /// Moves a running attempt to its outcome: `done` (or `review` when the
    /// task needs approval) with the result, or `failed` with the error.
    pub fn record_outcome(&mut self, outcome: Result<&TaskResult, &String>, now: DateTime<Utc>) {
        match outcome {
            Ok(result) => {
                let to = if self.requires_approval {
                    TaskStatus::Review
                } else {
                    TaskStatus::Done
                };
                self.move_to(to, now);
                self.result = Some(result.clone());
            }
            Err(error) => {
                self.move_to(TaskStatus::Failed, now);
                self.error = Some(error.clone());
            }
        }
    }
}

/// What the attempt fence makes of a report, judged against a task's state.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// The task moves (or changes hands) to this state.
    Move(Box<Task>),
    /// Nothing to store: progress, or a repeat of something already applied.
    Unchanged,
    /// About an attempt the task is no longer on.
    Stale,
}

/// Judges `report` against `task` as stored. `dispatched_at` is when the
/// broker acknowledged the attempt, if known and not stored yet.
pub fn judge(
    report: &TaskReport,
    task: &Task,
    now: DateTime<Utc>,
    dispatched_at: Option<DateTime<Utc>>,
) -> Verdict {
    let current_attempt = task.attempt == report.attempt();
    let open = matches!(task.status, TaskStatus::Queued | TaskStatus::Running);
    let mut next = task.clone();
    match report {
        TaskReport::Progress { .. } => return Verdict::Unchanged,
        TaskReport::Started { agent_id, .. } => {
            if !current_attempt || !open {
                return Verdict::Stale;
            }
            if task.assigned_agent.as_ref() == Some(agent_id) {
                return Verdict::Unchanged;
            }
            if task.status == TaskStatus::Queued {
                next.move_to(TaskStatus::Running, now);
                next.dispatched_at.get_or_insert(dispatched_at.unwrap_or(now));
                next.started_at = Some(now);
            }
            // Running already: the attempt was redelivered to another
            // worker after the first one went quiet.
            next.assigned_agent = Some(agent_id.clone());
        }
        TaskReport::Succeeded { .. } | TaskReport::Failed { .. } if !current_attempt || !open => {
            // A repeat of a result already applied is a duplicate, not
            // stale; a cancelled or superseded attempt is stale.
            let superseded =
                !current_attempt || matches!(task.status, TaskStatus::Cancelled | TaskStatus::Todo);
            return if superseded {
                Verdict::Stale
            } else {
                Verdict::Unchanged
            };
        }
        // Running for another agent: this one lost the attempt (it went
        // quiet, and the attempt was redelivered to the holder).
        TaskReport::Succeeded { agent_id, .. } | TaskReport::Failed { agent_id, .. }
            if task.status == TaskStatus::Running
                && task
                    .assigned_agent
                    .as_ref()
                    .is_some_and(|holder| holder != agent_id) =>
        {
            return Verdict::Stale;
        }
        TaskReport::Succeeded { agent_id, result, .. } => {
            finish(&mut next, agent_id, Ok(result), dispatched_at.unwrap_or(now), now)
        }
        TaskReport::Failed { agent_id, error, .. } => {
            finish(&mut next, agent_id, Err(error), dispatched_at.unwrap_or(now), now)
        }
    }
    next.updated_at = now;
    Verdict::Move(Box::new(next))
}

/// The current attempt's outcome, reported by `agent`.
fn finish(
    next: &mut Task,
    agent: &AgentId,
    outcome: Result<&TaskResult, &String>,
    dispatched_at: DateTime<Utc>,
    now: DateTime<Utc>,
) {
    if next.status == TaskStatus::Queued {
        // The result overtook its `started`.
        next.dispatched_at.get_or_insert(dispatched_at);
        next.started_at = Some(now);
    }
    next.assigned_agent = Some(agent.clone());
    next.record_outcome(outcome, now);
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::testing::new_task;

    fn queued_task(now: DateTime<Utc>) -> Task {
        let mut task = new_task(crate::ProjectId::new()).into_task(now).unwrap();
        task.move_to(TaskStatus::Queued, now);
        task
    }

    fn at(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + secs, 0).unwrap()
    }

    fn in_review(now: DateTime<Utc>) -> Task {
        let mut task = queued_task(now);
        task.requires_approval = true;
        task.move_to(TaskStatus::Running, now);
        let result = TaskResult {
            output: "first answer".into(),
            provider: "p".into(),
            model: "m".into(),
            tokens_in: 1,
            tokens_out: 2,
            cost_usd: 0.0,
            attempts: 1,
            output_truncated: false,
        };
        task.record_outcome(Ok(&result), now);
        task
    }

    #[test]
    fn a_rejection_queues_a_new_attempt_that_carries_the_comment_and_the_output() {
        let task = in_review(at(0));
        let reject = UserChange::Reject {
            comment: "Shorter, please.".into(),
        };
        let next = reject.apply(&task, at(9)).unwrap();
        assert_eq!(
            (next.status, next.attempt),
            (TaskStatus::Queued, task.attempt + 1)
        );
        assert_eq!(
            next.result, None,
            "the rejected result is not the task's any more"
        );
        let rejection = next.rejection.clone().unwrap();
        assert_eq!(
            (
                rejection.attempt,
                rejection.comment.as_str(),
                rejection.previous_output.as_str(),
                rejection.at
            ),
            (task.attempt, "Shorter, please.", "first answer", at(9))
        );
        let context = next.prompt_context();
        assert_eq!(context.len(), 2);
        assert_eq!(
            (context[0].text.as_str(), context[1].text.as_str()),
            ("first answer", "Shorter, please.")
        );
    }

    #[test]
    fn only_a_task_in_review_is_rejected_and_only_with_a_comment() {
        let blank = UserChange::Reject { comment: "  ".into() };
        assert!(matches!(
            blank.apply(&in_review(at(0)), at(1)),
            Err(ChangeRefused::Invalid(_))
        ));
        let reject = UserChange::Reject { comment: "no".into() };
        assert_eq!(
            reject.apply(&queued_task(at(0)), at(1)).unwrap_err(),
            ChangeRefused::NotInReview("rejected", TaskStatus::Queued)
        );
        assert_eq!(
            UserChange::Approve
                .apply(&queued_task(at(0)), at(1))
                .unwrap_err()
                .to_string(),
            "only tasks in review can be approved; this one is queued"
        );
    }

    #[test]
    fn a_result_overtaking_its_start_finishes_the_attempt_with_the_given_times() {
        let task = queued_task(at(0));
        let report = TaskReport::Failed {
            task_id: task.id,
            attempt: task.attempt,
            agent_id: AgentId::from("w"),
            error: "boom".into(),
        };
        let Verdict::Move(next) = judge(&report, &task, at(5), Some(at(1))) else {
            panic!("the current attempt's result moves the task");
        };
        assert_eq!(next.status, TaskStatus::Failed);
        assert_eq!(next.dispatched_at, Some(at(1)));
        assert_eq!((next.started_at, next.finished_at), (Some(at(5)), Some(at(5))));
        // The same result again is a duplicate; one for an older attempt is stale.
        assert_eq!(judge(&report, &next, at(6), None), Verdict::Unchanged);
        let mut retried = (*next).clone();
        retried.move_to(TaskStatus::Queued, at(7));
        assert_eq!(judge(&report, &retried, at(8), None), Verdict::Stale);
    }

    #[test]
    fn only_the_agent_holding_a_running_attempt_may_finish_it() {
        let task = queued_task(at(0));
        let started = |agent: &str| TaskReport::Started {
            task_id: task.id,
            attempt: task.attempt,
            agent_id: AgentId::from(agent),
        };
        let succeeded = |agent: &str| TaskReport::Succeeded {
            task_id: task.id,
            attempt: task.attempt,
            agent_id: AgentId::from(agent),
            result: TaskResult {
                output: format!("from {agent}"),
                provider: "p".into(),
                model: "m".into(),
                tokens_in: 1,
                tokens_out: 1,
                cost_usd: 0.0,
                attempts: 1,
                output_truncated: false,
            },
        };
        let Verdict::Move(running) = judge(&started("a"), &task, at(1), None) else {
            panic!("a start moves a queued task");
        };
        // The attempt is a's: b's answer is stale, a's finishes it.
        assert_eq!(judge(&succeeded("b"), &running, at(2), None), Verdict::Stale);
        let Verdict::Move(done) = judge(&succeeded("a"), &running, at(3), None) else {
            panic!("the holder's answer finishes the attempt");
        };
        assert_eq!(done.result.unwrap().output, "from a");
        // Redelivered to b after a went quiet: now a's late answer is stale.
        let Verdict::Move(handed) = judge(&started("b"), &running, at(4), None) else {
            panic!("a start by another agent takes the attempt over");
        };
        assert_eq!(handed.assigned_agent, Some(AgentId::from("b")));
        assert_eq!(judge(&succeeded("a"), &handed, at(5), None), Verdict::Stale);
        assert!(matches!(
            judge(&succeeded("b"), &handed, at(5), None),
            Verdict::Move(_)
        ));
        // Before anyone has started, the first answer wins.
        assert!(matches!(
            judge(&succeeded("c"), &task, at(6), None),
            Verdict::Move(_)
        ));
    }
}
