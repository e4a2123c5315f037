//! The first admin key of a deployment.
//!
//! Deployments name it: `VAPORA_ADMIN_KEY`, or a file at
//! `VAPORA_ADMIN_KEY_FILE` (a mounted secret). Either is registered if no key
//! with its id exists yet, and never brought back once revoked. With neither,
//! a backend that finds no key at all generates one and writes it to the key
//! file (`data/admin.key` by default, mode 0600); the log names the file,
//! never the key.

use std::io::Write;
use std::path::Path;

use secrecy::{ExposeSecret, SecretString};

use super::key_material::PresentedKey;
use super::keys::{KeyRole, Keys};
use crate::storage::StorageError;

#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error("VAPORA_ADMIN_KEY is not a Vapora key (vk_ followed by 16 and 64 hex digits)")]
    MalformedSetting,
    #[error("admin key file {path}: not a Vapora key (vk_ followed by 16 and 64 hex digits)")]
    MalformedFile { path: String },
    #[error("admin key file {path}: {source}")]
    File { path: String, source: std::io::Error },
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Registers the configured admin key, or creates one on an empty key table.
pub async fn ensure_admin_key(
    keys: &Keys,
    configured: Option<&SecretString>,
    file: &Path,
) -> Result<(), BootstrapError> {
    let shown = file.display().to_string();
    if let Some(text) = configured {
        let key = PresentedKey::parse(text.expose_secret()).map_err(|_| BootstrapError::MalformedSetting)?;
        if keys
            .register(&key, "admin (VAPORA_ADMIN_KEY)", KeyRole::Admin)
            .await?
        {
            tracing::info!(key_id = %key.id, "admin key from VAPORA_ADMIN_KEY registered");
        }
        return Ok(());
    }
    match std::fs::read_to_string(file) {
        Ok(text) => {
            let key = PresentedKey::parse(&text)
                .map_err(|_| BootstrapError::MalformedFile { path: shown.clone() })?;
            if keys.register(&key, "admin (key file)", KeyRole::Admin).await? {
                tracing::info!(key_id = %key.id, file = %shown, "admin key from the key file registered");
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if keys.any().await? {
                return Ok(());
            }
            let key = PresentedKey::generate();
            write_private(file, &key.reveal()).map_err(|source| BootstrapError::File {
                path: shown.clone(),
                source,
            })?;
            keys.register(&key, "admin (first start)", KeyRole::Admin).await?;
            tracing::info!(key_id = %key.id, file = %shown, "no API key existed: created an admin key and wrote it to the file");
            Ok(())
        }
        Err(source) => Err(BootstrapError::File { path: shown, source }),
    }
}

/// Writes a new file readable by its owner alone; never overwrites one.
fn write_private(path: &Path, key: &SecretString) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    writeln!(file, "{}", key.expose_secret())?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::KeyHasher;
    use crate::storage::Database;

    #[tokio::test]
    async fn first_start_writes_a_private_key_file_that_later_starts_reuse() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("data/admin.key");
        let keys = Keys::new(Database::connect("mem://").await.unwrap(), KeyHasher::new(None));
        ensure_admin_key(&keys, None, &file).await.unwrap();
        let text = std::fs::read_to_string(&file).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        let caller = keys.authenticate(text.trim()).await.unwrap().unwrap();
        assert_eq!(caller.role(), KeyRole::Admin);

        // A second start neither rewrites the file nor adds a key.
        ensure_admin_key(&keys, None, &file).await.unwrap();
        assert_eq!(std::fs::read_to_string(&file).unwrap(), text);
        assert_eq!(keys.list(None, 10).await.unwrap().items.len(), 1);

        // On a fresh database the file's key is registered again.
        let fresh = Keys::new(Database::connect("mem://").await.unwrap(), KeyHasher::new(None));
        ensure_admin_key(&fresh, None, &file).await.unwrap();
        assert!(fresh.authenticate(text.trim()).await.unwrap().is_ok());
    }

    #[tokio::test]
    async fn a_configured_key_is_registered_once_and_stays_revoked() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("admin.key");
        let keys = Keys::new(Database::connect("mem://").await.unwrap(), KeyHasher::new(None));
        let configured = PresentedKey::generate().reveal();
        ensure_admin_key(&keys, Some(&configured), &file).await.unwrap();
        assert!(!file.exists(), "a configured key writes no file");
        let admin = keys
            .authenticate(configured.expose_secret())
            .await
            .unwrap()
            .unwrap();
        keys.revoke(admin.key_id(), &admin).await.unwrap();
        ensure_admin_key(&keys, Some(&configured), &file).await.unwrap();
        assert_eq!(
            keys.authenticate(configured.expose_secret())
                .await
                .unwrap()
                .unwrap_err(),
            crate::auth::keys::Refusal::Revoked
        );
        let garbage = SecretString::from("not-a-key");
        assert!(matches!(
            ensure_admin_key(&keys, Some(&garbage), &file).await,
            Err(BootstrapError::MalformedSetting)
        ));
    }
}
