//! Helpers shared by the hardening tests: a router over fake providers.

#![allow(dead_code)] // each test binary uses its own subset

use std::sync::Arc;

use vapora_llm_router::budget_store::MemoryBudgetStore;
use vapora_llm_router::testing::{FakeProvider, Protocol};
use vapora_llm_router::{ChatMessage, ChatRequest, Router, RouterConfig};

/// The config of `providers` (name, server; each with model `m` at $1/M
/// input and $2/M output tokens), with `extra_toml` appended.
pub fn config(providers: &[(&str, &FakeProvider)], extra_toml: &str) -> String {
    config_with(providers, "", extra_toml)
}

/// As [`config`], with `provider_settings` (TOML lines) in every provider.
pub fn config_with(providers: &[(&str, &FakeProvider)], provider_settings: &str, extra_toml: &str) -> String {
    let mut toml = String::new();
    for (name, server) in providers {
        let kind = match server.protocol() {
            Protocol::OpenAi => "openai",
            Protocol::Anthropic => "anthropic",
            Protocol::Ollama => "ollama",
            Protocol::Gemini => "gemini",
        };
        toml.push_str(&format!(
            "[providers.{name}]\nkind = \"{kind}\"\nbase_url = \"{}\"\n{provider_settings}\
             models = {{ m = {{ input_per_mtok = 1.0, output_per_mtok = 2.0 }} }}\n\n",
            server.base_url()
        ));
    }
    toml.push_str(extra_toml);
    toml
}

pub async fn router(providers: &[(&str, &FakeProvider)], extra_toml: &str) -> Router {
    build(&config(providers, extra_toml)).await
}

/// The router of a whole configuration, over an in-memory budget store.
pub async fn build(toml: &str) -> Router {
    RouterConfig::parse(toml, [])
        .unwrap()
        .build(Arc::new(MemoryBudgetStore::default()))
        .await
        .unwrap()
}

pub fn request() -> ChatRequest {
    ChatRequest {
        messages: vec![ChatMessage::user("hello")],
        model: Some("default".into()),
        max_tokens: Some(100),
        role: Some("developer".into()),
        ..Default::default()
    }
}
