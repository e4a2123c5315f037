//! Backend settings, read from `VAPORA_*` environment variables.
//!
//! Every setting has a default that runs on a fresh machine with no other
//! service; the README's configuration reference lists them all.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use secrecy::SecretString;

use crate::limits::{RateLimit, WsCaps};
use vapora_agents::OutputLimits;
use vapora_agents::jetstream::{DeliveryPolicy, SettingError};
use vapora_agents::nats_auth::{NatsCredentials, secret_setting};
use vapora_llm_router::{LlmError, ProviderConfig, ProviderKind};

#[derive(Debug, Clone)]
pub struct Settings {
    pub host: IpAddr,
    /// 0 picks a free port (tests).
    pub port: u16,
    /// `surrealkv://path`, `mem://` or `ws://host:port`.
    pub database_url: String,
    /// Root credentials for a SurrealDB server (`ws://`); unused when embedded.
    pub database_user: Option<String>,
    /// `VAPORA_DATABASE_PASS`, or the file named by `VAPORA_DATABASE_PASS_FILE`.
    pub database_pass: Option<SecretString>,
    pub queue_capacity: usize,
    pub workers_per_role: usize,
    /// System prompts per role. When `None`, `config/roles.toml` is used if
    /// present, else the built-in set (the same file, compiled in).
    pub roles_file: Option<PathBuf>,
    /// Workflow templates (`VAPORA_WORKFLOWS_FILE`). When `None`,
    /// `config/workflows.toml` is used if present, else the built-in set.
    pub workflows_file: Option<PathBuf>,
    /// Live events buffered per WebSocket/SSE client; one that falls
    /// further behind catches up from the event window.
    pub ws_buffer: usize,
    /// Recent events kept for clients resuming with `since`
    /// (`VAPORA_EVENT_WINDOW`); further behind, they get `resync`.
    pub event_window: usize,
    /// Serve the dashboard from this directory, read on every request
    /// (`VAPORA_DASHBOARD_DIR`; for working on it), not the embedded copy.
    pub dashboard_dir: Option<PathBuf>,
    /// How long in-flight tasks may run on after SIGINT/SIGTERM.
    pub shutdown_grace: Duration,
    /// The single provider configured by `VAPORA_LLM_*` variables.
    pub llm: ProviderConfig,
    /// A router configuration file (`VAPORA_LLM_CONFIG`); replaces `llm`.
    pub llm_config_file: Option<PathBuf>,
    /// NATS server (`VAPORA_NATS_URL`): when set, tasks run on agent
    /// servers over JetStream instead of the in-process pool.
    pub nats_url: Option<String>,
    /// How JetStream delivers attempts (`VAPORA_NATS_*`); agent servers
    /// must use the same.
    pub delivery: DeliveryPolicy,
    /// NATS credentials and TLS (`VAPORA_NATS_USER`, `…_TOKEN`, …; see
    /// `vapora_agents::nats_auth`).
    pub nats_credentials: NatsCredentials,
    /// Broker mode: a running attempt that has not changed, and whose agent
    /// has sent neither a heartbeat nor a report, for this long fails as
    /// `stalled` (`VAPORA_ATTEMPT_STALL_SECS`, 300 by default: long enough
    /// for JetStream to redeliver it to a live worker first).
    pub attempt_stall_timeout: Duration,
    /// An attempt still queued this long after JetStream acknowledged it is
    /// checked for in the stream, and dispatched again if the broker lost it
    /// (`VAPORA_RECONCILE_AFTER_SECS`, 60 by default; see
    /// `broker::reconciler`).
    pub reconcile_after: Duration,
    /// Size limits on task outputs and progress chunks (in-process agents;
    /// agent servers read the same variables).
    pub output_limits: OutputLimits,
    /// How long a client may take to send a request's headers (and, on a
    /// kept-alive connection, to start the next request) before the
    /// connection is closed (`VAPORA_HEADER_READ_TIMEOUT_SECS`).
    pub header_read_timeout: Duration,
    /// How long a request may take, reading its body included, before it
    /// is answered 408 (`VAPORA_REQUEST_TIMEOUT_SECS`). Upgraded WebSocket
    /// connections are not bound by it. Keep it above `database_timeout`,
    /// so a slow database answers 503 rather than 408.
    pub request_timeout: Duration,
    /// How long one database call may take before it is abandoned and the
    /// request answered 503 (`VAPORA_DATABASE_TIMEOUT_SECS`).
    pub database_timeout: Duration,
    /// How long a remote agent stays listed after going offline
    /// (`VAPORA_AGENT_EVICT_AFTER_SECS`).
    pub agent_evict_after: Duration,
    /// Whether requests need API keys (`VAPORA_AUTH`, `keys` by default;
    /// `off` makes every request an admin's, for benchmarks and nothing else).
    pub auth: bool,
    /// The admin key to register (`VAPORA_ADMIN_KEY`).
    pub admin_key: Option<SecretString>,
    /// Where the admin key is read from, or written on a first start
    /// (`VAPORA_ADMIN_KEY_FILE`, `data/admin.key` by default).
    pub admin_key_file: PathBuf,
    /// Secret mixed into every stored key hash (`VAPORA_KEY_PEPPER`, or the
    /// file named by `VAPORA_KEY_PEPPER_FILE`); every replica needs the same.
    pub key_pepper: Option<SecretString>,
    /// Whether `/metrics` needs a key too (`VAPORA_METRICS_REQUIRE_KEY`).
    pub metrics_require_key: bool,
    /// Requests per second and burst per key (`VAPORA_RATE_LIMIT_PER_SEC`,
    /// `VAPORA_RATE_LIMIT_BURST`); `None` (a rate of 0) meters nothing.
    pub rate_limit: Option<RateLimit>,
    /// WebSockets per key and in total (`VAPORA_WS_MAX_PER_KEY`,
    /// `VAPORA_WS_MAX_CONNECTIONS`).
    pub ws_caps: WsCaps,
}

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("{name} is invalid: {value:?} ({reason})")]
    Invalid {
        name: &'static str,
        value: String,
        reason: String,
    },
    #[error(transparent)]
    Llm(#[from] LlmError),
    #[error(transparent)]
    Agents(#[from] SettingError),
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            host: IpAddr::from([127, 0, 0, 1]),
            port: 8001,
            database_url: "surrealkv://data/vapora".into(),
            database_user: None,
            database_pass: None,
            queue_capacity: 10_000,
            workers_per_role: 2,
            roles_file: None,
            workflows_file: None,
            ws_buffer: 1024,
            event_window: 10_000,
            dashboard_dir: None,
            shutdown_grace: Duration::from_secs(10),
            llm: ProviderConfig {
                kind: ProviderKind::Auto,
                name: "openai".into(),
                request_timeout: Duration::from_secs(120),
                echo_word_delay: Duration::from_millis(20),
            },
            llm_config_file: None,
            nats_url: None,
            delivery: DeliveryPolicy::default(),
            nats_credentials: NatsCredentials::default(),
            attempt_stall_timeout: Duration::from_secs(300),
            reconcile_after: Duration::from_secs(60),
            output_limits: OutputLimits::default(),
            header_read_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            database_timeout: crate::storage::DEFAULT_CALL_TIMEOUT,
            agent_evict_after: crate::swarm::registry::DEFAULT_EVICT_AFTER,
            auth: true,
            admin_key: None,
            admin_key_file: PathBuf::from("data/admin.key"),
            key_pepper: None,
            metrics_require_key: false,
            rate_limit: Some(RateLimit {
                per_second: NonZeroU32::new(1_000).expect("non-zero"),
                burst: NonZeroU32::new(2_000).expect("non-zero"),
            }),
            ws_caps: WsCaps {
                per_key: 64,
                total: 10_000,
            },
        }
    }
}

