//! What a deployment watches: the `healthcheck` subcommands container
//! health checks run (exit 0 while the service on this host serves, 1 when
//! it does not), logs as JSON lines for collectors, and an agent server's
//! Prometheus metrics.

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
