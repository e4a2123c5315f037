//! Where a task stands against its dependencies and its `run_at`: the pure
//! decision [`super::waiting`] acts on, kept apart so it can be tested
//! without storage.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use vapora_shared::{Task, TaskId, TaskStatus, UPSTREAM_FAILED, UpstreamPolicy, UpstreamResult};

/// Where a task stands against its dependencies.
#[derive(Debug, Clone, PartialEq)]
pub enum Readiness {
    /// Every dependency is done: these are their results.
    Ready(Vec<UpstreamResult>),
    /// These are not done yet.
    Waiting(Vec<TaskId>),
    /// This one failed or was cancelled, and the task fails with it.
    UpstreamFailed(TaskId, TaskStatus),
    /// Every dependency is done, but the task is not to run before then.
    NotBefore(DateTime<Utc>),
}

/// Judges `task` against its dependencies as stored (`deps`, in any order).
pub fn readiness(task: &Task, deps: &[Task], now: DateTime<Utc>) -> Readiness {
    if task.on_upstream_failure == UpstreamPolicy::Fail
        && let Some(failed) = deps
            .iter()
            .find(|d| matches!(d.status, TaskStatus::Failed | TaskStatus::Cancelled))
    {
        return Readiness::UpstreamFailed(failed.id, failed.status);
    }
    let unfinished: Vec<TaskId> = task
        .depends_on
        .iter()
        .filter(|id| !deps.iter().any(|d| d.id == **id && d.status == TaskStatus::Done))
        .copied()
        .collect();
    if !unfinished.is_empty() {
        return Readiness::Waiting(unfinished);
    }
    if let Some(at) = task.run_at.filter(|at| *at > now) {
        return Readiness::NotBefore(at);
    }
    let by_id: HashMap<TaskId, &Task> = deps.iter().map(|d| (d.id, d)).collect();
    Readiness::Ready(
        task.depends_on
            .iter()
            .filter_map(|id| by_id.get(id))
            .map(|d| UpstreamResult {
                task_id: d.id,
                title: d.title.clone(),
                role: d.role.clone(),
                output: d.result.as_ref().map(|r| r.output.clone()).unwrap_or_default(),
                stage: d.workflow.as_ref().map(|w| w.stage.clone()),
            })
            .collect(),
    )
}

pub(super) fn upstream_error(dependency: TaskId, status: TaskStatus) -> String {
    format!("{UPSTREAM_FAILED}: task {dependency}, which this task depends on, is {status}")
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use vapora_shared::testing::new_task;
    use vapora_shared::{ProjectId, TaskResult};

    use super::*;

    fn task_with_deps(deps: &[&Task], policy: UpstreamPolicy) -> Task {
        let mut new = new_task(ProjectId::new());
        new.depends_on = deps.iter().map(|d| d.id).collect();
        new.on_upstream_failure = policy;
        new.into_task(Utc::now()).unwrap()
    }

    fn in_status(status: TaskStatus, output: &str) -> Task {
        let mut task = new_task(ProjectId::new()).into_task(Utc::now()).unwrap();
        task.status = status;
        task.result = Some(TaskResult {
            output: output.into(),
            provider: "p".into(),
            model: "m".into(),
            tokens_in: 0,
            tokens_out: 0,
            cost_usd: 0.0,
            attempts: 1,
            output_truncated: false,
        });
        task
    }

    #[test]
    fn ready_once_every_dependency_is_done_with_their_results_in_order() {
        let (a, b) = (
            in_status(TaskStatus::Done, "design"),
            in_status(TaskStatus::Running, ""),
        );
        let task = task_with_deps(&[&a, &b], UpstreamPolicy::Fail);
        assert_eq!(
            readiness(&task, &[a.clone(), b.clone()], Utc::now()),
            Readiness::Waiting(vec![b.id])
        );
        let b = in_status(TaskStatus::Done, "tests");
        let task = task_with_deps(&[&a, &b], UpstreamPolicy::Fail);
        let Readiness::Ready(results) = readiness(&task, &[b.clone(), a.clone()], Utc::now()) else {
            panic!()
        };
        let outputs: Vec<&str> = results.iter().map(|r| r.output.as_str()).collect();
        let expected: Vec<&str> = task
            .depends_on
            .iter()
            .map(|id| if *id == a.id { "design" } else { "tests" })
            .collect();
        assert_eq!(outputs, expected);
    }

    #[test]
    fn a_failed_dependency_fails_the_task_or_keeps_it_waiting_by_policy() {
        let (a, b) = (
            in_status(TaskStatus::Failed, ""),
            in_status(TaskStatus::Done, "x"),
        );
        let fail = task_with_deps(&[&a, &b], UpstreamPolicy::Fail);
        assert_eq!(
            readiness(&fail, &[a.clone(), b.clone()], Utc::now()),
            Readiness::UpstreamFailed(a.id, TaskStatus::Failed)
        );
        let wait = task_with_deps(&[&a, &b], UpstreamPolicy::Wait);
        assert_eq!(
            readiness(&wait, &[a.clone(), b], Utc::now()),
            Readiness::Waiting(vec![a.id])
        );
    }
}
