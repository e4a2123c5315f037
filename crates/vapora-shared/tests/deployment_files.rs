//! The compose files set only settings the binaries read: a `VAPORA_*`
//! variable with a typo would otherwise be ignored without a word, and the
//! service would run on a default.
//!
//! What the binaries read is every `"VAPORA_…"` string literal in the
//! workspace's sources; a literal ending in `__` is a prefix family (the
//! router's `VAPORA_LLM__<path>` overrides), and a secret read through
//! `secret_setting` may also come as `<NAME>_FILE`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn rust_sources(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_sources(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
}

/// `VAPORA_` followed by capitals, digits and underscores, from `at` on.
fn name_at(text: &str, at: usize) -> &str {
    let end = text[at..]
        .find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
        .map_or(text.len(), |n| at + n);
    &text[at..end]
}

/// What the binaries read: exact names, prefixes, and names that may also
/// come from a file.
#[derive(Debug, Default)]
struct Settings {
    names: BTreeSet<String>,
    prefixes: BTreeSet<String>,
    secrets: BTreeSet<String>,
}

impl Settings {
    fn read_by_sources() -> Self {
        let mut files = Vec::new();
        for krate in std::fs::read_dir(workspace().join("crates")).unwrap() {
            let src = krate.unwrap().path().join("src");
            if src.is_dir() {
                rust_sources(&src, &mut files);
            }
        }
        let mut settings = Self::default();
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap();
            for line in text.lines() {
                for (at, _) in line.match_indices("\"VAPORA_") {
                    let name = name_at(line, at + 1);
                    if name.ends_with("__") {
                        settings.prefixes.insert(name.to_owned());
                    } else {
                        settings.names.insert(name.to_owned());
                        if line.contains("secret") {
                            settings.secrets.insert(name.to_owned());
                        }
                    }
                }
            }
        }
        settings
    }

    fn reads(&self, name: &str) -> bool {
        self.names.contains(name)
            || self.prefixes.iter().any(|p| name.starts_with(p.as_str()))
            || name
                .strip_suffix("_FILE")
                .is_some_and(|base| self.secrets.contains(base))
    }
}

/// The `VAPORA_*` variables a compose file sets in an `environment:`
/// section (as `NAME: value` or `- NAME=value`), with their line numbers.
/// `${VAPORA_…}` interpolations from `.env` are not settings of a binary.
fn set_by_compose(text: &str) -> Vec<(usize, String)> {
    text.lines()
        .enumerate()
        .filter_map(|(n, line)| {
            let item = line.trim_start().trim_start_matches("- ");
            item.starts_with("VAPORA_")
                .then(|| name_at(item, 0))
                .filter(|name| item[name.len()..].starts_with([':', '=']))
                .map(|name| (n + 1, name.to_owned()))
        })
        .collect()
}

/// The settings of `text` no binary reads.
fn unknown(settings: &Settings, text: &str) -> Vec<(usize, String)> {
    set_by_compose(text)
        .into_iter()
        .filter(|(_, name)| !settings.reads(name))
        .collect()
}

const COMPOSE_FILES: [&str; 2] = ["docker-compose.yml", "docker-compose.cluster.yml"];

#[test]
fn every_variable_the_compose_files_set_is_read_by_a_binary() {
    let settings = Settings::read_by_sources();
    assert!(settings.names.len() > 40, "found the settings: {settings:?}");
    for file in COMPOSE_FILES {
        let text = std::fs::read_to_string(workspace().join(file)).unwrap();
        let set = set_by_compose(&text);
        assert!(!set.is_empty(), "{file} sets VAPORA_* variables");
        assert_eq!(unknown(&settings, &text), [], "{file}: settings no binary reads");
    }
}

#[test]
fn a_misspelt_variable_is_caught() {
    let settings = Settings::read_by_sources();
    let text = std::fs::read_to_string(workspace().join("docker-compose.yml")).unwrap();
    let typo = text.replacen("VAPORA_DATABASE_URL:", "VAPORA_DATABSE_URL:", 1);
    assert_ne!(typo, text);
    let found = unknown(&settings, &typo);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].1, "VAPORA_DATABSE_URL");
    // List form, a secret from a file, and the router's override family.
    let listed = "    environment:\n      - VAPORA_PROT=8001\n      - VAPORA_DATABASE_PASS_FILE=/run/s\n      \
                  - VAPORA_LLM__ROUTES__DEFAULT__STRATEGY=hedge\n";
    let found: Vec<String> = unknown(&settings, listed).into_iter().map(|(_, n)| n).collect();
    assert_eq!(found, ["VAPORA_PROT"]);
}
