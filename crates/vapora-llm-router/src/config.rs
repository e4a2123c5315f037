//! The quick way to configure a single provider, from `VAPORA_LLM_*`
//! environment variables (the README's configuration reference). It yields a
//! [`RouterConfig`] with one route; a config file (`VAPORA_LLM_CONFIG`)
//! gives the full router. With nothing configured, a local Ollama is used
//! when one answers, and otherwise the `echo` provider, loudly.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use crate::providers::echo::ECHO_MODEL;
use crate::router_config::{ProviderSection, ProviderType, RouteSection, RouteTimings, RouterConfig};
use crate::{LlmError, Pricing, Strategy};

pub const OLLAMA_URL: &str = "http://localhost:11434";

#[derive(Debug, Clone, PartialEq)]
pub enum ProviderKind {
    /// Any server speaking OpenAI chat completions, at `base_url`.
    OpenAi {
        base_url: String,
        api_key_env: Option<String>,
        model: String,
        pricing: Pricing,
    },
    /// Probe the local Ollama; fall back to echo when it is not there.
    Auto,
    Echo,
}

/// Provider settings, usually read with [`ProviderConfig::from_env`].
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderConfig {
    pub kind: ProviderKind,
    /// Name recorded as `provider` in results.
    pub name: String,
    pub request_timeout: Duration,
    pub echo_word_delay: Duration,
}

impl ProviderConfig {
    /// Reads `VAPORA_LLM_*` variables through `get` (pass `std::env::var`).
    pub fn from_env(get: impl Fn(&str) -> Option<String>) -> Result<Self, LlmError> {
        let number = |key: &str, default: f64| -> Result<f64, LlmError> {
            match get(key) {
                None => Ok(default),
                Some(v) => v
                    .parse::<f64>()
                    .ok()
                    .filter(|n| n.is_finite() && *n >= 0.0)
                    .ok_or_else(|| {
                        LlmError::Config(format!("{key} must be a non-negative number, got {v:?}"))
                    }),
            }
        };
        let pricing = Pricing {
            input_per_mtok: number("VAPORA_LLM_PRICE_INPUT_PER_MTOK", 0.0)?,
            output_per_mtok: number("VAPORA_LLM_PRICE_OUTPUT_PER_MTOK", 0.0)?,
        };
        let provider = get("VAPORA_LLM_PROVIDER").unwrap_or_else(|| "auto".into());
        let kind = match provider.as_str() {
            "echo" => ProviderKind::Echo,
            "auto" if get("VAPORA_LLM_BASE_URL").is_none() => ProviderKind::Auto,
            "auto" | "openai" => ProviderKind::OpenAi {
                base_url: get("VAPORA_LLM_BASE_URL").unwrap_or_else(|| "https://api.openai.com/v1".into()),
                api_key_env: get("VAPORA_LLM_API_KEY_ENV").or_else(|| Some("OPENAI_API_KEY".into())),
                model: get("VAPORA_LLM_MODEL").unwrap_or_else(|| "gpt-4o-mini".into()),
                pricing,
            },
            other => {
                return Err(LlmError::Config(format!(
                    "VAPORA_LLM_PROVIDER must be auto, openai or echo, got {other:?}"
                )));
            }
        };
        Ok(Self {
            kind,
            name: get("VAPORA_LLM_NAME").unwrap_or_else(|| "openai".into()),
            request_timeout: Duration::try_from_secs_f64(number("VAPORA_LLM_TIMEOUT_SECS", 120.0)?)
                .map_err(|_| LlmError::Config("VAPORA_LLM_TIMEOUT_SECS is too large".into()))?,
            echo_word_delay: Duration::from_millis(number("VAPORA_ECHO_WORD_DELAY_MS", 20.0)? as u64),
        })
    }

