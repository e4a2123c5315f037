//! `Idempotency-Key` on creates: a client that did not hear back can send
//! the same request again without making a second task or project.
//!
//! The first request with a key claims a record in SurrealDB (so the claim
//! holds across restarts and replicas), runs, and stores its response; the
//! same key with the same body within [`RETENTION`] gets that response back
//! (with `Idempotent-Replayed: true`), the same key with another body 422.
//! Requests that arrive while the first still runs wait for its answer.
//! Keys are per API key and per route: two clients cannot collide.
//!
//! Expired records are deleted at start-up and hourly (`startup`'s
//! housekeeping). A failed request gives its key back, so it can be retried. A claim whose
//! request died (a crash between claim and answer) is taken over after
//! [`ABANDONED_AFTER`]; if that request had already stored its task, the
//! retry makes a second one. Closing that window would need the claim and
//! the insert in one transaction, which the batched task writer does not
//! offer.

use std::time::Duration;

use axum::Json;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde::Serialize;
use sha2::{Digest, Sha256};
use utoipa::IntoParams;

use crate::auth::Caller;
use crate::error::AppError;
use crate::storage::{Database, IdempotencyClaim};

pub const HEADER: &str = "idempotency-key";
/// How long a response is kept for replays.
pub const RETENTION: Duration = Duration::from_secs(24 * 60 * 60);
/// An unfinished claim older than this belongs to a request that died.
pub const ABANDONED_AFTER: Duration = Duration::from_secs(60);
/// How long a repeat waits for the first request to finish before 409.
const WAIT_FOR_FIRST: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(10);
/// Longest `Idempotency-Key` accepted.
const MAX_KEY_LEN: usize = 255;

/// The optional `Idempotency-Key` header of the create routes, as the API
/// document states it; [`Idempotent::from_request`] reads and checks it.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Header)]
pub struct IdempotencyKey {
    /// Up to 255 visible ASCII characters. The same key and body within
    /// 24 hours answer with the first response; another body, 422.
    #[param(
        rename = "Idempotency-Key",
        min_length = 1,
        max_length = 255,
        pattern = "^[!-~]+$"
    )]
    #[allow(dead_code)] // documentation only
    idempotency_key: Option<String>,
}

/// A create made with an `Idempotency-Key`.
#[derive(Debug)]
pub struct Idempotent {
    /// The record's id: a hash of the caller, the route and the client's key.
    record: String,
    fingerprint: String,
}

impl Idempotent {
    /// The request's idempotency, if it has a key; 400 for an unusable key.
    pub fn from_request(
        headers: &HeaderMap,
        caller: &Caller,
        route: &str,
        body: &impl Serialize,
    ) -> Result<Option<Self>, AppError> {
        let Some(value) = headers.get(HEADER) else {
            return Ok(None);
        };
        let key = value
            .to_str()
            .ok()
            .filter(|k| !k.is_empty() && k.len() <= MAX_KEY_LEN && k.bytes().all(|b| b.is_ascii_graphic()))
            .ok_or_else(|| {
                AppError::bad_request(
                    "invalid_idempotency_key",
                    format!("Idempotency-Key must be 1 to {MAX_KEY_LEN} visible ASCII characters"),
                )
            })?;
        let record = hex::encode(
            Sha256::new()
                .chain_update(caller.key_id())
                .chain_update("\n")
                .chain_update(route)
                .chain_update("\n")
                .chain_update(key)
                .finalize(),
        );
        // The body as parsed, defaults filled in: the same request however
        // its JSON was laid out.
        let canonical = serde_json::to_vec(body).expect("request bodies serialize");
        let fingerprint = hex::encode(Sha256::digest(&canonical));
        Ok(Some(Self { record, fingerprint }))
    }
}

/// Runs `create` at most once per idempotency key and answers 201 with its
/// result, or replays the first answer.
pub async fn create_once<T: Serialize>(
    db: &Database,
    idempotent: Option<Idempotent>,
    create: impl Future<Output = Result<T, AppError>>,
) -> Result<Response, AppError> {
    let Some(idempotent) = idempotent else {
        return Ok((StatusCode::CREATED, Json(create.await?)).into_response());
    };
    let started = tokio::time::Instant::now();
    loop {
        let now = Utc::now().timestamp_millis();
        let claim = db
            .claim_idempotency(
                &idempotent.record,
                &idempotent.fingerprint,
                now,
                now - millis(ABANDONED_AFTER),
                now + millis(RETENTION),
            )
            .await?;
        match claim {
            IdempotencyClaim::Claimed => break,
            IdempotencyClaim::Taken(record) if record.fingerprint != idempotent.fingerprint => {
                return Err(AppError::unprocessable(
                    "idempotency_key_reused",
                    "this Idempotency-Key was used with a different request body",
                ));
            }
            IdempotencyClaim::Taken(record) => {
                if let (Some(status), Some(body)) = (record.status, record.response) {
                    return Ok(stored_response(status, body, true));
                }
                if started.elapsed() > WAIT_FOR_FIRST {
                    return Err(AppError::Conflict(
                        "a request with this Idempotency-Key is still running; retry later".into(),
                    ));
                }
                tokio::time::sleep(POLL).await;
            }
            IdempotencyClaim::Raced => tokio::task::yield_now().await,
        }
    }
    match create.await {
        Ok(created) => {
            let body = serde_json::to_string(&created).expect("responses serialize");
            if let Err(e) = db
                .complete_idempotency(&idempotent.record, StatusCode::CREATED.as_u16(), &body)
                .await
            {
                // The create happened; the client hears so. A repeat waits
                // out the claim and then runs again.
                tracing::warn!(error = %e, "idempotent response not stored");
            }
            Ok(stored_response(StatusCode::CREATED.as_u16(), body, false))
        }
        Err(e) => {
            if let Err(release) = db.release_idempotency(&idempotent.record).await {
                tracing::warn!(error = %release, "idempotency claim not released; it lapses on its own");
            }
            Err(e)
        }
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// A response from its stored form; `replayed` marks a repeat's answer.
fn stored_response(status: u16, body: String, replayed: bool) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    let mut response = (
        status,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response();
    if replayed {
        response
            .headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    response
}