impl Settings {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, SettingsError> {
        Self::from_lookup(|key| std::env::var(key).ok())
    }

    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, SettingsError> {
        let defaults = Self::default();
        Ok(Self {
            host: parse(&get, "VAPORA_HOST", defaults.host)?,
            port: parse(&get, "VAPORA_PORT", defaults.port)?,
            database_url: get("VAPORA_DATABASE_URL").unwrap_or(defaults.database_url),
            database_user: get("VAPORA_DATABASE_USER"),
            database_pass: secret_setting(&get, "VAPORA_DATABASE_PASS")?,
            queue_capacity: positive(
                parse(&get, "VAPORA_QUEUE_CAPACITY", defaults.queue_capacity)?,
                "VAPORA_QUEUE_CAPACITY",
            )?,
            workers_per_role: positive(
                parse(&get, "VAPORA_WORKERS_PER_ROLE", defaults.workers_per_role)?,
                "VAPORA_WORKERS_PER_ROLE",
            )?,
            roles_file: get("VAPORA_ROLES_FILE").map(PathBuf::from),
            workflows_file: get("VAPORA_WORKFLOWS_FILE").map(PathBuf::from),
            dashboard_dir: get("VAPORA_DASHBOARD_DIR").map(PathBuf::from),
            ws_buffer: positive(
                parse(&get, "VAPORA_WS_BUFFER", defaults.ws_buffer)?,
                "VAPORA_WS_BUFFER",
            )?,
            event_window: positive(
                parse(&get, "VAPORA_EVENT_WINDOW", defaults.event_window)?,
                "VAPORA_EVENT_WINDOW",
            )?,
            shutdown_grace: Duration::from_secs(parse(&get, "VAPORA_SHUTDOWN_GRACE_SECS", 10u64)?),
            llm: ProviderConfig::from_env(&get)?,
            llm_config_file: get("VAPORA_LLM_CONFIG").map(PathBuf::from),
            nats_url: get("VAPORA_NATS_URL").filter(|url| !url.trim().is_empty()),
            attempt_stall_timeout: seconds(
                &get,
                "VAPORA_ATTEMPT_STALL_SECS",
                defaults.attempt_stall_timeout,
            )?,
            reconcile_after: seconds(&get, "VAPORA_RECONCILE_AFTER_SECS", defaults.reconcile_after)?,
            delivery: DeliveryPolicy::from_lookup(&get)?,
            nats_credentials: NatsCredentials::from_lookup(&get)?,
            output_limits: OutputLimits::from_lookup(&get)?,
            header_read_timeout: seconds(
                &get,
                "VAPORA_HEADER_READ_TIMEOUT_SECS",
                defaults.header_read_timeout,
            )?,
            request_timeout: seconds(&get, "VAPORA_REQUEST_TIMEOUT_SECS", defaults.request_timeout)?,
            database_timeout: seconds(&get, "VAPORA_DATABASE_TIMEOUT_SECS", defaults.database_timeout)?,
            agent_evict_after: seconds(&get, "VAPORA_AGENT_EVICT_AFTER_SECS", defaults.agent_evict_after)?,
            auth: match get("VAPORA_AUTH").as_deref().map(str::trim) {
                None | Some("keys") => true,
                Some("off") => false,
                Some(other) => {
                    return Err(SettingsError::Invalid {
                        name: "VAPORA_AUTH",
                        value: other.into(),
                        reason: "must be `keys` or `off`".into(),
                    });
                }
            },
            admin_key: get("VAPORA_ADMIN_KEY").map(SecretString::from),
            admin_key_file: get("VAPORA_ADMIN_KEY_FILE").map_or(defaults.admin_key_file, PathBuf::from),
            key_pepper: secret_setting(&get, "VAPORA_KEY_PEPPER")?,
            metrics_require_key: parse(&get, "VAPORA_METRICS_REQUIRE_KEY", defaults.metrics_require_key)?,
            rate_limit: rate_limit(&get, defaults.rate_limit)?,
            ws_caps: WsCaps {
                per_key: positive(
                    parse(&get, "VAPORA_WS_MAX_PER_KEY", defaults.ws_caps.per_key)?,
                    "VAPORA_WS_MAX_PER_KEY",
                )?,
                total: positive(
                    parse(&get, "VAPORA_WS_MAX_CONNECTIONS", defaults.ws_caps.total)?,
                    "VAPORA_WS_MAX_CONNECTIONS",
                )?,
            },
        })
    }
}

