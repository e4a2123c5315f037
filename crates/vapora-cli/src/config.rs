//! Where the client finds its server and key: figment layers the flags over
//! `VAPORA_URL`/`VAPORA_KEY`, those over the config file, and that over the
//! default URL.

use std::path::PathBuf;

use anyhow::{Context, bail};
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use crate::cli::GlobalArgs;

/// Where the backend listens when run with its defaults.
pub const DEFAULT_URL: &str = "http://127.0.0.1:8001";

/// The settings the client runs with.
#[derive(Debug)]
pub struct Settings {
    pub url: String,
    /// `None`: send no `Authorization` header (a server with auth off).
    pub key: Option<SecretString>,
}

/// What the layers hold. Unknown keys are refused, so that a typo in the
/// config file (`uri = …`) is an error rather than a silently ignored line.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Layered {
    url: String,
    key: Option<SecretString>,
}

/// The flags' layer: only flags actually given may override.
#[derive(Debug, Serialize)]
struct FlagLayer<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<&'a str>,
}

/// The settings from every layer, highest first: flags, environment,
/// config file, default.
pub fn load(flags: &GlobalArgs) -> anyhow::Result<Settings> {
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let config_home = std::env::var_os("XDG_CONFIG_HOME").map(PathBuf::from);
    let figment = figment(flags, config_home, home)?.merge(
        // Only these two: the backend's own VAPORA_* variables may well be
        // set in the same shell.
        Env::prefixed("VAPORA_").only(&["url", "key"]),
    );
    settings(figment.merge(Serialized::defaults(FlagLayer {
        url: flags.url.as_deref(),
        key: flags.key.as_deref(),
    })))
}

/// The default and the config file (the lower layers). `config_home` and
/// `home` stand for `XDG_CONFIG_HOME` and `HOME`, passed in so that tests
/// need not change the process environment.
fn figment(
    flags: &GlobalArgs,
    config_home: Option<PathBuf>,
    home: Option<PathBuf>,
) -> anyhow::Result<Figment> {
    let mut figment = Figment::from(Serialized::default("url", DEFAULT_URL));
    match &flags.config {
        Some(path) => {
            // Named explicitly, so its absence is a mistake worth reporting.
            // `file_exact`: a relative path is not searched for in parent
            // directories, as `Toml::file` would.
            if !path.is_file() {
                bail!("config file {} does not exist", path.display());
            }
            figment = figment.merge(Toml::file_exact(path));
        }
        None => {
            // No file is fine: flags and environment may say it all. One
            // that exists but cannot be read or parsed is an error.
            if let Some(path) = default_path(config_home, home).filter(|p| p.exists()) {
                figment = figment.merge(Toml::file_exact(path));
            }
        }
    }
    Ok(figment)
}

/// `$XDG_CONFIG_HOME/vapora/config.toml`, else `~/.config/vapora/config.toml`.
/// The XDG spec says to ignore a relative `XDG_CONFIG_HOME`.
pub fn default_path(config_home: Option<PathBuf>, home: Option<PathBuf>) -> Option<PathBuf> {
    let base = config_home
        .filter(|p| p.is_absolute())
        .or_else(|| home.map(|h| h.join(".config")))?;
    Some(base.join("vapora").join("config.toml"))
}

fn settings(figment: Figment) -> anyhow::Result<Settings> {
    let layered: Layered = figment.extract().context("invalid configuration")?;
    let url = layered.url.trim().to_owned();
    if url.is_empty() {
        bail!("the server URL is empty: set it with --url, VAPORA_URL or `url` in the config file");
    }
    // An empty VAPORA_KEY= is how one unsets a key from the file in a shell.
    let key = layered
        .key
        .filter(|k| !secrecy::ExposeSecret::expose_secret(k).trim().is_empty());
    Ok(Settings { url, key })
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    fn flags(url: Option<&str>, key: Option<&str>, config: Option<PathBuf>) -> GlobalArgs {
        GlobalArgs {
            url: url.map(str::to_owned),
            key: key.map(str::to_owned),
            json: false,
            config,
        }
    }

    #[test]
    fn xdg_config_home_wins_over_home_unless_relative() {
        let home = Some(PathBuf::from("/home/u"));
        assert_eq!(
            default_path(Some("/xdg".into()), home.clone()),
            Some(PathBuf::from("/xdg/vapora/config.toml"))
        );
        assert_eq!(
            default_path(Some("relative".into()), home.clone()),
            Some(PathBuf::from("/home/u/.config/vapora/config.toml"))
        );
        assert_eq!(default_path(None, None), None);
    }

    #[test]
    fn flags_override_the_file_and_the_default_fills_in() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(&file, "url = \"http://file:1\"\nkey = \"vk_file\"\n").unwrap();

        let from_file =
            settings(figment(&flags(None, None, Some(file.clone())), None, None).unwrap()).unwrap();
        assert_eq!(from_file.url, "http://file:1");
        assert_eq!(from_file.key.unwrap().expose_secret(), "vk_file");

        let flagged = flags(Some("http://flag:2"), None, Some(file));
        let layered = figment(&flagged, None, None)
            .unwrap()
            .merge(Serialized::defaults(FlagLayer {
                url: flagged.url.as_deref(),
                key: None,
            }));
        let s = settings(layered).unwrap();
        assert_eq!(s.url, "http://flag:2");
        assert_eq!(s.key.unwrap().expose_secret(), "vk_file");

        let none = settings(figment(&flags(None, None, None), None, None).unwrap()).unwrap();
        assert_eq!(none.url, DEFAULT_URL);
        assert!(none.key.is_none());
    }

    #[test]
    fn typos_and_missing_named_files_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(&file, "uri = \"http://x\"\n").unwrap();
        let err = settings(figment(&flags(None, None, Some(file)), None, None).unwrap()).unwrap_err();
        assert!(format!("{err:#}").contains("uri"), "{err:#}");

        let missing = flags(None, None, Some(dir.path().join("nope.toml")));
        assert!(figment(&missing, None, None).is_err());
    }
}
