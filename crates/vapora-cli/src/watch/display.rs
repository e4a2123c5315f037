//! What a person watching a task sees: a spinner with the task's status on
//! stderr and the task's output on stdout, as it streams. A watched
//! workflow run uses the spinner and the notes only.
//!
//! The spinner redraws its own line, so it cannot share a line with output
//! still being written: on a terminal, output is printed above it a whole
//! line at a time, and the unfinished line shows in the spinner until it
//! completes. Without a terminal (a pipe, a file, a test) there is no
//! spinner and every chunk is written the moment it arrives.

use std::io::{self, IsTerminal, Write};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use vapora_shared::Task;

use crate::output;

/// Longest tail of an unfinished output line shown beside the spinner.
const PARTIAL_LINE_SHOWN: usize = 60;

#[derive(Debug)]
pub struct Display {
    bar: ProgressBar,
    /// A spinner is drawn: stdout and stderr are both terminals.
    live: bool,
    /// `--json`: stdout is for the final document only.
    json: bool,
    /// Output of the current line not printed yet (live only).
    partial: String,
    /// The last byte written to stdout was a newline, or nothing was.
    at_line_start: bool,
}

impl Display {
    pub fn new(json: bool) -> Self {
        let live = io::stdout().is_terminal() && io::stderr().is_terminal();
        let bar = if live {
            let bar = ProgressBar::new_spinner();
            let style = ProgressStyle::with_template("{spinner} {prefix:.bold} {wide_msg:.dim}")
                .expect("the template is valid");
            bar.set_style(style);
            bar.enable_steady_tick(Duration::from_millis(100));
            bar
        } else {
            ProgressBar::hidden()
        };
        Self {
            bar,
            live,
            json,
            partial: String::new(),
            at_line_start: true,
        }
    }

    /// Shows the task's status beside the spinner.
    pub fn status(&self, task: &Task) {
        let agent = task
            .assigned_agent
            .as_ref()
            .map(|a| format!(" · {a}"))
            .unwrap_or_default();
        self.set_status(format!("{} · attempt {}{agent}", task.status, task.attempt));
    }

    /// Shows `text` beside the spinner.
    pub fn set_status(&self, text: String) {
        self.bar.set_prefix(text);
    }

    /// Prints a chunk of the task's output.
    pub fn output(&mut self, text: &str) -> io::Result<()> {
        if self.json || text.is_empty() {
            return Ok(());
        }
        if !self.live {
            return self.write(text);
        }
        self.partial.push_str(text);
        if let Some(end) = self.partial.rfind('\n') {
            let complete: String = self.partial.drain(..=end).collect();
            self.bar.suspend(|| write_stdout(&complete))?;
            self.at_line_start = true;
        }
        let tail_start = self
            .partial
            .char_indices()
            .rev()
            .nth(PARTIAL_LINE_SHOWN)
            .map_or(0, |(i, _)| i);
        self.bar.set_message(self.partial[tail_start..].to_owned());
        Ok(())
    }

    /// Ends the current output line, if one is open.
    pub fn end_line(&mut self) -> io::Result<()> {
        let open = if self.live {
            !self.partial.is_empty()
        } else {
            !self.at_line_start
        };
        if open { self.output("\n") } else { Ok(()) }
    }

    /// A line on stderr, above the spinner.
    pub fn note(&self, text: impl std::fmt::Display) {
        self.bar.suspend(|| output::note(text));
    }

    /// Removes the spinner and ends the output with a newline.
    pub fn finish(&mut self) -> io::Result<()> {
        self.bar.finish_and_clear();
        let partial = std::mem::take(&mut self.partial);
        self.write(&partial)?;
        if !self.at_line_start {
            self.write("\n")?;
        }
        Ok(())
    }

    /// Writes to stdout, remembering whether a line was left open.
    fn write(&mut self, text: &str) -> io::Result<()> {
        if let Some(last) = text.chars().last() {
            self.at_line_start = last == '\n';
        }
        write_stdout(text)
    }
}

fn write_stdout(text: &str) -> io::Result<()> {
    let mut out = io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()
}
