//! Following one task live (`task watch`, `task create --watch`,
//! `task retry --watch`) until it ends, and the exit code its end maps to;
//! [`workflow`] follows a workflow run the same way.
//!
//! The event feed is opened *before* the task is read: the server
//! subscribes the feed before it answers, so every change after that read
//! reaches the feed and none can slip between the two. The task's state
//! comes from `task.updated` events (each carries the whole task); after a
//! reconnect or a `resync` the task is read again, since events may have
//! been lost.

mod chunks;
mod display;
mod workflow;

use std::pin::pin;

use anyhow::Context;
use serde::de::DeserializeOwned;
use serde_json::Value;
use vapora_shared::{Task, TaskId, TaskProgress, TaskStatus};

use crate::client::events::{EventFeed, FeedItem};
use crate::client::wire::Envelope;
use crate::client::{ApiClient, Reply};
use crate::exit::Exit;
use crate::output;
use chunks::Chunks;
use display::Display;
pub use workflow::{follow_run, stages_done, watch_run};

/// Follows the task `id` until it ends.
pub async fn watch(client: &ApiClient, id: TaskId, json: bool) -> anyhow::Result<Exit> {
    // Read once to learn the project (the feed is filtered by it), and to
    // skip the feed altogether for a task that has already ended.
    let first = client.get_task(id).await?;
    if outcome(first.body.status).is_some() {
        return Follower::new(client, first, json).finish();
    }
    let feed = EventFeed::open(client, Some(first.body.project_id), None).await?;
    let task = client.get_task(id).await?;
    follow(client, feed, task, json).await
}

/// Follows `task` on a feed opened before `task` was read (or created).
pub async fn follow(
    client: &ApiClient,
    mut feed: EventFeed,
    task: Reply<Task>,
    json: bool,
) -> anyhow::Result<Exit> {
    let mut follower = Follower::new(client, task, json);
    if follower.task.body.status == TaskStatus::Todo {
        follower.display.note(format!(
            "task {} is in todo: it runs once queued (the server's PATCH status=queued)",
            follower.task.body.id
        ));
    }
    if !pump(&mut feed, &mut follower).await? {
        follower.display.finish()?;
        let id = follower.task.body.id;
        output::note(format!("interrupted; task {id} goes on (vapora task watch {id})"));
        return Ok(Exit::Interrupted);
    }
    follower.finish()
}

/// What follows something on the feed: a task, or a workflow run.
trait Follow {
    /// Whether what is followed has ended.
    fn ended(&self) -> bool;
    /// Reads the state again, after events may have been lost.
    async fn reread(&mut self) -> anyhow::Result<()>;
    /// Takes an event (any but `resync`).
    fn event(&mut self, envelope: Envelope) -> anyhow::Result<()>;
}

/// Hands the feed's items to `follower` until it has ended; `false` when
/// Ctrl-C came first.
async fn pump(feed: &mut EventFeed, follower: &mut impl Follow) -> anyhow::Result<bool> {
    let mut interrupted = pin!(tokio::signal::ctrl_c());
    while !follower.ended() {
        let item = tokio::select! {
            item = feed.next() => item?,
            _ = &mut interrupted => return Ok(false),
        };
        match item {
            // The connection dropped, or the server no longer holds what
            // was missed: read it.
            FeedItem::Reconnected => follower.reread().await?,
            FeedItem::Event { envelope, .. } if envelope.kind == "resync" => follower.reread().await?,
            FeedItem::Event { envelope, .. } => follower.event(envelope)?,
        }
    }
    Ok(true)
}

/// What a status means for `watch`: `None` while the task is still on its
/// way. `review` counts as an end: the task waits for a person, which may
/// take days, and its output is there to read.
fn outcome(status: TaskStatus) -> Option<Exit> {
    match status {
        TaskStatus::Done | TaskStatus::Review => Some(Exit::Ok),
        TaskStatus::Failed => Some(Exit::TaskFailed),
        TaskStatus::Cancelled => Some(Exit::TaskCancelled),
        TaskStatus::Todo | TaskStatus::Waiting | TaskStatus::Queued | TaskStatus::Running => None,
    }
}

struct Follower<'a> {
    client: &'a ApiClient,
    /// The latest known state, with its JSON for `--json`.
    task: Reply<Task>,
    chunks: Chunks,
    display: Display,
    json: bool,
}

