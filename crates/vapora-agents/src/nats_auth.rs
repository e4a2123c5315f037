//! How the backend and agent servers authenticate to NATS and check the
//! server: the `VAPORA_NATS_*` credential and TLS settings both read.
//!
//! One way of authenticating at most:
//! - `VAPORA_NATS_USER` with `VAPORA_NATS_PASSWORD`;
//! - `VAPORA_NATS_TOKEN`;
//! - `VAPORA_NATS_NKEY_SEED` (an `SU…` user seed);
//! - `VAPORA_NATS_CREDS_FILE` (a `.creds` file: JWT and seed).
//!
//! Every secret may instead come from a file named by the same variable with
//! `_FILE` appended (`VAPORA_NATS_PASSWORD_FILE`, a mounted secret). TLS:
//! `VAPORA_NATS_TLS_CA` (PEM roots to trust), `VAPORA_NATS_TLS_CERT` with
//! `VAPORA_NATS_TLS_KEY` (a client certificate), `VAPORA_NATS_TLS_REQUIRED`.
//! Secrets are held as `SecretString`: they never show in `Debug` or logs.

use std::path::PathBuf;

use async_nats::ConnectOptions;
use secrecy::{ExposeSecret, SecretString};

use crate::jetstream::SettingError;

#[derive(Debug, Clone, Default)]
pub struct NatsCredentials {
    auth: Option<NatsAuth>,
    tls_ca: Option<PathBuf>,
    tls_client: Option<(PathBuf, PathBuf)>,
    tls_required: bool,
}

#[derive(Debug, Clone)]
enum NatsAuth {
    UserPassword { user: String, password: SecretString },
    Token(SecretString),
    NKey(SecretString),
    CredsFile(PathBuf),
}

impl NatsCredentials {
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, SettingError> {
        let get = |name: &str| get(name).filter(|v| !v.trim().is_empty());
        let secret = |name: &'static str| secret_setting(get, name);
        let mut ways = Vec::new();
        if let Some(user) = get("VAPORA_NATS_USER") {
            let password = secret("VAPORA_NATS_PASSWORD")?.ok_or_else(|| SettingError {
                name: "VAPORA_NATS_PASSWORD",
                value: String::new(),
                reason: "VAPORA_NATS_USER needs a password".into(),
            })?;
            ways.push(NatsAuth::UserPassword { user, password });
        }
        if let Some(token) = secret("VAPORA_NATS_TOKEN")? {
            ways.push(NatsAuth::Token(token));
        }
        if let Some(seed) = secret("VAPORA_NATS_NKEY_SEED")? {
            ways.push(NatsAuth::NKey(seed));
        }
        if let Some(path) = get("VAPORA_NATS_CREDS_FILE") {
            ways.push(NatsAuth::CredsFile(path.into()));
        }
        if ways.len() > 1 {
            return Err(SettingError {
                name: "VAPORA_NATS_*",
                value: String::new(),
                reason: "set one of user and password, token, NKey seed or creds file".into(),
            });
        }
        let tls_client = match (get("VAPORA_NATS_TLS_CERT"), get("VAPORA_NATS_TLS_KEY")) {
            (Some(cert), Some(key)) => Some((cert.into(), key.into())),
            (None, None) => None,
            _ => {
                return Err(SettingError {
                    name: "VAPORA_NATS_TLS_CERT",
                    value: String::new(),
                    reason: "a client certificate needs both VAPORA_NATS_TLS_CERT and VAPORA_NATS_TLS_KEY"
                        .into(),
                });
            }
        };
        let tls_required = match get("VAPORA_NATS_TLS_REQUIRED").as_deref().map(str::trim) {
            None | Some("false") => false,
            Some("true") => true,
            Some(other) => {
                return Err(SettingError {
                    name: "VAPORA_NATS_TLS_REQUIRED",
                    value: other.into(),
                    reason: "expected true or false".into(),
                });
            }
        };
        Ok(Self {
            auth: ways.pop(),
            tls_ca: get("VAPORA_NATS_TLS_CA").map(PathBuf::from),
            tls_client,
            tls_required,
        })
    }

    /// Reads `VAPORA_NATS_*` from the process environment.
    pub fn from_env() -> Result<Self, SettingError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// `options` with these credentials and TLS settings; fails only when a
    /// creds file cannot be read.
    pub async fn apply(&self, mut options: ConnectOptions) -> std::io::Result<ConnectOptions> {
        options = match &self.auth {
            None => options,
            Some(NatsAuth::UserPassword { user, password }) => {
                options.user_and_password(user.clone(), password.expose_secret().to_owned())
            }
            Some(NatsAuth::Token(token)) => options.token(token.expose_secret().to_owned()),
            Some(NatsAuth::NKey(seed)) => options.nkey(seed.expose_secret().to_owned()),
            Some(NatsAuth::CredsFile(path)) => options.credentials_file(path).await?,
        };
        if let Some(ca) = &self.tls_ca {
            options = options.add_root_certificates(ca.clone());
        }
        if let Some((cert, key)) = &self.tls_client {
            options = options.add_client_certificate(cert.clone(), key.clone());
        }
        Ok(options.require_tls(self.tls_required))
    }
}

/// A secret from `NAME`, or from the file named by `NAME_FILE` (a mounted
/// secret; surrounding whitespace trimmed). The backend reads its own
/// secrets the same way.
pub fn secret_setting(
    get: impl Fn(&str) -> Option<String>,
    name: &'static str,
) -> Result<Option<SecretString>, SettingError> {
    if let Some(value) = get(name) {
        return Ok(Some(SecretString::from(value)));
    }
    let file_setting = format!("{name}_FILE");
    let Some(path) = get(&file_setting) else {
        return Ok(None);
    };
    std::fs::read_to_string(&path)
        .map(|text| Some(SecretString::from(text.trim().to_owned())))
        .map_err(|e| SettingError {
            name,
            value: path,
            reason: format!("{file_setting} cannot be read: {e}"),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(vars: &[(&str, &str)]) -> Result<NatsCredentials, SettingError> {
        NatsCredentials::from_lookup(|name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        })
    }

    #[test]
    fn one_way_of_authenticating_and_secrets_never_show() {
        let creds = read(&[
            ("VAPORA_NATS_USER", "agent-a"),
            ("VAPORA_NATS_PASSWORD", "hunter2-secret"),
        ])
        .unwrap();
        assert!(!format!("{creds:?}").contains("hunter2-secret"), "{creds:?}");
        assert!(
            read(&[("VAPORA_NATS_USER", "a")]).is_err(),
            "a user needs a password"
        );
        assert!(read(&[("VAPORA_NATS_TOKEN", "t"), ("VAPORA_NATS_NKEY_SEED", "SU…")]).is_err());
        assert!(read(&[("VAPORA_NATS_TLS_CERT", "c.pem")]).is_err());
        assert!(read(&[("VAPORA_NATS_TLS_REQUIRED", "maybe")]).is_err());
        assert!(read(&[]).unwrap().auth.is_none());

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "from-a-file\n").unwrap();
        let creds = read(&[("VAPORA_NATS_TOKEN_FILE", file.to_str().unwrap())]).unwrap();
        match creds.auth {
            Some(NatsAuth::Token(token)) => assert_eq!(token.expose_secret(), "from-a-file"),
            other => panic!("expected a token, got {other:?}"),
        }
        assert!(read(&[("VAPORA_NATS_TOKEN_FILE", "/no/such/file")]).is_err());
    }
}
