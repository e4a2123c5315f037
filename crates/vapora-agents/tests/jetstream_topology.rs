//! The JetStream topology against a real nats-server.

use async_nats::HeaderMap;
use async_nats::jetstream::stream::{RetentionPolicy, StorageType};
use vapora_agents::jetstream::{DeliveryPolicy, consumer_name, ensure_topology};
use vapora_agents::testing::NatsServer;
use vapora_shared::wire::{EVENTS_STREAM, MSG_ID_HEADER, TASKS_STREAM, attempt_msg_id, task_subject};
use vapora_shared::{Role, TaskId};

fn roles() -> Vec<Role> {
    ["developer", "tester"].map(|r| Role::parse(r).unwrap()).to_vec()
}

#[tokio::test]
async fn topology_is_created_idempotently_with_explicit_settings() {
    let server = NatsServer::start().await;
    let client = async_nats::connect(server.url()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let delivery = DeliveryPolicy::default();
    ensure_topology(&js, &roles(), &delivery).await.unwrap();
    // A second process starting later changes nothing and does not fail.
    ensure_topology(&js, &roles(), &delivery).await.unwrap();

    let mut tasks = js.get_stream(TASKS_STREAM).await.unwrap();
    let info = tasks.info().await.unwrap().clone();
    assert_eq!(info.config.retention, RetentionPolicy::WorkQueue);
    assert_eq!(info.config.storage, StorageType::File);
    assert_eq!(info.config.duplicate_window, std::time::Duration::from_secs(120));
    let events = js.get_stream(EVENTS_STREAM).await.unwrap();
    assert_eq!(events.cached_info().config.retention, RetentionPolicy::Limits);

    for role in roles() {
        let mut consumer: async_nats::jetstream::consumer::PullConsumer =
            tasks.get_consumer(&consumer_name(&role)).await.unwrap();
        let config = consumer.info().await.unwrap().config.clone();
        assert_eq!(config.filter_subject, task_subject(&role));
        assert_eq!(config.max_deliver, delivery.max_deliver);
        assert_eq!(config.ack_wait, delivery.ack_wait);
        assert_eq!(config.backoff, delivery.backoff);
    }
}

#[tokio::test]
async fn republishing_an_attempt_is_a_no_op() {
    let server = NatsServer::start().await;
    let js = async_nats::jetstream::new(async_nats::connect(server.url()).await.unwrap());
    ensure_topology(&js, &roles(), &DeliveryPolicy::default())
        .await
        .unwrap();
    let task = TaskId::new();
    let developer = &roles()[0];
    let publish = |attempt: u32| {
        let js = js.clone();
        let subject = task_subject(developer);
        async move {
            let mut headers = HeaderMap::new();
            headers.insert(MSG_ID_HEADER, attempt_msg_id(task, attempt).as_str());
            js.publish_with_headers(subject, headers, "{}".into())
                .await
                .unwrap()
                .await
                .unwrap()
        }
    };
    let first = publish(1).await;
    let again = publish(1).await;
    assert!(!first.duplicate);
    assert!(again.duplicate, "the broker recognised the re-published attempt");
    let next = publish(2).await;
    assert!(!next.duplicate, "a new attempt is a new message");
    let mut stream = js.get_stream(TASKS_STREAM).await.unwrap();
    assert_eq!(stream.info().await.unwrap().state.messages, 2);
}
