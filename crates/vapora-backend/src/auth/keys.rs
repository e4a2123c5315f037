//! API keys: issuing, checking and revoking them.
//!
//! Checking a key must not cost a database read per request (the auth
//! overhead budget is 5% of a `GET`), so [`Keys`] keeps the keys it has
//! recently read for [`CACHE_TTL`]. That bound is also how a revocation
//! reaches every replica: the revoking replica forgets the key at once, the
//! others re-read it within half a second, whether or not a broker carries
//! events between them. Expiry is checked on every request.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use vapora_shared::ProjectId;

use super::caller::Caller;
use super::key_material::{KeyHasher, KeyId, MalformedKey, PresentedKey, is_key_id};
use crate::error::{AppError, MAX_ECHOED_ID};
use crate::storage::{Database, StorageError};

/// How long a key read from the database is trusted before it is read
/// again: the longest a revocation takes to reach another replica.
pub const CACHE_TTL: Duration = Duration::from_millis(500);
/// `last_used_at` is written at most this often per key and replica.
const TOUCH_EVERY: chrono::TimeDelta = chrono::TimeDelta::seconds(60);
/// Longest key name accepted.
const MAX_NAME_CHARS: usize = 100;
/// Most projects one key may list, at issue and as its member creates more.
pub const MAX_PROJECTS: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum KeyRole {
    Admin,
    Member,
    Viewer,
}

/// What anyone allowed to see a key learns about it: everything but its hash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct KeyInfo {
    /// The 16 hex digits after `vk_`; not secret.
    #[schema(pattern = "^[0-9a-f]{16}$")]
    pub id: KeyId,
    pub name: String,
    pub role: KeyRole,
    /// The projects a member or viewer key reaches; empty for admins.
    pub projects: Vec<ProjectId>,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A key as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiKey {
    #[serde(flatten)]
    pub info: KeyInfo,
    /// `HMAC-SHA256` of the secret; see [`KeyHasher`].
    pub hash: String,
}

/// Body of `POST /api/v1/keys`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    pub name: String,
    pub role: KeyRole,
    #[serde(default)]
    pub projects: Vec<ProjectId>,
    pub expires_at: Option<DateTime<Utc>>,
}

/// A key just issued: the only time its secret is shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct IssuedKey {
    /// `vk_<id>_<secret>`: shown here once, stored only as a hash.
    #[serde(serialize_with = "reveal")]
    #[schema(value_type = String, pattern = "^vk_[0-9a-f]{16}_[0-9a-f]{64}$")]
    pub key: SecretString,
    #[serde(flatten)]
    pub info: KeyInfo,
}

fn reveal<S: serde::Serializer>(key: &SecretString, s: S) -> Result<S::Ok, S::Error> {
    use secrecy::ExposeSecret;
    s.serialize_str(key.expose_secret())
}

/// Why a request's key was refused; the text goes back to the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("this route needs an API key: send `Authorization: Bearer vk_…`")]
    Missing,
    #[error(transparent)]
    Malformed(#[from] MalformedKey),
    #[error("unknown API key")]
    Unknown,
    #[error("the API key was revoked")]
    Revoked,
    #[error("the API key has expired")]
    Expired,
}

struct Cached {
    key: Arc<ApiKey>,
    read_at: Instant,
}

/// Issues, checks and revokes keys; cheap to clone.
#[derive(Clone)]
pub struct Keys {
    db: Database,
    hasher: KeyHasher,
    cache: Arc<RwLock<HashMap<KeyId, Cached>>>,
    /// Bumped by every [`Self::forget`] (see [`Self::lookup`]).
    forgets: Arc<AtomicU64>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys")
            .field("hasher", &self.hasher)
            .finish_non_exhaustive()
    }
}

impl Keys {
    pub fn new(db: Database, hasher: KeyHasher) -> Self {
        Self {
            db,
            hasher,
            cache: Arc::default(),
            forgets: Arc::default(),
        }
    }

