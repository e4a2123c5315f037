//! The command line: every subcommand, flag and its help text, as clap
//! derive types. Nothing here talks to the server.

mod schedules;
mod workflows;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use clap_complete::Shell;
use vapora_shared::{Priority, ProjectId, Role, RoleError, ScheduleId, TaskId};

pub use schedules::{ScheduleCommand, ScheduledRun, ScheduledTask};
pub use workflows::{ListWorkflows, RunWorkflow, WorkflowBody, WorkflowCommand};

use crate::exit::EXIT_CODES_HELP;

const CONFIG_HELP: &str = "\
Configuration:
  The server URL and API key come from, highest first: --url/--key, the
  VAPORA_URL/VAPORA_KEY environment variables, the config file, and the
  default URL http://127.0.0.1:8001. The config file is --config, else
  $XDG_CONFIG_HOME/vapora/config.toml (~/.config/vapora/config.toml), with
  the keys `url` and `key`:

    url = \"https://vapora.example.com\"
    key = \"vk_…\"";

/// Command-line client of the Vapora agent-orchestration API.
#[derive(Debug, Parser)]
#[command(name = "vapora", version, after_long_help = format!("{CONFIG_HELP}\n\n{EXIT_CODES_HELP}"))]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every subcommand takes.
#[derive(Debug, Args)]
#[command(next_help_heading = "Global options")]
pub struct GlobalArgs {
    /// Base URL of the Vapora API [default: http://127.0.0.1:8001].
    #[arg(long, global = true, value_name = "URL")]
    pub url: Option<String>,
    /// API key (`vk_…`). Prefer VAPORA_KEY or the config file: other users
    /// can read command lines.
    #[arg(long, global = true, value_name = "KEY")]
    pub key: Option<String>,
    /// Print the server's JSON instead of tables: one document, or for
    /// `events` one object per line.
    #[arg(long, global = true)]
    pub json: bool,
    /// Config file to read instead of ~/.config/vapora/config.toml.
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
}

/// `--on-upstream-failure`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum UpstreamArg {
    Fail,
    Wait,
}