fn parse<T: FromStr>(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: T,
) -> Result<T, SettingsError>
where
    T::Err: std::fmt::Display,
{
    match get(name) {
        None => Ok(default),
        Some(value) => value.trim().parse().map_err(|e: T::Err| SettingsError::Invalid {
            name,
            reason: e.to_string(),
            value,
        }),
    }
}

/// The per-key rate: `VAPORA_RATE_LIMIT_PER_SEC` (0 turns metering off)
/// and `VAPORA_RATE_LIMIT_BURST` (twice the rate unless set).
fn rate_limit(
    get: &impl Fn(&str) -> Option<String>,
    default: Option<RateLimit>,
) -> Result<Option<RateLimit>, SettingsError> {
    let default_rate = default.map_or(0, |r| r.per_second.get());
    let Some(per_second) = NonZeroU32::new(parse(get, "VAPORA_RATE_LIMIT_PER_SEC", default_rate)?) else {
        return Ok(None);
    };
    let default_burst = per_second.saturating_mul(NonZeroU32::new(2).expect("non-zero"));
    let burst: u32 = parse(get, "VAPORA_RATE_LIMIT_BURST", default_burst.get())?;
    let burst = NonZeroU32::new(burst).ok_or_else(|| SettingsError::Invalid {
        name: "VAPORA_RATE_LIMIT_BURST",
        value: "0".into(),
        reason: "must be at least 1".into(),
    })?;
    Ok(Some(RateLimit { per_second, burst }))
}

