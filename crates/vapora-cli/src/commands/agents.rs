//! `vapora agents`: the agent registry.

use super::Ctx;
use crate::cli::PageArgs;
use crate::exit::Exit;
use crate::output::{next_page_hint, or_dash, print_table, table, time};

pub async fn run(ctx: &Ctx, page: PageArgs) -> anyhow::Result<Exit> {
    let reply = ctx.client.list_agents(page.limit, page.cursor).await?;
    ctx.print(&reply, |page| {
        let mut t = table([
            "ID",
            "ROLES",
            "STATUS",
            "LOAD",
            "TASK",
            "DONE",
            "FAILED",
            "LOCATION",
            "LAST SEEN",
        ]);
        for a in &page.items {
            // `roles` is empty from servers older than multi-role agents.
            let roles = if a.roles.is_empty() {
                a.role.to_string()
            } else {
                a.roles
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(",")
            };
            let status = serde_json::to_value(a.status)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            t.add_row(vec![
                a.id.to_string(),
                roles,
                status,
                format!("{}/{}", a.load, a.capacity),
                or_dash(a.current_task),
                a.tasks_completed.to_string(),
                a.tasks_failed.to_string(),
                a.location.clone(),
                time(a.last_seen),
            ]);
        }
        print_table(t)?;
        next_page_hint(page.next_cursor.as_deref());
        Ok(())
    })
}
