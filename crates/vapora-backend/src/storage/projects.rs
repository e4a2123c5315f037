//! Project records.
//!
//! Like task writes (see `storage::tasks`), every project write is a
//! compare-and-set on `rev`: the writer names the revision it read, and the
//! write only happens if nobody wrote in between. A delete re-checks, in its
//! own transaction, that no task of the project is queued or running.

use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use vapora_shared::{Project, ProjectId};

use super::codec::{COLUMNS, from_record, to_content};
use super::{Database, StorageError, Transaction};

/// Guard records per project (see the schema): more guards make concurrent
/// task inserts into one project collide less, and a delete write more.
/// Measured (debug build, `mem://`, 2,000 inserts 32 at a time into one
/// project): 3.1 s with no guard, 4.9 s with 64 guards, 3.7 s with 256.
pub(super) const GUARDS: u64 = 256;

/// The key of the guard record that a task insert writes.
pub(super) fn guard_key(project: ProjectId, shard: u64) -> String {
    format!("{project}-{shard}")
}

/// A project as stored: with the revision a write must name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct StoredProject {
    #[serde(flatten)]
    pub project: Project,
    /// Absent on projects stored before revisions existed: revision 0.
    #[serde(default)]
    pub rev: u64,
}

/// How a project delete ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProjectDelete {
    /// The project and its tasks are gone.
    Deleted,
    NotFound,
    /// A task of the project is queued or running; nothing was deleted.
    ActiveTasks,
    /// A concurrent transaction (a task being added, an edit) touched the
    /// project; nothing was deleted, and the delete may be retried.
    Conflict,
}

impl Database {
    /// Stores a new project; with an `owner` key, adds the project to that
    /// key's list in the same transaction, so a member never creates a
    /// project it cannot see.
    pub async fn insert_project(
        &self,
        project: &Project,
        owner: Option<&str>,
    ) -> Result<StoredProject, StorageError> {
        let stored = StoredProject {
            project: project.clone(),
            rev: 1,
        };
        let vars = json!({ "id": project.id, "content": to_content(&stored)?, "owner": owner });
        match owner {
            None => {
                self.execute(
                    "CREATE type::record('project', $id) CONTENT $content RETURN NONE",
                    vars,
                )
                .await?
            }
            Some(_) => {
                let sql = "BEGIN TRANSACTION;
                    CREATE type::record('project', $id) CONTENT $content RETURN NONE;
                    UPDATE type::record('api_key', $owner)
                        SET projects = array::union(projects, [<string> $id]) RETURN NONE;
                    COMMIT TRANSACTION;";
                match self.transact(sql, vars).await? {
                    Transaction::Committed => {}
                    // The query throws nothing of its own.
                    Transaction::Conflict | Transaction::Thrown(_) => return Err(StorageError::Conflict),
                }
            }
        }
        Ok(stored)
    }

    pub async fn get_project(&self, id: ProjectId) -> Result<Option<StoredProject>, StorageError> {
        let sql = format!("SELECT {COLUMNS} FROM type::record('project', $id)");
        let rows = self.fetch_all(&sql, json!({ "id": id })).await?;
        rows.into_iter().next().map(from_record).transpose()
    }

    /// Up to `limit` projects created after `after` (ids are time-ordered),
    /// oldest first.
    /// With `within`, only those projects (read by id, not by a scan).
    pub async fn list_projects(
        &self,
        after: Option<ProjectId>,
        limit: usize,
        within: Option<&[ProjectId]>,
    ) -> Result<Vec<StoredProject>, StorageError> {
        let condition = if after.is_some() {
            "WHERE id > type::record('project', $after)"
        } else {
            ""
        };
        let source = if within.is_some() {
            "array::map($within, |$p| type::record('project', $p))"
        } else {
            "project"
        };
        let sql = format!("SELECT {COLUMNS} FROM {source} {condition} ORDER BY id LIMIT $limit");
        let rows = self
            .fetch_all(&sql, json!({ "after": after, "limit": limit, "within": within }))
            .await?;
        rows.into_iter().map(from_record).collect()
    }

    /// Writes `next` if the stored revision is still `expected_rev`;
    /// `false` when another writer got there first (or the project is gone).
    pub async fn replace_project(&self, next: &Project, expected_rev: u64) -> Result<bool, StorageError> {
        let stored = StoredProject {
            project: next.clone(),
            rev: expected_rev + 1,
        };
        let written = self
            .fetch_all(
                "UPDATE type::record('project', $id) MERGE $content WHERE (rev ?? 0) = $rev RETURN VALUE true",
                json!({ "id": next.id, "rev": expected_rev, "content": to_content(&stored)? }),
            )
            .await;
        match written {
            Ok(rows) => Ok(!rows.is_empty()),
            Err(StorageError::Conflict) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Deletes a project and all of its tasks in one transaction, unless one
    /// of them is queued or running. The check and the delete are one
    /// transaction, and it writes every guard record a task insert may
    /// write, so a task added concurrently either is seen here or makes
    /// this conflict.
    pub async fn delete_project(&self, id: ProjectId) -> Result<ProjectDelete, StorageError> {
        let guards: Vec<String> = (0..GUARDS).map(|shard| guard_key(id, shard)).collect();
        let sql = "BEGIN TRANSACTION;
            LET $guard_records = array::map($guards, |$g| type::record('project_guard', $g));
            UPSERT $guard_records SET writes += 1 RETURN NONE;
            DELETE $guard_records;
            IF !record::exists(type::record('project', $id)) { THROW 'not_found' };
            IF array::len(SELECT VALUE true FROM task
                    WHERE project_id = $id AND status IN ['queued', 'running'] LIMIT 1) > 0 {
                THROW 'active_tasks'
            };
            DELETE task WHERE project_id = $id;
            DELETE workflow_run WHERE project_id = $id;
            DELETE schedule WHERE project_id = $id;
            DELETE type::record('project', $id);
            COMMIT TRANSACTION;";
        Ok(
            match self.transact(sql, json!({ "id": id, "guards": guards })).await? {
                Transaction::Committed => ProjectDelete::Deleted,
                Transaction::Conflict => ProjectDelete::Conflict,
                Transaction::Thrown(reason) if reason.contains("not_found") => ProjectDelete::NotFound,
                Transaction::Thrown(_) => ProjectDelete::ActiveTasks,
            },
        )
    }
}
