//! The broker dispatcher of one role: the bounded priority queue's most
//! urgent entry becomes a `TaskAttempt` on `vapora.tasks.<role>`.
//!
//! Each attempt carries `Nats-Msg-Id: <task>.<attempt>`, so publishing it
//! again (a retry after a lost ack, a restart before the mark was stored)
//! is dropped by JetStream's duplicate window. The task is marked
//! dispatched only after JetStream acked the publish, and the queue entry —
//! with its unit of queue capacity — is released only then: while the
//! broker is unreachable the dispatcher retries the same entry with backoff,
//! the rest wait in the queue, and a full queue makes the API answer 503.
//! Priority holds because the queue pops the most urgent entry and the
//! dispatcher publishes one at a time.

use std::time::Duration;

use chrono::Utc;
use tokio_util::sync::CancellationToken;
use vapora_shared::Role;
use vapora_shared::wire::{MSG_ID_HEADER, TaskAttempt, attempt_msg_id, task_subject};

use super::BrokerContext;
use crate::api::task_queue::QueuedTask;
use crate::storage::StoredTask;

const FIRST_RETRY: Duration = Duration::from_millis(100);
const MAX_RETRY: Duration = Duration::from_secs(5);

pub async fn run(ctx: BrokerContext, role: Role, stop: CancellationToken) {
    let subject = task_subject(&role);
    loop {
        let entry = tokio::select! {
            entry = ctx.queue.pop_wait(&role) => entry,
            () = stop.cancelled() => return,
        };
        let stored = match ctx.tasks.awaiting_dispatch(entry.task_id, entry.attempt).await {
            Ok(Some(stored)) => stored,
            // Cancelled, moved or superseded while it waited.
            Ok(None) => continue,
            Err(e) => {
                tracing::error!(task = %entry.task_id, error = %e, "cannot read a queued task; retrying");
                if !pause_with(&ctx, entry, FIRST_RETRY * 10, &stop).await {
                    return;
                }
                continue;
            }
        };
        let Some(entry) = publish_until_acked(&ctx, &subject, entry, &stored, &stop).await else {
            return;
        };
        let task_id = stored.task.id;
        if let Err(e) = ctx.tasks.mark_dispatched(stored).await {
            // JetStream has the attempt and the worker's reports will move
            // the task; only the mark is missing, and a restart re-publishes
            // (deduplicated within the window).
            tracing::warn!(task = %task_id, error = %e, "dispatched, but could not record it");
        }
        drop(entry);
    }
}

/// Publishes until JetStream acks; returns the entry (still holding its
/// queue capacity), or `None` if stopped first (the entry is put back).
async fn publish_until_acked(
    ctx: &BrokerContext,
    subject: &str,
    entry: QueuedTask,
    stored: &StoredTask,
    stop: &CancellationToken,
) -> Option<QueuedTask> {
    let task = &stored.task;
    let attempt = TaskAttempt {
        task_id: task.id,
        project_id: task.project_id,
        attempt: task.attempt,
        role: task.role.clone(),
        priority: task.priority,
        title: task.title.clone(),
        description: task.description.clone(),
        dispatched_at: Utc::now(),
    };
    let payload: bytes::Bytes = serde_json::to_vec(&attempt).expect("serializable").into();
    let msg_id = attempt_msg_id(task.id, task.attempt);
    let mut delay = FIRST_RETRY;
    let mut failures = 0u32;
    loop {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(MSG_ID_HEADER, msg_id.as_str());
        let published = match ctx
            .js
            .publish_with_headers(subject.to_owned(), headers, payload.clone())
            .await
        {
            Ok(ack) => ack.await.map(drop).map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match published {
            Ok(()) => {
                if failures > 0 {
                    tracing::info!(task = %task.id, failures, "broker reachable again; dispatch resumed");
                }
                return Some(entry);
            }
            Err(e) => {
                failures += 1;
                // One line per outage, not one per retry.
                if failures == 1 {
                    tracing::warn!(task = %task.id, error = %e, "cannot publish to JetStream; tasks wait in the queue");
                }
            }
        }
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = stop.cancelled() => {
                ctx.queue.put_back(entry).await;
                return None;
            }
        }
        delay = (delay * 2).min(MAX_RETRY);
    }
}

/// Puts the entry back and waits; `false` if stopped meanwhile.
async fn pause_with(
    ctx: &BrokerContext,
    entry: QueuedTask,
    delay: Duration,
    stop: &CancellationToken,
) -> bool {
    ctx.queue.put_back(entry).await;
    tokio::select! {
        () = tokio::time::sleep(delay) => true,
        () = stop.cancelled() => false,
    }
}
