//! What an API key is made of, and how it is checked.
//!
//! A key reads `vk_<id>_<secret>`: `id` is 16 hex digits naming the stored
//! record (it appears in listings and logs), `secret` is 256 random bits in
//! 64 hex digits and is never stored. The database holds
//! `HMAC-SHA256(pepper, secret)`: keys are high-entropy, so a fast keyed hash
//! is as strong as a slow password hash here and costs about a microsecond
//! per request; the pepper (`VAPORA_KEY_PEPPER`) keeps a stolen database
//! dump from being checked against guesses offline. Comparison goes through
//! `hmac`'s constant-time `verify_slice`.

use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

/// Every key starts with this, so scanners and people can tell what it is.
pub const PREFIX: &str = "vk_";
const ID_BYTES: usize = 8;
const SECRET_BYTES: usize = 32;

/// Stands in for a pepper when none is configured: hashes stay keyed (and
/// distinct from a plain SHA-256 of the secret) but a dump is then checkable.
const DEFAULT_PEPPER: &str = "vapora-api-key-v1";

/// The public half of a key: its record id.
pub type KeyId = String;

/// A key as presented or generated: its id and the secret, which redacts
/// itself in `Debug`.
#[derive(Debug)]
pub struct PresentedKey {
    pub id: KeyId,
    secret: SecretString,
}

/// Why a presented key was refused before any lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the API key is malformed: expected vk_ followed by 16 and 64 hex digits")]
pub struct MalformedKey;

impl PresentedKey {
    /// A fresh key from the operating system's random source.
    pub fn generate() -> Self {
        let mut id = [0u8; ID_BYTES];
        let mut secret = [0u8; SECRET_BYTES];
        getrandom::fill(&mut id).expect("the OS random source is available");
        getrandom::fill(&mut secret).expect("the OS random source is available");
        Self {
            id: hex::encode(id),
            secret: SecretString::from(hex::encode(secret)),
        }
    }

    pub fn parse(text: &str) -> Result<Self, MalformedKey> {
        let rest = text.trim().strip_prefix(PREFIX).ok_or(MalformedKey)?;
        let (id, secret) = rest.split_once('_').ok_or(MalformedKey)?;
        if !is_key_id(id) || !is_hex(secret, SECRET_BYTES) {
            return Err(MalformedKey);
        }
        Ok(Self {
            id: id.to_owned(),
            secret: SecretString::from(secret.to_owned()),
        })
    }

    /// The whole key, as shown once to whoever created it.
    pub fn reveal(&self) -> SecretString {
        SecretString::from(format!("{PREFIX}{}_{}", self.id, self.secret.expose_secret()))
    }
}

/// Whether `text` has the form of a key id: 16 lowercase hex digits.
pub fn is_key_id(text: &str) -> bool {
    is_hex(text, ID_BYTES)
}

fn is_hex(text: &str, bytes: usize) -> bool {
    text.len() == bytes * 2 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Hashes and checks secrets with the deployment's pepper.
#[derive(Clone)]
pub struct KeyHasher {
    pepper: SecretString,
}

impl std::fmt::Debug for KeyHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyHasher { pepper: [REDACTED] }")
    }
}

impl KeyHasher {
    pub fn new(pepper: Option<SecretString>) -> Self {
        Self {
            pepper: pepper.unwrap_or_else(|| SecretString::from(DEFAULT_PEPPER)),
        }
    }

    fn mac(&self, key: &PresentedKey) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(self.pepper.expose_secret().as_bytes())
            .expect("HMAC takes a key of any length");
        // The id is bound in too, so a hash cannot be moved to another record.
        mac.update(key.id.as_bytes());
        mac.update(b"_");
        mac.update(key.secret.expose_secret().as_bytes());
        mac
    }

    /// The hash to store, hex-encoded.
    pub fn hash(&self, key: &PresentedKey) -> String {
        hex::encode(self.mac(key).finalize().into_bytes())
    }

    /// Whether `key` matches a stored hash, in constant time.
    pub fn verify(&self, key: &PresentedKey, stored_hash: &str) -> bool {
        match hex::decode(stored_hash) {
            Ok(expected) => self.mac(key).verify_slice(&expected).is_ok(),
            Err(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_key_parses_back_and_verifies_only_against_its_own_hash() {
        let hasher = KeyHasher::new(None);
        let key = PresentedKey::generate();
        let text = key.reveal();
        let parsed = PresentedKey::parse(text.expose_secret()).unwrap();
        assert_eq!(parsed.id, key.id);
        let hash = hasher.hash(&key);
        assert!(hasher.verify(&parsed, &hash));
        assert!(!hasher.verify(&PresentedKey::generate(), &hash));
        assert!(!KeyHasher::new(Some("other pepper".into())).verify(&parsed, &hash));
        assert!(!hasher.verify(&parsed, "not hex"));
    }

    #[test]
    fn malformed_keys_are_refused_and_debug_output_hides_the_secret() {
        for bad in [
            "",
            "vk_",
            "sk-abc",
            "vk_0123456789abcdef",
            "vk_0123456789abcdef_00",
            "vk_0123456789ABCDEF_0000000000000000000000000000000000000000000000000000000000000000",
        ] {
            assert_eq!(PresentedKey::parse(bad).unwrap_err(), MalformedKey, "{bad:?}");
        }
        let key = PresentedKey::generate();
        let text = key.reveal();
        let secret = &text.expose_secret()[PREFIX.len() + 17..];
        assert!(!format!("{key:?}").contains(secret));
    }
}
