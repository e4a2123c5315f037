//! Multi-stage work: workflow templates ([`templates`]), their runs in a
//! project ([`runs`]), and recurring schedules that start tasks or runs
//! ([`schedules`]).
//!
//! A run is a set of ordinary tasks, one per stage, wired with
//! `depends_on`: everything a task can do (wait, be approved or rejected,
//! time out, retry) a stage does, in the embedded mode and over JetStream
//! alike. This module adds what ties them together: the template, the
//! run's record and status, and the run-level operations.

pub mod runs;
pub mod schedules;
pub mod templates;

pub use runs::{WorkflowPage, WorkflowService};
pub use schedules::ScheduleService;
pub use templates::TemplateCatalog;
