//! Who may call the gateway, and how fast.
//!
//! Callers send `Authorization: Bearer KEY`, which is what the official
//! OpenAI SDKs do with their `api_key`. The configuration holds each key's
//! SHA-256 only (print one with `vapora-llm-gateway hash-key`), by name:
//!
//! ```toml
//! [gateway.keys.team-a]
//! hash = "sha256:…"
//! requests_per_minute = 600       # optional
//! tokens_per_minute = 200000      # optional
//! ```
//!
//! A key's per-key budget is `[budgets."api_key:team-a"]`: charged by the
//! key that authenticated, never by anything else the caller sends. Keys are
//! high-entropy, so an unsalted SHA-256 is enough, and the lookup compares
//! digests, never the key. `tokens_per_minute` meters what a request may use
//! (its prompt, estimated at four characters a token, plus its `max_tokens`)
//! when it starts: the limit holds even for calls that never report usage.
//! Both limits are `governor` buckets refilled evenly over the minute.

use std::collections::{BTreeMap, HashMap};
use std::num::NonZeroU32;
use std::sync::Arc;

use axum::http::{HeaderMap, StatusCode, header};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::error::GatewayError;

const HASH_PREFIX: &str = "sha256:";

/// `[gateway]` in the router configuration.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewaySection {
    #[serde(default)]
    pub keys: BTreeMap<String, GatewayKeyConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayKeyConfig {
    /// `sha256:` and 64 hex digits.
    pub hash: String,
    pub requests_per_minute: Option<NonZeroU32>,
    pub tokens_per_minute: Option<NonZeroU32>,
}

#[derive(Debug, thiserror::Error)]
#[error(
    "gateway key {name}: `hash` must be `sha256:` followed by 64 hex digits (see `vapora-llm-gateway hash-key`)"
)]
pub struct BadKeyHash {
    pub name: String,
}

/// A configured key that authenticated a request.
pub struct GatewayKey {
    pub name: String,
    requests: Option<DefaultDirectRateLimiter>,
    tokens: Option<DefaultDirectRateLimiter>,
}

impl std::fmt::Debug for GatewayKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayKey")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// The configured keys, by digest.
#[derive(Debug, Clone, Default)]
pub struct GatewayKeys {
    by_digest: Arc<HashMap<[u8; 32], Arc<GatewayKey>>>,
}

/// `sha256:` and the hex SHA-256 of `key`: what the configuration holds.
pub fn hash_key(key: &str) -> String {
    format!(
        "{HASH_PREFIX}{}",
        hex::encode(Sha256::digest(key.trim().as_bytes()))
    )
}

/// A fresh random key for a gateway caller.
pub fn generate_key() -> String {
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret).expect("the OS random source is available");
    format!("vgk_{}", hex::encode(secret))
}

impl GatewayKeys {
    pub fn from_config(section: &GatewaySection) -> Result<Self, BadKeyHash> {
        let mut by_digest = HashMap::new();
        for (name, config) in &section.keys {
            let digest = config
                .hash
                .strip_prefix(HASH_PREFIX)
                .and_then(|h| hex::decode(h).ok())
                .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
                .ok_or_else(|| BadKeyHash { name: name.clone() })?;
            let per_minute = |n: NonZeroU32| RateLimiter::direct(Quota::per_minute(n));
            by_digest.insert(
                digest,
                Arc::new(GatewayKey {
                    name: name.clone(),
                    requests: config.requests_per_minute.map(per_minute),
                    tokens: config.tokens_per_minute.map(per_minute),
                }),
            );
        }
        Ok(Self {
            by_digest: Arc::new(by_digest),
        })
    }

    pub fn is_empty(&self) -> bool {
        self.by_digest.is_empty()
    }

    /// The key a request's bearer token names, or OpenAI's 401.
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<Arc<GatewayKey>, GatewayError> {
        let token = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .filter(|token| !token.is_empty());
        let Some(token) = token else {
            return Err(unauthorized(
                "You didn't provide an API key. Send it as `Authorization: Bearer KEY`.",
            ));
        };
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        self.by_digest
            .get(&digest)
            .cloned()
            .ok_or_else(|| unauthorized("Incorrect API key provided."))
    }
}

