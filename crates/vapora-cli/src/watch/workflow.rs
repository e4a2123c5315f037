//! Following one workflow run live (`workflow watch`, `workflow run
//! --watch`, `workflow retry --watch`) until it is done, a stage fails, or
//! it is cancelled.
//!
//! As for a task, the feed is opened before the run is read. The run's
//! state comes from its `workflow.*` events, each of which carries the
//! whole run; after a reconnect or a `resync` it is read again. Every stage
//! change is one line on stderr, so that the progress reads the same in a
//! terminal and in a log. A stage waiting in review is named with the
//! command that approves it, and the watch goes on: the run is not done
//! until a person has approved.

use anyhow::Context;
use vapora_shared::{StageRun, TaskStatus, WorkflowId, WorkflowRun, WorkflowStatus};

use super::display::Display;
use super::{Follow, decode, pump};
use crate::client::events::EventFeed;
use crate::client::wire::Envelope;
use crate::client::{ApiClient, Reply};
use crate::exit::Exit;
use crate::output;

/// Prints the run once it has ended (the caller's table, or its JSON).
pub type PrintRun<'p> = &'p dyn Fn(&Reply<WorkflowRun>) -> anyhow::Result<()>;

/// Follows the run `id` until it ends.
pub async fn watch_run(client: &ApiClient, id: WorkflowId, print: PrintRun<'_>) -> anyhow::Result<Exit> {
    // Read once for the project (the feed is filtered by it), and to skip
    // the feed for a run that has already ended.
    let first = client.get_workflow(id).await?;
    if outcome(first.body.status).is_some() {
        return RunFollower::new(client, first).finish(print).await;
    }
    let feed = EventFeed::open(client, Some(first.body.project_id), None).await?;
    let run = client.get_workflow(id).await?;
    follow_run(client, feed, run, print).await
}

/// Follows `run` on a feed opened before `run` was read (or started).
pub async fn follow_run(
    client: &ApiClient,
    mut feed: EventFeed,
    run: Reply<WorkflowRun>,
    print: PrintRun<'_>,
) -> anyhow::Result<Exit> {
    let mut follower = RunFollower::new(client, run);
    if !pump(&mut feed, &mut follower).await? {
        follower.display.finish()?;
        let id = follower.run.body.id;
        output::note(format!(
            "interrupted; run {id} goes on (vapora workflow watch {id})"
        ));
        return Ok(Exit::Interrupted);
    }
    follower.finish(print).await
}

/// What a run's status means for `watch`: `None` while it may still move
/// on by itself or by a person's approval. `failed` is an end although a
/// retry continues the run: nothing happens until someone retries.
fn outcome(status: WorkflowStatus) -> Option<Exit> {
    match status {
        WorkflowStatus::Done => Some(Exit::Ok),
        WorkflowStatus::Failed => Some(Exit::TaskFailed),
        WorkflowStatus::Cancelled => Some(Exit::TaskCancelled),
        WorkflowStatus::Running | WorkflowStatus::AwaitingApproval => None,
    }
}

struct RunFollower<'a> {
    client: &'a ApiClient,
    /// The latest known state, with its JSON for `--json`.
    run: Reply<WorkflowRun>,
    display: Display,
}

impl<'a> RunFollower<'a> {
    fn new(client: &'a ApiClient, run: Reply<WorkflowRun>) -> Self {
        // The spinner and the notes only: no task output is shown.
        let follower = Self {
            client,
            display: Display::new(true),
            run,
        };
        let r = &follower.run.body;
        follower.display.note(format!(
            "run {} of {}: {}, {}",
            r.id,
            r.template,
            r.status,
            done_count(r)
        ));
        for stage in r.stages.iter().filter(|s| s.status == TaskStatus::Review) {
            follower.display.note(awaits_approval(stage));
        }
        follower.show_status();
        follower
    }

    /// Takes a newer state of the run and notes each stage that moved. An
    /// event can be older than a read made after it was queued, so states
    /// are ordered by change time.
    fn update(&mut self, next: Reply<WorkflowRun>) {
        if next.body.updated_at < self.run.body.updated_at {
            return;
        }
        for stage in &next.body.stages {
            let before = self.run.body.stage(&stage.name).map(|s| s.status);
            if before == Some(stage.status) {
                continue;
            }
            let from = before.map(|b| format!("{b} → ")).unwrap_or_default();
            let mut line = format!("stage {}: {from}{}", stage.name, stage.status);
            if stage.status == TaskStatus::Done {
                line.push_str(&format!(" ({})", done_count(&next.body)));
            }
            self.display.note(line);
            if stage.status == TaskStatus::Review {
                self.display.note(awaits_approval(stage));
            }
        }
        self.run = next;
        self.show_status();
    }

