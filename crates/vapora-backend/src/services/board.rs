//! `GET /api/v1/projects/{id}/board`: a project's tasks in one column per
//! status, each column a first page that `GET /api/v1/tasks` continues.

use futures::future::try_join_all;
use serde::Serialize;
use utoipa::ToSchema;
use vapora_shared::{ProjectId, Task, TaskId, TaskStatus};

use super::ProjectService;
use crate::error::AppError;
use crate::storage::{StoredProject, TaskFilter};

#[derive(Debug, Serialize, ToSchema)]
pub struct BoardColumn {
    pub status: TaskStatus,
    /// The column's oldest tasks, at most the board's `limit`.
    pub tasks: Vec<Task>,
    /// When the column has more: pass as `cursor` to
    /// `GET /api/v1/tasks?project_id=…&status=…` for the rest.
    pub next_cursor: Option<TaskId>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Board {
    pub project: StoredProject,
    pub columns: Vec<BoardColumn>,
}

impl ProjectService {
    /// The board with at most `limit` tasks per column.
    pub async fn board(&self, id: ProjectId, limit: usize) -> Result<Board, AppError> {
        let project = self.get(id).await?;
        let columns = TaskStatus::ALL.into_iter().map(|status| async move {
            let filter = TaskFilter {
                project_id: Some(id),
                status: Some(status),
                limit: limit + 1,
                ..TaskFilter::default()
            };
            let mut tasks = self.db.list_tasks(&filter).await?;
            let next_cursor = super::page::cut(&mut tasks, limit, |t| t.id);
            Ok::<_, AppError>(BoardColumn {
                status,
                tasks,
                next_cursor,
            })
        });
        Ok(Board {
            project,
            columns: try_join_all(columns).await?,
        })
    }
}
