//! Short one-way fingerprints of caller-supplied keys.
//!
//! A caller's `x-vapora-api-key` may be a real secret, so it is never kept,
//! listed or logged as it is: per-key budgets are keyed by its fingerprint,
//! the first 16 hex digits of its SHA-256.

use std::fmt::Write;

use sha2::{Digest, Sha256};

/// The first 16 hex digits of the SHA-256 of `value`.
pub fn fingerprint(value: &str) -> String {
    let digest = Sha256::digest(value.as_bytes());
    digest
        .iter()
        .take(8)
        .fold(String::with_capacity(16), |mut hex, byte| {
            let _ = write!(hex, "{byte:02x}");
            hex
        })
}

/// The budget key of a caller key: `api_key:` and its fingerprint.
pub fn api_key_budget(value: &str) -> String {
    format!("api_key:{}", fingerprint(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_are_short_stable_and_hide_the_value() {
        assert_eq!(fingerprint("abc"), "ba7816bf8f01cfea");
        assert_eq!(
            api_key_budget("team-a"),
            format!("api_key:{}", fingerprint("team-a"))
        );
        assert!(!api_key_budget("sk-secret").contains("secret"));
    }
}
