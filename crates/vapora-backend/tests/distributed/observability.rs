//! What a deployment watches: the `healthcheck` subcommands container
//! health checks run (exit 0 while the service on this host serves, 1 when
//! it does not), logs as JSON lines for collectors, an agent server's
//! Prometheus metrics, and a Grafana dashboard over what the services
//! export.

use std::process::Command;

use vapora_agents::testing::workspace_binary;

use crate::cluster::{Cluster, eventually, taking};

/// Runs `binary healthcheck` with `env`; whether it exited 0.
fn healthy(binary: &std::path::Path, env: &[(&str, &str)]) -> bool {
    Command::new(binary)
        .arg("healthcheck")
        .envs(env.iter().copied())
        .output()
        .expect("the binary runs")
        .status
        .success()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_and_agent_server_healthchecks_tell_serving_from_gone() {
    let mut cluster = Cluster::start(taking(10)).await;
    cluster.start_backend().await;
    let alive = tempfile::tempdir().unwrap();
    let alive_file = alive.path().join("agent.alive");
    let alive_file = alive_file.to_str().unwrap();
    cluster
        .start_agent_with(
            "agent-a",
            "developer",
            1,
            &[("VAPORA_AGENT_ALIVE_FILE", alive_file)],
        )
        .await;

    let backend = std::path::PathBuf::from(env!("CARGO_BIN_EXE_vapora-backend"));
    let port = cluster.backends[0].url.rsplit(':').next().unwrap().to_owned();
    assert!(healthy(&backend, &[("VAPORA_PORT", &port)]), "a ready backend");

    let agent_server = workspace_binary("vapora-agents", "vapora-agent-server");
    let agent_env = [
        ("VAPORA_AGENT_ALIVE_FILE", alive_file),
        ("VAPORA_AGENT_HEARTBEAT_SECS", "0.5"),
    ];
    eventually(10, "the agent server's first heartbeat", || async {
        healthy(&agent_server, &agent_env)
    })
    .await;
    let elsewhere = alive.path().join("never-written");
    assert!(
        !healthy(
            &agent_server,
            &[("VAPORA_AGENT_ALIVE_FILE", elsewhere.to_str().unwrap())]
        ),
        "no alive file"
    );

    cluster.kill_backend(0);
    assert!(!healthy(&backend, &[("VAPORA_PORT", &port)]), "a backend gone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_are_json_lines_by_setting() {
    let mut cluster = Cluster::start(taking(10)).await;
    cluster.start_backend().await;
    cluster
        .start_agent_with("agent-a", "developer", 1, &[("VAPORA_LOG_FORMAT", "json")])
        .await;
    cluster.wait_for_agents(0, &["agent-a"]).await;
    let log = cluster.agent_log("agent-a");
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    assert!(!lines.is_empty());
    assert!(
        lines.iter().any(|l| l["level"] == "INFO"
            && l["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("vapora-agent-server pulling"))),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_server_counts_its_attempts_at_metrics() {
    let mut cluster = Cluster::start(taking(10)).await;
    cluster.start_backend().await;
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    cluster
        .start_agent_with("agent-a", "developer", 2, &[("VAPORA_AGENT_METRICS_ADDR", &addr)])
        .await;
    let api = cluster.api(0);
    let project = api.create_project().await;
    let ids = api.create_tasks(&project, &["developer"], 12, 4).await;
    api.wait_all_done(&project, &ids, 60).await;

    let url = format!("http://{addr}/metrics");
    let succeeded = r#"vapora_agent_attempts_total{role="developer",outcome="succeeded"} 12"#;
    let scrape = || async {
        match reqwest::get(&url).await {
            Ok(response) => response.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    };
    eventually(10, "12 successes counted", || async {
        scrape().await.contains(succeeded)
    })
    .await;
    let text = scrape().await;
    assert!(text.contains("vapora_agent_attempts_in_flight 0"), "{text}");
    assert!(
        text.contains(r#"vapora_agent_attempt_duration_seconds_count{role="developer"} 12"#),
        "{text}"
    );
}

/// The series names an exposition declares (`# TYPE` lines), with the
/// sample names a counter or histogram of that name has.
fn declared_series(exposition: &str) -> std::collections::BTreeSet<String> {
    let mut names = std::collections::BTreeSet::new();
    for line in exposition.lines() {
        let mut words = line.split_whitespace();
        let (Some("#"), Some("TYPE"), Some(name), Some(kind)) =
            (words.next(), words.next(), words.next(), words.next())
        else {
            continue;
        };
        names.insert(name.to_owned());
        match kind {
            "counter" => {
                names.insert(format!("{}_total", name.trim_end_matches("_total")));
            }
            "histogram" => {
                for suffix in ["_bucket", "_sum", "_count"] {
                    names.insert(format!("{name}{suffix}"));
                }
            }
            _ => {}
        }
    }
    names
}

/// Kills the process when dropped.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_grafana_dashboard_queries_only_series_the_services_export() {
    let mut cluster = Cluster::start(taking(10)).await;
    cluster.start_backend().await;
    let free = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .to_string()
    };
    let agent_addr = free();
    cluster
        .start_agent_with(
            "agent-a",
            "developer",
            1,
            &[("VAPORA_AGENT_METRICS_ADDR", &agent_addr)],
        )
        .await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("llm.toml");
    std::fs::write(
        &config,
        "[providers.echo]\nkind = \"echo\"\nmodels = { \"echo-1\" = { input_per_mtok = 0.0, output_per_mtok = 0.0 } }\n\
         [routes.default]\ntargets = [\"echo/echo-1\"]\n",
    )
    .unwrap();
    let gateway_addr = free();
    let _gateway = Killed(
        Command::new(workspace_binary("vapora-llm-router", "vapora-llm-gateway"))
            .env("VAPORA_LLM_CONFIG", &config)
            .env("VAPORA_GATEWAY_ADDR", &gateway_addr)
            .env("VAPORA_GATEWAY_BUDGET_FILE", dir.path().join("budgets.json"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );

    // A family with no samples yet is not declared at all by
    // prometheus-client: run one task first.
    let api = cluster.api(0);
    let project = api.create_project().await;
    let ids = api.create_tasks(&project, &["developer"], 1, 1).await;
    api.wait_all_done(&project, &ids, 30).await;

    let mut exported = std::collections::BTreeSet::new();
    for url in [
        format!("{}/metrics", cluster.backends[0].url),
        format!("http://{agent_addr}/metrics"),
        format!("http://{gateway_addr}/metrics"),
    ] {
        let scrape = || async {
            match reqwest::get(&url).await {
                Ok(response) if response.status().is_success() => response.text().await.unwrap_or_default(),
                _ => String::new(),
            }
        };
        // The agent counts an attempt just after reporting it: wait for it.
        let ready = |text: String| {
            !text.is_empty() && (!url.contains(&agent_addr) || text.contains("attempts_total"))
        };
        eventually(15, &format!("{url} answers"), || async { ready(scrape().await) }).await;
        let text = scrape().await;
        exported.extend(declared_series(&text));
    }

    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/grafana/dashboards/vapora.json");
    let dashboard: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut queried = std::collections::BTreeSet::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            for (at, _) in expr.match_indices("vapora_") {
                let name: String = expr[at..]
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
                    .collect();
                queried.insert(name);
            }
        }
    }
    assert!(queried.len() >= 10, "{queried:?}");
    let missing: Vec<_> = queried.difference(&exported).collect();
    assert!(
        missing.is_empty(),
        "the dashboard queries series nobody exports: {missing:?}\nexported: {exported:?}"
    );
}
