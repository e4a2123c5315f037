//! `/api/v1/keys` (admins only) and `/api/v1/me` handlers.

use axum::extract::State;
use axum::http::StatusCode;

use crate::api::SharedState;
use crate::api::extract::{Json, Path, Query};
use crate::api::paging::{PageQuery, page_limit};
use crate::auth::keys::{IssuedKey, KeyPage};
use crate::auth::{Caller, KeyInfo, Keys, NewKey};
use crate::error::{AppError, ErrorBody};

/// The key service; `None` only when authentication is off.
fn keys(state: &SharedState) -> Result<&Keys, AppError> {
    state.keys.as_ref().ok_or(AppError::BadRequest {
        code: "auth_off",
        message: "authentication is off (VAPORA_AUTH=off): there are no keys to manage".into(),
        status: StatusCode::CONFLICT,
    })
}

/// Issues a key. Its secret is in this answer only. Admins only.
#[utoipa::path(post, path = "/keys", operation_id = "create_key", tag = "keys",
    request_body = NewKey,
    responses(
        (status = 201, description = "The new key, secret included", body = IssuedKey),
        (status = 403, description = "Not an admin key", body = ErrorBody),
        (status = 409, description = "Authentication is off", body = ErrorBody),
    ))]
pub async fn create(
    State(state): State<SharedState>,
    caller: Caller,
    Json(body): Json<NewKey>,
) -> Result<(StatusCode, Json<IssuedKey>), AppError> {
    caller.must_be_admin()?;
    let issued = keys(&state)?.issue(body, &caller).await?;
    Ok((StatusCode::CREATED, Json(issued)))
}

/// Every key, revoked ones included, without secrets. Admins only.
#[utoipa::path(get, path = "/keys", operation_id = "list_keys", tag = "keys",
    params(PageQuery),
    responses(
        (status = 200, description = "One page", body = KeyPage),
        (status = 403, description = "Not an admin key", body = ErrorBody),
        (status = 409, description = "Authentication is off", body = ErrorBody),
    ))]
pub async fn list(
    State(state): State<SharedState>,
    caller: Caller,
    Query(page): Query<PageQuery>,
) -> Result<Json<KeyPage>, AppError> {
    caller.must_be_admin()?;
    let limit = page_limit(page.limit)?;
    Ok(Json(keys(&state)?.list(page.cursor, limit).await?))
}

/// Revokes a key at once, on every replica. Admins only.
#[utoipa::path(delete, path = "/keys/{id}", operation_id = "revoke_key", tag = "keys",
    params(("id" = String, Path, description = "The key's id: the 16 hex digits after `vk_`")),
    responses(
        (status = 200, description = "The revoked key", body = KeyInfo),
        (status = 403, description = "Not an admin key", body = ErrorBody),
        (status = 404, description = "No such key", body = ErrorBody),
        (status = 409, description = "Authentication is off", body = ErrorBody),
    ))]
pub async fn revoke(
    State(state): State<SharedState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<KeyInfo>, AppError> {
    caller.must_be_admin()?;
    Ok(Json(keys(&state)?.revoke(&id, &caller).await?))
}

/// The caller's own key.
#[utoipa::path(get, path = "/me", operation_id = "get_own_key", tag = "keys",
    responses((status = 200, description = "The key that made this request", body = KeyInfo)))]
pub async fn me(caller: Caller) -> Json<KeyInfo> {
    Json(caller.info().clone())
}
