//! NATS with credentials: a client without them cannot connect, an agent's
//! user may consume its roles' tasks and report, and nothing else, and the
//! whole system runs with exactly the permissions `docs/protocol.md` lists,
//! also under the deployment's own `config/nats/nats.conf`.

use std::time::Duration;

use futures::StreamExt;
use vapora_agents::testing::NatsServer;
use vapora_llm_router::testing::Script;

use crate::cluster::Cluster;

const BACKEND_PASSWORD: &str = "backend-pw-5f2a9c";
const AGENT_PASSWORD: &str = "agent-pw-81d3e7";

/// A server where the backend may do anything and `agent-a` may serve the
/// developer and tester roles (the permissions of `docs/protocol.md`).
fn secured_config() -> String {
    let role = |r: &str| {
        format!(
            r#""$JS.API.CONSUMER.INFO.VAPORA_TASKS.workers-{r}", "$JS.API.CONSUMER.MSG.NEXT.VAPORA_TASKS.workers-{r}", "$JS.ACK.VAPORA_TASKS.workers-{r}.>""#
        )
    };
    format!(
        r#"
authorization {{
  users = [
    {{ user: backend, password: "{BACKEND_PASSWORD}" }}
    {{ user: agent-a, password: "{AGENT_PASSWORD}", permissions: {{
        publish: {{ allow: ["$JS.API.STREAM.INFO.VAPORA_TASKS", {}, {}, "vapora.events.*", "vapora.agents.heartbeat"] }}
        subscribe: {{ allow: ["_INBOX.>", "vapora.cancel.*"] }}
    }} }}
  ]
}}
"#,
        role("developer"),
        role("tester")
    )
}

/// The backend under the `backend` user, and each `(agent id, NATS user)`
/// serving developer and tester under its user, which may not create the
/// topology.
async fn start_under_users(cluster: &mut Cluster, agents: &[(&str, &str)], concurrency: usize) {
    cluster
        .start_backend_with(&[
            ("VAPORA_NATS_USER", "backend"),
            ("VAPORA_NATS_PASSWORD", BACKEND_PASSWORD),
        ])
        .await;
    for (id, user) in agents {
        cluster
            .start_agent_with(
                id,
                "developer,tester",
                concurrency,
                &[
                    ("VAPORA_NATS_USER", user),
                    ("VAPORA_NATS_PASSWORD", AGENT_PASSWORD),
                    ("VAPORA_NATS_CREATE_TOPOLOGY", "false"),
                ],
            )
            .await;
    }
}

async fn connect_as(
    url: &str,
    user: &str,
    password: &str,
) -> Result<async_nats::Client, async_nats::ConnectError> {
    async_nats::ConnectOptions::with_user_and_password(user.into(), password.into())
        .connect(url)
        .await
}

#[tokio::test]
async fn a_client_without_credentials_or_with_wrong_ones_cannot_connect() {
    let nats = NatsServer::start_with_config(&secured_config()).await;
    assert!(async_nats::connect(nats.url()).await.is_err(), "no credentials");
    assert!(
        connect_as(nats.url(), "agent-a", "guess").await.is_err(),
        "a wrong password"
    );
    assert!(connect_as(nats.url(), "agent-a", AGENT_PASSWORD).await.is_ok());
}

