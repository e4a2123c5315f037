//! API key records (see `auth::keys`): keyed by the key's public id, holding
//! its hash, never its secret.

use chrono::{DateTime, Utc};
use serde_json::json;

use super::codec::{COLUMNS, from_record, to_content};
use super::{Database, StorageError};
use crate::auth::{ApiKey, KeyInfo};

impl Database {
    pub async fn insert_api_key(&self, key: &ApiKey) -> Result<(), StorageError> {
        self.execute(
            "CREATE type::record('api_key', $id) CONTENT $content RETURN NONE",
            json!({ "id": key.info.id, "content": to_content(key)? }),
        )
        .await
    }

    /// Stores `key` unless its id is taken; whether it was stored.
    pub async fn insert_api_key_if_absent(&self, key: &ApiKey) -> Result<bool, StorageError> {
        let created = self
            .fetch_all(
                "IF record::exists(type::record('api_key', $id)) { RETURN [] }
                 ELSE { CREATE type::record('api_key', $id) CONTENT $content RETURN VALUE true }",
                json!({ "id": key.info.id, "content": to_content(key)? }),
            )
            .await?;
        Ok(!created.is_empty())
    }

    pub async fn get_api_key(&self, id: &str) -> Result<Option<ApiKey>, StorageError> {
        let sql = format!("SELECT {COLUMNS} FROM type::record('api_key', $id)");
        let rows = self.fetch_all(&sql, json!({ "id": id })).await?;
        rows.into_iter().next().map(from_record).transpose()
    }

    /// Up to `limit` keys after `after`, in id order, without their hashes.
    pub async fn list_api_keys(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<KeyInfo>, StorageError> {
        let condition = if after.is_some() {
            "WHERE id > type::record('api_key', $after)"
        } else {
            ""
        };
        let sql = format!("SELECT {COLUMNS} OMIT hash FROM api_key {condition} ORDER BY id LIMIT $limit");
        let rows = self
            .fetch_all(&sql, json!({ "after": after, "limit": limit }))
            .await?;
        rows.into_iter().map(from_record).collect()
    }

    pub async fn any_api_key(&self) -> Result<bool, StorageError> {
        let rows = self
            .fetch_all("SELECT VALUE true FROM api_key LIMIT 1", json!({}))
            .await?;
        Ok(!rows.is_empty())
    }

    /// Marks a key revoked (keeping the first revocation time); `None` if
    /// there is no such key.
    pub async fn revoke_api_key(&self, id: &str, at: DateTime<Utc>) -> Result<Option<KeyInfo>, StorageError> {
        let sql = format!(
            "UPDATE type::record('api_key', $id) SET revoked_at = revoked_at ?? $at RETURN NONE;
             SELECT {COLUMNS} OMIT hash FROM type::record('api_key', $id);"
        );
        // `check` surfaces a failed UPDATE (a conflict with a concurrent
        // write to the key), which `take(1)` alone would pass over.
        let mut response = self
            .call(self.db.query(sql).bind(json!({ "id": id, "at": at })))
            .await?
            .check()?;
        let rows: Vec<serde_json::Value> = response.take(1)?;
        rows.into_iter().next().map(from_record).transpose()
    }

    pub async fn touch_api_key(&self, id: &str, at: DateTime<Utc>) -> Result<(), StorageError> {
        self.execute(
            "UPDATE type::record('api_key', $id) SET last_used_at = $at RETURN NONE",
            json!({ "id": id, "at": at }),
        )
        .await
    }
}
