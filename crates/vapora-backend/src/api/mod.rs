//! The HTTP surface: routes, extractors, handlers and the shared state.

pub mod agents;
pub mod budgets;
pub mod extract;
pub mod health;
pub mod keys;
pub mod metrics;
pub mod paging;
pub mod projects;
pub mod schedules;
pub mod sse;
pub mod state;
pub mod task_queue;
pub mod tasks;
pub mod workflows;
pub mod ws;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{Method, StatusCode, Uri};
use axum::middleware::from_fn_with_state;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use state::{AppState, SharedState};

use crate::error::AppError;

/// Largest request body accepted; larger ones get 413.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// The whole API as a router, its OpenAPI document and Swagger UI
/// included; tests call this directly.
pub fn router(state: AppState, metrics_require_key: bool) -> Router {
    let state = std::sync::Arc::new(state);
    let require_key = from_fn_with_state(state.clone(), crate::auth::middleware::require_key);
    // Routes go through `routes!`, which takes each one's path and method
    // from its `#[utoipa::path]`: what is served is what is documented.
    let v1 = OpenApiRouter::new()
        .routes(routes!(projects::create, projects::list))
        .routes(routes!(projects::get, projects::update, projects::delete))
        .routes(routes!(projects::board))
        .routes(routes!(tasks::create, tasks::list))
        .routes(routes!(tasks::get, tasks::update))
        .routes(routes!(tasks::cancel))
        .routes(routes!(tasks::retry))
        .routes(routes!(tasks::approve))
        .routes(routes!(tasks::reject))
        .routes(routes!(tasks::history))
        .routes(routes!(tasks::dead_letters))
        .routes(routes!(agents::list))
        .routes(routes!(agents::get))
        .routes(routes!(budgets::report))
        .routes(routes!(workflows::create, workflows::list))
        .routes(routes!(workflows::get))
        .routes(routes!(workflows::cancel))
        .routes(routes!(workflows::retry_stage))
        .routes(routes!(workflows::create_template, workflows::list_templates))
        .routes(routes!(workflows::get_template))
        .routes(routes!(schedules::create, schedules::list))
        .routes(routes!(schedules::get, schedules::delete))
        .routes(routes!(keys::create, keys::list))
        .routes(routes!(keys::revoke))
        .routes(routes!(keys::me))
        .routes(routes!(ws::subscribe))
        .routes(routes!(sse::stream))
        .route_layer(require_key.clone());
    let mut metrics = OpenApiRouter::new().routes(routes!(metrics::render));
    if metrics_require_key {
        metrics = metrics.route_layer(require_key);
    }
    let (routes, document) = OpenApiRouter::with_openapi(crate::openapi::skeleton())
        .routes(routes!(health::health))
        .routes(routes!(health::ready))
        .merge(metrics)
        .nest("/api/v1", v1)
        .split_for_parts();
    let dashboard = crate::dashboard::routes(state.dashboard_dir.clone());
    routes
        .merge(crate::openapi::docs(crate::openapi::finish(document)))
        .merge(dashboard)
        .fallback(no_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

async fn no_route(uri: Uri) -> AppError {
    AppError::no_route(uri.path())
}

async fn method_not_allowed(method: Method, uri: Uri) -> AppError {
    AppError::BadRequest {
        code: "method_not_allowed",
        message: format!(
            "{method} is not allowed on {}",
            AppError::clip_to(uri.path().to_owned(), crate::error::MAX_ECHOED_ID)
        ),
        status: StatusCode::METHOD_NOT_ALLOWED,
    }
}
