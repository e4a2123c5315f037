//! What every Vapora service reports about itself, set up the same way in
//! each binary:
//!
//! - logs ([`init_logging`]): `RUST_LOG` picks what is logged (else the
//!   binary's default), `VAPORA_LOG_FORMAT` how: `text` (the default, for
//!   people) or `json` (one object per line, for log collectors);
//! - request ids ([`request_ids`]): every HTTP answer carries an
//!   `x-request-id`, the client's own if it sent one, else a fresh UUID, so
//!   a client's report and the service's logs can be matched.
//! - traces ([`trace_context`], [`http_spans`]): spans exported over OTLP
//!   when `OTEL_EXPORTER_OTLP_ENDPOINT` (or `..._TRACES_ENDPOINT`) is set,
//!   encoded as JSON (`OTEL_EXPORTER_OTLP_PROTOCOL=http/json`, the only one);
//!   the W3C `traceparent` carries a trace from process to process.

mod http_spans;
mod otlp;
pub mod trace_context;

use std::fmt;

use http::HeaderName;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

pub use http_spans::{RequestSpan, http_spans};
pub use otlp::{Telemetry, TelemetryError};

/// The header carrying a request's id.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// `VAPORA_LOG_FORMAT` is neither `text` nor `json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownLogFormat(pub String);

impl fmt::Display for UnknownLogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VAPORA_LOG_FORMAT must be text or json, not {:?}", self.0)
    }
}

impl std::error::Error for UnknownLogFormat {}

impl LogFormat {
    /// Parses a `VAPORA_LOG_FORMAT` value; unset or empty is text.
    pub fn parse(value: Option<&str>) -> Result<Self, UnknownLogFormat> {
        match value.map(str::trim) {
            None | Some("" | "text") => Ok(Self::Text),
            Some("json") => Ok(Self::Json),
            Some(other) => Err(UnknownLogFormat(other.to_owned())),
        }
    }
}

/// Installs the global subscriber: `RUST_LOG` (unset or empty: `default`)
/// filters, `VAPORA_LOG_FORMAT` formats. Unless `RUST_LOG` names a `vapora`
/// target itself, `own_target` logs at `info` whatever else it says, so that
/// e.g. `RUST_LOG=tokio=debug` keeps the service's own start-up lines.
/// With an OTLP endpoint configured, Vapora's spans are exported as
/// `service` too; keep the returned [`Telemetry`] until the end of `main`
/// and call [`Telemetry::shutdown`] to send the last ones.
pub fn init(service: &str, default: &str, own_target: &str) -> Result<Telemetry, TelemetryError> {
    let format = LogFormat::parse(std::env::var("VAPORA_LOG_FORMAT").ok().as_deref())?;
    let spec = std::env::var("RUST_LOG")
        .ok()
        .filter(|spec| !spec.trim().is_empty())
        .unwrap_or_else(|| default.to_owned());
    let mut filter = EnvFilter::try_new(&spec).unwrap_or_else(|_| EnvFilter::new(default));
    if !spec.contains("vapora")
        && let Ok(directive) = format!("{own_target}=info").parse()
    {
        filter = filter.add_directive(directive);
    }
    let logs = match format {
        LogFormat::Text => tracing_subscriber::fmt::layer().boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(false)
            .boxed(),
    };
    let (telemetry, traces) = Telemetry::from_env(service)?;
    tracing_subscriber::registry()
        .with(logs.with_filter(filter))
        .with(traces)
        .init();
    Ok(telemetry)
}

/// The two layers that give every answer an `x-request-id`: the first sets
/// one on the request when the client sent none, the second copies it onto
/// the answer. Apply both, outermost first (`.layer(set).layer(propagate)`
/// reads inside out in axum: add `propagate` first, then `set`).
pub fn request_ids() -> (SetRequestIdLayer<MakeRequestUuid>, PropagateRequestIdLayer) {
    let header = HeaderName::from_static(REQUEST_ID_HEADER);
    (
        SetRequestIdLayer::new(header.clone(), MakeRequestUuid),
        PropagateRequestIdLayer::new(header),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_parse_and_typos_are_refused() {
        assert_eq!(LogFormat::parse(None), Ok(LogFormat::Text));
        assert_eq!(LogFormat::parse(Some(" json ")), Ok(LogFormat::Json));
        assert_eq!(LogFormat::parse(Some("text")), Ok(LogFormat::Text));
        assert!(LogFormat::parse(Some("jsno")).is_err());
    }
}
