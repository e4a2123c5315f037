//! Conversion between domain types and stored records.
//!
//! Records are written from the types' serde form with two adjustments the
//! schema needs: the `id` lives in the record id, not in the content, and
//! `null` fields are left out (SurrealDB's `option<T>` means "absent", and
//! refuses an explicit `NULL`).

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::StorageError;

/// Columns to select so that the record key comes back as a plain `id`.
pub(super) const COLUMNS: &str = "*, record::id(id) AS id";

pub(super) fn to_content<T: Serialize>(value: &T) -> Result<Value, StorageError> {
    let mut value = serde_json::to_value(value)?;
    if let Value::Object(map) = &mut value {
        map.remove("id");
    }
    strip_nulls(&mut value);
    Ok(value)
}

fn strip_nulls(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|_, v| !v.is_null());
            map.values_mut().for_each(strip_nulls);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}

pub(super) fn from_record<T: DeserializeOwned>(record: Value) -> Result<T, StorageError> {
    Ok(serde_json::from_value(record)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn content_has_no_id_and_no_nulls() {
        let content = to_content(&json!({"id": "x", "a": null, "b": {"c": null, "d": 1}})).unwrap();
        assert_eq!(content, json!({"b": {"d": 1}}));
    }
}
