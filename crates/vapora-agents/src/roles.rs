//! The role catalog: which roles exist and their system prompts.

use std::collections::BTreeMap;

use serde::Deserialize;
use vapora_shared::{Role, RoleError};

/// The prompts shipped with Vapora, used when no roles file is configured.
pub const DEFAULT_ROLES_TOML: &str = include_str!("../../../config/roles.toml");

#[derive(Debug, Clone)]
pub struct RoleCatalog {
    prompts: BTreeMap<Role, String>,
}

#[derive(Debug, thiserror::Error)]
pub enum RoleCatalogError {
    #[error("roles file is not valid TOML: {0}")]
    Toml(#[from] toml::de::Error),
    #[error("roles file: {0}")]
    Role(#[from] RoleError),
    #[error("roles file defines no roles")]
    Empty,
}

#[derive(Debug, Deserialize)]
struct RolesFile {
    roles: BTreeMap<String, RoleEntry>,
}

#[derive(Debug, Deserialize)]
struct RoleEntry {
    system_prompt: String,
}

impl RoleCatalog {
    /// Parses a roles file (see `config/roles.toml`).
    pub fn from_toml(text: &str) -> Result<Self, RoleCatalogError> {
        let file: RolesFile = toml::from_str(text)?;
        let prompts = file
            .roles
            .into_iter()
            .map(|(name, entry)| Ok((Role::parse(&name)?, entry.system_prompt)))
            .collect::<Result<BTreeMap<_, _>, RoleError>>()?;
        if prompts.is_empty() {
            return Err(RoleCatalogError::Empty);
        }
        Ok(Self { prompts })
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
    }
}