impl From<UpstreamArg> for vapora_shared::UpstreamPolicy {
    fn from(arg: UpstreamArg) -> Self {
        match arg {
            UpstreamArg::Fail => Self::Fail,
            UpstreamArg::Wait => Self::Wait,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create, list, show and delete projects.
    #[command(subcommand)]
    Project(ProjectCommand),
    /// Create, inspect, follow and move tasks.
    #[command(subcommand)]
    Task(TaskCommand),
    /// Start, follow, cancel and retry workflow runs: a template's stages,
    /// one task each.
    #[command(subcommand)]
    Workflow(WorkflowCommand),
    /// Start tasks or workflow runs on a cron schedule; list, show and
    /// delete schedules.
    #[command(subcommand)]
    Schedule(ScheduleCommand),
    /// List the registered agents.
    Agents(PageArgs),
    /// Spend per role and the configured budgets.
    Budgets {
        /// Only this project's spend.
        #[arg(long, value_name = "PROJECT_ID")]
        project: Option<ProjectId>,
    },
    /// Issue, list and revoke API keys (admins only, except `me`).
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Follow the live event feed: everything the key may see.
    Events {
        /// Only this project's events.
        #[arg(long, value_name = "PROJECT_ID")]
        project: Option<ProjectId>,
        /// Start after this event sequence number (replayed while the
        /// server still holds it).
        #[arg(long, value_name = "SEQ")]
        since: Option<u64>,
    },
    /// Print a shell completion script.
    ///
    /// For example: `vapora completions bash > ~/.local/share/bash-completion/completions/vapora`,
    /// `vapora completions zsh > ~/.zfunc/_vapora`, or
    /// `vapora completions fish > ~/.config/fish/completions/vapora.fish`.
    Completions {
        #[arg(value_enum)]
        shell: Shell,
    },
}

/// `--limit` and `--cursor` of the paged lists.
#[derive(Debug, Args)]
pub struct PageArgs {
    /// Items per page (1–500; the server's default is 50).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=500))]
    pub limit: Option<u16>,
    /// The `next_cursor` of the previous page.
    #[arg(long)]
    pub cursor: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum ProjectCommand {
    /// Create a project.
    Create {
        /// The project's name.
        name: String,
        /// What the project is about.
        #[arg(long, default_value = "")]
        description: String,
    },
    /// List the projects the key reaches, oldest first.
    List(PageArgs),
    /// Show one project.
    Show { id: ProjectId },
    /// Show a project's board: its tasks by status.
    Board {
        id: ProjectId,
        /// Tasks per column (1–500).
        #[arg(long, value_parser = clap::value_parser!(u16).range(1..=500))]
        limit: Option<u16>,
    },
    /// Delete a project and its tasks (refused while one is queued or
    /// running). The server answers with no body, so --json prints nothing.
    Delete { id: ProjectId },
}

#[derive(Debug, Subcommand)]
pub enum TaskCommand {
    /// Create a task; it is queued for an agent at once unless --todo.
    #[command(after_long_help = EXIT_CODES_HELP)]
    Create(CreateTask),
    /// List tasks, oldest first.
    List(ListTasks),
    /// Show one task, its result included.
    Show { id: TaskId },
    /// Cancel a task that is not done yet.
    Cancel { id: TaskId },
    /// Queue a failed task again, as a new attempt.
    #[command(after_long_help = EXIT_CODES_HELP)]
    Retry {
        id: TaskId,
        /// Follow the new attempt, as `task watch` does.
        #[arg(long)]
        watch: bool,
    },
    /// Approve a task waiting in review: it becomes done.
    Approve { id: TaskId },
    /// Send a task waiting in review back with a comment: it runs again,
    /// and the new attempt sees the comment and the rejected output.
    #[command(after_long_help = EXIT_CODES_HELP)]
    Reject {
        id: TaskId,
        /// What to change.
        #[arg(long, short)]
        comment: String,
        /// Follow the new attempt, as `task watch` does.
        #[arg(long)]
        watch: bool,
    },
    /// Follow a task live: its status, and its output as the agent streams
    /// it, until it is done, failed or cancelled, or waits in review.
    ///
    /// The output goes to stdout, status notes to stderr; a spinner shows
    /// while both are terminals. With --json, only the final task is
    /// printed, as the server's JSON.
    #[command(after_long_help = EXIT_CODES_HELP)]
    Watch { id: TaskId },
}

#[derive(Debug, Args)]
pub struct CreateTask {
    #[command(flatten)]
    pub body: TaskBody,
    /// A task of the same project that must be done first (repeat for
    /// more): the task waits, and its agent gets their results.
    #[arg(long = "depends-on", value_name = "TASK_ID")]
    pub depends_on: Vec<TaskId>,
    /// If a dependency fails or is cancelled: fail too, or wait for it to
    /// be retried.
    #[arg(long, value_enum, default_value = "fail")]
    pub on_upstream_failure: UpstreamArg,
    /// Not before this instant (RFC 3339, e.g. 2026-12-24T08:00:00Z).
    #[arg(long, value_name = "TIME")]
    pub run_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Leave the task in todo instead of queueing it.
    #[arg(long)]
    pub todo: bool,
    /// Follow the task once created, as `task watch` does.
    #[arg(long, conflicts_with = "todo")]
    pub watch: bool,
}

/// What a task is and how it runs: the flags `task create` and `schedule
/// task` share.
#[derive(Debug, Args)]
pub struct TaskBody {
    /// The project the task belongs to.
    #[arg(long, value_name = "PROJECT_ID")]
    pub project: ProjectId,
    /// A short name for the task.
    #[arg(long)]
    pub title: String,
    /// What the agent is asked to do, in full.
    #[arg(long, default_value = "")]
    pub description: String,
    /// The agent role that runs it (a slug the server's configuration knows).
    #[arg(long, default_value = "developer", value_parser = parse_role)]
    pub role: Role,
    /// Agents take critical tasks first, then high, medium and low.
    #[arg(long, value_enum, default_value = "medium")]
    pub priority: PriorityArg,
    /// Stop in review, waiting for `vapora task approve`, instead of done.
    #[arg(long)]
    pub requires_approval: bool,
    /// Seconds one attempt may run before it is cancelled and the task
    /// fails as timed out (1 to 86400).
    #[arg(long, value_name = "SECS")]
    pub timeout: Option<u32>,
    /// Retry a failed attempt by itself until this many attempts (1 to 20).
    #[arg(long, value_name = "N")]
    pub max_attempts: Option<u32>,
    /// Seconds before the first automatic retry, doubled for each next one.
    #[arg(long = "retry-backoff", value_name = "SECS")]
    pub retry_backoff_secs: Option<u32>,
    /// At most --concurrency-limit tasks with this key run at once.
    #[arg(long, value_name = "KEY")]
    pub concurrency_key: Option<String>,
    /// Slots of --concurrency-key (1 by default).
    #[arg(long, value_name = "N", requires = "concurrency_key")]
    pub concurrency_limit: Option<u32>,
}

impl TaskBody {
    /// The request body: queued at once, no dependencies, no `run_at`
    /// (the caller sets those it has).
    pub fn into_new_task(self) -> vapora_shared::NewTask {
        vapora_shared::NewTask {
            project_id: self.project,
            title: self.title,
            description: self.description,
            role: self.role,
            priority: self.priority.into(),
            requires_approval: self.requires_approval,
            dispatch: true,
            timeout_secs: self.timeout,
            depends_on: Vec::new(),
            on_upstream_failure: vapora_shared::UpstreamPolicy::default(),
            run_at: None,
            max_attempts: self.max_attempts,
            retry_backoff_secs: self.retry_backoff_secs,
            concurrency_key: self.concurrency_key,
            concurrency_limit: self.concurrency_limit,
        }
    }
}

#[derive(Debug, Args)]
pub struct ListTasks {
    /// Only this project's tasks.
    #[arg(long, value_name = "PROJECT_ID")]
    pub project: Option<ProjectId>,
    /// Only tasks with this status.
    #[arg(long, value_enum)]
    pub status: Option<StatusArg>,
    /// Only tasks for this agent role.
    #[arg(long, value_parser = parse_role)]
    pub role: Option<Role>,
    /// Only the tasks this schedule created.
    #[arg(long, value_name = "SCHEDULE_ID")]
    pub schedule: Option<ScheduleId>,
    #[command(flatten)]
    pub page: PageArgs,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Issue a key. Its secret is printed this once.
    Create {
        /// What the key is for, e.g. who holds it.
        #[arg(long)]
        name: String,
        /// admin: everything; member: read and write its projects; viewer:
        /// read its projects.
        #[arg(long, value_enum)]
        role: KeyRoleArg,
        /// A project a member or viewer key reaches; repeat for several.
        #[arg(long = "project", value_name = "PROJECT_ID")]
        projects: Vec<ProjectId>,
        /// When the key stops working, RFC 3339 (e.g. 2030-01-31T00:00:00Z).
        #[arg(long, value_name = "TIME")]
        expires_at: Option<chrono::DateTime<chrono::Utc>>,
    },
    /// List every key, revoked ones included (no secrets).
    List(PageArgs),
    /// Revoke a key at once.
    Revoke {
        /// The key's id: the 16 hex digits after `vk_`.
        id: String,
    },
    /// Show the key this client uses.
    Me,
}

/// Task priorities, as the API spells them.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum PriorityArg {
    Low,
    Medium,
    High,
    Critical,
}

impl From<PriorityArg> for Priority {
    fn from(p: PriorityArg) -> Self {
        match p {
            PriorityArg::Low => Priority::Low,
            PriorityArg::Medium => Priority::Medium,
            PriorityArg::High => Priority::High,
            PriorityArg::Critical => Priority::Critical,
        }
    }
}

/// Task statuses, as the API spells them.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum StatusArg {
    Todo,
    Waiting,
    Queued,
    Running,
    Review,
    Done,
    Failed,
    Cancelled,
}

/// Key roles, as the API spells them.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum KeyRoleArg {
    Admin,
    Member,
    Viewer,
}