impl GatewayKey {
    /// Takes one request and `tokens` tokens from the key's minute limits,
    /// or answers 429 with when to retry.
    pub fn admit(&self, tokens: u32) -> Result<(), GatewayError> {
        if let Some(requests) = &self.requests {
            requests.check().map_err(|wait| {
                limited(
                    "requests",
                    &self.name,
                    wait.wait_time_from(DefaultClock::default().now()),
                )
            })?;
        }
        if let Some(limiter) = &self.tokens {
            let n = NonZeroU32::new(tokens.max(1)).expect("at least one");
            match limiter.check_n(n) {
                Ok(Ok(())) => {}
                Ok(Err(wait)) => {
                    return Err(limited(
                        "tokens",
                        &self.name,
                        wait.wait_time_from(DefaultClock::default().now()),
                    ));
                }
                Err(_) => {
                    return Err(GatewayError {
                        status: StatusCode::BAD_REQUEST,
                        code: "tokens_over_limit",
                        ..GatewayError::invalid(
                            format!(
                                "this request may use {tokens} tokens, more than the key's tokens per minute"
                            ),
                            Some("max_tokens"),
                        )
                    });
                }
            }
        }
        Ok(())
    }
}

fn unauthorized(message: &str) -> GatewayError {
    GatewayError {
        status: StatusCode::UNAUTHORIZED,
        code: "invalid_api_key",
        ..GatewayError::invalid(message, None)
    }
}

fn limited(what: &str, key: &str, wait: std::time::Duration) -> GatewayError {
    tracing::info!(key = key, limit = what, "request denied: rate limit");
    GatewayError {
        status: StatusCode::TOO_MANY_REQUESTS,
        kind: "requests",
        code: "rate_limit_exceeded",
        retry_after: Some(wait.max(std::time::Duration::from_secs(1))),
        ..GatewayError::invalid(
            format!("Rate limit reached for {what} per minute on key {key}."),
            None,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn configured(rpm: Option<u32>, tpm: Option<u32>) -> (GatewayKeys, String) {
        let key = generate_key();
        let mut section = GatewaySection::default();
        section.keys.insert(
            "team-a".into(),
            GatewayKeyConfig {
                hash: hash_key(&key),
                requests_per_minute: rpm.and_then(NonZeroU32::new),
                tokens_per_minute: tpm.and_then(NonZeroU32::new),
            },
        );
        (GatewayKeys::from_config(&section).unwrap(), key)
    }

    fn bearer(token: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, format!("Bearer {token}").parse().unwrap());
        headers
    }

    #[test]
    fn only_a_configured_key_authenticates() {
        let (keys, key) = configured(None, None);
        assert_eq!(keys.authenticate(&bearer(&key)).unwrap().name, "team-a");
        for wrong in [HeaderMap::new(), bearer("sk-other"), bearer(&key[1..])] {
            assert_eq!(
                keys.authenticate(&wrong).unwrap_err().status,
                StatusCode::UNAUTHORIZED
            );
        }
        let mut section = GatewaySection::default();
        section.keys.insert(
            "bad".into(),
            GatewayKeyConfig {
                hash: "md5:00".into(),
                requests_per_minute: None,
                tokens_per_minute: None,
            },
        );
        assert!(GatewayKeys::from_config(&section).is_err());
    }

    #[test]
    fn requests_and_tokens_per_minute_are_enforced() {
        let (keys, key) = configured(Some(2), None);
        let caller = keys.authenticate(&bearer(&key)).unwrap();
        caller.admit(10).unwrap();
        caller.admit(10).unwrap();
        let refused = caller.admit(10).unwrap_err();
        assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
        assert!(refused.retry_after.is_some());

        let (keys, key) = configured(None, Some(1000));
        let caller = keys.authenticate(&bearer(&key)).unwrap();
        caller.admit(600).unwrap();
        assert_eq!(
            caller.admit(600).unwrap_err().status,
            StatusCode::TOO_MANY_REQUESTS
        );
        assert_eq!(caller.admit(5000).unwrap_err().status, StatusCode::BAD_REQUEST);
    }
}
