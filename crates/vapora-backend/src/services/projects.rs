//! Projects: create, read, update, delete.
//!
//! Edits and deletes are read–decide–compare-and-set loops, like task
//! changes (see `services::tasks`): a concurrent writer makes us re-read and
//! decide again rather than overwrite what it wrote.

use chrono::Utc;
use utoipa::ToSchema;
use vapora_shared::{Event, NewProject, ProjectId, ProjectPatch};

use crate::error::AppError;
use crate::events::EventBus;
use crate::storage::{Database, ProjectDelete, StoredProject, back_off};

/// Lost races tolerated before answering 409. People edit projects, so
/// races are rare; the bound only matters under a burst of writes to one
/// project, which the backoff below spreads out.
const MAX_WRITE_RACES: u32 = 64;

#[derive(Debug, Clone)]
pub struct ProjectService {
    pub(super) db: Database,
    events: EventBus,
}

/// One page of `GET /api/v1/projects`.
#[derive(Debug, serde::Serialize, ToSchema)]
pub struct ProjectPage {
    pub items: Vec<StoredProject>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<ProjectId>,
}

impl ProjectService {
    pub fn new(db: Database, events: EventBus) -> Self {
        Self { db, events }
    }

    /// Creates a project; an `owner` key (a member's) gets it added to its
    /// projects in the same write.
    pub async fn create(&self, new: NewProject, owner: Option<&str>) -> Result<StoredProject, AppError> {
        let project = new.into_project(Utc::now())?;
        let stored = self.db.insert_project(&project, owner).await?;
        self.events.publish(&Event::ProjectCreated(project));
        Ok(stored)
    }

    pub async fn get(&self, id: ProjectId) -> Result<StoredProject, AppError> {
        self.db
            .get_project(id)
            .await?
            .ok_or_else(|| AppError::not_found("project", id))
    }

    /// Up to `limit` projects after the `after` cursor, oldest first; with
    /// `within`, only those.
    pub async fn list(
        &self,
        after: Option<ProjectId>,
        limit: usize,
        within: Option<&[ProjectId]>,
    ) -> Result<ProjectPage, AppError> {
        let mut items = self.db.list_projects(after, limit + 1, within).await?;
        let next_cursor = super::page::cut(&mut items, limit, |p| p.project.id);
        Ok(ProjectPage { items, next_cursor })
    }

    pub async fn update(&self, id: ProjectId, patch: ProjectPatch) -> Result<StoredProject, AppError> {
        for race in 0..MAX_WRITE_RACES {
            let stored = self.get(id).await?;
            let next = patch.clone().apply(&stored.project, Utc::now())?;
            if self.db.replace_project(&next, stored.rev).await? {
                self.events.publish(&Event::ProjectUpdated(next.clone()));
                return Ok(StoredProject {
                    project: next,
                    rev: stored.rev + 1,
                });
            }
            back_off(race).await;
        }
        Err(too_fast(id))
    }

    /// Deletes a project with its tasks; refused while any of them is
    /// queued or running, so no worker is left holding a deleted task.
    pub async fn delete(&self, id: ProjectId) -> Result<(), AppError> {
        for race in 0..MAX_WRITE_RACES {
            match self.db.delete_project(id).await? {
                ProjectDelete::Deleted => {
                    self.events.publish(&Event::ProjectDeleted { id });
                    return Ok(());
                }
                ProjectDelete::NotFound => return Err(AppError::not_found("project", id)),
                ProjectDelete::ActiveTasks => {
                    return Err(AppError::Conflict(format!(
                        "project {id} has queued or running tasks; cancel them before deleting the project"
                    )));
                }
                ProjectDelete::Conflict => back_off(race).await,
            }
        }
        Err(too_fast(id))
    }
}

fn too_fast(id: ProjectId) -> AppError {
    AppError::Conflict(format!("project {id} is changing too fast; try again"))
}
