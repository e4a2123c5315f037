//! The router's configuration file (TOML), with environment overrides.
//!
//! ```toml
//! default_route = "default"        # used when a request names no route
//! default_max_tokens = 1024        # sent and reserved when a request sets none
//!
//! [providers.openai]
//! kind = "openai"                  # openai | anthropic | ollama | gemini | echo
//! base_url = "https://api.openai.com/v1"
//! api_key_env = "OPENAI_API_KEY"   # name of the variable holding the key
//! max_concurrency = 64             # calls in flight to this provider
//! queue_timeout_ms = 2000          # longest wait for a slot before trying elsewhere
//! failure_threshold = 5            # consecutive failures that open the circuit
//! cooldown_ms = 10000              # open circuit: time before a probe
//! [providers.openai.models]
//! "gpt-4o-mini" = { input_per_mtok = 0.15, output_per_mtok = 0.60 }
//!
//! [routes."role:developer"]
//! strategy = "fallback"            # fallback | hedge | race
//! targets = ["anthropic/claude-sonnet-4", "openai/gpt-4o-mini"]
//! first_token_timeout_ms = 30000
//! total_timeout_ms = 300000
//! hedge_delay_ms = 500
//! retry = { attempts_per_target = 2, backoff_base_ms = 100, backoff_max_ms = 2000 }
//!
//! [budgets."role:developer"]
//! limit_usd = 25.0
//! period = "daily"                 # daily | weekly | monthly (UTC)
//! alert_threshold = 0.8
//! on_exhausted = { action = "downgrade", route = "cheap" }   # or { action = "reject" }
//! ```
//!
//! A gateway key's budget is configured as `[budgets."api_key:NAME"]`, NAME
//! being the key's name under `[gateway.keys]` (see `gateway::keys`); it is
//! listed, persisted and reported as `api_key:` and the first 16 hex digits
//! of the SHA-256 of NAME.
//!
//! Any value can be overridden from the environment with
//! `VAPORA_LLM__<path>` where `__` separates the keys, e.g.
//! `VAPORA_LLM__PROVIDERS__OPENAI__BASE_URL=http://localhost:8000/v1`.
//! Keys are lower-cased; values are read as TOML when they parse, else as
//! strings.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;
use tokio::sync::Semaphore;

use crate::backoff::RetryPolicy;
use crate::budget::{BudgetConfig, Budgets};
use crate::budget_store::BudgetStore;
use crate::circuit::CircuitBreaker;
use crate::providers::anthropic::anthropic;
use crate::providers::gemini::gemini;
use crate::providers::ollama::ollama;
use crate::providers::openai::openai;
use crate::providers::{EchoProvider, Endpoint};
use crate::route::{Route, Strategy, Target};
use crate::router::ProviderSlot;
use crate::{LlmClient, LlmError, Pricing, Router};

