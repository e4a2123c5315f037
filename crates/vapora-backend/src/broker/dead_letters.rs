//! Dead letters: attempts JetStream stopped delivering after the role
//! consumer's `max_deliver`.
//!
//! JetStream announces each one with a max-deliveries advisory, which the
//! `VAPORA_DEAD_LETTERS` stream keeps until handled (so one given up on
//! while the backend was down is not missed). For each, the attempt is read
//! back from `VAPORA_TASKS` by sequence, its task fails with
//! `dead_lettered`, and the attempt is deleted from the work queue, where
//! nothing would ever ack it.

use std::time::Duration;

use async_nats::jetstream::consumer::{AckPolicy, PullConsumer, pull};
use async_nats::jetstream::{self as js, AckKind};
use futures::StreamExt;
use tokio_util::sync::CancellationToken;
use vapora_shared::wire::{DEAD_LETTERS_STREAM, MaxDeliveriesAdvisory, TASKS_STREAM, TaskAttempt};

use super::{BrokerContext, ConsumeError};

pub const CONSUMER: &str = "backend-dead-letters";

pub async fn run(ctx: BrokerContext, stop: CancellationToken) {
    let opened = async {
        let tasks = ctx.js.get_stream(TASKS_STREAM).await?;
        let consumer: PullConsumer = ctx
            .js
            .get_stream(DEAD_LETTERS_STREAM)
            .await?
            .create_consumer(pull::Config {
                durable_name: Some(CONSUMER.into()),
                ack_policy: AckPolicy::Explicit,
                description: Some("Vapora backend: fails dead-lettered tasks".into()),
                ..Default::default()
            })
            .await?;
        let messages = consumer.messages().await?;
        Ok::<_, ConsumeError>((tasks, messages))
    };
    let (tasks, mut messages) = match opened.await {
        Ok(opened) => opened,
        Err(e) => return tracing::error!(error = %e, "cannot consume dead letters"),
    };
    loop {
        let message = tokio::select! {
            next = messages.next() => next,
            () = stop.cancelled() => return,
        };
        match message {
            Some(Ok(message)) => handle(&ctx, &tasks, message).await,
            Some(Err(e)) => tracing::debug!(error = %e, "dead-letter stream hiccup"),
            None => return,
        }
    }
}

async fn handle(ctx: &BrokerContext, tasks: &js::stream::Stream, message: js::Message) {
    let advisory: MaxDeliveriesAdvisory = match serde_json::from_slice(&message.payload) {
        Ok(advisory) => advisory,
        Err(e) => {
            tracing::warn!(error = %e, "unreadable max-deliveries advisory dropped");
            let _ = message.ack().await;
            return;
        }
    };
    let attempt = match tasks.get_raw_message(advisory.stream_seq).await {
        Ok(raw) => serde_json::from_slice::<TaskAttempt>(&raw.payload).ok(),
        Err(e) => {
            // Gone already: a late worker acked it after all.
            tracing::info!(seq = advisory.stream_seq, error = %e, "dead-lettered attempt no longer in the stream");
            None
        }
    };
    let Some(attempt) = attempt else {
        let _ = message.ack().await;
        return;
    };
    match ctx
        .intake
        .tasks
        .fail_dead_lettered(
            attempt.task_id,
            attempt.attempt,
            &attempt.role,
            advisory.deliveries,
            advisory.stream_seq,
        )
        .await
    {
        Ok(_) => {
            tracing::warn!(task = %attempt.task_id, attempt = attempt.attempt, deliveries = advisory.deliveries, "attempt dead-lettered");
            let _ = tasks.delete_message(advisory.stream_seq).await;
            let _ = message.ack().await;
        }
        Err(e) => {
            tracing::warn!(task = %attempt.task_id, error = %e, "could not record a dead letter; retrying");
            let _ = message.ack_with(AckKind::Nak(Some(Duration::from_secs(1)))).await;
        }
    }
}
