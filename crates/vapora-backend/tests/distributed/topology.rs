//! The production topology as separate processes (`vapora_cluster`): three
//! NATS nodes in one cluster with R3 streams, a SurrealDB server, two
//! backends on it, two agent servers calling the model through the gateway,
//! and the gateway, in front of a fake OpenAI-compatible model in this
//! process. Tasks are created alternately on both backends; a WebSocket
//! client on each backend must see every task finish.
//!
//! The faults are seeded ([`Schedule`]): the seed is printed, and
//! `VAPORA_CHAOS_SEED` replays it.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{Value, json};
use vapora_cluster::{Binaries, Options, Topology};
use vapora_llm_router::testing::{FakeProvider, Script};

use crate::cluster::{Api, Schedule, eventually, watch};

/// A started topology and what the test talks to it with.
struct Deployment {
    topology: Topology,
    llm: FakeProvider,
    http: reqwest::Client,
    /// Kept (and named) when the test fails.
    dir: Option<tempfile::TempDir>,
}

impl Deployment {
    async fn start() -> Self {
        let llm = FakeProvider::start(Script::text(&["finished"])).await;
        let dir = tempfile::tempdir().unwrap();
        let binaries = Binaries {
            backend: env!("CARGO_BIN_EXE_vapora-backend").into(),
            agent_server: vapora_agents::testing::workspace_binary("vapora-agents", "vapora-agent-server"),
            gateway: vapora_agents::testing::workspace_binary("vapora-llm-router", "vapora-llm-gateway"),
            ..Binaries::in_dir(std::path::Path::new(".")).unwrap()
        };
        let settings = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect()
        };
        let options = Options {
            agent_concurrency: 8,
            upstream: Some(llm.base_url()),
            // The test is one client creating thousands of tasks.
            backend_env: settings(&[
                ("VAPORA_RATE_LIMIT_PER_SEC", "0"),
                ("VAPORA_QUEUE_CAPACITY", "20000"),
                ("VAPORA_DATABASE_TIMEOUT_SECS", "3"),
                ("VAPORA_SHUTDOWN_GRACE_SECS", "5"),
                ("VAPORA_NATS_ACK_WAIT_SECS", "5"),
                (
                    "RUST_LOG",
                    "info,surrealdb=warn,surrealkv=warn,surrealkv::lsm=error,async_nats=warn",
                ),
            ]),
            agent_env: settings(&[
                ("VAPORA_NATS_ACK_WAIT_SECS", "5"),
                ("VAPORA_AGENT_HEARTBEAT_SECS", "0.5"),
                ("VAPORA_SHUTDOWN_GRACE_SECS", "5"),
            ]),
            ..Options::default()
        };
        let topology = Topology::start(binaries, options, dir.path())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let http = topology.admin_client();
        Self {
            topology,
            llm,
            http,
            dir: Some(dir),
        }
    }

    fn api(&self, n: usize) -> Api<'_> {
        Api::at(&self.http, &self.topology.backends[n].url)
    }

    /// Creates task `title` on backend `n`, retrying what the API asks to
    /// retry (503, 429) under one idempotency key, so a retried create is
    /// never stored twice; returns its id.
    async fn create(&self, n: usize, project: &str, title: &str) -> String {
        let url = format!("{}/api/v1/tasks", self.topology.backends[n].url);
        let key = uuid::Uuid::now_v7().to_string();
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let sent = self
                .http
                .post(&url)
                .header("idempotency-key", &key)
                .json(&json!({"project_id": project, "role": "developer", "title": title}))
                .send()
                .await;
            match sent {
                Ok(r) if r.status() == 201 => {
                    return r.json::<Value>().await.unwrap()["id"]
                        .as_str()
                        .unwrap()
                        .to_owned();
                }
                Ok(r) if [429, 503, 409].contains(&r.status().as_u16()) => {}
                Ok(r) => panic!(
                    "creating {title}: {} {}",
                    r.status(),
                    r.text().await.unwrap_or_default()
                ),
                Err(e) if e.is_connect() || e.is_request() => {}
                Err(e) => panic!("creating {title}: {e}"),
            }
            assert!(Instant::now() < deadline, "{title} not created in 90 s");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Creates `titles` alternately on `backends`, `parallel` at a time.
    async fn create_all(&self, backends: &[usize], project: &str, titles: Vec<String>) -> Vec<String> {
        futures::stream::iter(titles.into_iter().enumerate())
            .map(|(i, title)| async move { self.create(backends[i % backends.len()], project, &title).await })
            .buffered(32)
            .collect()
            .await
    }

    /// How many times the model was asked about each title.
    fn llm_calls_per_title(&self, titles: &[String]) -> Vec<(String, usize)> {
        let requests: Vec<String> = self.llm.requests().iter().map(Value::to_string).collect();
        titles
            .iter()
            .map(|t| {
                let marker = format!("Task: {t}\\n");
                let alone = format!("Task: {t}\"");
                (
                    t.clone(),
                    requests
                        .iter()
                        .filter(|r| r.contains(&marker) || r.contains(&alone))
                        .count(),
                )
            })
            .collect()
    }

    /// Vapora's own log files.
    fn our_logs(&self) -> Vec<std::path::PathBuf> {
        self.topology
            .log_files()
            .into_iter()
            .filter(|log| {
                let name = log.file_name().unwrap().to_string_lossy();
                ["backend-", "agent-", "gateway"]
                    .iter()
                    .any(|p| name.starts_with(p))
            })
            .collect()
    }

    /// SIGTERM to every process, which must all exit 0; Vapora's own must
    /// say nothing worse than INFO while stopping. (The SurrealDB server
    /// logs its SIGTERM itself at WARN, by design.)
    async fn stop_cleanly(mut self) {
        let sizes: Vec<(std::path::PathBuf, usize)> = self
            .our_logs()
            .into_iter()
            .map(|log| {
                let len = std::fs::read_to_string(&log).map_or(0, |t| t.len());
                (log, len)
            })
            .collect();
        let statuses = self.topology.terminate_all(Duration::from_secs(30)).await;
        let mut stopped = 0;
        for (name, status) in &statuses {
            match status {
                Ok(Some(status)) => {
                    assert!(status.success(), "{name} exited with {status}");
                    stopped += 1;
                }
                Ok(None) => {}
                Err(e) => panic!("{name}: {e}"),
            }
        }
        for (log, before) in sizes {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let stopping = &text[before.min(text.len())..];
            let bad: Vec<&str> = stopping
                .lines()
                .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
                .collect();
            assert!(
                bad.is_empty(),
                "{} while stopping:\n{}",
                log.display(),
                bad.join("\n")
            );
        }
        eprintln!("SIGTERM: all {stopped} running processes exited 0");
    }
}

