//! `vapora`: the command-line client of the Vapora API.
//!
//! Parses the command line, runs the command on a single-threaded runtime
//! (a client waits on one server; it has no work to spread over cores),
//! and turns the outcome into an exit code (see [`exit`]).

mod cli;
mod client;
mod commands;
mod config;
mod exit;
mod output;
mod watch;

use std::process::ExitCode;

use clap::Parser;

use crate::exit::Exit;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            output::note(format!("error: cannot start the async runtime: {e}"));
            return Exit::Error.into();
        }
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(exit) => exit.into(),
        // `vapora … | head`: the reader has all it wanted.
        Err(e) if is_broken_pipe(&e) => Exit::Ok.into(),
        Err(e) => {
            output::note(format!("error: {e:#}"));
            Exit::Error.into()
        }
    }
}

fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error
        .chain()
        .filter_map(|e| e.downcast_ref::<std::io::Error>())
        .any(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
}
