//! Serving the API over TCP with deadlines a slow client cannot stretch.
//!
//! `axum::serve` gives hyper no timer, so a client that sends half a
//! request line (or nothing) holds its connection forever. Here each
//! connection is served by hyper-util's HTTP/1 + HTTP/2 builder with:
//!
//! - a header-read timeout: HTTP/1 request heads (the first one, and each
//!   next one on a kept-alive connection) must arrive in full in time;
//! - a first-request deadline: the builder first reads a few bytes to tell
//!   HTTP/1 from HTTP/2, with no timeout of its own, so a connection that
//!   has started no request when the header-read timeout runs out is closed;
//! - a request timeout ([`with_request_timeout`]): a handler, reading the
//!   body included, has that long to answer, else 408. An upgraded
//!   WebSocket runs outside the request once its 101 is sent, so it is not
//!   cut.
//!
//! - header limits: at most [`MAX_HEADERS`] header fields in at most
//!   [`MAX_HEAD_BYTES`] (HTTP/1 request line included); hyper answers a
//!   larger head with 431 and closes the connection, before any handler.
//!
//! Shutdown is graceful as with `axum::serve`: no new connections, and
//! open ones finish their requests first.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::http::StatusCode;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tower::{BoxError, ServiceBuilder, ServiceExt};

use crate::error::AppError;

/// Largest request head (request line and headers) read, in bytes.
pub const MAX_HEAD_BYTES: usize = 16 * 1024;
/// Most header fields in one request.
pub const MAX_HEADERS: usize = 64;

/// Answers every request that takes longer than `limit` with a 408.
pub fn with_request_timeout(router: Router, limit: Duration) -> Router {
    router.layer(
        ServiceBuilder::new()
            .layer(HandleErrorLayer::new(move |_: BoxError| async move {
                AppError::BadRequest {
                    code: "request_timeout",
                    message: format!("the request did not complete within {}s", limit.as_secs_f64()),
                    status: StatusCode::REQUEST_TIMEOUT,
                }
            }))
            .timeout(limit),
    )
}

/// Serves `app` on `listener` until `shutdown` resolves, then waits for
/// open connections to finish their requests.
pub async fn serve(
    mut listener: TcpListener,
    app: Router,
    header_read_timeout: Duration,
    shutdown: impl Future<Output = ()>,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout)
        .max_buf_size(MAX_HEAD_BYTES)
        .max_headers(MAX_HEADERS);
    builder
        .http2()
        .max_header_list_size(u32::try_from(MAX_HEAD_BYTES).expect("fits"));
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        // axum's `Listener` retries failed accepts (out of descriptors…).
        let (stream, _) = tokio::select! {
            accepted = axum::serve::Listener::accept(&mut listener) => accepted,
            () = &mut shutdown => break,
        };
        let started = Arc::new(AtomicBool::new(false));
        let service = TowerToHyperService::new(app.clone().map_request({
            let started = started.clone();
            move |request: axum::http::Request<hyper::body::Incoming>| {
                started.store(true, Ordering::Relaxed);
                request
            }
        }));
        let connection = graceful.watch(
            builder
                .serve_connection_with_upgrades(TokioIo::new(stream), service)
                .into_owned(),
        );
        tokio::spawn(async move {
            tokio::select! {
                served = connection => if let Err(e) = served {
                    tracing::debug!(error = %e, "connection ended with an error");
                },
                () = first_request_deadline(header_read_timeout, &started) => {
                    tracing::debug!("connection started no request in time; closed");
                }
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// Resolves when `limit` has passed and no request has started; never once
/// one has.
async fn first_request_deadline(limit: Duration, started: &AtomicBool) {
    tokio::time::sleep(limit).await;
    if started.load(Ordering::Relaxed) {
        std::future::pending::<()>().await;
    }
}
