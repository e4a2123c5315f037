//! The `vapora schedule …` command line: a task or a workflow run started
//! on every slot of a cron expression, and the schedules themselves.

use clap::{Args, Subcommand};
use vapora_shared::{ProjectId, ScheduleId};

use super::{TaskBody, WorkflowBody};

const CRON_HELP: &str = "\
Cron expressions are in UTC: five fields (minute hour day-of-month month
day-of-week), six with seconds first, seven with a year last, or an alias
such as @hourly. Each slot starts one task or run, once, however many
backends run; after an outage only the latest missed slot fires.";

#[derive(Debug, Subcommand)]
pub enum ScheduleCommand {
    /// Create a task on every slot of a cron expression.
    #[command(after_long_help = CRON_HELP)]
    Task(ScheduledTask),
    /// Start a workflow run on every slot of a cron expression.
    #[command(after_long_help = CRON_HELP)]
    Workflow(ScheduledRun),
    /// List schedules, with how often each fired.
    List {
        /// Only this project's schedules.
        #[arg(long, value_name = "PROJECT_ID")]
        project: Option<ProjectId>,
    },
    /// Show a schedule: its next slot, slots fired and skipped, the latest
    /// error.
    Show { id: ScheduleId },
    /// Delete a schedule: no slot fires after it. What it started stays.
    Delete { id: ScheduleId },
}

/// When a schedule fires, and its name.
#[derive(Debug, Args)]
pub struct Timing {
    /// When to fire (UTC), e.g. "0 9 * * 1-5" or "*/30 * * * * *".
    #[arg(long)]
    pub cron: String,
    /// A name for people; the cron expression when absent.
    #[arg(long)]
    pub name: Option<String>,
}

#[derive(Debug, Args)]
pub struct ScheduledTask {
    #[command(flatten)]
    pub timing: Timing,
    #[command(flatten)]
    pub task: TaskBody,
}

#[derive(Debug, Args)]
pub struct ScheduledRun {
    #[command(flatten)]
    pub timing: Timing,
    #[command(flatten)]
    pub run: WorkflowBody,
}
