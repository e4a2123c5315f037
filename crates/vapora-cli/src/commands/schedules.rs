//! `vapora schedule …`: create schedules of tasks or workflow runs, list,
//! show and delete them.

use vapora_shared::{NewSchedule, Schedule};

use super::Ctx;
use crate::cli::{ScheduleCommand, ScheduledRun, ScheduledTask};
use crate::exit::Exit;
use crate::output::{details, maybe_time, one_line, or_dash, print_table, table, time};

pub async fn run(ctx: &Ctx, command: ScheduleCommand) -> anyhow::Result<Exit> {
    let client = &ctx.client;
    match command {
        ScheduleCommand::Task(ScheduledTask { timing, task }) => {
            let new = NewSchedule {
                name: timing.name,
                cron: timing.cron,
                task: Some(task.into_new_task()),
                workflow: None,
            };
            ctx.print(&client.create_schedule(&new).await?, show)
        }
        ScheduleCommand::Workflow(ScheduledRun { timing, run }) => {
            let new = NewSchedule {
                name: timing.name,
                cron: timing.cron,
                task: None,
                workflow: Some(run.into_new_workflow()),
            };
            ctx.print(&client.create_schedule(&new).await?, show)
        }
        ScheduleCommand::List { project } => {
            let reply = client.list_schedules(project).await?;
            ctx.print(&reply, |schedules| {
                let mut t = table([
                    "ID",
                    "NAME",
                    "CRON",
                    "STARTS",
                    "NEXT",
                    "FIRED",
                    "SKIPPED",
                    "LAST ERROR",
                ]);
                for s in schedules {
                    t.add_row(vec![
                        s.id.to_string(),
                        one_line(&s.name, 30),
                        s.cron.clone(),
                        starts(s),
                        time(s.next_fire_at),
                        s.fired.to_string(),
                        s.skipped.to_string(),
                        or_dash(s.last_error.as_deref().map(|e| one_line(e, 40))),
                    ]);
                }
                print_table(t)
            })
        }
        ScheduleCommand::Show { id } => ctx.print(&client.get_schedule(id).await?, show),
        ScheduleCommand::Delete { id } => ctx.print(&client.delete_schedule(id).await?, show),
    }
}

/// What each slot starts, in a few words.
fn starts(schedule: &Schedule) -> String {
    match (&schedule.task, &schedule.workflow) {
        (Some(task), _) => format!("task {:?} ({})", one_line(&task.title, 30), task.role),
        (None, Some(run)) => format!("workflow {}", run.template),
        (None, None) => "-".into(),
    }
}

fn show(schedule: &Schedule) -> std::io::Result<()> {
    print_table(details(vec![
        ("id", schedule.id.to_string()),
        ("project", schedule.project_id.to_string()),
        ("name", schedule.name.clone()),
        ("cron (UTC)", schedule.cron.clone()),
        ("starts", starts(schedule)),
        ("next slot", time(schedule.next_fire_at)),
        ("last slot", maybe_time(schedule.last_slot)),
        ("last fired", maybe_time(schedule.last_fired_at)),
        ("fired", schedule.fired.to_string()),
        ("skipped", schedule.skipped.to_string()),
        ("last error", or_dash(schedule.last_error.as_deref())),
        ("created", time(schedule.created_at)),
    ]))
}
