//! Projects: create, read, update, delete.

use chrono::Utc;
use vapora_shared::{Event, NewProject, Project, ProjectId, ProjectPatch};

use crate::error::AppError;
use crate::events::EventBus;
use crate::storage::Database;

#[derive(Debug, Clone)]
pub struct ProjectService {
    db: Database,
    events: EventBus,
}

impl ProjectService {
    pub fn new(db: Database, events: EventBus) -> Self {
        Self { db, events }
    }

    pub async fn create(&self, new: NewProject) -> Result<Project, AppError> {
        let project = new.into_project(Utc::now())?;
        self.db.insert_project(&project).await?;
        self.events.publish(&Event::ProjectCreated(project.clone()));
        Ok(project)
    }

    pub async fn get(&self, id: ProjectId) -> Result<Project, AppError> {
        self.db
            .get_project(id)
            .await?
            .ok_or_else(|| AppError::not_found("project", id))
    }

    pub async fn list(&self) -> Result<Vec<Project>, AppError> {
        Ok(self.db.list_projects().await?)
    }

    pub async fn update(&self, id: ProjectId, patch: ProjectPatch) -> Result<Project, AppError> {
        let current = self.get(id).await?;
        let next = patch.apply(&current, Utc::now())?;
        if !self.db.update_project(&next).await? {
            return Err(AppError::not_found("project", id));
        }
        self.events.publish(&Event::ProjectUpdated(next.clone()));
        Ok(next)
    }

    /// Deletes a project with its tasks; refused while any of them is
    /// queued or running, so no worker is left holding a deleted task.
    pub async fn delete(&self, id: ProjectId) -> Result<(), AppError> {
        self.get(id).await?;
        if self.db.project_has_active_tasks(id).await? {
            return Err(AppError::Conflict(format!(
                "project {id} has queued or running tasks; cancel them before deleting the project"
            )));
        }
        self.db.delete_project(id).await?;
        self.events.publish(&Event::ProjectDeleted { id });
        Ok(())
    }
}
