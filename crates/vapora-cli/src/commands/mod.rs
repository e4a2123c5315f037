//! Runs a parsed command line: reads the configuration, builds the client
//! and hands each subcommand to its module.

mod agents;
mod budgets;
mod events;
mod keys;
mod projects;
mod schedules;
mod tasks;
mod workflows;

use std::io;

use clap::CommandFactory;

use crate::cli::{Cli, Command};
use crate::client::{ApiClient, Reply};
use crate::config;
use crate::exit::Exit;
use crate::output;

/// What every command needs.
#[derive(Debug)]
pub struct Ctx {
    pub client: ApiClient,
    pub json: bool,
}

impl Ctx {
    /// Prints an answer: the server's JSON with `--json`, else as `human`
    /// renders it.
    pub fn print<T>(
        &self,
        reply: &Reply<T>,
        human: impl FnOnce(&T) -> io::Result<()>,
    ) -> anyhow::Result<Exit> {
        if self.json {
            output::json(&reply.json)?;
        } else {
            human(&reply.body)?;
        }
        Ok(Exit::Ok)
    }
}

pub async fn run(cli: Cli) -> anyhow::Result<Exit> {
    // Completions need no server, so no configuration either: a broken
    // config file must not keep a shell from starting.
    if let Command::Completions { shell } = cli.command {
        clap_complete::generate(shell, &mut Cli::command(), "vapora", &mut io::stdout());
        return Ok(Exit::Ok);
    }
    let settings = config::load(&cli.global)?;
    let ctx = Ctx {
        client: ApiClient::new(&settings.url, settings.key)?,
        json: cli.global.json,
    };
    match cli.command {
        Command::Project(command) => projects::run(&ctx, command).await,
        Command::Task(command) => tasks::run(&ctx, command).await,
        Command::Workflow(command) => workflows::run(&ctx, command).await,
        Command::Schedule(command) => schedules::run(&ctx, command).await,
        Command::Agents(page) => agents::run(&ctx, page).await,
        Command::Budgets { project } => budgets::run(&ctx, project).await,
        Command::Keys(command) => keys::run(&ctx, command).await,
        Command::Events { project, since } => events::run(&ctx, project, since).await,
        Command::Completions { .. } => unreachable!("handled above"),
    }
}