/// The name clap shows for a value, which is also the API's spelling.
pub fn value_name(value: &impl ValueEnum) -> String {
    value
        .to_possible_value()
        .map(|v| v.get_name().to_owned())
        .unwrap_or_default()
}

/// Checks the slug here, so that a typo is a usage error, not a round trip.
fn parse_role(s: &str) -> Result<Role, RoleError> {
    Role::parse(s)
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn value_names_are_the_api_spelling() {
        assert_eq!(value_name(&StatusArg::Cancelled), "cancelled");
        assert_eq!(value_name(&KeyRoleArg::Viewer), "viewer");
        for p in PriorityArg::value_variants() {
            let api = serde_json::to_value(Priority::from(*p)).unwrap();
            assert_eq!(api, serde_json::json!(value_name(p)));
        }
    }

    #[test]
    fn every_status_the_api_has_can_be_asked_for() {
        let offered: Vec<String> = StatusArg::value_variants().iter().map(value_name).collect();
        for status in vapora_shared::TaskStatus::ALL {
            assert!(
                offered.iter().any(|o| o == status.as_str()),
                "--status {status} is missing"
            );
        }
    }

    #[test]
    fn global_flags_go_anywhere() {
        let cli = Cli::try_parse_from(["vapora", "task", "list", "--json", "--url", "http://x"]).unwrap();
        assert!(cli.global.json);
        assert_eq!(cli.global.url.as_deref(), Some("http://x"));
    }

    #[test]
    fn watch_and_todo_exclude_each_other() {
        let project = ProjectId::new().to_string();
        let args = ["vapora", "task", "create", "--project", &project, "--title", "t"];
        assert!(Cli::try_parse_from(args).is_ok());
        let both = [&args[..], &["--todo", "--watch"]].concat();
        assert!(Cli::try_parse_from(both).is_err());
    }
}
