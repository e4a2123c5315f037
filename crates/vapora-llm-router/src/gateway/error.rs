//! Gateway errors, as OpenAI-style error objects with fitting statuses.

use std::time::Duration;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::LlmError;

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

    pub fn body(&self) -> Value {
        json!({ "error": { "message": self.message, "type": self.kind, "param": self.param, "code": self.code } })
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
