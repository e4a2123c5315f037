//! The workflow templates a backend knows: those of `config/workflows.toml`,
//! read at start-up, and those made over the API, stored in SurrealDB (so
//! every replica sees them). A name is one template's: the API cannot
//! shadow a file's, nor replace one it stored.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Deserialize;
use vapora_agents::RoleCatalog;
use vapora_shared::WorkflowTemplate;

use crate::error::AppError;
use crate::storage::Database;

/// The templates shipped with Vapora, used when no file is configured and
/// `config/workflows.toml` is not there.
pub const DEFAULT_WORKFLOWS_TOML: &str = include_str!("../../../../config/workflows.toml");

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WorkflowsFile {
    #[serde(default)]
    workflow: Vec<WorkflowTemplate>,
}

/// A templates file that cannot be used, and why.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TemplateFileError(String);

#[derive(Debug, Clone)]
pub struct TemplateCatalog {
    file: Arc<BTreeMap<String, WorkflowTemplate>>,
    db: Database,
    roles: RoleCatalog,
}

/// Whether every stage's role is one the backend knows.
fn check_roles(template: &WorkflowTemplate, roles: &RoleCatalog) -> Result<(), AppError> {
    match template.stages.iter().find(|s| !roles.contains(&s.role)) {
        None => Ok(()),
        Some(stage) => {
            let known: Vec<&str> = roles.roles().map(|r| r.as_str()).collect();
            Err(AppError::unprocessable(
                "unknown_role",
                format!(
                    "stage {:?}: unknown role {:?}; known roles: {}",
                    stage.name,
                    stage.role.as_str(),
                    known.join(", ")
                ),
            ))
        }
    }
}

impl TemplateCatalog {
    /// Parses and checks a templates file (see `config/workflows.toml`).
    pub fn parse_file(
        text: &str,
        roles: &RoleCatalog,
    ) -> Result<BTreeMap<String, WorkflowTemplate>, TemplateFileError> {
        let file: WorkflowsFile = toml::from_str(text).map_err(|e| TemplateFileError(e.to_string()))?;
        let mut templates = BTreeMap::new();
        for template in file.workflow {
            template
                .validate()
                .map_err(|e| TemplateFileError(format!("workflow {:?}: {e}", template.name)))?;
            check_roles(&template, roles)
                .map_err(|e| TemplateFileError(format!("workflow {:?}: {e}", template.name)))?;
            let name = template.name.clone();
            if templates.insert(name.clone(), template).is_some() {
                return Err(TemplateFileError(format!("two workflows are named {name:?}")));
            }
        }
        Ok(templates)
    }

    pub fn new(file: BTreeMap<String, WorkflowTemplate>, db: Database, roles: RoleCatalog) -> Self {
        Self {
            file: Arc::new(file),
            db,
            roles,
        }
    }

    /// The shipped templates, checked against `roles`.
    pub fn builtin(db: Database, roles: RoleCatalog) -> Self {
        let file =
            Self::parse_file(DEFAULT_WORKFLOWS_TOML, &roles).expect("the shipped workflows file is valid");
        Self::new(file, db, roles)
    }

    pub async fn get(&self, name: &str) -> Result<Option<WorkflowTemplate>, AppError> {
        if let Some(template) = self.file.get(name) {
            return Ok(Some(template.clone()));
        }
        Ok(self.db.workflow_template(name).await?)
    }

    /// Every template: the file's, then the stored ones, each by name.
    pub async fn list(&self) -> Result<Vec<WorkflowTemplate>, AppError> {
        let mut all: Vec<WorkflowTemplate> = self.file.values().cloned().collect();
        all.extend(self.db.workflow_templates().await?);
        Ok(all)
    }

    /// Checks and stores a new template: 422 when it is not valid, 409 when
    /// its name is taken.
    pub async fn create(&self, template: WorkflowTemplate) -> Result<WorkflowTemplate, AppError> {
        template.validate()?;
        check_roles(&template, &self.roles)?;
        let taken = || AppError::Conflict(format!("a workflow template named {:?} exists", template.name));
        if self.file.contains_key(&template.name) {
            return Err(taken());
        }
        if !self.db.insert_workflow_template(&template).await? {
            return Err(taken());
        }
        Ok(template)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_feature_template_is_valid_and_runs_its_two_middle_stages_together() {
        let templates = TemplateCatalog::parse_file(DEFAULT_WORKFLOWS_TOML, &RoleCatalog::builtin()).unwrap();
        let feature = &templates["feature"];
        let stage = |name: &str| feature.stages.iter().find(|s| s.name == name).unwrap();
        assert_eq!(stage("implement").depends_on, ["design"]);
        assert_eq!(stage("test").depends_on, ["design"]);
        assert_eq!(stage("review").depends_on, ["implement", "test"]);
        assert!(stage("review").requires_approval);
    }

    #[test]
    fn a_file_with_an_unknown_role_or_a_cycle_is_refused() {
        let roles = RoleCatalog::builtin();
        let unknown_role = r#"
            [[workflow]]
            name = "w"
            [[workflow.stages]]
            name = "a"
            role = "astronaut"
            prompt = "x"
        "#;
        let error = TemplateCatalog::parse_file(unknown_role, &roles).unwrap_err();
        assert!(error.to_string().contains("unknown role"), "{error}");
        let cycle = r#"
            [[workflow]]
            name = "w"
            [[workflow.stages]]
            name = "a"
            role = "developer"
            prompt = "x"
            depends_on = ["b"]
            [[workflow.stages]]
            name = "b"
            role = "developer"
            prompt = "x"
            depends_on = ["a"]
        "#;
        let error = TemplateCatalog::parse_file(cycle, &roles).unwrap_err();
        assert!(error.to_string().contains("cycle"), "{error}");
    }
}
