//! The `fallback` strategy: targets in order, each retried with backoff
//! while its errors say another try may succeed.

use super::Router;
use super::attempt::attempt;
use super::delivery::Delivery;
use super::plan::Plan;
use crate::LlmError;

impl Router {
    /// Targets in order; retries with backoff on retryable errors.
    pub(super) async fn fallback<D: Delivery>(&self, plan: &Plan) -> Result<D::Output, LlmError> {
        let mut last_error = None;
        let mut attempts = 0;
        for target in &plan.route.targets {
            for retry in 0..plan.route.retry.attempts_per_target.max(1) {
                if retry > 0 {
                    let retry_after = match &last_error {
                        Some(LlmError::Status { retry_after, .. }) => *retry_after,
                        _ => None,
                    };
                    tokio::time::sleep(plan.route.retry.delay(retry, retry_after)).await;
                }
                attempts += 1;
                match attempt::<D>(self.inner.clone(), plan.clone(), target.clone()).await {
                    Ok(mut answer) => {
                        D::set_attempts(&mut answer, attempts);
                        return Ok(answer);
                    }
                    Err(e) if e.rejected_everywhere() => return Err(e),
                    Err(e) => {
                        let again = e.is_retryable() && !matches!(e, LlmError::CircuitOpen { .. });
                        last_error = Some(e);
                        if !again {
                            break;
                        }
                    }
                }
            }
        }
        Err(last_error.unwrap_or_else(|| LlmError::Config("route has no targets".into())))
    }
}
