//! The `hedge` and `race` strategies: several attempts at once, each a
//! `tokio::spawn`ed task, the first answer kept.
//!
//! The losers are aborted when the winner is returned (dropping the
//! `JoinSet` aborts its tasks), which drops their HTTP calls and closes the
//! provider connections; how an aborted attempt is billed is decided by its
//! `Billing`.

use std::time::Duration;

use tokio::task::JoinSet;

use super::Router;
use super::attempt::attempt;
use super::delivery::Delivery;
use super::plan::Plan;
use crate::LlmError;

impl Router {
    /// `race` (no delay: everything at once) and `hedge` (the next target
    /// after `delay` without an answer, or at once after a failure).
    pub(super) async fn fan_out<D: Delivery>(
        &self,
        plan: &Plan,
        delay: Option<Duration>,
    ) -> Result<D::Output, LlmError> {
        let mut pending = plan.route.targets.iter();
        let mut running = JoinSet::new();
        let mut attempts = 0;
        let mut last_error = None;
        let mut start_next = |running: &mut JoinSet<Result<D::Output, LlmError>>, attempts: &mut u32| {
            let Some(target) = pending.next() else {
                return false;
            };
            *attempts += 1;
            // In the caller's span, so each call joins the caller's trace.
            running.spawn(tracing::Instrument::in_current_span(attempt::<D>(
                self.inner.clone(),
                plan.clone(),
                target.clone(),
            )));
            true
        };
        if delay.is_none() {
            while start_next(&mut running, &mut attempts) {}
        } else {
            start_next(&mut running, &mut attempts);
        }
        loop {
            let hedge_timer = async {
                match delay {
                    Some(d) => tokio::time::sleep(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                joined = running.join_next() => match joined {
                    Some(Ok(Ok(mut answer))) => {
                        D::set_attempts(&mut answer, attempts);
                        // Dropping `running` aborts the losers.
                        return Ok(answer);
                    }
                    Some(Ok(Err(e))) if e.rejected_everywhere() => return Err(e),
                    Some(Ok(Err(e))) => {
                        last_error = Some(e);
                        // A failed hedge does not wait for the timer: the
                        // next target starts now (in a race, all have).
                        let started = start_next(&mut running, &mut attempts);
                        if running.is_empty() && !started {
                            break;
                        }
                    }
                    Some(Err(join_error)) => {
                        last_error = Some(LlmError::Protocol { provider: "router".into(), message: join_error.to_string() });
                    }
                    None => break,
                },
                () = hedge_timer => {
                    start_next(&mut running, &mut attempts);
                }
            }
        }
        Err(last_error.unwrap_or_else(|| LlmError::Config("route has no targets".into())))
    }
}
