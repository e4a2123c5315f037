//! The router served over HTTP as an OpenAI-compatible API.
//!
//! - `POST /v1/chat/completions` ([`chat`]) — OpenAI wire format; `stream:
//!   true` answers with SSE ending in `data: [DONE]`. `model` names a route
//!   (`role:developer`) or a concrete `provider/model`. The `x-vapora-role`
//!   header names the role charged (and, when `model` is a route-less
//!   default, the role's route); the key that authenticated is charged its
//!   per-key budget.
//! - `GET /v1/models` and `GET /api/v1/budgets` ([`catalog`]) — routes and
//!   targets; the role budgets and the caller's own key budget.
//! - `GET /metrics`, `GET /health`: no key needed.
//! - `GET /api-docs/openapi.json` and `/docs` ([`openapi`]): the contract.
//!
//! Every other route needs a configured key (see [`keys`]).

mod catalog;
mod chat;
mod error;
pub mod keys;
mod openai_api;
pub mod openapi;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router as HttpRouter};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use error::GatewayError;
pub use keys::{GatewayKeys, GatewaySection};

use crate::Router;

/// Largest request body accepted (413 beyond).
pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;
pub const ROLE_HEADER: &str = "x-vapora-role";

/// What every handler shares: the router and who may call it.
#[derive(Debug, Clone)]
pub struct Gateway {
    pub router: Router,
    pub keys: GatewayKeys,
}

/// The gateway's HTTP routes over `router`, for callers holding `keys`,
/// with its OpenAPI document and Swagger UI.
pub fn app(router: Router, keys: GatewayKeys) -> HttpRouter {
    let gateway = Gateway { router, keys };
    // Keyed routes check the key before anything reads the body.
    let keyed = OpenApiRouter::new()
        .routes(routes!(chat::chat_completions))
        .routes(routes!(catalog::models))
        .routes(routes!(catalog::budgets))
        .route_layer(axum::middleware::from_fn_with_state(gateway.clone(), require_key));
    let (routes, mut document) = OpenApiRouter::with_openapi(openapi::skeleton())
        .merge(keyed)
        .routes(routes!(metrics))
        .routes(routes!(health))
        .split_for_parts();
    let models = gateway
        .router
        .routes()
        .iter()
        .map(|r| r.name.clone())
        .chain(gateway.router.targets().iter().map(ToString::to_string))
        .collect();
    openapi::finish(&mut document, models);
    let (set_request_id, propagate_request_id) = vapora_telemetry::request_ids();
    routes
        .merge(openapi::docs(document))
        .fallback(|| async {
            GatewayError {
                status: StatusCode::NOT_FOUND,
                code: "not_found",
                ..GatewayError::invalid("no such endpoint", None)
            }
        })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(vapora_telemetry::http_spans())
        .layer(propagate_request_id)
        .layer(set_request_id)
        .with_state(gateway)
}

/// Puts the caller's [`keys::GatewayKey`] in the request, or answers 401.
async fn require_key(
    State(gateway): State<Gateway>,
    mut request: Request,
    next: axum::middleware::Next,
) -> Result<Response, GatewayError> {
    let caller = gateway.keys.authenticate(request.headers())?;
    request.extensions_mut().insert(caller);
    Ok(next.run(request).await)
}

#[derive(Debug, Serialize, ToSchema)]
struct Health {
    #[schema(value_type = String, example = "ok")]
    status: &'static str,
}

#[utoipa::path(get, path = "/health", operation_id = "health", tag = "operations", security(()),
    responses((status = 200, description = "The gateway serves HTTP", body = Health)))]
async fn health() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// Requests, errors, latency, added overhead, tokens and cost, in the
/// Prometheus text format.
#[utoipa::path(get, path = "/metrics", operation_id = "metrics", tag = "operations", security(()),
    responses((status = 200, description = "Prometheus text exposition", body = String, content_type = "text/plain")))]
async fn metrics(State(Gateway { router, .. }): State<Gateway>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        router.metrics().render(),
    )
}

/// For tests and the binary: serve until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    keys: GatewayKeys,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app(router, keys))
        .with_graceful_shutdown(shutdown)
        .await
}
