//! Recurring schedules: a cron expression (UTC) and what each of its
//! slots starts, a task or a workflow run.
//!
//! Each slot fires once, whatever the number of backend replicas: what it
//! starts is stored in the same transaction that moves the schedule past
//! the slot, and only if the schedule is still due at it, so a second
//! start of the same slot stores nothing. A slot missed while
//! no backend ran is fired late, once, when a backend next looks; of
//! several missed slots only the latest is (the others are counted in
//! `skipped`): a schedule catches up, it does not replay an outage.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{NewTask, NewWorkflow, ProjectId, ScheduleId};

/// Body of `POST /api/v1/schedules`: `cron` and exactly one of `task` and
/// `workflow`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSchedule {
    /// For people; the cron expression when absent.
    #[serde(default)]
    #[schema(max_length = 500)]
    pub name: Option<String>,
    /// Five fields (minute hour day-of-month month day-of-week), six
    /// (seconds first) or seven (a year last), in UTC; `@hourly`-style
    /// aliases too.
    #[schema(example = "0 9 * * 1-5")]
    pub cron: String,
    /// The task each slot creates (its `run_at` and `dispatch` are the
    /// schedule's: queued at the slot).
    #[serde(default)]
    pub task: Option<NewTask>,
    /// The workflow run each slot starts.
    #[serde(default)]
    pub workflow: Option<NewWorkflow>,
}

/// A stored schedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Schedule {
    pub id: ScheduleId,
    pub project_id: ProjectId,
    pub name: String,
    pub cron: String,
    pub task: Option<NewTask>,
    pub workflow: Option<NewWorkflow>,
    /// The next slot to fire.
    pub next_fire_at: DateTime<Utc>,
    /// The latest slot fired, and when it was.
    pub last_slot: Option<DateTime<Utc>>,
    pub last_fired_at: Option<DateTime<Utc>>,
    /// Slots fired so far.
    pub fired: u64,
    /// Slots missed while no backend ran and not caught up (see the
    /// catch-up policy in the module documentation).
    pub skipped: u64,
    /// Why the latest slot started nothing, if it did not.
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
}
