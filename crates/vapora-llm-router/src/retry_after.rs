//! Reading a provider's `Retry-After` header.
//!
//! The value is the provider's word, so it is bounded before it becomes a
//! [`Duration`]: a broken or hostile upstream must neither overflow the
//! conversion (`1e20` seconds does not fit) nor stall callers for longer
//! than [`MAX_RETRY_AFTER`].

use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::header::{HeaderMap, RETRY_AFTER};

/// The longest wait taken from a `Retry-After`; longer ones are cut to it.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

/// The wait asked for by `headers`, if it is readable: delay-seconds (a
/// fraction is tolerated) or an HTTP date. Negative or not-a-number values
/// are ignored; a date in the past means no wait.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    parse(headers.get(RETRY_AFTER)?.to_str().ok()?, Utc::now())
}

fn parse(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    let secs = match value.parse::<f64>() {
        Ok(secs) if secs.is_nan() || secs < 0.0 => return None,
        Ok(secs) => secs,
        Err(_) => {
            let at = DateTime::parse_from_rfc2822(value).ok()?;
            let millis = at
                .with_timezone(&Utc)
                .signed_duration_since(now)
                .num_milliseconds();
            millis.max(0) as f64 / 1_000.0
        }
    };
    // Clamped first, so the conversion below cannot fail.
    Duration::try_from_secs_f64(secs.min(MAX_RETRY_AFTER.as_secs_f64())).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn odd_values_are_clamped_or_ignored_never_a_panic() {
        let now: DateTime<Utc> = "2026-01-01T00:00:00Z".parse().unwrap();
        let cases = [
            ("7", Some(Duration::from_secs(7))),
            (" 1.5 ", Some(Duration::from_millis(1_500))),
            ("1e20", Some(MAX_RETRY_AFTER)),
            ("inf", Some(MAX_RETRY_AFTER)),
            ("18446744073709551616", Some(MAX_RETRY_AFTER)),
            ("-5", None),
            ("NaN", None),
            ("garbage", None),
            ("", None),
            ("Thu, 01 Jan 2026 00:00:30 GMT", Some(Duration::from_secs(30))),
            ("Fri, 31 Dec 9999 23:59:59 GMT", Some(MAX_RETRY_AFTER)),
            ("Wed, 31 Dec 2025 23:00:00 GMT", Some(Duration::ZERO)),
        ];
        for (value, expected) in cases {
            assert_eq!(parse(value, now), expected, "{value:?}");
        }
    }
}
