//! Extractors whose rejections are [`AppError`]s, so that a malformed body,
//! query or path gets the same JSON error shape as everything else.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::{HeaderMap, StatusCode, header};
use serde::de::{DeserializeOwned, IgnoredAny};

use crate::error::AppError;

/// A JSON body, rejecting with an [`AppError`].
///
/// Unlike `axum::Json`, it tells *malformed* JSON (400) from well-formed JSON
/// of the wrong shape (422) by whether the text parses at all: serde_json
/// reports some type mismatches (a number where an enum belongs) as syntax
/// errors, which would otherwise reach clients as a misleading 400.
#[derive(Debug)]
pub struct Json<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers()) {
            return Err(AppError::BadRequest {
                code: "unsupported_media_type",
                message: "expected a body with `Content-Type: application/json`".into(),
                status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            });
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            let status = rejection.status();
            let code = if status == StatusCode::PAYLOAD_TOO_LARGE {
                "payload_too_large"
            } else {
                "invalid_body"
            };
            AppError::BadRequest {
                code,
                message: rejection.body_text(),
                status,
            }
        })?;
        match serde_json::from_slice::<T>(&bytes) {
            Ok(value) => Ok(Json(value)),
            Err(e) if serde_json::from_slice::<IgnoredAny>(&bytes).is_ok() => Err(AppError::unprocessable(
                "invalid_body",
                AppError::clip(e.to_string()),
            )),
            Err(e) => Err(AppError::bad_request(
                "malformed_json",
                format!("the body is not valid JSON: {e}"),
            )),
        }
    }
}

fn is_json(headers: &HeaderMap) -> bool {
    let Some(content_type) = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}

impl<T: serde::Serialize> axum::response::IntoResponse for Json<T> {
    fn into_response(self) -> axum::response::Response {
        axum::Json(self.0).into_response()
    }
}

/// `axum::extract::Query`, rejecting with an [`AppError`].
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(AppError))]
pub struct Query<T>(pub T);

/// `axum::extract::Path`, rejecting with an [`AppError`].
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(AppError))]
pub struct Path<T>(pub T);

/// Parses an id from a path segment: garbage is a 400, not a 404, so a
/// client can tell a typo from a deleted resource.
/// The offending text is echoed back cut short: a client that sent a
/// 10 KB id does not need it back.
pub fn parse_id<T: std::str::FromStr>(resource: &'static str, raw: &str) -> Result<T, AppError> {
    raw.parse().map_err(|_| {
        let shown = AppError::clip_to(raw.to_owned(), crate::error::MAX_ECHOED_ID);
        AppError::bad_request("invalid_id", format!("{shown:?} is not a valid {resource} id"))
    })
}

/// A `?project_id=` filter: parsed (400 when malformed), within the
/// caller's reach and existing (404 otherwise, as the project's own routes
/// answer), or `None` when absent.
pub async fn project_filter(
    state: &crate::api::AppState,
    caller: &crate::auth::Caller,
    raw: Option<&str>,
) -> Result<Option<vapora_shared::ProjectId>, AppError> {
    let Some(raw) = raw else { return Ok(None) };
    let project = parse_id("project", raw)?;
    caller.see_project(project)?;
    state.project_service.get(project).await?;
    Ok(Some(project))
}
