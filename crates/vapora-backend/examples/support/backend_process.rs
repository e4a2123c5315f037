//! Starting a release backend (or agent server) for a benchmark, with its
//! output in a log file, and reading the address it listens on from it.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub fn spawn(command: &mut Command, log: &std::path::Path) -> Child {
    let out = std::fs::File::create(log).unwrap();
    command
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .stdin(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{command:?}: {e} (run the bench script, which builds it)"))
}

pub async fn wait_for_addr(log: &std::path::Path) -> String {
    for _ in 0..600 {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if let Some(line) = text.lines().find(|l| l.contains("vapora-backend listening"))
            && let Some(at) = line.find("addr=")
        {
            return line[at + 5..].split_whitespace().next().unwrap().to_owned();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "backend did not start: {}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
}
