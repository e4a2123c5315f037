//! The process exit codes, in one place so that `--help` and the code that
//! returns them cannot disagree.
//!
//! Scripts branch on these: a task's own outcome (failed, cancelled) is kept
//! apart from "the client could not do what was asked" (1) and from clap's
//! usage errors (2), so that a retry loop can tell a broken task from an
//! unreachable server.

use std::process::ExitCode;

/// How `vapora` ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Done; for `watch`, the task is `done` or waits in `review`, or the
    /// workflow run is `done`.
    Ok,
    /// The request failed: the server's error, an unreachable server, bad
    /// configuration.
    Error,
    /// A watched task ended `failed`, or a watched run's stage did.
    TaskFailed,
    /// A watched task or workflow run ended `cancelled`.
    TaskCancelled,
    /// Interrupted by Ctrl-C while following a task, a run or the event feed.
    Interrupted,
}

impl Exit {
    pub fn code(self) -> u8 {
        match self {
            Self::Ok => 0,
            Self::Error => 1,
            Self::TaskFailed => 3,
            Self::TaskCancelled => 4,
            Self::Interrupted => 130,
        }
    }
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> Self {
        ExitCode::from(exit.code())
    }
}

/// The exit codes as `--help` shows them (2 is clap's, for usage errors).
pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0    success; for `task watch` and `--watch`: the task is done, or waits in review for approval;
       for `workflow watch` and `workflow … --watch`: every stage of the run is done
  1    the request failed (the server's error, an unreachable server, bad configuration)
  2    invalid command line
  3    the watched task failed (its error is printed); for a workflow run: a stage failed
  4    the watched task was cancelled; for a workflow run: the run (or a stage) was cancelled
  130  interrupted (Ctrl-C)";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn help_lists_every_code() {
        for exit in [
            Exit::Ok,
            Exit::Error,
            Exit::TaskFailed,
            Exit::TaskCancelled,
            Exit::Interrupted,
        ] {
            let line = format!("\n  {:<4} ", exit.code());
            assert!(EXIT_CODES_HELP.contains(&line), "{line:?} missing");
        }
    }
}
