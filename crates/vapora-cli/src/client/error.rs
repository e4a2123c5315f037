//! What can go wrong talking to the API, as one typed error.
//!
//! The server's own error body (`{"error":{"code","message"}}`) is kept
//! whole, because its message is what a person needs to read; transport
//! failures name the URL, because "connection refused" alone does not say
//! which server the client was pointed at.

use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No TCP connection: nothing listens there, DNS failed, a timeout.
    #[error(
        "cannot reach the Vapora server at {url}: {reason}\n\
         hint: is it running? Point the client at it with --url, VAPORA_URL or `url` in the config file"
    )]
    Unreachable { url: String, reason: String },
    /// The server answered with its JSON error body.
    #[error("{message} (HTTP {status} {code})")]
    Server {
        status: u16,
        code: String,
        message: String,
    },
    /// An error status without the API's error body: a proxy, or not Vapora.
    #[error("HTTP {status} from {url}, not a Vapora error body: {body}")]
    UnexpectedStatus { status: u16, url: String, body: String },
    /// A success whose body is not what the API documents.
    #[error("unexpected answer from {url}: {reason}")]
    Decode { url: String, reason: String },
    /// The connection broke mid-request or mid-answer.
    #[error("request to {url} failed: {reason}")]
    Transport { url: String, reason: String },
    #[error("invalid server URL {url:?}: {reason}")]
    BadUrl { url: String, reason: String },
}

impl ApiError {
    /// Sorts a reqwest failure into unreachable or broken, with the
    /// innermost cause as the reason ("Connection refused (os error 111)").
    pub fn from_reqwest(url: &str, error: &reqwest::Error) -> Self {
        let url = url.to_owned();
        let reason = if error.is_timeout() {
            "timed out".to_owned()
        } else {
            root_cause(error)
        };
        if error.is_connect() {
            Self::Unreachable { url, reason }
        } else {
            Self::Transport { url, reason }
        }
    }

    /// The error an answer with `status` and `body` stands for.
    pub fn from_answer(url: &str, status: u16, body: &str) -> Self {
        #[derive(Deserialize)]
        struct Body {
            error: Detail,
        }
        #[derive(Deserialize)]
        struct Detail {
            code: String,
            message: String,
        }
        match serde_json::from_str::<Body>(body) {
            Ok(Body { error }) => Self::Server {
                status,
                code: error.code,
                message: error.message,
            },
            Err(_) => Self::UnexpectedStatus {
                status,
                url: url.to_owned(),
                body: clip(body.trim(), 300),
            },
        }
    }

    /// Whether trying again later may succeed: the server may come back,
    /// but a refused key or a missing project will not change by itself.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Unreachable { .. } | Self::Transport { .. } => true,
            Self::Server { status, .. } | Self::UnexpectedStatus { status, .. } => {
                *status >= 500 || *status == 429 || *status == 408
            }
            Self::Decode { .. } | Self::BadUrl { .. } => false,
        }
    }
}

/// The innermost error's text, which is the one that says what happened;
/// reqwest's own outer text only says "error sending request".
fn root_cause(error: &reqwest::Error) -> String {
    let mut cause: &dyn std::error::Error = error;
    while let Some(inner) = cause.source() {
        cause = inner;
    }
    cause.to_string()
}

/// At most `max` bytes of `text`, cut on a character boundary.
fn clip(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let cut = (0..=max).rev().find(|&i| text.is_char_boundary(i)).unwrap_or(0);
    format!("{}…", &text[..cut])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_servers_error_body_becomes_its_message() {
        let e = ApiError::from_answer(
            "http://x",
            401,
            r#"{"error":{"code":"unauthorized","message":"unknown API key"}}"#,
        );
        assert_eq!(e.to_string(), "unknown API key (HTTP 401 unauthorized)");
        assert!(!e.is_transient());
    }

    #[test]
    fn other_bodies_are_shown_clipped() {
        let body = "é".repeat(400);
        let e = ApiError::from_answer("http://x/y", 502, &body);
        let text = e.to_string();
        assert!(text.starts_with("HTTP 502 from http://x/y"), "{text}");
        assert!(text.len() < 400, "{}", text.len());
        assert!(e.is_transient());
    }
}