#[tokio::test]
async fn an_agent_user_cannot_publish_tasks_or_backend_events_but_can_report() {
    let nats = NatsServer::start_with_config(&secured_config()).await;
    let backend = connect_as(nats.url(), "backend", BACKEND_PASSWORD).await.unwrap();
    let agent = connect_as(nats.url(), "agent-a", AGENT_PASSWORD).await.unwrap();
    let mut watched = backend.subscribe("vapora.>").await.unwrap();
    backend.flush().await.unwrap();

    // First, what the agent may do gets through. `flush` does not wait for
    // the server to have the watcher's subscription, so repeat until it does.
    let mut through = false;
    for _ in 0..50 {
        agent
            .publish("vapora.agents.heartbeat", "first".into())
            .await
            .unwrap();
        if let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(100), watched.next()).await {
            through = true;
            break;
        }
    }
    assert!(through, "the agent's heartbeat never arrived");
    for subject in [
        "vapora.tasks.developer",
        "vapora.tasks.admin",
        "vapora.backend.events",
    ] {
        agent.publish(subject, "forged".into()).await.unwrap();
    }
    // A heartbeat after them arrives next: nothing forged came in between.
    agent
        .publish("vapora.agents.heartbeat", "after".into())
        .await
        .unwrap();
    agent.flush().await.unwrap();
    let next = loop {
        let message = tokio::time::timeout(Duration::from_secs(5), watched.next())
            .await
            .expect("the second heartbeat arrives")
            .unwrap();
        // Late copies of the first heartbeat may still come.
        if message.payload.as_ref() != b"first" {
            break message;
        }
    };
    assert_eq!(
        (next.subject.as_str(), next.payload.as_ref()),
        ("vapora.agents.heartbeat", &b"after"[..])
    );
    let more = tokio::time::timeout(Duration::from_millis(500), watched.next()).await;
    assert!(
        more.is_err(),
        "a forged message got through: {:?}",
        more.map(|m| m.map(|m| m.subject))
    );

    // Nor may it listen to the backend's event feed, while what it may
    // subscribe to (cancellations) reaches it.
    let mut eavesdrop = agent.subscribe("vapora.backend.events").await.unwrap();
    let mut cancels = agent.subscribe("vapora.cancel.*").await.unwrap();
    let mut cancel_seen = false;
    for _ in 0..50 {
        backend
            .publish("vapora.backend.events", "{}".into())
            .await
            .unwrap();
        backend.publish("vapora.cancel.t1", "{}".into()).await.unwrap();
        if let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(100), cancels.next()).await {
            cancel_seen = true;
            break;
        }
    }
    assert!(cancel_seen, "the agent never received a cancellation");
    backend
        .publish("vapora.backend.events", "{}".into())
        .await
        .unwrap();
    backend.flush().await.unwrap();
    let overheard = tokio::time::timeout(Duration::from_millis(500), eavesdrop.next()).await;
    assert!(
        !matches!(overheard, Ok(Some(_))),
        "the agent read the backend's events"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_system_runs_with_per_agent_users_and_the_documented_permissions() {
    let nats = NatsServer::start_with_config(&secured_config()).await;
    let mut cluster = Cluster::start_on(nats, Script::text(&["secured"])).await;
    cluster
        .secrets
        .extend([BACKEND_PASSWORD.to_owned(), AGENT_PASSWORD.to_owned()]);
    start_under_users(&mut cluster, &[("agent-a", "agent-a")], 4).await;
    let api = cluster.api(0);
    let project = api.create_project().await;
    let mut ids = Vec::new();
    for i in 0..20 {
        let role = if i % 2 == 0 { "developer" } else { "tester" };
        ids.push(api.create_task(&project, role, &format!("task {i}")).await);
    }
    crate::cluster::eventually(60, "every task is done", || async {
        api.tasks_in(&project, "done").await.len() == ids.len()
    })
    .await;
    for id in &ids {
        assert_eq!(
            api.get(&format!("/api/v1/tasks/{id}")).await["result"]["output"],
            "secured"
        );
    }
    // Dropping the cluster scans every log for both passwords.
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_system_runs_under_the_committed_deployment_config() {
    let config = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/nats/nats.conf");
    let nats = NatsServer::start_from_file(
        &config,
        &[
            ("NATS_BACKEND_PASSWORD", BACKEND_PASSWORD),
            ("NATS_AGENT_PASSWORD", AGENT_PASSWORD),
        ],
    )
    .await;
    assert!(async_nats::connect(nats.url()).await.is_err(), "no credentials");
    // The agents' user may not publish attempts: JetStream never stores one.
    let agents = connect_as(nats.url(), "agents", AGENT_PASSWORD).await.unwrap();
    let forged = async_nats::jetstream::new(agents)
        .publish("vapora.tasks.developer", "forged".into())
        .await;
    let stored = match forged {
        Ok(ack) => tokio::time::timeout(Duration::from_secs(10), ack)
            .await
            .is_ok_and(|a| a.is_ok()),
        Err(_) => false,
    };
    assert!(!stored, "the agents user published an attempt");

    let mut cluster = Cluster::start_on(nats, Script::text(&["deployed"])).await;
    cluster
        .secrets
        .extend([BACKEND_PASSWORD.to_owned(), AGENT_PASSWORD.to_owned()]);
    // As docker-compose.yml runs them: one shared user, every role.
    start_under_users(&mut cluster, &[("agent-1", "agents"), ("agent-2", "agents")], 2).await;
    let api = cluster.api(0);
    let project = api.create_project().await;
    let ids = api.create_tasks(&project, &["developer", "tester"], 20, 4).await;
    api.wait_all_done(&project, &ids, 60).await;
    api.assert_finished_exactly_once(&ids).await;
}
