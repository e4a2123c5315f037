//! The caller of a request, as its checked key makes it, and the scope
//! checks handlers run against it.
//!
//! Anything outside the caller's projects answers the same 404 as a
//! missing resource; a viewer's write, or a non-admin's key management,
//! answers 403 (the resource is visible, the action is not allowed).

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use vapora_shared::ProjectId;

use super::keys::{ApiKey, KeyInfo, KeyRole};
use crate::error::AppError;

#[derive(Debug, Clone)]
pub struct Caller {
    key: Arc<ApiKey>,
}

/// Key id of the caller every request is when authentication is off.
const AUTH_OFF: &str = "auth-off";

impl Caller {
    pub fn from_key(key: Arc<ApiKey>) -> Self {
        Self { key }
    }

    /// The caller of every request when `VAPORA_AUTH=off`: an admin.
    pub fn unauthenticated_admin() -> Self {
        Self {
            key: Arc::new(ApiKey {
                info: KeyInfo {
                    id: AUTH_OFF.into(),
                    name: "authentication is off".into(),
                    role: KeyRole::Admin,
                    projects: Vec::new(),
                    created_at: chrono::DateTime::UNIX_EPOCH,
                    last_used_at: None,
                    expires_at: None,
                    revoked_at: None,
                },
                hash: String::new(),
            }),
        }
    }

    pub fn key_id(&self) -> &str {
        &self.key.info.id
    }

    pub fn info(&self) -> &KeyInfo {
        &self.key.info
    }

    pub fn role(&self) -> KeyRole {
        self.key.info.role
    }

    /// The projects this caller is limited to; `None` for admins (all).
    pub fn scope(&self) -> Option<&[ProjectId]> {
        match self.role() {
            KeyRole::Admin => None,
            KeyRole::Member | KeyRole::Viewer => Some(&self.key.info.projects),
        }
    }

    pub fn may_see(&self, project: ProjectId) -> bool {
        self.scope().is_none_or(|projects| projects.contains(&project))
    }

    /// 404 for a project outside the caller's scope.
    pub fn see_project(&self, project: ProjectId) -> Result<(), AppError> {
        if self.may_see(project) {
            Ok(())
        } else {
            Err(AppError::not_found("project", project))
        }
    }

    /// 403 for a viewer.
    pub fn may_write(&self) -> Result<(), AppError> {
        match self.role() {
            KeyRole::Viewer => Err(self.forbidden("viewer keys are read-only")),
            KeyRole::Admin | KeyRole::Member => Ok(()),
        }
    }

    /// 403 for anyone but an admin.
    pub fn must_be_admin(&self) -> Result<(), AppError> {
        match self.role() {
            KeyRole::Admin => Ok(()),
            KeyRole::Member | KeyRole::Viewer => Err(self.forbidden("this needs an admin key")),
        }
    }

    fn forbidden(&self, why: &'static str) -> AppError {
        tracing::info!(key_id = %self.key_id(), reason = why, "request denied");
        AppError::Forbidden(why)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        // The middleware in front of every keyed route puts it there.
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or(AppError::Unauthorized(super::keys::Refusal::Missing))
    }
}
