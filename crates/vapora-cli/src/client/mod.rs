//! The Vapora API client: one HTTP client, the base URL and the key, and
//! each answer both as the server's JSON (printed by `--json` as it came)
//! and decoded into its type (for tables and for following tasks).

mod endpoints;
mod error;
pub mod events;
pub mod wire;

use std::time::Duration;

use reqwest::{Method, Url};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde_json::Value;

pub use endpoints::{KeyRequest, TaskQuery, WorkflowQuery};
pub use error::ApiError;

/// Time to open a connection; a server that is up answers in milliseconds.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Time for a whole ordinary request (the server's own limit is 30 s).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest silence on a connection. The event feed sends a keep-alive
/// comment every 15 s, so three missed ones mean the connection is dead
/// (a peer gone without a FIN), and the feed reconnects.
const READ_TIMEOUT: Duration = Duration::from_secs(45);

/// An answer: the JSON as the server sent it, and decoded.
#[derive(Debug)]
pub struct Reply<T> {
    pub json: Value,
    pub body: T,
}

#[derive(Debug, Clone)]
pub struct ApiClient {
    http: reqwest::Client,
    base: Url,
    key: Option<SecretString>,
}

impl ApiClient {
    /// A client of the API at `base` (e.g. `http://127.0.0.1:8001`, or a
    /// prefix such as `https://host/vapora` behind a proxy).
    pub fn new(base: &str, key: Option<SecretString>) -> Result<Self, ApiError> {
        let bad = |reason: String| ApiError::BadUrl {
            url: base.to_owned(),
            reason,
        };
        let parsed = Url::parse(base).map_err(|e| bad(e.to_string()))?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.cannot_be_a_base() {
            return Err(bad("expected http:// or https://".into()));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .read_timeout(READ_TIMEOUT)
            .user_agent(concat!("vapora-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| bad(e.to_string()))?;
        Ok(Self {
            http,
            base: parsed,
            key,
        })
    }

    /// The base URL, for messages.
    pub fn base_url(&self) -> &str {
        self.base.as_str().trim_end_matches('/')
    }

    /// `base/api/v1/<segments…>?<query>`. Segments are percent-encoded one
    /// by one, so an id typed by a person can never change the path.
    pub fn url(&self, segments: &[&str], query: &[(&str, String)]) -> Url {
        let mut url = self.base.clone();
        {
            let mut path = url
                .path_segments_mut()
                .expect("new() checked that the URL can be a base");
            path.pop_if_empty().extend(["api", "v1"]).extend(segments);
        }
        if !query.is_empty() {
            url.query_pairs_mut()
                .extend_pairs(query.iter().map(|(k, v)| (k, v.as_str())));
        }
        url
    }

    /// A request with the key attached; no overall timeout, for streams.
    pub fn request(&self, method: Method, url: Url) -> reqwest::RequestBuilder {
        let request = self.http.request(method, url);
        match &self.key {
            Some(key) => request.bearer_auth(key.expose_secret()),
            None => request,
        }
    }

    /// Sends an ordinary request; `Value::Null` stands for `204 No Content`.
    async fn send(&self, method: Method, url: Url, body: Option<&Value>) -> Result<Value, ApiError> {
        let shown = url.to_string();
        let mut request = self.request(method, url).timeout(REQUEST_TIMEOUT);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .map_err(|e| ApiError::from_reqwest(self.base_url(), &e))?;
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|e| ApiError::from_reqwest(&shown, &e))?;
        if !status.is_success() {
            return Err(ApiError::from_answer(&shown, status.as_u16(), &text));
        }
        if status == reqwest::StatusCode::NO_CONTENT || text.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&text).map_err(|e| ApiError::Decode {
            url: shown,
            reason: format!("not JSON: {e}"),
        })
    }

    /// Sends a request and decodes the answer as `T`.
    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        url: Url,
        body: Option<&Value>,
    ) -> Result<Reply<T>, ApiError> {
        let shown = url.to_string();
        let json = self.send(method, url, body).await?;
        let body = T::deserialize(&json).map_err(|e| ApiError::Decode {
            url: shown,
            reason: e.to_string(),
        })?;
        Ok(Reply { json, body })
    }
}

/// Query pairs from optional values: absent ones are left out.
fn query<const N: usize>(pairs: [(&'static str, Option<String>); N]) -> Vec<(&'static str, String)> {
    pairs.into_iter().filter_map(|(k, v)| v.map(|v| (k, v))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_keep_a_base_path_and_encode_segments() {
        let client = ApiClient::new("http://h:1/prefix/", None).unwrap();
        assert_eq!(
            client
                .url(&["tasks", "a/../b"], &[("status", "done".into())])
                .as_str(),
            "http://h:1/prefix/api/v1/tasks/a%2F..%2Fb?status=done"
        );
        let bare = ApiClient::new("http://h:1", None).unwrap();
        assert_eq!(
            bare.url(&["projects"], &[]).as_str(),
            "http://h:1/api/v1/projects"
        );
        assert_eq!(bare.base_url(), "http://h:1");
    }

    #[test]
    fn only_http_urls_are_accepted() {
        for bad in ["ftp://h", "127.0.0.1:8001", "mailto:x@y", ""] {
            assert!(ApiClient::new(bad, None).is_err(), "{bad}");
        }
    }
}