    /// `running · 1/4 stages done · implement, test running` by the spinner.
    fn show_status(&self) {
        let r = &self.run.body;
        let running: Vec<&str> = r
            .stages
            .iter()
            .filter(|s| s.status == TaskStatus::Running)
            .map(|s| s.name.as_str())
            .collect();
        let running = if running.is_empty() {
            String::new()
        } else {
            format!(" · {} running", running.join(", "))
        };
        self.display
            .set_status(format!("{} · {}{running}", r.status, done_count(r)));
    }

    /// Prints the run and says how it ended.
    async fn finish(mut self, print: PrintRun<'_>) -> anyhow::Result<Exit> {
        let exit = outcome(self.run.body.status).context("finish() is only called on an ended run")?;
        self.display.finish()?;
        print(&self.run)?;
        let run = &self.run.body;
        let id = run.id;
        match run.status {
            WorkflowStatus::Done => output::note(format!("run {id} done")),
            WorkflowStatus::Failed => self.explain_failure().await?,
            _ => output::note(format!("run {id} was cancelled")),
        }
        Ok(exit)
    }

    /// Each failed stage with its task's error; a retry hint for those that
    /// did not fail because of another.
    async fn explain_failure(&self) -> anyhow::Result<()> {
        let run = &self.run.body;
        let failed = |name: &str| run.stage(name).is_some_and(|s| s.status == TaskStatus::Failed);
        for stage in run.stages.iter().filter(|s| s.status == TaskStatus::Failed) {
            let task = self.client.get_task(stage.task_id).await?.body;
            output::note(format!(
                "error: stage {} (task {}) failed (attempt {}): {}",
                stage.name,
                stage.task_id,
                task.attempt,
                task.error.as_deref().unwrap_or("no error given")
            ));
            if !stage.depends_on.iter().any(|d| failed(d)) {
                output::note(format!(
                    "retry it with `vapora workflow retry {} {}`",
                    run.id, stage.name
                ));
            }
        }
        Ok(())
    }
}

impl Follow for RunFollower<'_> {
    fn ended(&self) -> bool {
        outcome(self.run.body.status).is_some()
    }

    async fn reread(&mut self) -> anyhow::Result<()> {
        let run = self.client.get_workflow(self.run.body.id).await?;
        self.update(run);
        Ok(())
    }

    fn event(&mut self, envelope: Envelope) -> anyhow::Result<()> {
        match envelope.kind.as_str() {
            "workflow.created" | "workflow.updated" | "workflow.finished" => {
                let run: WorkflowRun = decode(&envelope.kind, &envelope.data)?;
                if run.id == self.run.body.id {
                    self.update(Reply {
                        json: envelope.data,
                        body: run,
                    });
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// `2/4 stages done`.
fn done_count(run: &WorkflowRun) -> String {
    format!("{} stages done", stages_done(run))
}

/// `2/4`: stages done of all.
pub fn stages_done(run: &WorkflowRun) -> String {
    let done = run.stages.iter().filter(|s| s.status == TaskStatus::Done).count();
    format!("{done}/{}", run.stages.len())
}

fn awaits_approval(stage: &StageRun) -> String {
    let task = stage.task_id;
    format!(
        "stage {} waits for approval: read it with `vapora task show {task}`, approve it with \
         `vapora task approve {task}` (or send it back with `vapora task reject {task} --comment …`); \
         still watching",
        stage.name
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_done_failed_and_cancelled_end_a_watch() {
        let ended: Vec<_> = WorkflowStatus::ALL
            .into_iter()
            .filter_map(|s| outcome(s).map(|e| (s, e)))
            .collect();
        assert_eq!(
            ended,
            [
                (WorkflowStatus::Failed, Exit::TaskFailed),
                (WorkflowStatus::Done, Exit::Ok),
                (WorkflowStatus::Cancelled, Exit::TaskCancelled),
            ]
        );
    }
}
