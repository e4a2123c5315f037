//! A new task as a client asks for it (`POST /api/v1/tasks`), and the
//! checks that turn it into a [`Task`].

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::task::{
    DEFAULT_RETRY_BACKOFF_SECS, MAX_DESCRIPTION_LEN, MAX_TITLE_LEN, ValidationError, validate_run_settings,
    validate_text,
};
use crate::{Priority, ProjectId, Role, Task, TaskId, TaskStatus, UpstreamPolicy};

/// Body of `POST /api/v1/tasks`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTask {
    pub project_id: ProjectId,
    /// Not blank.
    #[schema(min_length = 1, max_length = 500)]
    pub title: String,
    #[serde(default)]
    #[schema(max_length = 65536)]
    pub description: String,
    pub role: Role,
    #[serde(default)]
    pub priority: Priority,
    #[serde(default)]
    pub requires_approval: bool,
    /// Queue the task for an agent right away (the default) or leave it in `todo`.
    #[serde(default = "default_true")]
    #[schema(default = true)]
    pub dispatch: bool,
    /// Seconds one attempt may run before it is cancelled and the task
    /// fails with `timed_out` (1 to 86,400); none by default.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 86400)]
    pub timeout_secs: Option<u32>,
    /// Tasks of the same project that must be done first (at most 100): the
    /// task waits in `waiting` until then, and its agent gets their results.
    #[serde(default)]
    #[schema(max_items = 100)]
    pub depends_on: Vec<TaskId>,
    /// When a dependency fails or is cancelled: `fail` too (the default) or
    /// `wait` for it to be retried.
    #[serde(default)]
    pub on_upstream_failure: UpstreamPolicy,
    /// Not queued before this instant (RFC 3339); the task waits in
    /// `waiting` until then.
    #[serde(default)]
    pub run_at: Option<DateTime<Utc>>,
    /// Retry a failed attempt automatically until this many attempts
    /// (1 to 20; 1, the default: never).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 20)]
    pub max_attempts: Option<u32>,
    /// Seconds before the first automatic retry (0 to 3,600; 5 by
    /// default), doubled for each next one.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 3600)]
    pub retry_backoff_secs: Option<u32>,
    /// At most `concurrency_limit` tasks with this key (any string: a
    /// project, a repository, a customer) are queued or running at once;
    /// the others wait in `waiting` without holding up other keys.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 200)]
    pub concurrency_key: Option<String>,
    /// 1 to 1,000; 1 by default when a key is given.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 1000)]
    pub concurrency_limit: Option<u32>,
}

/// Most dependencies one task may have.
pub const MAX_DEPENDENCIES: usize = 100;

fn default_true() -> bool {
    true
}

impl NewTask {
    /// Validates the request and builds the task in `todo`; queueing is the
    /// service's job because it also has to bump the attempt.
    pub fn into_task(self, now: DateTime<Utc>) -> Result<Task, ValidationError> {
        validate_text("title", &self.title, MAX_TITLE_LEN, false)?;
        validate_text("description", &self.description, MAX_DESCRIPTION_LEN, true)?;
        validate_run_settings(self.timeout_secs, self.max_attempts, self.retry_backoff_secs)?;
        if self.depends_on.len() > MAX_DEPENDENCIES {
            return Err(ValidationError {
                field: "depends_on",
                reason: format!("at most {MAX_DEPENDENCIES} tasks, got {}", self.depends_on.len()),
            });
        }
        let concurrency =
            crate::ConcurrencyLimit::from_request(self.concurrency_key, self.concurrency_limit)?;
        let mut depends_on = self.depends_on;
        depends_on.sort();
        depends_on.dedup();
        Ok(Task {
            id: TaskId::new(),
            project_id: self.project_id,
            title: self.title,
            description: self.description,
            role: self.role,
            priority: self.priority,
            status: TaskStatus::Todo,
            requires_approval: self.requires_approval,
            attempt: 0,
            assigned_agent: None,
            result: None,
            error: None,
            created_at: now,
            updated_at: now,
            dispatched_at: None,
            started_at: None,
            finished_at: None,
            rejection: None,
            timeout_secs: self.timeout_secs,
            depends_on,
            waiting_on: Vec::new(),
            on_upstream_failure: self.on_upstream_failure,
            upstream: Vec::new(),
            run_at: self.run_at,
            max_attempts: self.max_attempts.unwrap_or(1),
            retry_backoff_secs: self.retry_backoff_secs.unwrap_or(DEFAULT_RETRY_BACKOFF_SECS),
            workflow: None,
            schedule_id: None,
            concurrency,
            waiting_for_slot: false,
        })
    }
}
