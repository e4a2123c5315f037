//! Business logic, kept out of the HTTP handlers so that the API, the worker
//! pool and tests all go through the same rules.

pub mod attempts;
pub mod board;
pub mod cancellations;
pub mod dispatch_times;
pub mod dispatches;
pub mod history;
pub(crate) mod page;
pub mod projects;
pub mod readiness;
pub mod replica_queues;
pub mod task_creation;
pub mod tasks;
pub mod user_moves;
pub mod waiting;
pub mod worker_reports;

pub use board::{Board, BoardColumn};
pub use history::TaskHistory;
pub use projects::{ProjectPage, ProjectService};
pub use tasks::{TaskPage, TaskService};
pub use worker_reports::ReportOutcome;
