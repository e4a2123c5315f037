//! Projects: the boards that tasks belong to.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::ProjectId;
use crate::task::{ValidationError, validate_text};

pub const MAX_NAME_LEN: usize = 200;
pub const MAX_DESCRIPTION_LEN: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Project {
    pub id: ProjectId,
    pub name: String,
    pub description: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Body of `POST /api/v1/projects`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewProject {
    /// Not blank.
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    #[serde(default)]
    #[schema(max_length = 65536)]
    pub description: String,
}

/// Body of `PATCH /api/v1/projects/{id}`: only the fields present change.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProjectPatch {
    /// Not blank.
    #[schema(min_length = 1, max_length = 200)]
    pub name: Option<String>,
    #[schema(max_length = 65536)]
    pub description: Option<String>,
}

impl NewProject {
    pub fn into_project(self, now: DateTime<Utc>) -> Result<Project, ValidationError> {
        validate_text("name", &self.name, MAX_NAME_LEN, false)?;
        validate_text("description", &self.description, MAX_DESCRIPTION_LEN, true)?;
        Ok(Project {
            id: ProjectId::new(),
            name: self.name,
            description: self.description,
            created_at: now,
            updated_at: now,
        })
    }
}

impl ProjectPatch {
    /// Applies the patch to a copy of `project`, validating every changed field.
    pub fn apply(self, project: &Project, now: DateTime<Utc>) -> Result<Project, ValidationError> {
        let mut next = project.clone();
        if let Some(name) = self.name {
            validate_text("name", &name, MAX_NAME_LEN, false)?;
            next.name = name;
        }
        if let Some(description) = self.description {
            validate_text("description", &description, MAX_DESCRIPTION_LEN, true)?;
            next.description = description;
        }
        next.updated_at = now;
        Ok(next)
    }
}
