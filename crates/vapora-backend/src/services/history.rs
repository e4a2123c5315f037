//! `GET /api/v1/tasks/{id}/history`: a task's status changes, a page at a
//! time, and the worker reports its attempt fence turned away.

use serde::Serialize;
use utoipa::ToSchema;
use vapora_shared::TaskId;

use super::TaskService;
use crate::error::AppError;
use crate::storage::{StaleReport, Transition};

/// Stale reports shown with a history (the first ones). A worker that keeps
/// reporting for a superseded attempt cannot grow the response.
pub const MAX_STALE_REPORTS: usize = 100;

#[derive(Debug, Serialize, ToSchema)]
pub struct TaskHistory {
    pub task_id: TaskId,
    /// Up to `limit` status changes, oldest first, from the cursor on.
    pub transitions: Vec<Transition>,
    /// Pass as `cursor` for the next changes; absent on the last page.
    pub next_cursor: Option<String>,
    /// At most [`MAX_STALE_REPORTS`], oldest first.
    pub stale_reports: Vec<StaleReport>,
}

impl TaskService {
    /// Up to `limit` status changes from position `from`.
    pub async fn history(&self, id: TaskId, from: usize, limit: usize) -> Result<TaskHistory, AppError> {
        let page = self
            .db
            .task_history_page(id, from, limit)
            .await?
            .ok_or_else(|| AppError::not_found("task", id))?;
        let seen = from.saturating_add(page.transitions.len());
        Ok(TaskHistory {
            task_id: id,
            next_cursor: (!page.transitions.is_empty() && seen < page.total).then(|| seen.to_string()),
            transitions: page.transitions,
            stale_reports: self.db.stale_reports(id, MAX_STALE_REPORTS).await?,
        })
    }
}
