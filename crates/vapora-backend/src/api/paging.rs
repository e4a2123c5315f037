//! Page sizes of the list endpoints: one default and one maximum for all,
//! so that no response grows with the data.

use serde::Deserialize;
use utoipa::IntoParams;

use crate::api::extract::parse_id;
use crate::error::AppError;

/// Items per page when the client names no `limit`.
pub const DEFAULT_PAGE: usize = 50;
/// The largest `limit` accepted.
pub const MAX_PAGE: usize = 500;

/// `limit`, defaulted and checked.
pub fn page_limit(limit: Option<usize>) -> Result<usize, AppError> {
    let limit = limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(AppError::bad_request(
            "invalid_query",
            format!("limit must be between 1 and {MAX_PAGE}"),
        ));
    }
    Ok(limit)
}

/// Query string of the endpoints paged by `limit` and `cursor` alone.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Items per page; 50 when absent.
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<usize>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

impl PageQuery {
    /// The checked limit and the cursor parsed as an id of `resource`.
    pub fn parse<T: std::str::FromStr>(self, resource: &'static str) -> Result<(usize, Option<T>), AppError> {
        let cursor = self
            .cursor
            .as_deref()
            .map(|c| parse_id(resource, c))
            .transpose()?;
        Ok((page_limit(self.limit)?, cursor))
    }
}
