//! Attempts JetStream acknowledged and then lost are dispatched again.
//!
//! A broker whose file store loses acknowledged writes (`sync_interval`
//! other than `always` and a power cut, a volume restored from an old
//! backup) can lose an attempt the backend already marked dispatched: the
//! task would wait `queued` for ever. Each mark stores the attempt's stream
//! sequence. Now and then, every replica takes the tasks still queued
//! [`Settings::reconcile_after`](crate::Settings) after their mark and asks
//! the stream for the message at that sequence. A work-queue stream keeps
//! an attempt until a worker acks it, and a worker acks only once its
//! result is stored, so a message that is gone while its task is still
//! queued was either lost or finished by a worker whose result has not been
//! applied yet. Only a task found missing on two rounds in a row is queued
//! again, under a new attempt: anything the old attempt might still report
//! is stale to the fence, so at most one outcome gets through. (The price
//! of a wrong guess is one more model call, never a second outcome.)

use std::collections::HashSet;
use std::time::Duration;

use async_nats::jetstream::stream::RawMessageErrorKind;
use tokio_util::sync::CancellationToken;
use vapora_shared::TaskId;
use vapora_shared::wire::TASKS_STREAM;

use super::BrokerContext;

pub async fn run(ctx: BrokerContext, after: Duration, stop: CancellationToken) {
    let mut every =
        tokio::time::interval((after / 2).clamp(Duration::from_millis(500), Duration::from_secs(30)));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Missing at the previous round.
    let mut suspects: HashSet<(TaskId, u32)> = HashSet::new();
    loop {
        tokio::select! {
            _ = every.tick() => {}
            () = stop.cancelled() => return,
        }
        match missing_attempts(&ctx, after).await {
            Ok(missing) => {
                for &(task, attempt) in missing.intersection(&suspects) {
                    match ctx.intake.tasks.redispatch_lost(task, attempt).await {
                        Ok(Some(_)) => {
                            tracing::warn!(%task, attempt, "the broker lost a dispatched attempt; queued again")
                        }
                        Ok(None) => {}
                        Err(e) => tracing::debug!(%task, error = %e, "could not queue a lost attempt again"),
                    }
                }
                suspects = missing;
            }
            Err(e) => tracing::debug!(error = %e, "cannot look for lost attempts now"),
        }
    }
}

/// Attempts queued for at least `after` since their mark whose message the
/// stream no longer holds.
async fn missing_attempts(ctx: &BrokerContext, after: Duration) -> Result<HashSet<(TaskId, u32)>, String> {
    let waiting = ctx
        .intake
        .tasks
        .dispatched_but_waiting(after)
        .await
        .map_err(|e| e.to_string())?;
    let mut missing = HashSet::new();
    if waiting.is_empty() {
        return Ok(missing);
    }
    let stream = ctx.js.get_stream(TASKS_STREAM).await.map_err(|e| e.to_string())?;
    for (task, attempt, seq) in waiting {
        match stream.get_raw_message(seq).await {
            Ok(_) => {}
            Err(e) if e.kind() == RawMessageErrorKind::NoMessageFound => {
                missing.insert((task, attempt));
            }
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok(missing)
}
