//! Agent roles.
//!
//! A role is a slug (`developer`, `project-manager`) that routes a task to the
//! agents able to do it. The slug format is checked here; whether a role is
//! *known* depends on the deployment's configuration, so that check lives in
//! the service that owns the configuration.

use std::fmt;

use serde::{Deserialize, Serialize};
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};

/// The roles every fresh deployment knows.
pub const DEFAULT_ROLES: [&str; 8] = [
    "architect",
    "developer",
    "reviewer",
    "tester",
    "documenter",
    "devops",
    "security",
    "project-manager",
];

const MAX_ROLE_LEN: usize = 64;

/// A validated role slug: 1–64 characters of `a-z`, `0-9` and inner `-`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Role(String);

/// Why a string is not a role slug.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("role must be 1-{MAX_ROLE_LEN} characters of a-z, 0-9 and inner '-', got {0:?}")]
pub struct RoleError(pub String);

impl Role {
    pub fn parse(s: &str) -> Result<Self, RoleError> {
        let valid = !s.is_empty()
            && s.len() <= MAX_ROLE_LEN
            && !s.starts_with('-')
            && !s.ends_with('-')
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if valid {
            Ok(Self(s.to_owned()))
        } else {
            // Truncate so that a 10 MB "role" does not end up in an error body.
            Err(RoleError(s.chars().take(MAX_ROLE_LEN + 1).collect()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Written by hand: the derive cannot state the slug's pattern on a newtype.
impl utoipa::PartialSchema for Role {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some("^[a-z0-9]([a-z0-9-]{0,62}[a-z0-9])?$"))
            .description(Some(
                "A role slug: 1-64 characters of a-z, 0-9 and inner '-'. The deployment's configuration says which roles exist.",
            ))
            .examples(["developer"])
            .into()
    }
}

impl utoipa::ToSchema for Role {}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Role {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Role::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_default_roles_and_rejects_bad_slugs() {
        for r in DEFAULT_ROLES {
            assert_eq!(Role::parse(r).unwrap().as_str(), r);
        }
        for bad in ["", "Developer", "dev ops", "-dev", "dev-", "dév", &"x".repeat(65)] {
            assert!(Role::parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }
}
