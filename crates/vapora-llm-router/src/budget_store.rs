//! Where budget spend is kept between restarts.

use std::path::PathBuf;
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// One budget's spend in one period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BudgetRecord {
    pub key: String,
    pub period_start: DateTime<Utc>,
    pub spent_nanos: u64,
}

#[derive(Debug, thiserror::Error)]
#[error("budget store: {0}")]
pub struct BudgetStoreError(pub String);

/// Persistence of budget spend. The backend implements it on SurrealDB; the
/// gateway uses [`FileBudgetStore`].
#[async_trait]
pub trait BudgetStore: Send + Sync + std::fmt::Debug {
    async fn load(&self) -> Result<Vec<BudgetRecord>, BudgetStoreError>;
    /// Replaces what is stored with `records`.
    async fn save(&self, records: &[BudgetRecord]) -> Result<(), BudgetStoreError>;
}

/// Keeps spend in memory only (tests, and deployments without budgets).
#[derive(Debug, Default)]
pub struct MemoryBudgetStore {
    records: Mutex<Vec<BudgetRecord>>,
}

#[async_trait]
impl BudgetStore for MemoryBudgetStore {
    async fn load(&self) -> Result<Vec<BudgetRecord>, BudgetStoreError> {
        Ok(self.records.lock().unwrap_or_else(|e| e.into_inner()).clone())
    }

    async fn save(&self, records: &[BudgetRecord]) -> Result<(), BudgetStoreError> {
        *self.records.lock().unwrap_or_else(|e| e.into_inner()) = records.to_vec();
        Ok(())
    }
}

/// Keeps spend in a JSON file, replaced atomically (write, then rename).
#[derive(Debug)]
pub struct FileBudgetStore {
    path: PathBuf,
}

impl FileBudgetStore {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }
}

#[async_trait]
impl BudgetStore for FileBudgetStore {
    async fn load(&self) -> Result<Vec<BudgetRecord>, BudgetStoreError> {
        match tokio::fs::read(&self.path).await {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| BudgetStoreError(format!("{}: {e}", self.path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(BudgetStoreError(format!("{}: {e}", self.path.display()))),
        }
    }

    async fn save(&self, records: &[BudgetRecord]) -> Result<(), BudgetStoreError> {
        let bytes = serde_json::to_vec_pretty(records).map_err(|e| BudgetStoreError(e.to_string()))?;
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            tokio::fs::create_dir_all(dir)
                .await
                .map_err(|e| BudgetStoreError(e.to_string()))?;
        }
        let tmp = self.path.with_extension("tmp");
        tokio::fs::write(&tmp, bytes)
            .await
            .map_err(|e| BudgetStoreError(e.to_string()))?;
        tokio::fs::rename(&tmp, &self.path)
            .await
            .map_err(|e| BudgetStoreError(e.to_string()))
    }
}
