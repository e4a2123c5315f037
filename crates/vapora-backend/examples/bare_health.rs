//! Benchmark baseline: a bare axum server answering `GET /health` with the
//! same body as the backend, and nothing else. `bench/run.sh` loads both in
//! the same run so the backend's figures can be read as a ratio.

use axum::Router;
use axum::routing::get;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let port = std::env::var("PORT").unwrap_or_else(|_| "8101".into());
    let app = Router::new().route(
        "/health",
        get(|| async { axum::Json(serde_json::json!({ "status": "ok" })) }),
    );
    let listener = tokio::net::TcpListener::bind(format!("127.0.0.1:{port}")).await?;
    axum::serve(listener, app).await
}
