//! `vapora task …`: create, list, show, cancel, retry, approve, reject and watch.

use comfy_table::Table;
use vapora_shared::{NewTask, Priority, Task, TaskId};

use super::Ctx;
use crate::cli::{CreateTask, ListTasks, TaskCommand, value_name};
use crate::client::events::EventFeed;
use crate::client::{ApiClient, TaskQuery};
use crate::exit::Exit;
use crate::output::{self, details, maybe_time, one_line, or_dash, print_table, table, time};
use crate::watch;

pub async fn run(ctx: &Ctx, command: TaskCommand) -> anyhow::Result<Exit> {
    let client = &ctx.client;
    match command {
        TaskCommand::Create(args) => create(ctx, args).await,
        TaskCommand::List(args) => list(ctx, args).await,
        TaskCommand::Show { id } => {
            let reply = client.get_task(id).await?;
            ctx.print(&reply, show)
        }
        TaskCommand::Cancel { id } => action(ctx, id, "cancel").await,
        TaskCommand::Approve { id } => action(ctx, id, "approve").await,
        TaskCommand::Reject { id, comment, watch } => reject(ctx, id, &comment, watch).await,
        TaskCommand::Retry { id, watch: false } => action(ctx, id, "retry").await,
        TaskCommand::Retry { id, watch: true } => retry_and_watch(client, id, ctx.json).await,
        TaskCommand::Watch { id } => watch::watch(client, id, ctx.json).await,
    }
}

async fn create(ctx: &Ctx, args: CreateTask) -> anyhow::Result<Exit> {
    let project = args.body.project;
    let new = NewTask {
        dispatch: !args.todo,
        depends_on: args.depends_on,
        on_upstream_failure: args.on_upstream_failure.into(),
        run_at: args.run_at,
        ..args.body.into_new_task()
    };
    if !args.watch {
        let reply = ctx.client.create_task(&new).await?;
        return ctx.print(&reply, |t| print_table(table_of(std::slice::from_ref(t))));
    }
    // Subscribed before the task exists: not even its first chunk is missed.
    let feed = EventFeed::open(&ctx.client, Some(project), None).await?;
    let created = ctx.client.create_task(&new).await?;
    output::note(format!("created task {}", created.body.id));
    watch::follow(&ctx.client, feed, created, ctx.json).await
}

async fn list(ctx: &Ctx, args: ListTasks) -> anyhow::Result<Exit> {
    let query = TaskQuery {
        project: args.project,
        status: args.status.as_ref().map(value_name),
        role: args.role.map(|r| r.as_str().to_owned()),
        schedule: args.schedule,
        limit: args.page.limit,
        cursor: args.page.cursor,
    };
    let reply = ctx.client.list_tasks(query).await?;
    ctx.print(&reply, |page| {
        print_table(table_of(&page.items))?;
        output::next_page_hint(page.next_cursor.as_deref());
        Ok(())
    })
}

/// `cancel`, `approve` or `retry`: the changed task, as one row.
async fn action(ctx: &Ctx, id: TaskId, action: &str) -> anyhow::Result<Exit> {
    let reply = ctx.client.task_action(id, action).await?;
    ctx.print(&reply, |t| print_table(table_of(std::slice::from_ref(t))))
}

/// Sends the task back from review; with `watch`, follows the new attempt.
async fn reject(ctx: &Ctx, id: TaskId, comment: &str, watch: bool) -> anyhow::Result<Exit> {
    let client = &ctx.client;
    if !watch {
        let reply = client.reject_task(id, comment).await?;
        return ctx.print(&reply, |t| print_table(table_of(std::slice::from_ref(t))));
    }
    let project = client.get_task(id).await?.body.project_id;
    let feed = EventFeed::open(client, Some(project), None).await?;
    let rejected = client.reject_task(id, comment).await?;
    output::note(format!(
        "task {id} sent back; it runs again as attempt {}",
        rejected.body.attempt
    ));
    watch::follow(client, feed, rejected, ctx.json).await
}

async fn retry_and_watch(client: &ApiClient, id: TaskId, json: bool) -> anyhow::Result<Exit> {
    let project = client.get_task(id).await?.body.project_id;
    let feed = EventFeed::open(client, Some(project), None).await?;
    let retried = client.task_action(id, "retry").await?;
    output::note(format!(
        "task {id} queued again as attempt {}",
        retried.body.attempt
    ));
    watch::follow(client, feed, retried, json).await
}

/// Tasks as rows; also the board's.
pub fn table_of(tasks: &[Task]) -> Table {
    let mut t = table(["ID", "STATUS", "PRIORITY", "ROLE", "ATTEMPT", "UPDATED", "TITLE"]);
    for task in tasks {
        t.add_row(vec![
            task.id.to_string(),
            task.status.to_string(),
            priority(task.priority).into(),
            task.role.to_string(),
            task.attempt.to_string(),
            time(task.updated_at),
            one_line(&task.title, 60),
        ]);
    }
    t
}

/// Every field, then the output.
fn show(task: &Task) -> std::io::Result<()> {
    let mut rows = vec![
        ("id", task.id.to_string()),
        ("project", task.project_id.to_string()),
        ("title", task.title.clone()),
        ("status", task.status.to_string()),
        ("role", task.role.to_string()),
        ("priority", priority(task.priority).into()),
        (
            "approval",
            if task.requires_approval {
                "required"
            } else {
                "not required"
            }
            .into(),
        ),
        ("attempt", task.attempt.to_string()),
        ("agent", or_dash(task.assigned_agent.as_ref())),
        ("created", time(task.created_at)),
        ("started", maybe_time(task.started_at)),
        ("finished", maybe_time(task.finished_at)),
    ];
    if let Some(error) = &task.error {
        rows.push(("error", error.clone()));
    }
    if let Some(r) = &task.result {
        rows.push(("model", format!("{} ({})", r.model, r.provider)));
        rows.push(("tokens", format!("{} in, {} out", r.tokens_in, r.tokens_out)));
        rows.push(("cost", format!("${:.6}", r.cost_usd)));
    }
    if !task.description.is_empty() {
        rows.push(("description", task.description.clone()));
    }
    print_table(details(rows))?;
    if let Some(r) = &task.result {
        output::line("")?;
        output::line(r.output.trim_end())?;
        if r.output_truncated {
            output::note("(output truncated by the server)");
        }
    }
    Ok(())
}

fn priority(p: Priority) -> &'static str {
    match p {
        Priority::Low => "low",
        Priority::Medium => "medium",
        Priority::High => "high",
        Priority::Critical => "critical",
    }
}
