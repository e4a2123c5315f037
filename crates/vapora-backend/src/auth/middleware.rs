//! Finding and checking the key of a request, in front of every keyed route.
//!
//! A key arrives as `Authorization: Bearer vk_…`. Browsers cannot set
//! headers on a WebSocket, so the upgrade also takes the key as one of the
//! offered subprotocols: `new WebSocket(url, ["vapora.v1", key])`; the
//! server answers with [`WS_PROTOCOL`] and never echoes the key. (A ticket
//! exchanged over REST would keep the key out of proxies' header logs too,
//! but needs shared single-use state across replicas; a dashboard can use
//! a viewer key of its own instead.)

use axum::extract::{Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::Response;

use super::caller::Caller;
use super::key_material::PREFIX;
use super::keys::Refusal;
use crate::api::SharedState;
use crate::error::AppError;

/// The subprotocol a WebSocket client offers next to its key, and that the
/// server selects.
pub const WS_PROTOCOL: &str = "vapora.v1";

/// Puts the request's [`Caller`] in its extensions, or answers 401; a key
/// over its rate gets 429 (see `crate::limits`).
pub async fn require_key(
    State(state): State<SharedState>,
    mut request: Request,
    next: Next,
) -> Result<Response, AppError> {
    let caller = match &state.keys {
        None => Caller::unauthenticated_admin(),
        Some(keys) => {
            let presented = presented_key(request.headers());
            let outcome = match presented {
                Some(text) => keys.authenticate(text).await?,
                None => Err(Refusal::Missing),
            };
            match outcome {
                Ok(caller) => caller,
                Err(refusal) => {
                    // The id half of a key is public; the rest never reaches a log.
                    let key_id = presented.and_then(key_id_of).unwrap_or("-");
                    tracing::info!(key_id, reason = %refusal, path = %request.uri().path(), "request denied");
                    return Err(AppError::Unauthorized(refusal));
                }
            }
        }
    };
    state.limits.admit(caller.key_id())?;
    request.extensions_mut().insert(caller);
    Ok(next.run(request).await)
}

/// The key text of a request: the bearer token, else (WebSocket upgrades)
/// an offered subprotocol that looks like a key.
fn presented_key(headers: &HeaderMap) -> Option<&str> {
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let text = value.to_str().ok()?;
        let (scheme, token) = text.split_once(' ')?;
        return scheme.eq_ignore_ascii_case("bearer").then(|| token.trim());
    }
    headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|list| list.split(','))
        .map(str::trim)
        .find(|protocol| protocol.starts_with(PREFIX))
}

/// The public id of something shaped like a key, for logs.
fn key_id_of(text: &str) -> Option<&str> {
    let id = text.strip_prefix(PREFIX)?.split('_').next()?;
    (id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit())).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn the_key_comes_from_the_bearer_header_or_an_offered_subprotocol() {
        let mut headers = HeaderMap::new();
        assert_eq!(presented_key(&headers), None);
        headers.insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static("vapora.v1, vk_abc"),
        );
        assert_eq!(presented_key(&headers), Some("vk_abc"));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("bearer  vk_def "));
        assert_eq!(presented_key(&headers), Some("vk_def"));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic dXNlcg=="));
        assert_eq!(presented_key(&headers), None);
    }

    #[test]
    fn only_a_well_formed_id_is_logged() {
        assert_eq!(key_id_of("vk_0123456789abcdef_secret"), Some("0123456789abcdef"));
        assert_eq!(key_id_of("vk_secretsecretsecretsecret"), None);
        assert_eq!(key_id_of("sk-live-123"), None);
    }
}
