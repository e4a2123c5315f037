//! Workflow templates made over the API, and workflow runs.
//!
//! A run and its stage tasks are stored in one transaction (see
//! [`Database::insert_tasks`]), so a run never exists half-made. Run writes
//! are compare-and-set on `rev`, as task writes are: a run's status is
//! recomputed by whoever moved one of its stages, on any replica.

use serde::{Deserialize, Serialize};
use serde_json::json;
use vapora_shared::{ProjectId, ScheduleId, Task, WorkflowId, WorkflowRun, WorkflowStatus, WorkflowTemplate};

use super::codec::{COLUMNS, from_record, to_content};
use super::{Companion, Database, StorageError, TaskInsert};

/// A run as stored: with the revision a write must name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredRun {
    #[serde(flatten)]
    pub run: WorkflowRun,
    pub rev: u64,
}

/// What `GET /api/v1/workflows` filters on.
#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    pub project_id: Option<ProjectId>,
    /// The caller's projects, when it is limited to some.
    pub within: Option<Vec<ProjectId>>,
    pub status: Option<WorkflowStatus>,
    /// Only the runs this schedule's slots started.
    pub schedule_id: Option<ScheduleId>,
    pub after: Option<WorkflowId>,
    pub limit: usize,
}

impl Database {
    /// Stores a template under its name; `false` if the name is taken.
    pub async fn insert_workflow_template(&self, template: &WorkflowTemplate) -> Result<bool, StorageError> {
        let sql = "IF record::exists(type::record('workflow_template', $name)) { RETURN false }
            ELSE { CREATE type::record('workflow_template', $name) SET body = $body RETURN NONE; RETURN true }";
        let vars = json!({ "name": template.name, "body": serde_json::to_string(template)? });
        let mut response = self.call(self.db.query(sql).bind(vars)).await?;
        let created: Option<bool> = response.take(0)?;
        Ok(created.unwrap_or(false))
    }

    pub async fn workflow_template(&self, name: &str) -> Result<Option<WorkflowTemplate>, StorageError> {
        if !vapora_shared::workflow::valid_name(name) {
            // No template has it, and some (the empty one) are no record id.
            return Ok(None);
        }
        let sql = "SELECT VALUE body FROM type::record('workflow_template', $name)";
        let rows = self.fetch_all(sql, json!({ "name": name })).await?;
        rows.into_iter()
            .next()
            .map(|body| Ok(serde_json::from_str(body.as_str().unwrap_or_default())?))
            .transpose()
    }

    /// Every stored template, by name.
    pub async fn workflow_templates(&self) -> Result<Vec<WorkflowTemplate>, StorageError> {
        let sql = "SELECT VALUE body FROM workflow_template ORDER BY id";
        let rows = self.fetch_all(sql, json!({})).await?;
        rows.into_iter()
            .map(|body| Ok(serde_json::from_str(body.as_str().unwrap_or_default())?))
            .collect()
    }

    /// Stores a new run and its stage tasks, all or nothing.
    pub async fn insert_workflow_run(
        &self,
        run: &WorkflowRun,
        tasks: &[Task],
        replica: &str,
        claim: Option<serde_json::Value>,
    ) -> Result<TaskInsert, StorageError> {
        let stored = StoredRun {
            run: run.clone(),
            rev: 1,
        };
        let also = Companion {
            create: Some(("workflow_run", run.id.to_string(), to_content(&stored)?)),
            claim,
        };
        self.insert_tasks_with(tasks, replica, &also).await
    }

    pub async fn get_workflow_run(&self, id: WorkflowId) -> Result<Option<StoredRun>, StorageError> {
        let sql = format!("SELECT {COLUMNS} FROM type::record('workflow_run', $id)");
        let rows = self.fetch_all(&sql, json!({ "id": id })).await?;
        rows.into_iter().next().map(from_record).transpose()
    }

    /// Writes `next` over the run if it is still at revision `rev`.
    pub async fn replace_workflow_run(&self, next: &WorkflowRun, rev: u64) -> Result<bool, StorageError> {
        let stored = StoredRun {
            run: next.clone(),
            rev: rev + 1,
        };
        let sql =
            "UPDATE type::record('workflow_run', $id) CONTENT $content WHERE rev = $rev RETURN VALUE rev";
        let vars = json!({ "id": next.id, "content": to_content(&stored)?, "rev": rev });
        match self.fetch_all(sql, vars).await {
            Ok(rows) => Ok(!rows.is_empty()),
            Err(StorageError::Conflict) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Runs matching `filter`, oldest first.
    pub async fn list_workflow_runs(&self, filter: &RunFilter) -> Result<Vec<WorkflowRun>, StorageError> {
        let mut conditions = vec!["true"];
        if filter.project_id.is_some() {
            conditions.push("project_id = $project_id");
        }
        if filter.within.is_some() {
            conditions.push("project_id IN $within");
        }
        if filter.status.is_some() {
            conditions.push("status = $status");
        }
        if filter.schedule_id.is_some() {
            conditions.push("schedule_id = $schedule_id");
        }
        if filter.after.is_some() {
            conditions.push("id > type::record('workflow_run', $after)");
        }
        let sql = format!(
            "SELECT {COLUMNS} FROM workflow_run WHERE {} ORDER BY id LIMIT $limit",
            conditions.join(" AND ")
        );
        let vars = json!({
            "project_id": filter.project_id,
            "within": filter.within,
            "status": filter.status,
            "schedule_id": filter.schedule_id,
            "after": filter.after,
            "limit": filter.limit,
        });
        let rows = self.fetch_all(&sql, vars).await?;
        rows.into_iter()
            .map(|row| from_record::<StoredRun>(row).map(|stored| stored.run))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn templates_are_stored_once_by_name_and_odd_names_are_simply_absent() {
        let db = Database::connect("mem://").await.unwrap();
        let text = crate::workflows::templates::DEFAULT_WORKFLOWS_TOML
            .replace("name = \"feature\"", "name = \"stored\"");
        let roles = vapora_agents::RoleCatalog::builtin();
        let template =
            crate::workflows::TemplateCatalog::parse_file(&text, &roles).unwrap()["stored"].clone();
        assert!(db.insert_workflow_template(&template).await.unwrap());
        assert!(
            !db.insert_workflow_template(&template).await.unwrap(),
            "a name is taken once"
        );
        assert_eq!(
            db.workflow_template("stored").await.unwrap(),
            Some(template.clone())
        );
        assert_eq!(db.workflow_templates().await.unwrap(), vec![template]);
        for odd in ["", "a b", "⟩'\"`", "\u{0}", "x:y", "../../etc"] {
            assert_eq!(db.workflow_template(odd).await.unwrap(), None, "{odd:?}");
        }
        // Concurrency keys are any non-blank text up to 200 bytes: each
        // must make a guard record id.
        for key in [
            "a b",
            "⟩'\"`",
            "\u{0}",
            "x:y",
            "../../etc",
            "ключ",
            &"k".repeat(200),
        ] {
            let sql =
                "UPSERT type::record('concurrency_guard', $key) SET writes = (writes ?? 0) + 1 RETURN NONE";
            db.execute(sql, serde_json::json!({ "key": key })).await.unwrap();
        }
    }
}
