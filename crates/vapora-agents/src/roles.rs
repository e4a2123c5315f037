//! The role catalog: which roles exist, their system prompts, and the
//! retry policy a role's tasks get when they ask for none.

use std::collections::BTreeMap;

use serde::Deserialize;
use vapora_shared::{Role, RoleError};

/// The prompts shipped with Vapora, used when no roles file is configured.
pub const DEFAULT_ROLES_TOML: &str = include_str!("../../../config/roles.toml");

#[derive(Debug, Clone)]
pub struct RoleCatalog {
    prompts: BTreeMap<Role, String>,
    retries: BTreeMap<Role, RetryDefaults>,
}

/// A role's default automatic-retry policy (see `vapora_shared::Task`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub struct RetryDefaults {
    pub max_attempts: Option<u32>,
    pub retry_backoff_secs: Option<u32>,
}

#[derive(Debug, thiserror::Error)]
pub enum RoleCatalogError {
    #[error("roles file is not valid TOML: {0}")]
    Toml(#[from] toml::de::Error),
    #[error("roles file: {0}")]
    Role(#[from] RoleError),
    #[error("roles file defines no roles")]
    Empty,
    #[error("roles file: {0}")]
    Retry(String),
}

#[derive(Debug, Deserialize)]
struct RolesFile {
    roles: BTreeMap<String, RoleEntry>,
}

#[derive(Debug, Deserialize)]
struct RoleEntry {
    system_prompt: String,
    #[serde(flatten)]
    retries: RetryDefaults,
}

impl RoleCatalog {
    /// Parses a roles file (see `config/roles.toml`).
    pub fn from_toml(text: &str) -> Result<Self, RoleCatalogError> {
        let file: RolesFile = toml::from_str(text)?;
        let mut prompts = BTreeMap::new();
        let mut retries = BTreeMap::new();
        for (name, entry) in file.roles {
            let role = Role::parse(&name)?;
            vapora_shared::task::validate_run_settings(
                None,
                entry.retries.max_attempts,
                entry.retries.retry_backoff_secs,
            )
            .map_err(|e| RoleCatalogError::Retry(format!("role {name}: {e}")))?;
            retries.insert(role.clone(), entry.retries);
            prompts.insert(role, entry.system_prompt);
        }
        if prompts.is_empty() {
            return Err(RoleCatalogError::Empty);
        }
        Ok(Self { prompts, retries })
    }

    pub fn builtin() -> Self {
        Self::from_toml(DEFAULT_ROLES_TOML).expect("the shipped roles file is valid")
    }

    pub fn contains(&self, role: &Role) -> bool {
        self.prompts.contains_key(role)
    }

    pub fn system_prompt(&self, role: &Role) -> Option<&str> {
        self.prompts.get(role).map(String::as_str)
    }

    /// The retry policy of `role`'s tasks that ask for none.
    pub fn retry_defaults(&self, role: &Role) -> RetryDefaults {
        self.retries.get(role).copied().unwrap_or_default()
    }

    pub fn roles(&self) -> impl Iterator<Item = &Role> {
        self.prompts.keys()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_catalog_has_the_default_roles() {
        let catalog = RoleCatalog::builtin();
        for role in vapora_shared::DEFAULT_ROLES {
            assert!(catalog.contains(&Role::parse(role).unwrap()), "{role}");
        }
    }

    #[test]
    fn rejects_bad_files() {
        assert!(RoleCatalog::from_toml("roles = 3").is_err());
        assert!(RoleCatalog::from_toml("[roles]").is_err());
        assert!(RoleCatalog::from_toml("[roles.Bad]\nsystem_prompt = 'x'").is_err());
        assert!(RoleCatalog::from_toml("[roles.dev]\nsystem_prompt = 'x'\nmax_attempts = 0").is_err());
    }
}