    /// The caller a presented key stands for, or why it is refused. A
    /// database failure is an error of its own (503), not a refusal.
    pub async fn authenticate(&self, presented: &str) -> Result<Result<Caller, Refusal>, AppError> {
        let presented = match PresentedKey::parse(presented) {
            Ok(key) => key,
            Err(e) => return Ok(Err(e.into())),
        };
        let Some(key) = self.lookup(&presented.id).await? else {
            return Ok(Err(Refusal::Unknown));
        };
        if !self.hasher.verify(&presented, &key.hash) {
            return Ok(Err(Refusal::Unknown));
        }
        if key.info.revoked_at.is_some() {
            return Ok(Err(Refusal::Revoked));
        }
        if key.info.expires_at.is_some_and(|at| at <= Utc::now()) {
            return Ok(Err(Refusal::Expired));
        }
        Ok(Ok(Caller::from_key(key)))
    }

    /// The key from the cache, or from the database when the cached copy is
    /// older than [`CACHE_TTL`].
    async fn lookup(&self, id: &str) -> Result<Option<Arc<ApiKey>>, StorageError> {
        if let Some(cached) = self.cache.read().expect("key cache lock").get(id)
            && cached.read_at.elapsed() < CACHE_TTL
        {
            return Ok(Some(cached.key.clone()));
        }
        // A revocation on this replica between our read and our caching
        // would put the old copy back; a read that saw a `forget` happen
        // meanwhile is done again, so the revoking replica never serves it.
        let mut forgets = self.forgets.load(Ordering::Acquire);
        let key = loop {
            let Some(key) = self.db.get_api_key(id).await? else {
                self.forget(id);
                return Ok(None);
            };
            let now = self.forgets.load(Ordering::Acquire);
            if now == forgets {
                break Arc::new(key);
            }
            forgets = now;
        };
        self.touch_if_due(&key);
        let mut cache = self.cache.write().expect("key cache lock");
        if self.forgets.load(Ordering::Acquire) == forgets {
            cache.insert(
                id.to_owned(),
                Cached {
                    key: key.clone(),
                    read_at: Instant::now(),
                },
            );
        }
        Ok(Some(key))
    }

    /// Records when a key was last used, at most every [`TOUCH_EVERY`].
    fn touch_if_due(&self, key: &ApiKey) {
        let now = Utc::now();
        if key.info.revoked_at.is_some() || key.info.last_used_at.is_some_and(|at| now - at <= TOUCH_EVERY) {
            return;
        }
        let db = self.db.clone();
        let id = key.info.id.clone();
        // Bookkeeping only: a request never waits for it.
        tokio::spawn(async move {
            if let Err(e) = db.touch_api_key(&id, now).await {
                tracing::debug!(key_id = %id, error = %e, "last_used_at not written");
            }
        });
    }

    /// The key with id `id` if it is still usable (not revoked, not
    /// expired), read as [`Self::authenticate`] reads it.
    pub async fn still_valid(&self, id: &str) -> Result<Option<Arc<ApiKey>>, StorageError> {
        let key = self.lookup(id).await?;
        Ok(key.filter(|k| k.info.revoked_at.is_none() && k.info.expires_at.is_none_or(|at| at > Utc::now())))
    }

    fn forget(&self, id: &str) {
        let mut cache = self.cache.write().expect("key cache lock");
        self.forgets.fetch_add(1, Ordering::AcqRel);
        cache.remove(id);
    }

