//! What one task create costs the database, alone and in batches: CPU
//! time of this process per stored task, for transactions of 1, 4, 16 and
//! 64 creates made through `Database::insert_tasks` (project check, guard
//! write and records, as the backend writes them). The reason creates are
//! group-committed (`storage::task_inserts`).
//!
//! `cargo run --release -p vapora-backend --example create_cost [URL]`
//! (default `mem://`; e.g. `surrealkv:///tmp/x` for the on-disk engine).

use std::time::Instant;

use chrono::Utc;
use vapora_backend::storage::{Database, TaskInsert};
use vapora_shared::testing::{new_project, new_task};
use vapora_shared::{ProjectId, Task, TaskStatus};

#[path = "support/proc_stat.rs"]
mod proc_stat;

const TASKS: usize = 3_200;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let url = std::env::args().nth(1).unwrap_or_else(|| "mem://".into());
    let db = Database::connect(&url).await.expect("database");
    let project = new_project().into_project(Utc::now()).unwrap();
    db.insert_project(&project, None).await.unwrap();
    println!("| creates per transaction | CPU per create | wall per create |");
    println!("|---|---|---|");
    // Twice, so that the second pass runs on a table that already holds
    // the first one's tasks, as a live database would.
    for pass in 0..2 {
        for batch in [1, 4, 16, 64] {
            let (cpu_started, started) = (proc_stat::cpu_secs(std::process::id()), Instant::now());
            for _ in 0..TASKS / batch {
                let tasks: Vec<Task> = (0..batch).map(|_| queued_task(project.id)).collect();
                assert_eq!(
                    db.insert_tasks(&tasks, "bench").await.unwrap(),
                    TaskInsert::Stored
                );
            }
            if pass == 1 {
                let per_task = |secs: f64| secs * 1e6 / TASKS as f64;
                println!(
                    "| {batch} | {:.0} µs | {:.0} µs |",
                    per_task(proc_stat::cpu_secs(std::process::id()) - cpu_started),
                    per_task(started.elapsed().as_secs_f64())
                );
            }
        }
    }
}

fn queued_task(project: ProjectId) -> Task {
    let mut task = new_task(project).into_task(Utc::now()).unwrap();
    task.move_to(TaskStatus::Queued, task.created_at);
    task
}
