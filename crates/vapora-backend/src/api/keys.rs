//! `/api/v1/keys` (admins only) and `/api/v1/me` handlers.

use axum::extract::State;
use axum::http::StatusCode;

use crate::api::SharedState;
use crate::api::extract::{Json, Path, Query};
use crate::api::paging::{PageQuery, page_limit};
use crate::auth::keys::{IssuedKey, KeyPage};
use crate::auth::{Caller, KeyInfo, Keys, NewKey};
use crate::error::AppError;

/// The key service; `None` only when authentication is off.
fn keys(state: &SharedState) -> Result<&Keys, AppError> {
    state.keys.as_ref().ok_or(AppError::BadRequest {
        code: "auth_off",
        message: "authentication is off (VAPORA_AUTH=off): there are no keys to manage".into(),
        status: StatusCode::CONFLICT,
    })
}

pub async fn create(
    State(state): State<SharedState>,
    caller: Caller,
    Json(body): Json<NewKey>,
) -> Result<(StatusCode, Json<IssuedKey>), AppError> {
    caller.must_be_admin()?;
    let issued = keys(&state)?.issue(body, &caller).await?;
    Ok((StatusCode::CREATED, Json(issued)))
}

pub async fn list(
    State(state): State<SharedState>,
    caller: Caller,
    Query(page): Query<PageQuery>,
) -> Result<Json<KeyPage>, AppError> {
    caller.must_be_admin()?;
    let limit = page_limit(page.limit)?;
    Ok(Json(keys(&state)?.list(page.cursor, limit).await?))
}

pub async fn revoke(
    State(state): State<SharedState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<KeyInfo>, AppError> {
    caller.must_be_admin()?;
    Ok(Json(keys(&state)?.revoke(&id, &caller).await?))
}

/// The caller's own key.
pub async fn me(caller: Caller) -> Json<KeyInfo> {
    Json(caller.info().clone())
}
