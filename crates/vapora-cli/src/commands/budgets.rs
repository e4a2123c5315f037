//! `vapora budgets`: what each role's tasks have cost, and the budgets.

use vapora_shared::ProjectId;

use super::Ctx;
use crate::client::wire::BudgetReport;
use crate::exit::Exit;
use crate::output::{self, print_table, table, time};

pub async fn run(ctx: &Ctx, project: Option<ProjectId>) -> anyhow::Result<Exit> {
    let reply = ctx.client.budgets(project).await?;
    ctx.print(&reply, human)
}

fn human(report: &BudgetReport) -> std::io::Result<()> {
    let mut spend = table(["ROLE", "TASKS", "TOKENS IN", "TOKENS OUT", "COST USD"]);
    for s in &report.spend {
        spend.add_row(vec![
            s.role.clone(),
            s.tasks.to_string(),
            s.tokens_in.to_string(),
            s.tokens_out.to_string(),
            format!("{:.6}", s.cost_usd),
        ]);
    }
    print_table(spend)?;
    output::line("")?;
    if report.budgets.is_empty() {
        return output::line("No budgets configured.");
    }
    let mut budgets = table([
        "BUDGET",
        "LIMIT USD",
        "SPENT USD",
        "RESERVED USD",
        "PERIOD",
        "FROM",
        "TO",
        "WHEN EXHAUSTED",
    ]);
    for b in &report.budgets {
        let exhausted = match &b.on_exhausted.route {
            Some(route) => format!("{} to {route}", b.on_exhausted.action),
            None => b.on_exhausted.action.clone(),
        };
        budgets.add_row(vec![
            b.key.clone(),
            format!("{:.4}", b.limit_usd),
            format!("{:.4}", b.spent_usd),
            format!("{:.4}", b.reserved_usd),
            b.period.clone(),
            time(b.period_start),
            time(b.period_end),
            exhausted,
        ]);
    }
    print_table(budgets)
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    /// The router's `BudgetStatus` as the server serializes it.
    #[test]
    fn the_servers_budget_report_decodes() {
        let body = serde_json::json!({
            "spend": [{"role": "developer", "tasks": 3, "tokens_in": 10, "tokens_out": 20, "cost_usd": 0.0001}],
            "budgets": [{
                "key": "provider:openai", "limit_usd": 5.0, "spent_usd": 1.25, "reserved_usd": 0.5,
                "period": "monthly", "period_start": "2025-01-01T00:00:00Z", "period_end": "2025-02-01T00:00:00Z",
                "on_exhausted": {"action": "downgrade", "route": "cheap"}
            }]
        });
        let report = BudgetReport::deserialize(&body).unwrap();
        assert_eq!(report.spend[0].tasks, 3);
        assert_eq!(report.budgets[0].on_exhausted.route.as_deref(), Some("cheap"));
    }
}
