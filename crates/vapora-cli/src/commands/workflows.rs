//! `vapora workflow …`: run a template, list, show, watch, cancel and retry
//! runs, and list the templates.

use std::collections::HashMap;

use comfy_table::Table;
use vapora_shared::{NewWorkflow, StageRun, WorkflowId, WorkflowRun};

use super::Ctx;
use crate::cli::{ListWorkflows, RunWorkflow, WorkflowCommand, value_name};
use crate::client::events::EventFeed;
use crate::client::wire::{TemplateInfo, TemplateStage};
use crate::client::{Reply, WorkflowQuery};
use crate::exit::Exit;
use crate::output::{self, details, maybe_time, next_page_hint, one_line, print_table, table, time};
use crate::watch::{self, stages_done};

pub async fn run(ctx: &Ctx, command: WorkflowCommand) -> anyhow::Result<Exit> {
    let client = &ctx.client;
    match command {
        WorkflowCommand::Run(args) => start(ctx, args).await,
        WorkflowCommand::List(args) => list(ctx, args).await,
        WorkflowCommand::Show { id } => {
            let reply = client.get_workflow(id).await?;
            ctx.print(&reply, show)
        }
        WorkflowCommand::Watch { id } => watch::watch_run(client, id, &|r| printed(ctx, r)).await,
        WorkflowCommand::Cancel { id } => {
            let reply = client.cancel_workflow(id).await?;
            ctx.print(&reply, show)
        }
        WorkflowCommand::Retry { id, stage, watch } => retry(ctx, id, &stage, watch).await,
        WorkflowCommand::Templates { name: None } => {
            let reply = client.list_templates().await?;
            ctx.print(&reply, |templates| print_table(templates_table(templates)))
        }
        WorkflowCommand::Templates { name: Some(name) } => {
            let reply = client.get_template(&name).await?;
            ctx.print(&reply, show_template)
        }
    }
}

async fn start(ctx: &Ctx, args: RunWorkflow) -> anyhow::Result<Exit> {
    let new = NewWorkflow {
        run_at: args.run_at,
        ..args.body.into_new_workflow()
    };
    let project = new.project_id;
    if !args.watch {
        let reply = ctx.client.create_workflow(&new).await?;
        return ctx.print(&reply, show);
    }
    // Subscribed before the run exists: not even its first stage's start
    // is missed.
    let feed = EventFeed::open(&ctx.client, Some(project), None).await?;
    let run = ctx.client.create_workflow(&new).await?;
    watch::follow_run(&ctx.client, feed, run, &|r| printed(ctx, r)).await
}

async fn list(ctx: &Ctx, args: ListWorkflows) -> anyhow::Result<Exit> {
    let query = WorkflowQuery {
        project: args.project,
        status: args.status.as_ref().map(value_name),
        schedule: args.schedule,
        limit: args.page.limit,
        cursor: args.page.cursor,
    };
    let reply = ctx.client.list_workflows(query).await?;
    ctx.print(&reply, |page| {
        let mut t = table([
            "ID",
            "TEMPLATE",
            "STATUS",
            "STAGES DONE",
            "PROJECT",
            "CREATED",
            "FINISHED",
        ]);
        for run in &page.items {
            t.add_row(vec![
                run.id.to_string(),
                run.template.clone(),
                run.status.to_string(),
                stages_done(run),
                run.project_id.to_string(),
                time(run.created_at),
                maybe_time(run.finished_at),
            ]);
        }
        print_table(t)?;
        next_page_hint(page.next_cursor.as_deref());
        Ok(())
    })
}

/// Runs a failed stage again; with `watch`, follows the run.
async fn retry(ctx: &Ctx, id: WorkflowId, stage: &str, watch: bool) -> anyhow::Result<Exit> {
    let client = &ctx.client;
    if !watch {
        let reply = client.retry_stage(id, stage).await?;
        return ctx.print(&reply, show);
    }
    let project = client.get_workflow(id).await?.body.project_id;
    let feed = EventFeed::open(client, Some(project), None).await?;
    let retried = client.retry_stage(id, stage).await?;
    output::note(format!("stage {stage} of run {id} queued again"));
    watch::follow_run(client, feed, retried, &|r| printed(ctx, r)).await
}

/// How a followed run is printed when it ends: as `workflow show` does.
fn printed(ctx: &Ctx, run: &Reply<WorkflowRun>) -> anyhow::Result<()> {
    ctx.print(run, show).map(drop)
}

