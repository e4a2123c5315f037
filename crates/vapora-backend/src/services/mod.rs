//! Business logic, kept out of the HTTP handlers so that the API, the worker
//! pool and tests all go through the same rules.

pub mod cancellations;
pub mod dispatch_times;
pub mod projects;
pub mod tasks;
pub mod worker_reports;

pub use projects::ProjectService;
pub use tasks::{Board, BoardColumn, TaskHistory, TaskPage, TaskService};
pub use worker_reports::ReportOutcome;