impl Drop for Deployment {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.topology.log_tails(40));
            if let Some(dir) = self.dir.take() {
                eprintln!("logs and data kept in {}", dir.keep().display());
            }
        }
    }
}

fn titles(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix} {i}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_thousand_tasks_on_the_production_topology_finish_once_and_reach_every_dashboard() {
    const TASKS: usize = 2_000;
    let deployment = Deployment::start().await;
    let key = deployment.topology.admin_key().to_owned();
    let watchers = [
        watch(&deployment.topology.backends[0].url, &key, TASKS).await,
        watch(&deployment.topology.backends[1].url, &key, TASKS).await,
    ];
    let (a, b) = (deployment.api(0), deployment.api(1));
    let project = a.create_project().await;

    let started = Instant::now();
    let names = titles("topology", TASKS);
    let ids = deployment.create_all(&[0, 1], &project, names.clone()).await;
    b.wait_all_done(&project, &ids, 240).await;
    let took = started.elapsed();
    eprintln!(
        "{TASKS} tasks created alternately on 2 backends, all done in {took:.1?} ({:.0} tasks/s)",
        TASKS as f64 / took.as_secs_f64()
    );

    a.assert_finished_exactly_once(&ids).await;
    for ((title, calls), id) in deployment.llm_calls_per_title(&names).into_iter().zip(&ids) {
        if calls != 1 {
            let history = a.get(&format!("/api/v1/tasks/{id}/history")).await;
            panic!("{title} ({id}): {calls} LLM calls; history {history}");
        }
    }
    assert_eq!(
        deployment.llm.request_count(),
        TASKS,
        "one LLM call per task, none other"
    );
    // Without faults nothing goes wrong, beyond waiting at start for the
    // NATS cluster to elect its JetStream leaders.
    for log in deployment.our_logs() {
        let text = std::fs::read_to_string(&log).unwrap();
        let bad: Vec<&str> = text
            .lines()
            .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
            .filter(|l| !l.contains("JetStream not ready") && !l.contains("cannot open the consumer yet"))
            .collect();
        assert!(bad.is_empty(), "{}:\n{}", log.display(), bad.join("\n"));
    }
    let all: HashSet<String> = ids.iter().cloned().collect();
    for (n, watcher) in watchers.into_iter().enumerate() {
        let (_, done) = watcher.await.unwrap();
        assert_eq!(
            done.len(),
            TASKS,
            "backend {n}'s WebSocket client saw {} of {TASKS} finish",
            done.len()
        );
        assert_eq!(done, all);
    }
    deployment.stop_cleanly().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_production_topology_rides_out_seeded_faults() {
    let mut schedule = Schedule::new("topology faults", 20261206);
    let mut deployment = Deployment::start().await;
    let project = deployment.api(0).create_project().await;
    let mut all_ids = Vec::new();

    // 1. A backend cut off from the broker queues what it is given; killed
    //    with those tasks in its queue, its lease runs out and a live
    //    replica adopts and dispatches them.
    let dead_port = vapora_cluster::process::free_port().unwrap();
    let cut_off = deployment
        .topology
        .start_backend_with(&[("VAPORA_NATS_URL", &format!("nats://127.0.0.1:{dead_port}"))])
        .await
        .unwrap();
    let stranded = deployment
        .create_all(&[cut_off], &project, titles("stranded", 20))
        .await;
    let queued = deployment.api(0).tasks_in(&project, "queued").await.len();
    assert_eq!(queued, 20, "the cut-off backend holds its tasks");
    deployment.topology.kill_backend(cut_off);
    let killed = Instant::now();
    all_ids.extend(stranded.iter().cloned());
    deployment.api(0).wait_all_done(&project, &all_ids, 30).await;
    eprintln!(
        "20 tasks queued on a killed backend: done through the others {:.1?} after the kill",
        killed.elapsed()
    );

    // 2. kill -9 a serving backend mid-run; the run goes on on the other.
    let batch = titles("backend fault", 400);
    let kill_after = schedule.pick(50..350) as usize;
    let (first, rest) = batch.split_at(kill_after);
    all_ids.extend(deployment.create_all(&[0, 1], &project, first.to_vec()).await);
    deployment.topology.kill_backend(0);
    let killed = Instant::now();
    all_ids.extend(deployment.create_all(&[1], &project, rest.to_vec()).await);
    deployment.api(1).wait_all_done(&project, &all_ids, 90).await;
    eprintln!(
        "backend 0 killed after {kill_after} of 400 creates: all done {:.1?} after the kill",
        killed.elapsed()
    );
    // An orchestrator starts a replacement.
    let replacement = deployment.topology.start_backend().await.unwrap();

    // 3. kill -9 one NATS node of three mid-run.
    let node = schedule.pick(0..3) as usize;
    let kill_after = schedule.pick(50..350) as usize;
    let batch = titles("nats fault", 400);
    let (first, rest) = batch.split_at(kill_after);
    all_ids.extend(
        deployment
            .create_all(&[1, replacement], &project, first.to_vec())
            .await,
    );
    deployment.topology.nats.kill(node);
    all_ids.extend(
        deployment
            .create_all(&[1, replacement], &project, rest.to_vec())
            .await,
    );
    deployment.api(1).wait_all_done(&project, &all_ids, 90).await;
    eprintln!(
        "NATS node {} killed after {kill_after} creates: all done",
        node + 1
    );
    deployment.topology.nats.start_again(node).await.unwrap();

    // 4. Restart the SurrealDB server mid-run: creates meanwhile are
    //    refused with 503 (and retried by the client); the backends carry on.
    let down_for = Duration::from_millis(schedule.pick(500..3_000));
    let kill_after = schedule.pick(50..350) as usize;
    let batch = titles("storage fault", 400);
    let (first, rest) = batch.split_at(kill_after);
    all_ids.extend(
        deployment
            .create_all(&[1, replacement], &project, first.to_vec())
            .await,
    );
    deployment.topology.surreal.kill();
    // The tasks just created run meanwhile: their reports wait in the broker.
    tokio::time::sleep(down_for).await;
    let refused = deployment
        .http
        .post(format!("{}/api/v1/tasks", deployment.topology.backends[1].url))
        .json(&json!({"project_id": project, "role": "developer", "title": "refused"}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 503, "a create with the database gone");
    assert!(refused.headers().contains_key("retry-after"));
    deployment.topology.surreal.start_again().await.unwrap();
    all_ids.extend(
        deployment
            .create_all(&[1, replacement], &project, rest.to_vec())
            .await,
    );
    deployment.api(1).wait_all_done(&project, &all_ids, 120).await;
    eprintln!("SurrealDB server down {down_for:?} after {kill_after} creates: all done");

    // 5. A third agent server joins mid-run and takes work.
    let batch = titles("new agent", 400);
    let (first, rest) = batch.split_at(schedule.pick(50..200) as usize);
    all_ids.extend(
        deployment
            .create_all(&[1, replacement], &project, first.to_vec())
            .await,
    );
    let newcomer = deployment.topology.add_agent().unwrap();
    let later = deployment
        .create_all(&[1, replacement], &project, rest.to_vec())
        .await;
    all_ids.extend(later.iter().cloned());
    deployment.api(1).wait_all_done(&project, &all_ids, 90).await;
    let api = deployment.api(1);
    let mine = json!(newcomer);
    let mine = &mine;
    let taken = futures::stream::iter(&later)
        .map(|id| async move { api.task(id).await["assigned_agent"] == *mine })
        .buffer_unordered(16)
        .filter(|mine| std::future::ready(*mine))
        .count()
        .await;
    eprintln!(
        "{newcomer} joined mid-run and ran {taken} of the {} tasks created after",
        later.len()
    );
    assert!(taken > 0, "{newcomer} took no work");

    // Nothing lost, nothing finished twice, across every fault.
    let unique: HashSet<&String> = all_ids.iter().collect();
    assert_eq!(unique.len(), all_ids.len());
    let project_tasks = api.tasks_in(&project, "done").await.len();
    assert_eq!(
        project_tasks,
        all_ids.len(),
        "every task created is done, and no other"
    );
    api.assert_finished_exactly_once(&all_ids).await;
    eventually(10, "nothing left queued or running", || async {
        api.tasks_in(&project, "queued").await.is_empty()
            && api.tasks_in(&project, "running").await.is_empty()
    })
    .await;
    deployment.stop_cleanly().await;
}
