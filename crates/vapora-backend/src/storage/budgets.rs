//! Budget spend of the in-process LLM router, so it survives restarts.

use async_trait::async_trait;
use serde_json::json;
use vapora_llm_router::budget_store::{BudgetRecord, BudgetStore, BudgetStoreError};

use super::Database;
use super::codec::{COLUMNS, from_record};

fn store_error(e: impl std::fmt::Display) -> BudgetStoreError {
    BudgetStoreError(e.to_string())
}

#[async_trait]
impl BudgetStore for Database {
    async fn load(&self) -> Result<Vec<BudgetRecord>, BudgetStoreError> {
        let sql = format!("SELECT {COLUMNS} FROM budget_spend");
        let rows = self.fetch_all(&sql, json!({})).await.map_err(store_error)?;
        rows.into_iter()
            .map(|mut row| {
                // The record key is the budget key.
                row["key"] = row["id"].take();
                from_record(row).map_err(store_error)
            })
            .collect()
    }

    async fn save(&self, records: &[BudgetRecord]) -> Result<(), BudgetStoreError> {
        let rows: Vec<_> = records
            .iter()
            .map(|r| json!({ "key": r.key, "period_start": r.period_start, "spent_nanos": r.spent_nanos }))
            .collect();
        self.execute(
            "FOR $row IN $rows {
                UPSERT type::record('budget_spend', $row.key)
                    CONTENT { period_start: $row.period_start, spent_nanos: $row.spent_nanos };
            };",
            json!({ "rows": rows }),
        )
        .await
        .map_err(store_error)
    }
}
