//! A worker played by hand over raw NATS, for tests that need reports a
//! real agent server would not send (late, from the wrong agent, twice).

use std::time::Duration;

use async_nats::jetstream::consumer::PullConsumer;
use futures::StreamExt;
use vapora_shared::wire::{MSG_ID_HEADER, TASKS_STREAM, TaskAttempt, TaskReport, task_events_subject};

/// Takes one attempt from a role's consumer as an outside worker would.
pub async fn take_attempt(
    client: &async_nats::Client,
    role: &str,
) -> (TaskAttempt, async_nats::jetstream::Message) {
    let js = async_nats::jetstream::new(client.clone());
    let consumer: PullConsumer = js
        .get_stream(TASKS_STREAM)
        .await
        .unwrap()
        .get_consumer(&format!("workers-{role}"))
        .await
        .unwrap();
    // A fetch returns empty-handed if nothing is there yet; ask again.
    for _ in 0..100 {
        let mut batch = consumer.fetch().max_messages(1).messages().await.unwrap();
        if let Some(message) = batch.next().await {
            let message = message.unwrap();
            return (serde_json::from_slice(&message.payload).unwrap(), message);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no attempt for {role} within 10 s")
}

/// Publishes `report` under `msg_id` and waits until JetStream stored it.
pub async fn report(client: &async_nats::Client, report: &TaskReport, msg_id: &str) {
    let js = async_nats::jetstream::new(client.clone());
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(MSG_ID_HEADER, msg_id);
    js.publish_with_headers(
        task_events_subject(report.task_id()),
        headers,
        serde_json::to_vec(report).unwrap().into(),
    )
    .await
    .unwrap()
    .await
    .unwrap();
}
