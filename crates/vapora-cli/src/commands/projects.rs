//! `vapora project …`: create, list, show, board and delete.

use vapora_shared::Project;

use super::{Ctx, tasks};
use crate::cli::ProjectCommand;
use crate::client::wire::Board;
use crate::exit::Exit;
use crate::output::{self, details, one_line, print_table, table, time};

pub async fn run(ctx: &Ctx, command: ProjectCommand) -> anyhow::Result<Exit> {
    let client = &ctx.client;
    match command {
        ProjectCommand::Create { name, description } => {
            let reply = client.create_project(&name, &description).await?;
            ctx.print(&reply, show)
        }
        ProjectCommand::List(page) => {
            let reply = client.list_projects(page.limit, page.cursor).await?;
            ctx.print(&reply, |page| {
                let mut t = table(["ID", "NAME", "CREATED", "DESCRIPTION"]);
                for p in &page.items {
                    t.add_row(vec![
                        p.id.to_string(),
                        p.name.clone(),
                        time(p.created_at),
                        one_line(&p.description, 60),
                    ]);
                }
                print_table(t)?;
                output::next_page_hint(page.next_cursor.as_deref());
                Ok(())
            })
        }
        ProjectCommand::Show { id } => {
            let reply = client.get_project(id).await?;
            ctx.print(&reply, show)
        }
        ProjectCommand::Board { id, limit } => {
            let reply = client.board(id, limit).await?;
            ctx.print(&reply, board)
        }
        ProjectCommand::Delete { id } => {
            client.delete_project(id).await?;
            // The server answers 204 with no body: `--json` prints nothing.
            if !ctx.json {
                output::note(format!("deleted project {id}"));
            }
            Ok(Exit::Ok)
        }
    }
}

fn show(p: &Project) -> std::io::Result<()> {
    print_table(details(vec![
        ("id", p.id.to_string()),
        ("name", p.name.clone()),
        ("description", p.description.clone()),
        ("created", time(p.created_at)),
        ("updated", time(p.updated_at)),
    ]))
}

/// The project, a count per column, then the tasks of the non-empty ones.
fn board(b: &Board) -> std::io::Result<()> {
    let counts: Vec<String> = b
        .columns
        .iter()
        .map(|c| {
            let more = if c.next_cursor.is_some() { "+" } else { "" };
            format!("{} {}{more}", c.status, c.tasks.len())
        })
        .collect();
    output::line(format!("{} ({})", b.project.name, b.project.id))?;
    output::line(counts.join(" · "))?;
    let tasks: Vec<_> = b.columns.iter().flat_map(|c| c.tasks.iter().cloned()).collect();
    if !tasks.is_empty() {
        output::line("")?;
        print_table(tasks::table_of(&tasks))?;
    }
    Ok(())
}
