//! `vapora events`: the live feed, one line per event, until Ctrl-C.
//!
//! With `--json` each line is the event's `data:` exactly as the server
//! sent it (`{"seq":…,"type":…,"data":…}`), so that `jq` and friends can
//! read it line by line.

use std::pin::pin;

use serde::Deserialize as _;
use serde_json::Value;
use vapora_shared::{Agent, Project, ProjectId, Task, TaskProgress};

use super::Ctx;
use crate::client::events::{EventFeed, FeedItem};
use crate::client::wire::{Envelope, Resync};
use crate::exit::Exit;
use crate::output::{self, one_line};

pub async fn run(ctx: &Ctx, project: Option<ProjectId>, since: Option<u64>) -> anyhow::Result<Exit> {
    let mut feed = EventFeed::open(&ctx.client, project, since).await?;
    // On stderr, so that stdout stays events only; scripts (and tests)
    // can wait for it to know nothing published from now on is missed.
    output::note(format!(
        "following events from {}; Ctrl-C to stop",
        ctx.client.base_url()
    ));
    let mut interrupted = pin!(tokio::signal::ctrl_c());
    loop {
        let item = tokio::select! {
            item = feed.next() => item?,
            _ = &mut interrupted => return Ok(Exit::Interrupted),
        };
        match item {
            FeedItem::Event { raw, .. } if ctx.json => output::line(raw)?,
            FeedItem::Event { envelope, .. } => output::line(describe(&envelope))?,
            FeedItem::Reconnected => output::note("(connection lost and re-opened)"),
        }
    }
}

/// `SEQ  TYPE  what changed`, one line.
fn describe(e: &Envelope) -> String {
    let seq = e.seq.map(|s| s.to_string()).unwrap_or_else(|| "-".into());
    format!("{seq:>6}  {:<16} {}", e.kind, summary(&e.kind, &e.data))
}

fn summary(kind: &str, data: &Value) -> String {
    let typed = |data: &Value| -> Option<String> {
        Some(match kind {
            "project.created" | "project.updated" => {
                let p = Project::deserialize(data).ok()?;
                format!("{}  {}", p.id, p.name)
            }
            "task.created" | "task.updated" => {
                let t = Task::deserialize(data).ok()?;
                format!(
                    "{}  {:<9} attempt {}  {}",
                    t.id,
                    t.status,
                    t.attempt,
                    one_line(&t.title, 50)
                )
            }
            "task.progress" => {
                let p = TaskProgress::deserialize(data).ok()?;
                // Escaped: a chunk is often a fragment, newlines included.
                let shown: String = p.chunk.chars().take(50).collect();
                let cut = if shown.len() < p.chunk.len() { "…" } else { "" };
                format!("{}  #{}  {shown:?}{cut}", p.task_id, p.seq)
            }
            "agent.updated" => {
                let a = Agent::deserialize(data).ok()?;
                format!("{}  load {}/{}", a.id, a.load, a.capacity)
            }
            "resync" => {
                let r = Resync::deserialize(data).ok()?;
                let since = r.since.map(|s| format!(" after {s}")).unwrap_or_default();
                format!("events{since} are no longer held by the server: re-read the state you need")
            }
            _ => return None,
        })
    };
    // Anything unknown, or not in the expected shape, is shown as it came.
    typed(data).unwrap_or_else(|| data.to_string())
}
