//! The HTTP surface: routes, extractors, handlers and the shared state.

pub mod agents;
pub mod extract;
pub mod health;
pub mod keys;
pub mod metrics;
pub mod paging;
pub mod projects;
pub mod state;
pub mod task_queue;
pub mod tasks;
pub mod ws;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{Method, StatusCode, Uri};
use axum::middleware::from_fn_with_state;
use axum::routing::{get, post};

pub use state::{AppState, SharedState};

use crate::error::AppError;

/// Largest request body accepted; larger ones get 413.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// The whole API as a router; tests call this directly.
pub fn router(state: AppState, metrics_require_key: bool) -> Router {
    let state = std::sync::Arc::new(state);
    let require_key = from_fn_with_state(state.clone(), crate::auth::middleware::require_key);
    let v1 = Router::new()
        .route("/projects", post(projects::create).get(projects::list))
        .route(
            "/projects/{id}",
            get(projects::get)
                .patch(projects::update)
                .delete(projects::delete),
        )
        .route("/projects/{id}/board", get(projects::board))
        .route("/tasks", post(tasks::create).get(tasks::list))
        .route("/tasks/{id}", get(tasks::get).patch(tasks::update))
        .route("/tasks/{id}/cancel", post(tasks::cancel))
        .route("/tasks/{id}/retry", post(tasks::retry))
        .route("/tasks/{id}/history", get(tasks::history))
        .route("/dead-letters", get(tasks::dead_letters))
        .route("/agents", get(agents::list))
        .route("/agents/{id}", get(agents::get))
        .route("/keys", post(keys::create).get(keys::list))
        .route("/keys/{id}", axum::routing::delete(keys::revoke))
        .route("/me", get(keys::me))
        .route("/ws", get(ws::subscribe))
        .route_layer(require_key.clone());
    let mut metrics = Router::new().route("/metrics", get(metrics::render));
    if metrics_require_key {
        metrics = metrics.route_layer(require_key);
    }
    Router::new()
        .route("/health", get(health::health))
        .route("/ready", get(health::ready))
        .merge(metrics)
        .nest("/api/v1", v1)
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
