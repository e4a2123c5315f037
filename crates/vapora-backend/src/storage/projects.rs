//! Project records.

use serde_json::json;
use vapora_shared::{Project, ProjectId};

use super::codec::{COLUMNS, from_record, to_content};
use super::{Database, StorageError};

impl Database {
    pub async fn insert_project(&self, project: &Project) -> Result<(), StorageError> {
        self.execute(
            "CREATE type::record('project', $id) CONTENT $content RETURN NONE",
            json!({ "id": project.id, "content": to_content(project)? }),
        )
        .await
    }

    pub async fn get_project(&self, id: ProjectId) -> Result<Option<Project>, StorageError> {
        let sql = format!("SELECT {COLUMNS} FROM type::record('project', $id)");
        let rows = self.fetch_all(&sql, json!({ "id": id })).await?;
        rows.into_iter().next().map(from_record).transpose()
    }

    pub async fn list_projects(&self) -> Result<Vec<Project>, StorageError> {
        let sql = format!("SELECT {COLUMNS} FROM project ORDER BY id");
        let rows = self.fetch_all(&sql, json!({})).await?;
        rows.into_iter().map(from_record).collect()
    }

    /// Replaces a project's content; returns false when it no longer exists.
    pub async fn update_project(&self, project: &Project) -> Result<bool, StorageError> {
        let rows = self
            .fetch_all(
                "UPDATE type::record('project', $id) CONTENT $content RETURN true",
                json!({ "id": project.id, "content": to_content(project)? }),
            )
            .await?;
        Ok(!rows.is_empty())
    }

    /// Deletes a project and all of its tasks in one transaction.
    pub async fn delete_project(&self, id: ProjectId) -> Result<(), StorageError> {
        self.execute(
            "BEGIN TRANSACTION;
             DELETE task WHERE project_id = $id;
             DELETE type::record('project', $id);
             COMMIT TRANSACTION;",
            json!({ "id": id }),
        )
        .await
    }
}
