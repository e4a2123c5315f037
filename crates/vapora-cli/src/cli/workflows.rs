//! The `vapora workflow …` command line: starting, listing, following,
//! cancelling and retrying workflow runs, and reading the templates.

use std::collections::BTreeMap;

use clap::error::ErrorKind;
use clap::{Args, CommandFactory, Subcommand, ValueEnum};
use vapora_shared::{NewWorkflow, ProjectId, ScheduleId, WorkflowId};

use super::{Cli, PageArgs, PriorityArg};
use crate::exit::EXIT_CODES_HELP;

#[derive(Debug, Subcommand)]
pub enum WorkflowCommand {
    /// Start a run of a template in a project: one task per stage.
    #[command(after_long_help = EXIT_CODES_HELP)]
    Run(RunWorkflow),
    /// List runs, oldest first.
    List(ListWorkflows),
    /// Show a run and its stages.
    Show { id: WorkflowId },
    /// Follow a run live until every stage is done, a stage fails, or the
    /// run is cancelled.
    ///
    /// Stage changes are noted on stderr (with a spinner while stdout and
    /// stderr are terminals); a stage waiting for approval is named with
    /// the command that approves it, and the watch goes on. At the end the
    /// run is printed to stdout; with --json, as the server's JSON.
    #[command(after_long_help = EXIT_CODES_HELP)]
    Watch { id: WorkflowId },
    /// Cancel every unfinished stage of a run.
    Cancel { id: WorkflowId },
    /// Run a failed stage again (and the stages that failed because of it);
    /// the run continues from there.
    #[command(after_long_help = EXIT_CODES_HELP)]
    Retry {
        id: WorkflowId,
        /// The stage's name, as `workflow show` lists it.
        stage: String,
        /// Follow the run afterwards, as `workflow watch` does.
        #[arg(long)]
        watch: bool,
    },
    /// List the templates (name, inputs, stages), or show one in full.
    Templates {
        /// Show only this template, with its stages.
        name: Option<String>,
    },
}

#[derive(Debug, Args)]
pub struct RunWorkflow {
    #[command(flatten)]
    pub body: WorkflowBody,
    /// Not before this instant (RFC 3339, e.g. 2026-12-24T08:00:00Z): the
    /// first stages wait until then.
    #[arg(long, value_name = "TIME")]
    pub run_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Follow the run once started, as `workflow watch` does.
    #[arg(long)]
    pub watch: bool,
}

/// Which template to run, where and with what: the flags `workflow run`
/// and `schedule workflow` share.
#[derive(Debug, Args)]
pub struct WorkflowBody {
    /// The template's name (see `vapora workflow templates`).
    pub template: String,
    /// The project the run belongs to.
    #[arg(long, value_name = "PROJECT_ID")]
    pub project: ProjectId,
    /// A value for one of the template's inputs (repeat for each).
    #[arg(long = "input", value_name = "NAME=VALUE", value_parser = parse_input)]
    pub inputs: Vec<(String, String)>,
    /// Every stage's priority.
    #[arg(long, value_enum, default_value = "medium")]
    pub priority: PriorityArg,
}

impl WorkflowBody {
    /// The request body, starting at once (the caller sets `run_at`); an
    /// input given twice is a usage error (exit 2), as clap's own.
    pub fn into_new_workflow(self) -> NewWorkflow {
        let mut inputs = BTreeMap::new();
        for (name, value) in self.inputs {
            if inputs.insert(name.clone(), value).is_some() {
                Cli::command()
                    .error(
                        ErrorKind::ArgumentConflict,
                        format!("--input {name} is given twice"),
                    )
                    .exit();
            }
        }
        NewWorkflow {
            project_id: self.project,
            template: self.template,
            inputs,
            run_at: None,
            priority: self.priority.into(),
        }
    }
}

#[derive(Debug, Args)]
pub struct ListWorkflows {
    /// Only this project's runs.
    #[arg(long, value_name = "PROJECT_ID")]
    pub project: Option<ProjectId>,
    /// Only runs with this status.
    #[arg(long, value_enum)]
    pub status: Option<WorkflowStatusArg>,
    /// Only the runs this schedule started.
    #[arg(long, value_name = "SCHEDULE_ID")]
    pub schedule: Option<ScheduleId>,
    #[command(flatten)]
    pub page: PageArgs,
}

/// Run statuses, as the API spells them.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum WorkflowStatusArg {
    Running,
    #[value(name = "awaiting_approval")]
    AwaitingApproval,
    Failed,
    Done,
    Cancelled,
}

/// `NAME=VALUE`, split at the first `=`; the value may be empty.
fn parse_input(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((name, value)) if !name.trim().is_empty() => Ok((name.trim().to_owned(), value.to_owned())),
        _ => Err(format!("expected NAME=VALUE, got {s:?}")),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command, value_name};

    #[test]
    fn every_run_status_the_api_has_can_be_asked_for() {
        let offered: Vec<String> = WorkflowStatusArg::value_variants()
            .iter()
            .map(value_name)
            .collect();
        let api: Vec<&str> = vapora_shared::WorkflowStatus::ALL
            .iter()
            .map(|s| s.as_str())
            .collect();
        assert_eq!(offered, api);
    }

    #[test]
    fn inputs_are_name_value_pairs() {
        assert_eq!(parse_input("feature=a=b"), Ok(("feature".into(), "a=b".into())));
        assert_eq!(parse_input("empty="), Ok(("empty".into(), String::new())));
        assert!(parse_input("novalue").is_err());
        assert!(parse_input("=x").is_err());

        let project = ProjectId::new().to_string();
        let args = [
            "vapora",
            "workflow",
            "run",
            "feature",
            "--project",
            &project,
            "--input",
            "feature=login",
            "--input",
            "extra=x y",
            "--watch",
        ];
        let Command::Workflow(WorkflowCommand::Run(run)) = Cli::try_parse_from(args).unwrap().command else {
            panic!("not a workflow run");
        };
        assert_eq!(run.body.inputs.len(), 2);
        assert_eq!(run.body.inputs[1], ("extra".into(), "x y".into()));
        assert!(run.watch);
    }
}
