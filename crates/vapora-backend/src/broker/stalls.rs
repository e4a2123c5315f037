//! Running attempts whose agent went silent fail instead of staying
//! `running` for ever.
//!
//! JetStream redelivers an attempt whose worker stops acking, but only to a
//! worker that pulls: with every worker of the role gone, or a worker that
//! died after the attempt's messages were settled, nothing ever moves the
//! task again. So every replica looks at the running tasks now and then; a
//! task that has not changed, and whose agent has sent neither a heartbeat
//! nor a report, for the stall timeout fails with `stalled` (a person may
//! retry it). The timeout (`VAPORA_ATTEMPT_STALL_SECS`) should leave
//! JetStream time to hand the attempt to a live worker first, whose
//! `started` then changes the task: a redelivered attempt may wait behind
//! a busy role's backlog. Replicas race to fail the same task; the
//! compare-and-set lets one of them through.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;
use vapora_shared::Task;

use super::BrokerContext;

pub async fn run(ctx: BrokerContext, timeout: Duration, stop: CancellationToken) {
    // Agents this replica has not heard of yet may have beaten before it
    // started: their silence only counts from now.
    let watching_since = Utc::now();
    let mut tick =
        tokio::time::interval((timeout / 4).clamp(Duration::from_millis(200), Duration::from_secs(15)));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = stop.cancelled() => return,
        }
        let running = match ctx.intake.tasks.running().await {
            Ok(running) => running,
            Err(e) => {
                tracing::debug!(error = %e, "cannot look for stalled attempts now");
                continue;
            }
        };
        for task in running {
            let agent_seen = match &task.assigned_agent {
                Some(agent) => ctx.intake.registry.get(agent).await.map(|a| a.last_seen),
                None => None,
            };
            let now = Utc::now();
            let Some(silent_for) = stalled(&task, agent_seen, watching_since, now, timeout) else {
                continue;
            };
            match ctx.intake.tasks.fail_stalled(&task, silent_for).await {
                Ok(Some(_)) => {
                    tracing::warn!(task = %task.id, attempt = task.attempt, agent = ?task.assigned_agent, "attempt stalled; failed it")
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::debug!(task = %task.id, error = %e, "could not fail a stalled attempt; next round")
                }
            }
        }
    }
}

/// How long a running task has been silent, if longer than `timeout`: no
/// change to the task, nothing from its agent, and (for an agent this
/// replica never heard of) nothing since it started watching.
fn stalled(
    task: &Task,
    agent_seen: Option<DateTime<Utc>>,
    watching_since: DateTime<Utc>,
    now: DateTime<Utc>,
    timeout: Duration,
) -> Option<Duration> {
    let last_sign = [
        task.updated_at,
        agent_seen.unwrap_or(watching_since),
        watching_since,
    ]
    .into_iter()
    .max()?;
    let silent_for = (now - last_sign).to_std().ok()?;
    (silent_for > timeout).then_some(silent_for)
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;
    use vapora_shared::testing::new_task;
    use vapora_shared::{ProjectId, TaskStatus};

    use super::*;

    #[test]
    fn only_silence_from_both_task_and_agent_is_a_stall() {
        let t0 = Utc::now();
        let mut task = new_task(ProjectId::new()).into_task(t0).unwrap();
        task.status = TaskStatus::Running;
        let timeout = Duration::from_secs(10);
        let at = |secs| t0 + TimeDelta::seconds(secs);
        assert_eq!(stalled(&task, Some(at(0)), at(0), at(5), timeout), None);
        assert_eq!(
            stalled(&task, Some(at(0)), at(0), at(11), timeout),
            Some(Duration::from_secs(11))
        );
        // A beating agent keeps its attempt alive.
        assert_eq!(stalled(&task, Some(at(9)), at(0), at(11), timeout), None);
        // An agent never heard of counts from when this replica started watching.
        assert_eq!(stalled(&task, None, at(5), at(11), timeout), None);
        assert!(stalled(&task, None, at(0), at(11), timeout).is_some());
    }
}