const ENV_PREFIX: &str = "VAPORA_LLM__";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouterConfig {
    #[serde(default = "default_route")]
    pub default_route: String,
    #[serde(default = "default_max_tokens")]
    pub default_max_tokens: u32,
    #[serde(default)]
    pub providers: BTreeMap<String, ProviderSection>,
    #[serde(default)]
    pub routes: BTreeMap<String, RouteSection>,
    #[serde(default)]
    pub budgets: HashMap<String, BudgetConfig>,
    /// Timeouts and retries for requests that name a `provider/model`.
    #[serde(default)]
    pub direct: RouteTimings,
    /// Keys and limits of the HTTP gateway (`vapora-llm-gateway`).
    #[serde(default)]
    pub gateway: crate::gateway::GatewaySection,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderType {
    Openai,
    Anthropic,
    Ollama,
    Gemini,
    Echo,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderSection {
    pub kind: ProviderType,
    pub base_url: Option<String>,
    pub api_key_env: Option<String>,
    #[serde(default = "default_concurrency")]
    pub max_concurrency: usize,
    #[serde(default = "default_queue_timeout")]
    pub queue_timeout_ms: u64,
    #[serde(default = "default_failure_threshold")]
    pub failure_threshold: u32,
    #[serde(default = "default_cooldown")]
    pub cooldown_ms: u64,
    /// Limit of a whole unstreamed call.
    #[serde(default = "default_total_timeout")]
    pub timeout_ms: u64,
    /// Only for `echo`: pause between streamed words.
    #[serde(default)]
    pub echo_word_delay_ms: u64,
    #[serde(default)]
    pub models: BTreeMap<String, Pricing>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteSection {
    #[serde(default)]
    pub strategy: Strategy,
    pub targets: Vec<String>,
    #[serde(flatten)]
    pub timings: RouteTimings,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RouteTimings {
    #[serde(default = "default_first_token_timeout")]
    pub first_token_timeout_ms: u64,
    #[serde(default = "default_total_timeout")]
    pub total_timeout_ms: u64,
    #[serde(default = "default_hedge_delay")]
    pub hedge_delay_ms: u64,
    #[serde(default)]
    pub retry: RetryPolicy,
}

impl Default for RouteTimings {
    fn default() -> Self {
        Self {
            first_token_timeout_ms: default_first_token_timeout(),
            total_timeout_ms: default_total_timeout(),
            hedge_delay_ms: default_hedge_delay(),
            retry: RetryPolicy::default(),
        }
    }
}

fn default_route() -> String {
    "default".into()
}
fn default_max_tokens() -> u32 {
    1024
}
fn default_concurrency() -> usize {
    64
}
fn default_queue_timeout() -> u64 {
    2_000
}
fn default_failure_threshold() -> u32 {
    5
}
fn default_cooldown() -> u64 {
    10_000
}
fn default_first_token_timeout() -> u64 {
    30_000
}
fn default_total_timeout() -> u64 {
    300_000
}
fn default_hedge_delay() -> u64 {
    500
}

impl RouteTimings {
    fn route(&self, name: &str, strategy: Strategy, targets: Vec<Target>) -> Route {
        Route {
            name: name.to_owned(),
            strategy,
            targets,
            first_token_timeout: Duration::from_millis(self.first_token_timeout_ms),
            total_timeout: Duration::from_millis(self.total_timeout_ms),
            hedge_delay: Duration::from_millis(self.hedge_delay_ms),
            retry: self.retry,
        }
    }
}

impl RouterConfig {
    /// The gateway's keys, as configured under `[gateway.keys]`.
    pub fn gateway_keys(&self) -> Result<crate::gateway::GatewayKeys, crate::gateway::keys::BadKeyHash> {
        crate::gateway::GatewayKeys::from_config(&self.gateway)
    }

    /// Parses a config file's text, then applies `VAPORA_LLM__*` overrides
    /// found through `env` (pass the process environment's variables).
    pub fn parse(text: &str, env: impl IntoIterator<Item = (String, String)>) -> Result<Self, LlmError> {
        let mut table: toml::Table = toml::from_str(text).map_err(|e| LlmError::Config(e.to_string()))?;
        for (key, value) in env {
            let Some(path) = key.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            let path: Vec<String> = path.split("__").map(str::to_lowercase).collect();
            set_path(&mut table, &path, parse_env_value(&value)).map_err(LlmError::Config)?;
        }
        table
            .try_into()
            .map_err(|e: toml::de::Error| LlmError::Config(e.to_string()))
    }

    /// Reads and parses a config file with the process environment's overrides.
    pub async fn load(path: &std::path::Path) -> Result<Self, LlmError> {
        let text = tokio::fs::read_to_string(path)
            .await
            .map_err(|e| LlmError::Config(format!("{}: {e}", path.display())))?;
        Self::parse(&text, std::env::vars())
    }

    /// Builds the router, restoring budget spend from `store`.
    pub async fn build(self, store: Arc<dyn BudgetStore>) -> Result<Router, LlmError> {
        let mut slots = Vec::new();
        for (name, section) in &self.providers {
            slots.push(build_slot(name, section)?);
        }
        let mut routes = Vec::new();
        for (name, section) in &self.routes {
            let targets = section
                .targets
                .iter()
                .map(|t| {
                    Target::parse(t).ok_or_else(|| {
                        LlmError::Config(format!("route {name}: target {t:?} is not provider/model"))
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            routes.push(section.timings.route(name, section.strategy, targets));
        }
        for (key, budget) in &self.budgets {
            if !(budget.limit_usd.is_finite() && budget.limit_usd >= 0.0) {
                return Err(LlmError::Config(format!(
                    "budget {key}: limit_usd must be a non-negative number"
                )));
            }
            if let crate::budget::Exhausted::Downgrade { route } = &budget.on_exhausted
                && !self.routes.contains_key(route)
            {
                return Err(LlmError::Config(format!(
                    "budget {key}: downgrade route {route:?} is not defined"
                )));
            }
        }
        let budgets = Budgets::load(self.budgets.clone(), store)
            .await
            .map_err(|e| LlmError::Config(e.to_string()))?;
        let direct = self.direct.route("direct", Strategy::Fallback, Vec::new());
        Router::new(
            slots,
            routes,
            self.default_route,
            budgets,
            self.default_max_tokens,
            direct,
        )
    }
}

fn build_slot(name: &str, section: &ProviderSection) -> Result<ProviderSlot, LlmError> {
    let api_key = section.api_key_env.as_deref().and_then(|k| std::env::var(k).ok());
    let endpoint = |default_url: &str| Endpoint {
        name: name.to_owned(),
        base_url: section.base_url.clone().unwrap_or_else(|| default_url.to_owned()),
        api_key: api_key.clone().map(SecretString::from),
        model: section
            .models
            .keys()
            .next()
            .cloned()
            .unwrap_or_else(|| "default".into()),
        // The router prices calls per model; providers report usage only.
        pricing: Pricing::default(),
        timeout: Duration::from_millis(section.timeout_ms),
    };
    let client: Arc<dyn LlmClient> = match section.kind {
        ProviderType::Openai => Arc::new(openai(endpoint("https://api.openai.com/v1"))?),
        ProviderType::Anthropic => Arc::new(anthropic(endpoint("https://api.anthropic.com"))?),
        ProviderType::Ollama => Arc::new(ollama(endpoint("http://localhost:11434"))?),
        ProviderType::Gemini => Arc::new(gemini(endpoint("https://generativelanguage.googleapis.com"))?),
        ProviderType::Echo => Arc::new(EchoProvider::new(Duration::from_millis(
            section.echo_word_delay_ms,
        ))),
    };
    Ok(ProviderSlot {
        name: name.to_owned(),
        client,
        models: section.models.clone().into_iter().collect(),
        concurrency: Arc::new(Semaphore::new(section.max_concurrency.max(1))),
        queue_timeout: Duration::from_millis(section.queue_timeout_ms),
        breaker: CircuitBreaker::new(
            section.failure_threshold,
            Duration::from_millis(section.cooldown_ms),
        ),
    })
}

fn parse_env_value(raw: &str) -> toml::Value {
    // `x = <raw>` parses for numbers, booleans, arrays and inline tables.
    toml::from_str::<toml::Table>(&format!("x = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("x"))
        .unwrap_or_else(|| toml::Value::String(raw.to_owned()))
}

fn set_path(table: &mut toml::Table, path: &[String], value: toml::Value) -> Result<(), String> {
    let (last, parents) = path.split_last().ok_or("empty override key")?;
    let mut current = table;
    for key in parents {
        current = current
            .entry(key.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()))
            .as_table_mut()
            .ok_or_else(|| {
                format!(
                    "override path {} crosses a non-table value at {key}",
                    path.join(".")
                )
            })?;
    }
    current.insert(last.clone(), value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"
        [providers.fast]
        kind = "openai"
        base_url = "http://127.0.0.1:1/v1"
        models = { "m" = { input_per_mtok = 1.0, output_per_mtok = 2.0 } }

        [routes.default]
        targets = ["fast/m"]

        [budgets."role:developer"]
        limit_usd = 5
        period = "weekly"
    "#;

    #[test]
    fn parses_with_defaults_and_env_overrides() {
        let env = vec![
            (
                "VAPORA_LLM__PROVIDERS__FAST__BASE_URL".to_owned(),
                "http://127.0.0.1:2/v1".to_owned(),
            ),
            (
                "VAPORA_LLM__ROUTES__DEFAULT__STRATEGY".to_owned(),
                "race".to_owned(),
            ),
            ("VAPORA_LLM__DEFAULT_MAX_TOKENS".to_owned(), "77".to_owned()),
            ("UNRELATED".to_owned(), "x".to_owned()),
        ];
        let config = RouterConfig::parse(SAMPLE, env).unwrap();
        assert_eq!(
            config.providers["fast"].base_url.as_deref(),
            Some("http://127.0.0.1:2/v1")
        );
        assert_eq!(config.routes["default"].strategy, Strategy::Race);
        assert_eq!(config.default_max_tokens, 77);
        assert_eq!(config.providers["fast"].max_concurrency, 64);
        assert_eq!(config.budgets["role:developer"].alert_threshold, 0.8);
    }

    #[tokio::test]
    async fn rejects_inconsistent_configs() {
        let store = || Arc::new(crate::budget_store::MemoryBudgetStore::default()) as Arc<dyn BudgetStore>;
        let bad_target = SAMPLE.replace("targets = [\"fast/m\"]", "targets = [\"slow/m\"]");
        assert!(
            RouterConfig::parse(&bad_target, [])
                .unwrap()
                .build(store())
                .await
                .is_err()
        );
        let no_default = SAMPLE.replace("[routes.default]", "[routes.other]");
        assert!(
            RouterConfig::parse(&no_default, [])
                .unwrap()
                .build(store())
                .await
                .is_err()
        );
        assert!(RouterConfig::parse("[providers.x]\nkind = \"nope\"", []).is_err());
        assert!(
            RouterConfig::parse(SAMPLE, [])
                .unwrap()
                .build(store())
                .await
                .is_ok()
        );
    }
}
