//! Writing results: the `--json` document, borderless tables, and the
//! little formatting every command shares (times, absent values).
//!
//! Everything goes through `io::Result` rather than `println!`, which
//! panics on a closed pipe: `vapora task list | head -1` must end quietly.

use std::fmt::Display;
use std::io::{self, Write};

use chrono::{DateTime, Utc};
use comfy_table::{ContentArrangement, Table, presets};
use serde_json::Value;

/// Prints the server's JSON as one pretty document.
pub fn json(value: &Value) -> io::Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(io::Error::other)?;
    line(text)
}

/// Prints one line to stdout.
pub fn line(text: impl Display) -> io::Result<()> {
    let mut out = io::stdout().lock();
    writeln!(out, "{text}")?;
    out.flush()
}

/// Prints a note to stderr: confirmations and hints, which scripts reading
/// stdout should not have to skip.
pub fn note(text: impl Display) {
    // Nothing useful is left to do when stderr itself is gone.
    let _ = writeln!(io::stderr().lock(), "{text}");
}

/// A table in the style of `kubectl get`: a header row and columns, no
/// borders. Long cells wrap to the terminal's width when there is one.
pub fn table<const N: usize>(header: [&str; N]) -> Table {
    let mut table = Table::new();
    table
        .load_style(presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(header);
    table
}

/// Name/value rows, for one object.
pub fn details(rows: Vec<(&str, String)>) -> Table {
    let mut table = Table::new();
    table
        .load_style(presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Dynamic);
    for (name, value) in rows {
        table.add_row(vec![format!("{name}:"), value]);
    }
    table
}

pub fn print_table(table: Table) -> io::Result<()> {
    line(render(table))
}

/// Columns two spaces apart, no padding at the edges.
fn render(mut table: Table) -> String {
    let last = table.column_count().saturating_sub(1);
    for (i, column) in table.column_iter_mut().enumerate() {
        column.set_padding((0, if i == last { 0 } else { 2 }));
    }
    table.trim_fmt()
}

/// A time as `2025-01-31 14:05:09`, in UTC like the API.
pub fn time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

pub fn maybe_time(t: Option<DateTime<Utc>>) -> String {
    t.map(time).unwrap_or_else(|| "-".into())
}

/// The value, or `-` when there is none.
pub fn or_dash(value: Option<impl Display>) -> String {
    value.map(|v| v.to_string()).unwrap_or_else(|| "-".into())
}

/// The first line of `text`, at most `max` characters, for a table cell.
pub fn one_line(text: &str, max: usize) -> String {
    let first = text.lines().next().unwrap_or("");
    let mut cut: String = first.chars().take(max).collect();
    if cut.len() < first.len() || text.lines().nth(1).is_some() {
        cut.push('…');
    }
    cut
}

/// Tells how to get the next page, when there is one.
pub fn next_page_hint(next_cursor: Option<&str>) {
    if let Some(cursor) = next_cursor {
        note(format!("(more: repeat with --cursor {cursor})"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_are_one_short_line() {
        assert_eq!(one_line("abc", 5), "abc");
        assert_eq!(one_line("abcdef", 3), "abc…");
        assert_eq!(one_line("ab\ncd", 5), "ab…");
        assert_eq!(one_line("", 5), "");
    }

    #[test]
    fn tables_have_no_borders_or_trailing_space() {
        let mut t = table(["ID", "NAME"]);
        t.add_row(vec!["1", "alpha"]);
        assert_eq!(render(t), "ID  NAME\n1   alpha");
    }
}
