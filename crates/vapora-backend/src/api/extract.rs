//! Extractors whose rejections are [`AppError`]s, so that a malformed body,
//! query or path gets the same JSON error shape as everything else.

use axum::extract::{FromRequest, FromRequestParts};

use crate::error::AppError;

/// `axum::Json`, rejecting with an [`AppError`].
#[derive(Debug, FromRequest)]
#[from_request(via(axum::Json), rejection(AppError))]
pub struct Json<T>(pub T);

/// `axum::extract::Query`, rejecting with an [`AppError`].
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(AppError))]
pub struct Query<T>(pub T);

/// `axum::extract::Path`, rejecting with an [`AppError`].
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(AppError))]
pub struct Path<T>(pub T);

impl<T: serde::Serialize> axum::response::IntoResponse for Json<T> {
    fn into_response(self) -> axum::response::Response {
        axum::Json(self.0).into_response()
    }
}

/// Parses an id from a path segment: garbage is a 400, not a 404, so a
/// client can tell a typo from a deleted resource.
pub fn parse_id<T: std::str::FromStr>(resource: &'static str, raw: &str) -> Result<T, AppError> {
    raw.parse()
        .map_err(|_| AppError::bad_request("invalid_id", format!("{raw:?} is not a valid {resource} id")))
}