/// The run's fields, then its stages.
fn show(run: &WorkflowRun) -> std::io::Result<()> {
    let inputs = run
        .inputs
        .iter()
        .map(|(name, value)| format!("{name}={}", one_line(value, 60)))
        .collect::<Vec<_>>()
        .join("\n");
    print_table(details(vec![
        ("id", run.id.to_string()),
        ("project", run.project_id.to_string()),
        ("template", run.template.clone()),
        ("status", run.status.to_string()),
        ("stages done", stages_done(run)),
        ("inputs", if inputs.is_empty() { "-".into() } else { inputs }),
        ("run at", maybe_time(run.run_at)),
        ("created", time(run.created_at)),
        ("updated", time(run.updated_at)),
        ("finished", maybe_time(run.finished_at)),
    ]))?;
    output::line("")?;
    print_table(stage_table(&run.stages))
}

/// A run's stages, in the order they may run.
fn stage_table(stages: &[StageRun]) -> Table {
    let mut t = table(["STAGE", "ROLE", "DEPENDS ON", "APPROVAL", "STATUS", "TASK"]);
    for s in stages {
        t.add_row(vec![
            s.name.clone(),
            s.role.to_string(),
            names(&s.depends_on),
            approval(s.requires_approval).into(),
            s.status.to_string(),
            s.task_id.to_string(),
        ]);
    }
    t
}

fn templates_table(templates: &[TemplateInfo]) -> Table {
    let mut t = table(["NAME", "INPUTS", "STAGES", "DESCRIPTION"]);
    for template in templates {
        t.add_row(vec![
            template.name.clone(),
            names(&template.inputs),
            stage_flow(&template.stages),
            one_line(&template.description, 60),
        ]);
    }
    t
}

fn show_template(template: &TemplateInfo) -> std::io::Result<()> {
    print_table(details(vec![
        ("name", template.name.clone()),
        ("inputs", names(&template.inputs)),
        ("stages", stage_flow(&template.stages)),
        ("description", template.description.clone()),
    ]))?;
    output::line("")?;
    let mut t = table(["STAGE", "ROLE", "DEPENDS ON", "APPROVAL"]);
    for s in &template.stages {
        t.add_row(vec![
            s.name.clone(),
            s.role.clone(),
            names(&s.depends_on),
            approval(s.requires_approval).into(),
        ]);
    }
    print_table(t)
}

/// The stages by how deep they sit in the graph, shallowest first:
/// `design → implement, test → review`. Stages on one step run in
/// parallel once the steps before them are done (or sooner).
fn stage_flow(stages: &[TemplateStage]) -> String {
    let by_name: HashMap<&str, &TemplateStage> = stages.iter().map(|s| (s.name.as_str(), s)).collect();
    let mut depth: HashMap<&str, usize> = HashMap::new();
    fn depth_of<'a>(
        name: &'a str,
        by_name: &HashMap<&'a str, &'a TemplateStage>,
        depth: &mut HashMap<&'a str, usize>,
        seen: usize,
    ) -> usize {
        if let Some(d) = depth.get(name) {
            return *d;
        }
        // A server's template has no cycle; the bound only keeps a broken
        // one from recursing forever.
        let d = match by_name.get(name) {
            Some(stage) if seen < by_name.len() => stage
                .depends_on
                .iter()
                .map(|dep| depth_of(dep, by_name, depth, seen + 1) + 1)
                .max()
                .unwrap_or(0),
            _ => 0,
        };
        depth.insert(name, d);
        d
    }
    let mut steps: Vec<Vec<&str>> = Vec::new();
    for stage in stages {
        let d = depth_of(&stage.name, &by_name, &mut depth, 0);
        if steps.len() <= d {
            steps.resize(d + 1, Vec::new());
        }
        steps[d].push(&stage.name);
    }
    steps
        .iter()
        .filter(|step| !step.is_empty())
        .map(|step| step.join(", "))
        .collect::<Vec<_>>()
        .join(" → ")
}

fn names(list: &[String]) -> String {
    if list.is_empty() {
        "-".into()
    } else {
        list.join(", ")
    }
}

fn approval(required: bool) -> &'static str {
    if required { "required" } else { "-" }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stage(name: &str, deps: &[&str]) -> TemplateStage {
        TemplateStage {
            name: name.into(),
            role: "developer".into(),
            depends_on: deps.iter().map(|d| (*d).to_owned()).collect(),
            requires_approval: false,
        }
    }

    #[test]
    fn the_flow_groups_stages_by_depth() {
        let stages = [
            stage("review", &["implement", "test"]),
            stage("design", &[]),
            stage("implement", &["design"]),
            stage("test", &["design"]),
        ];
        assert_eq!(stage_flow(&stages), "design → implement, test → review");
        let cycle = [stage("a", &["b"]), stage("b", &["a"])];
        assert!(!stage_flow(&cycle).is_empty());
    }
}
