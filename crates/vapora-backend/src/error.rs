//! The API's one error type and its JSON form.
//!
//! Every failure a client can see is an [`AppError`]; it renders as
//! `{"error":{"code":"snake_case","message":"..."}}` with the matching status.
//! Internal errors are logged with detail and reported without it.

use std::time::Duration;

use axum::Json;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;
use vapora_shared::lifecycle::ChangeRefused;
use vapora_shared::{TransitionError, ValidationError};

use crate::auth::keys::Refusal;
use crate::storage::StorageError;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{resource} {id} not found")]
    NotFound { resource: &'static str, id: String },
    #[error("no route for {0}")]
    NoRoute(String),
    #[error("{message}")]
    BadRequest {
        code: &'static str,
        message: String,
        status: StatusCode,
    },
    #[error("{0}")]
    Validation(#[from] ValidationError),
    #[error("{0}")]
    Transition(#[from] TransitionError),
    #[error("{0}")]
    Conflict(String),
    #[error("the task queue is full ({capacity} tasks); retry later")]
    QueueFull { capacity: usize, retry_after: Duration },
    #[error("{}", storage_message(.0))]
    Storage(#[from] StorageError),
    /// No usable API key; answered with `WWW-Authenticate: Bearer`.
    #[error("{0}")]
    Unauthorized(#[from] Refusal),
    /// A client over its rate or connection cap (429).
    #[error("{message}")]
    RateLimited { message: String, retry_after: Duration },
    /// The server at a global cap (503).
    #[error("{message}")]
    Overloaded { message: String, retry_after: Duration },
    /// A known key asking for something its role does not allow.
    #[error("{0}")]
    Forbidden(&'static str),
}

/// The body of every error answer.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Error)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// A stable `snake_case` code to branch on, e.g. `not_found`,
    /// `validation_failed`, `rate_limited`.
    #[schema(value_type = String)]
    pub code: &'static str,
    /// For people; its wording may change.
    pub message: String,
}

impl ErrorBody {
    pub fn new(code: &'static str, message: String) -> Self {
        Self {
            error: ErrorDetail { code, message },
        }
    }
}

/// What a client is told about a storage failure: whether to retry, and
/// nothing of the database's own words.
fn storage_message(e: &StorageError) -> &'static str {
    match e {
        StorageError::Conflict => "a concurrent change touched the same records; retry",
        _ => "storage is unavailable",
    }
}

/// Longest id echoed back in an error message.
pub const MAX_ECHOED_ID: usize = 64;

impl AppError {
    pub fn not_found(resource: &'static str, id: impl ToString) -> Self {
        Self::NotFound {
            resource,
            id: AppError::clip_to(id.to_string(), MAX_ECHOED_ID),
        }
    }

    /// An unknown path, echoed back at most [`MAX_ECHOED_ID`] long.
    pub fn no_route(path: &str) -> Self {
        Self::NoRoute(AppError::clip_to(path.to_owned(), MAX_ECHOED_ID))
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::BadRequest {
            code,
            message: message.into(),
            status: StatusCode::BAD_REQUEST,
        }
    }

    pub fn unprocessable(code: &'static str, message: impl Into<String>) -> Self {
        Self::BadRequest {
            code,
            message: message.into(),
            status: StatusCode::UNPROCESSABLE_ENTITY,
        }
    }

    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::NotFound { .. } | Self::NoRoute(_) => (StatusCode::NOT_FOUND, "not_found"),
            Self::BadRequest { code, status, .. } => (*status, code),
            Self::Validation(_) => (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
            Self::Transition(_) => (StatusCode::CONFLICT, "invalid_transition"),
            Self::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            Self::QueueFull { .. } => (StatusCode::SERVICE_UNAVAILABLE, "queue_full"),
            // A lost race is the client's to retry, not an outage.
            Self::Storage(StorageError::Conflict) => (StatusCode::CONFLICT, "conflict"),
            Self::Storage(_) => (StatusCode::SERVICE_UNAVAILABLE, "storage_unavailable"),
            Self::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Self::RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            Self::Overloaded { .. } => (StatusCode::SERVICE_UNAVAILABLE, "overloaded"),
            Self::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        if status == StatusCode::SERVICE_UNAVAILABLE
            && let Self::Storage(e) = &self
        {
            tracing::error!(error = %e, "storage failure");
        }
        let body = Json(ErrorBody::new(code, self.to_string()));
        let mut response = (status, body).into_response();
        let retry_after = match &self {
            Self::QueueFull { retry_after, .. }
            | Self::RateLimited { retry_after, .. }
            | Self::Overloaded { retry_after, .. } => Some(retry_after.as_secs_f64().ceil().max(1.0) as u64),
            Self::Storage(StorageError::Conflict) => None,
            Self::Storage(_) => Some(1),
            _ => None,
        };
        if let Self::Unauthorized(refusal) = &self {
            // RFC 6750: say which scheme, and whether a token was sent at all.
            let challenge = match refusal {
                Refusal::Missing => r#"Bearer realm="vapora""#,
                _ => r#"Bearer realm="vapora", error="invalid_token""#,
            };
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
        }
        if let Some(secs) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

impl AppError {
    /// Keeps error messages short: serde quotes offending values, and a
    /// client that sent a 1 MB string does not need it back.
    pub fn clip(message: String) -> String {
        Self::clip_to(message, 300)
    }

    /// Cuts `text` to at most `max` bytes (on a character boundary), marking
    /// the cut with an ellipsis.
    pub fn clip_to(mut message: String, max: usize) -> String {
        if message.len() > max {
            let cut = (0..=max)
                .rev()
                .find(|&i| message.is_char_boundary(i))
                .unwrap_or(0);
            message.truncate(cut);
            message.push('…');
        }
        message
    }
}

impl From<ChangeRefused> for AppError {
    fn from(refused: ChangeRefused) -> Self {
        match refused {
            ChangeRefused::Transition(e) => e.into(),
            ChangeRefused::Invalid(e) => e.into(),
            refused @ (ChangeRefused::EditWhileRunning
            | ChangeRefused::NotRetryable(_)
            | ChangeRefused::NotInReview(..)) => Self::Conflict(refused.to_string()),
        }
    }
}

impl From<QueryRejection> for AppError {
    fn from(rejection: QueryRejection) -> Self {
        Self::bad_request("invalid_query", AppError::clip(rejection.body_text()))
    }
}

impl From<PathRejection> for AppError {
    fn from(rejection: PathRejection) -> Self {
        Self::bad_request("invalid_path", AppError::clip(rejection.body_text()))
    }
}
