//! How a worker's reports reach the events stream: `started` retried until
//! JetStream stores it, progress best effort through a bounded channel, the
//! final report after the progress before it.

use std::time::Duration;

use async_nats::jetstream as js;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use vapora_shared::wire::{MSG_ID_HEADER, TaskReport, report_msg_id, task_events_subject};

use crate::attempt::{Claim, ReportSink, SinkError};

/// Publishes of `started` before the attempt is handed back, and the waits
/// between them (doubling): about ten seconds in all.
const STARTED_TRIES: u32 = 8;
const STARTED_RETRY_FIRST: Duration = Duration::from_millis(100);
const STARTED_RETRY_MAX: Duration = Duration::from_secs(2);

/// Reports go to the events stream. Progress goes out through a bounded
/// channel to a publisher of its own, so a slow broker drops progress
/// rather than holding up the model's stream; the final report waits until
/// the progress before it is out, so it is the last word on the attempt.
pub(super) struct JetStreamSink {
    js: js::Context,
    outgoing: mpsc::Sender<Outgoing>,
    publisher: JoinHandle<()>,
}

enum Outgoing {
    Progress(TaskReport),
    /// Answered once everything queued before it is published.
    Flush(oneshot::Sender<()>),
}

impl JetStreamSink {
    pub(super) fn start(js: js::Context) -> Self {
        let (outgoing, mut queued) = mpsc::channel::<Outgoing>(256);
        let publisher = {
            let js = js.clone();
            tokio::spawn(async move {
                while let Some(next) = queued.recv().await {
                    match next {
                        Outgoing::Progress(report) => {
                            let _ = publish(&js, &report).await;
                        }
                        Outgoing::Flush(done) => {
                            let _ = done.send(());
                        }
                    }
                }
            })
        };
        Self {
            js,
            outgoing,
            publisher,
        }
    }
}

impl Drop for JetStreamSink {
    fn drop(&mut self) {
        self.publisher.abort();
    }
}

impl ReportSink for JetStreamSink {
    async fn started(&self, report: TaskReport) -> Result<Claim, SinkError> {
        // The backend's fence gives a running attempt to the agent whose
        // `started` it stored last, and refuses other agents' results; so
        // the model is called only once this start is stored. A retried
        // publish is deduplicated by its message id. If the broker stays
        // away, the attempt is handed back rather than run unclaimed. (The
        // backend cancels a stale attempt when the report reaches it.)
        let (mut tries, mut delay) = (1, STARTED_RETRY_FIRST);
        loop {
            match publish(&self.js, &report).await {
                Ok(()) => return Ok(Claim::Proceed),
                Err(e) if tries >= STARTED_TRIES => return Err(e),
                Err(e) => tracing::debug!(error = %e, tries, "could not report start yet; retrying"),
            }
            tokio::time::sleep(delay).await;
            (tries, delay) = (tries + 1, (delay * 2).min(STARTED_RETRY_MAX));
        }
    }

    fn progress(&self, report: TaskReport) {
        let _ = self.outgoing.try_send(Outgoing::Progress(report));
    }

    async fn finished(&self, report: TaskReport) -> Result<(), SinkError> {
        let (flushed, done) = oneshot::channel();
        if self.outgoing.send(Outgoing::Flush(flushed)).await.is_ok() {
            let _ = done.await;
        }
        publish(&self.js, &report).await
    }
}

/// Publishes a report to the events stream and waits for JetStream's ack.
async fn publish(js: &js::Context, report: &TaskReport) -> Result<(), SinkError> {
    let msg_id = report_msg_id(report);
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(MSG_ID_HEADER, msg_id.as_str());
    let payload = serde_json::to_vec(report).map_err(SinkError::new)?;
    js.publish_with_headers(task_events_subject(report.task_id()), headers, payload.into())
        .await
        .map_err(SinkError::new)?
        .await
        .map_err(SinkError::new)?;
    Ok(())
}
