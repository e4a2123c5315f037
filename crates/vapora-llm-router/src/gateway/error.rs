//! Gateway errors, as OpenAI-style error objects with fitting statuses.

use std::time::Duration;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::LlmError;

/// OpenAI's error object, which the SDKs parse.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Error)]
pub struct ErrorBody<'a> {
    pub error: ErrorDetail<'a>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail<'a> {
    pub message: &'a str,
    /// The error's class, as OpenAI names them: `invalid_request_error`,
    /// `requests`, `rate_limit_error`, `insufficient_quota`, `server_error`.
    #[serde(rename = "type")]
    #[schema(value_type = String)]
    pub kind: &'static str,
    /// The request field at fault, when one is.
    #[schema(value_type = Option<String>)]
    pub param: Option<&'static str>,
    /// A stable code, e.g. `invalid_api_key`, `model_not_found`, `budget_exceeded`.
    #[schema(value_type = String)]
    pub code: &'static str,
}

#[derive(Debug)]
pub struct GatewayError {
    pub status: StatusCode,
    pub kind: &'static str,
    pub code: &'static str,
    pub message: String,
    pub param: Option<&'static str>,
    pub retry_after: Option<Duration>,
}

impl GatewayError {
    pub fn invalid(message: impl Into<String>, param: Option<&'static str>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            kind: "invalid_request_error",
            code: "invalid_request",
            message: message.into(),
            param,
            retry_after: None,
        }
    }

    pub fn body(&self) -> ErrorBody<'_> {
        ErrorBody {
            error: ErrorDetail {
                message: &self.message,
                kind: self.kind,
                param: self.param,
                code: self.code,
            },
        }
    }
}

impl From<LlmError> for GatewayError {
    fn from(e: LlmError) -> Self {
        let message = e.to_string();
        let (status, kind, code, retry_after) = match &e {
            LlmError::InvalidRequest(_) => (
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "invalid_request",
                None,
            ),
            LlmError::UnknownModel(_) => (
                StatusCode::NOT_FOUND,
                "invalid_request_error",
                "model_not_found",
                None,
            ),
            LlmError::Budget(_) => (
                StatusCode::TOO_MANY_REQUESTS,
                "insufficient_quota",
                "budget_exceeded",
                None,
            ),
            LlmError::Status {
                status: 429,
                retry_after,
                ..
            } => (
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limit_error",
                "upstream_rate_limited",
                retry_after.or(Some(Duration::from_secs(1))),
            ),
            LlmError::Status {
                status: 400 | 413 | 422,
                ..
            } => (
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "upstream_rejected",
                None,
            ),
            LlmError::Saturated { .. } => (
                StatusCode::SERVICE_UNAVAILABLE,
                "server_error",
                "saturated",
                Some(Duration::from_secs(1)),
            ),
            LlmError::Timeout { .. } => (
                StatusCode::GATEWAY_TIMEOUT,
                "server_error",
                "upstream_timeout",
                None,
            ),
            LlmError::Config(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                "misconfigured",
                None,
            ),
            // Upstream failures after every target was tried.
            _ => (StatusCode::BAD_GATEWAY, "server_error", "upstream_error", None),
        };
        Self {
            status,
            kind,
            code,
            message,
            param: None,
            retry_after,
        }
    }
}

impl IntoResponse for GatewayError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body())).into_response();
        if let Some(after) = self.retry_after {
            let secs = after.as_secs_f64().ceil().max(1.0) as u64;
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}