    /// Issues a key; `issuer` is logged, and the secret is returned once.
    pub async fn issue(&self, new: NewKey, issuer: &Caller) -> Result<IssuedKey, AppError> {
        let name = new.name.trim().to_owned();
        if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
            return Err(AppError::unprocessable(
                "validation_failed",
                format!("name must be 1 to {MAX_NAME_CHARS} characters"),
            ));
        }
        if new.role == KeyRole::Admin && !new.projects.is_empty() {
            return Err(AppError::unprocessable(
                "validation_failed",
                "admin keys reach every project; leave `projects` empty",
            ));
        }
        if new.projects.len() > MAX_PROJECTS {
            return Err(AppError::unprocessable(
                "validation_failed",
                format!("a key may list at most {MAX_PROJECTS} projects"),
            ));
        }
        if new.expires_at.is_some_and(|at| at <= Utc::now()) {
            return Err(AppError::unprocessable(
                "validation_failed",
                "expires_at is in the past",
            ));
        }
        let mut projects = new.projects;
        projects.sort_unstable();
        projects.dedup();
        for &project in &projects {
            if self.db.get_project(project).await?.is_none() {
                return Err(AppError::unprocessable(
                    "validation_failed",
                    format!("project {project} does not exist"),
                ));
            }
        }
        let secret = PresentedKey::generate();
        let key = ApiKey {
            info: KeyInfo {
                id: secret.id.clone(),
                name,
                role: new.role,
                projects,
                created_at: Utc::now(),
                last_used_at: None,
                expires_at: new.expires_at,
                revoked_at: None,
            },
            hash: self.hasher.hash(&secret),
        };
        self.db.insert_api_key(&key).await?;
        tracing::info!(key_id = %key.info.id, role = ?key.info.role, by = %issuer.key_id(), "API key issued");
        Ok(IssuedKey {
            key: secret.reveal(),
            info: key.info,
        })
    }

    /// Stores `key` under its own id unless a key with that id exists
    /// (revoked or not): used for keys configured by the operator, which a
    /// restart must never bring back from revocation.
    pub async fn register(
        &self,
        key: &PresentedKey,
        name: &str,
        role: KeyRole,
    ) -> Result<bool, StorageError> {
        let record = ApiKey {
            info: KeyInfo {
                id: key.id.clone(),
                name: name.to_owned(),
                role,
                projects: Vec::new(),
                created_at: Utc::now(),
                last_used_at: None,
                expires_at: None,
                revoked_at: None,
            },
            hash: self.hasher.hash(key),
        };
        self.db.insert_api_key_if_absent(&record).await
    }

    pub async fn list(&self, after: Option<KeyId>, limit: usize) -> Result<KeyPage, AppError> {
        if let Some(cursor) = after.as_deref().filter(|c| !is_key_id(c)) {
            return Err(AppError::bad_request(
                "invalid_id",
                format!(
                    "{:?} is not a valid key id",
                    AppError::clip_to(cursor.to_owned(), MAX_ECHOED_ID)
                ),
            ));
        }
        let mut items = self.db.list_api_keys(after.as_deref(), limit + 1).await?;
        let next_cursor = crate::services::page::cut(&mut items, limit, |k| k.id.clone());
        Ok(KeyPage { items, next_cursor })
    }

    /// Revokes a key at once on this replica, within [`CACHE_TTL`] on the
    /// others. Revoking a revoked key changes nothing.
    pub async fn revoke(&self, id: &str, by: &Caller) -> Result<KeyInfo, AppError> {
        if !is_key_id(id) {
            return Err(AppError::not_found("key", id));
        }
        let mut race = 0;
        let revoked = loop {
            // The key record is also written by `last_used_at` and by a
            // member's new project; a lost race is retried, not reported.
            match self.db.revoke_api_key(id, Utc::now()).await {
                Err(StorageError::Conflict) if race < 8 => {
                    crate::storage::back_off(race).await;
                    race += 1;
                }
                outcome => break outcome?.ok_or_else(|| AppError::not_found("key", id))?,
            }
        };
        self.forget(id);
        tracing::info!(key_id = %id, by = %by.key_id(), "API key revoked");
        Ok(revoked)
    }

    /// Drops the cached copy of a key whose projects just changed.
    pub fn refresh(&self, id: &str) {
        self.forget(id);
    }

    /// Whether any key exists, revoked ones included.
    pub async fn any(&self) -> Result<bool, StorageError> {
        self.db.any_api_key().await
    }
}

/// One page of `GET /api/v1/keys`.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyPage {
    pub items: Vec<KeyInfo>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<KeyId>,
}