impl<'a> Follower<'a> {
    fn new(client: &'a ApiClient, task: Reply<Task>, json: bool) -> Self {
        let display = Display::new(json);
        display.status(&task.body);
        Self {
            client,
            chunks: Chunks::new(task.body.attempt),
            task,
            display,
            json,
        }
    }

    /// Takes a newer state of the task. An event can be older than a read
    /// made after it was queued (the feed opens before the first read), so
    /// states are ordered by attempt, then by change time.
    fn update(&mut self, next: Reply<Task>) -> anyhow::Result<()> {
        let current = &self.task.body;
        let older = (next.body.attempt, next.body.updated_at) < (current.attempt, current.updated_at);
        if older {
            return Ok(());
        }
        if next.body.attempt > self.chunks.attempt() {
            self.new_attempt(next.body.attempt)?;
        }
        self.display.status(&next.body);
        self.task = next;
        Ok(())
    }

    fn progress(&mut self, progress: &TaskProgress) -> anyhow::Result<()> {
        // Chunks can come before the `task.updated` of their attempt.
        if progress.attempt > self.chunks.attempt() {
            self.new_attempt(progress.attempt)?;
        }
        if self
            .chunks
            .accept(progress.attempt, progress.seq, &progress.chunk)
        {
            self.display.output(&progress.chunk)?;
        }
        Ok(())
    }

    fn new_attempt(&mut self, attempt: u32) -> std::io::Result<()> {
        if self.chunks.restart(attempt) {
            self.display.end_line()?;
            self.display
                .note(format!("(attempt {attempt} started; its output follows)"));
        }
        Ok(())
    }

    /// Prints what is left and says how the task ended.
    fn finish(mut self) -> anyhow::Result<Exit> {
        let task = &self.task.body;
        let exit = outcome(task.status).context("finish() is only called on an ended task")?;
        if let Some(rest) = task.result.as_ref().and_then(|r| self.chunks.rest_of(&r.output)) {
            self.display.output(rest)?;
        }
        self.display.finish()?;
        if self.json {
            output::json(&self.task.json)?;
        }
        let id = task.id;
        match task.status {
            TaskStatus::Done => output::note(format!("task {id} done{}", cost(task))),
            TaskStatus::Review => output::note(format!(
                "task {id} waits in review{}: approve it with `vapora task approve {id}`",
                cost(task)
            )),
            TaskStatus::Failed => output::note(format!(
                "error: task {id} failed (attempt {}): {}",
                task.attempt,
                task.error.as_deref().unwrap_or("no error given")
            )),
            _ => output::note(format!("task {id} was cancelled")),
        }
        Ok(exit)
    }
}

impl Follow for Follower<'_> {
    fn ended(&self) -> bool {
        outcome(self.task.body.status).is_some()
    }

    async fn reread(&mut self) -> anyhow::Result<()> {
        let task = self.client.get_task(self.task.body.id).await?;
        self.update(task)
    }

    fn event(&mut self, envelope: Envelope) -> anyhow::Result<()> {
        match envelope.kind.as_str() {
            "task.updated" | "task.created" => {
                let task: Task = decode(&envelope.kind, &envelope.data)?;
                if task.id == self.task.body.id {
                    self.update(Reply {
                        json: envelope.data,
                        body: task,
                    })?;
                }
            }
            "task.progress" => {
                let progress: TaskProgress = decode(&envelope.kind, &envelope.data)?;
                if progress.task_id == self.task.body.id {
                    self.progress(&progress)?;
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// ` ($0.0012, 10 tokens in, 3 out)` when the task has a result.
fn cost(task: &Task) -> String {
    task.result
        .as_ref()
        .map(|r| {
            format!(
                " (${:.4}, {} tokens in, {} out)",
                r.cost_usd, r.tokens_in, r.tokens_out
            )
        })
        .unwrap_or_default()
}

fn decode<T: DeserializeOwned>(kind: &str, data: &Value) -> anyhow::Result<T> {
    T::deserialize(data).with_context(|| format!("a {kind} event the client cannot read"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_has_a_meaning() {
        let ended: Vec<_> = TaskStatus::ALL
            .into_iter()
            .filter(|s| outcome(*s).is_some())
            .collect();
        assert_eq!(
            ended,
            [
                TaskStatus::Review,
                TaskStatus::Done,
                TaskStatus::Failed,
                TaskStatus::Cancelled
            ]
        );
        assert_eq!(outcome(TaskStatus::Failed), Some(Exit::TaskFailed));
        assert_eq!(outcome(TaskStatus::Cancelled), Some(Exit::TaskCancelled));
    }
}
