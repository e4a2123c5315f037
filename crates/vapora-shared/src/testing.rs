//! Fixtures for the workspace's tests: typical client requests, and inputs
//! for property tests of the decoders that read what other processes send
//! (arbitrary JSON, and real documents with one value swapped for arbitrary
//! JSON, which reaches deeper than random bytes, past the first syntax
//! error into the decoders' own checks).

use proptest::prelude::*;
use serde_json::{Map, Value};

use crate::{NewProject, NewTask, Priority, ProjectId, Role};

/// A project as a client would create it.
pub fn new_project() -> NewProject {
    NewProject {
        name: "p".into(),
        description: String::new(),
    }
}

/// A task of `project` as a client would create it: for a developer,
/// medium priority, queued at once.
pub fn new_task(project: ProjectId) -> NewTask {
    NewTask {
        project_id: project,
        title: "t".into(),
        description: String::new(),
        role: Role::parse("developer").expect("a valid role"),
        priority: Priority::Medium,
        requires_approval: false,
        dispatch: true,
        timeout_secs: None,
        depends_on: Vec::new(),
        on_upstream_failure: Default::default(),
        run_at: None,
        max_attempts: None,
        retry_backoff_secs: None,
        concurrency_key: None,
        concurrency_limit: None,
    }
}

/// Any JSON value, nested a few levels, with the numbers and strings that
/// tend to break decoders (huge, negative, fractional, empty, non-ASCII).
pub fn arbitrary_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        prop_oneof![
            Just(String::new()),
            any::<String>(),
            "[a-z_]{1,12}".prop_map(String::from)
        ]
        .prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::vec(("[a-z_]{1,12}", inner), 0..8)
                .prop_map(|fields| Value::Object(fields.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// `document` with the value at one of its paths (chosen by `pick`)
/// replaced by `replacement`, or removed when `replacement` is `None`.
pub fn mutate(document: &Value, pick: usize, replacement: Option<Value>) -> Value {
    let mut paths = Vec::new();
    collect_paths(document, &mut Vec::new(), &mut paths);
    let mut mutated = document.clone();
    if paths.is_empty() {
        return replacement.unwrap_or(mutated);
    }
    let path = &paths[pick % paths.len()];
    let (last, parents) = path.split_last().expect("paths are not empty");
    let mut parent = &mut mutated;
    for key in parents {
        parent = step(parent, key).expect("path exists");
    }
    match (parent, replacement) {
        (Value::Object(map), Some(value)) => {
            map.insert(last.clone(), value);
        }
        (Value::Object(map), None) => {
            map.remove(last);
        }
        (Value::Array(items), Some(value)) => items[last.parse::<usize>().expect("index")] = value,
        (Value::Array(items), None) => {
            items.remove(last.parse::<usize>().expect("index"));
        }
        _ => {}
    }
    mutated
}

fn step<'a>(value: &'a mut Value, key: &str) -> Option<&'a mut Value> {
    match value {
        Value::Object(map) => map.get_mut(key),
        Value::Array(items) => items.get_mut(key.parse::<usize>().ok()?),
        _ => None,
    }
}

fn collect_paths(value: &Value, prefix: &mut Vec<String>, paths: &mut Vec<Vec<String>>) {
    let children: Vec<(String, &Value)> = match value {
        Value::Object(map) => map.iter().map(|(k, v)| (k.clone(), v)).collect(),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, v)| (i.to_string(), v))
            .collect(),
        _ => return,
    };
    for (key, child) in children {
        prefix.push(key);
        paths.push(prefix.clone());
        collect_paths(child, prefix, paths);
        prefix.pop();
    }
}