    /// The router configuration these settings stand for: one provider and
    /// one `default` route. `Auto` probes the local Ollama once, briefly.
    pub async fn router_config(&self) -> RouterConfig {
        let (name, kind, base_url, api_key_env, model, pricing) = match &self.kind {
            ProviderKind::OpenAi {
                base_url,
                api_key_env,
                model,
                pricing,
            } => (
                self.name.clone(),
                ProviderType::Openai,
                Some(base_url.clone()),
                api_key_env.clone(),
                model.clone(),
                *pricing,
            ),
            ProviderKind::Auto => match probe_ollama(OLLAMA_URL).await {
                Some(model) => {
                    tracing::info!(%model, "using the local Ollama at {OLLAMA_URL}");
                    (
                        "ollama".into(),
                        ProviderType::Ollama,
                        Some(OLLAMA_URL.into()),
                        None,
                        model,
                        Pricing::default(),
                    )
                }
                None => {
                    tracing::warn!(
                        "NO LLM PROVIDER CONFIGURED and no Ollama at {OLLAMA_URL}: tasks run \
                         on the built-in `echo` provider, which repeats the prompt. Set \
                         VAPORA_LLM_BASE_URL (and VAPORA_LLM_MODEL) to use a real model."
                    );
                    echo_parts()
                }
            },
            ProviderKind::Echo => echo_parts(),
        };
        let provider = ProviderSection {
            kind,
            base_url,
            api_key_env,
            max_concurrency: 64,
            queue_timeout_ms: 30_000,
            failure_threshold: 5,
            cooldown_ms: 10_000,
            timeout_ms: self.request_timeout.as_millis() as u64,
            echo_word_delay_ms: self.echo_word_delay.as_millis() as u64,
            models: BTreeMap::from([(model.clone(), pricing)]),
        };
        let route = RouteSection {
            strategy: Strategy::Fallback,
            targets: vec![format!("{name}/{model}")],
            timings: RouteTimings {
                total_timeout_ms: self.request_timeout.as_millis() as u64,
                ..RouteTimings::default()
            },
        };
        RouterConfig {
            default_route: "default".into(),
            default_max_tokens: 1024,
            providers: BTreeMap::from([(name, provider)]),
            routes: BTreeMap::from([("default".to_owned(), route)]),
            budgets: Default::default(),
            direct: RouteTimings::default(),
            gateway: Default::default(),
        }
    }
}

fn echo_parts() -> (
    String,
    ProviderType,
    Option<String>,
    Option<String>,
    String,
    Pricing,
) {
    (
        "echo".into(),
        ProviderType::Echo,
        None,
        None,
        ECHO_MODEL.into(),
        Pricing::default(),
    )
}

#[derive(Debug, Deserialize)]
struct OllamaTags {
    models: Vec<OllamaModel>,
}

#[derive(Debug, Deserialize)]
struct OllamaModel {
    name: String,
}

/// Returns the first installed model of the Ollama at `base`, if it answers.
async fn probe_ollama(base: &str) -> Option<String> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_millis(500))
        .build()
        .ok()?;
    let tags: OllamaTags = http
        .get(format!("{base}/api/tags"))
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    tags.models.into_iter().next().map(|m| m.name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            pairs
                .iter()
                .find(|(key, _)| *key == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn defaults_to_auto_and_reads_openai_settings() {
        assert_eq!(
            ProviderConfig::from_env(env(&[])).unwrap().kind,
            ProviderKind::Auto
        );
        let cfg = ProviderConfig::from_env(env(&[
            ("VAPORA_LLM_BASE_URL", "http://127.0.0.1:9/v1"),
            ("VAPORA_LLM_MODEL", "m"),
            ("VAPORA_LLM_PRICE_INPUT_PER_MTOK", "2.5"),
        ]))
        .unwrap();
        let ProviderKind::OpenAi {
            base_url,
            model,
            pricing,
            ..
        } = cfg.kind
        else {
            panic!()
        };
        assert_eq!(
            (base_url.as_str(), model.as_str(), pricing.input_per_mtok),
            ("http://127.0.0.1:9/v1", "m", 2.5)
        );
    }

    #[test]
    fn rejects_bad_values() {
        assert!(ProviderConfig::from_env(env(&[("VAPORA_LLM_PROVIDER", "nope")])).is_err());
        assert!(ProviderConfig::from_env(env(&[("VAPORA_LLM_PRICE_INPUT_PER_MTOK", "-1")])).is_err());
    }
}