/// A positive, finite number of seconds.
fn seconds(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: Duration,
) -> Result<Duration, SettingsError> {
    let secs: f64 = parse(get, name, default.as_secs_f64())?;
    if !(secs > 0.0 && secs.is_finite()) {
        return Err(SettingsError::Invalid {
            name,
            value: secs.to_string(),
            reason: "must be a positive number of seconds".into(),
        });
    }
    Ok(Duration::from_secs_f64(secs))
}

fn positive(value: usize, name: &'static str) -> Result<usize, SettingsError> {
    if value == 0 {
        return Err(SettingsError::Invalid {
            name,
            value: "0".into(),
            reason: "must be at least 1".into(),
        });
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_overrides_and_rejects_garbage() {
        let s = Settings::from_lookup(|k| match k {
            "VAPORA_PORT" => Some("9000".into()),
            "VAPORA_DATABASE_URL" => Some("mem://".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!((s.port, s.database_url.as_str()), (9000, "mem://"));
        assert!(Settings::from_lookup(|k| (k == "VAPORA_PORT").then(|| "x".into())).is_err());
        assert!(Settings::from_lookup(|k| (k == "VAPORA_QUEUE_CAPACITY").then(|| "0".into())).is_err());
        for timeout in ["VAPORA_DATABASE_TIMEOUT_SECS", "VAPORA_REQUEST_TIMEOUT_SECS"] {
            assert!(Settings::from_lookup(|k| (k == timeout).then(|| "0".into())).is_err());
        }
        let s =
            Settings::from_lookup(|k| (k == "VAPORA_AGENT_EVICT_AFTER_SECS").then(|| "90".into())).unwrap();
        assert_eq!(s.agent_evict_after, Duration::from_secs(90));
    }
}
