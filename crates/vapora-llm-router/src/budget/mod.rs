//! Spending limits that hold under concurrency.
//!
//! A request *reserves* its worst-case cost before it calls a provider
//! (input estimate × input price + `max_tokens` × output price, at the prices
//! of the target about to be called) and *settles* to the real cost when the
//! call ends. The check and the reservation are one step under one lock, so
//! a thousand concurrent requests cannot all see the same unspent balance —
//! the classic check-then-record race. Amounts are integer nano-dollars, so
//! sums and comparisons are exact.
//!
//! Periods are calendar periods in UTC: `daily` starts at 00:00, `weekly` on
//! Monday 00:00, `monthly` on the 1st at 00:00. Spend is reset when a new
//! period starts and persisted through a [`BudgetStore`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, broadcast};
use tokio_util::sync::CancellationToken;
use utoipa::ToSchema;

use crate::budget_store::{BudgetRecord, BudgetStore};
use crate::fingerprint::api_key_budget;

mod period;

pub use period::Period;

/// Nano-dollars per dollar.
const NANOS: f64 = 1e9;

pub fn to_nanos(usd: f64) -> u64 {
    (usd * NANOS).round().max(0.0) as u64
}

/// Rounds up, for reservations: a reservation is never below the true bound.
pub fn to_nanos_ceil(usd: f64) -> u64 {
    (usd * NANOS).ceil().max(0.0) as u64
}

pub fn to_usd(nanos: u64) -> f64 {
    nanos as f64 / NANOS
}

/// What happens to a request that does not fit its budget.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case", tag = "action")]
pub enum Exhausted {
    /// Refuse with a budget error.
    Reject,
    /// Serve it through a cheaper route instead (which must fit too).
    Downgrade { route: String },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BudgetConfig {
    pub limit_usd: f64,
    pub period: Period,
    /// Fraction of the limit at which an alert is emitted once per period.
    #[serde(default = "default_alert")]
    pub alert_threshold: f64,
    #[serde(default = "default_exhausted")]
    pub on_exhausted: Exhausted,
}

fn default_alert() -> f64 {
    0.8
}

fn default_exhausted() -> Exhausted {
    Exhausted::Reject
}

/// Emitted when spend first crosses a budget's alert threshold in a period.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BudgetAlert {
    pub key: String,
    pub spent_usd: f64,
    pub limit_usd: f64,
    pub threshold: f64,
}

/// A budget's state, as `GET /api/v1/budgets` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct BudgetStatus {
    pub key: String,
    pub limit_usd: f64,
    pub spent_usd: f64,
    pub reserved_usd: f64,
    pub period: Period,
    pub period_start: DateTime<Utc>,
    pub period_end: DateTime<Utc>,
    pub on_exhausted: Exhausted,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error(
    "budget {key} is exhausted: {spent_usd:.6} spent and {reserved_usd:.6} reserved of {limit_usd:.6} USD; this call may cost up to {needed_usd:.6}"
)]
pub struct BudgetExceeded {
    pub key: String,
    pub limit_usd: f64,
    pub spent_usd: f64,
    pub reserved_usd: f64,
    pub needed_usd: f64,
    pub on_exhausted: Exhausted,
}

#[derive(Debug)]
struct Account {
    config: BudgetConfig,
    limit: u64,
    period_start: DateTime<Utc>,
    spent: u64,
    reserved: u64,
    alerted: bool,
}

impl Account {
    /// Starts a new period if the clock has moved past this one.
    fn roll(&mut self, now: DateTime<Utc>) {
        let start = self.config.period.start_of(now);
        if start != self.period_start {
            self.period_start = start;
            self.spent = 0;
            self.alerted = false;
        }
    }
}

/// The key a configured budget is kept, listed and persisted under: a
/// per-caller budget (`api_key:VALUE`) by the value's fingerprint, since
/// the value a caller sends may be a secret.
fn account_key(configured: &str) -> String {
    match configured.strip_prefix("api_key:") {
        Some(value) => api_key_budget(value),
        None => configured.to_owned(),
    }
}

/// All budgets of a router.
#[derive(Debug)]
pub struct Budgets {
    accounts: Mutex<HashMap<String, Account>>,
    store: Arc<dyn BudgetStore>,
    alerts: broadcast::Sender<BudgetAlert>,
    dirty: Notify,
}

impl Budgets {
    /// Builds the budgets and restores this period's spend from `store`.
    pub async fn load(
        configs: HashMap<String, BudgetConfig>,
        store: Arc<dyn BudgetStore>,
    ) -> Result<Arc<Self>, crate::budget_store::BudgetStoreError> {
        let now = Utc::now();
        let saved: HashMap<String, BudgetRecord> = store
            .load()
            .await?
            .into_iter()
            .map(|r| (r.key.clone(), r))
            .collect();
        let accounts = configs
            .into_iter()
            .map(|(configured, config)| {
                let key = account_key(&configured);
                let period_start = config.period.start_of(now);
                // Spend saved under the configured name is still this budget's.
                let spent = [&key, &configured]
                    .into_iter()
                    .find_map(|k| saved.get(k))
                    .filter(|r| r.period_start == period_start)
                    .map_or(0, |r| r.spent_nanos);
                let account = Account {
                    limit: to_nanos(config.limit_usd),
                    config,
                    period_start,
                    spent,
                    reserved: 0,
                    alerted: false,
                };
                (key, account)
            })
            .collect();
        let (alerts, _) = broadcast::channel(64);
        Ok(Arc::new(Self {
            accounts: Mutex::new(accounts),
            store,
            alerts,
            dirty: Notify::new(),
        }))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Account>> {
        // Every critical section is a few arithmetic steps on plain numbers,
        // so a poisoned lock still guards consistent data.
        self.accounts.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn has(&self, key: &str) -> bool {
        self.lock().contains_key(key)
    }

    pub fn subscribe_alerts(&self) -> broadcast::Receiver<BudgetAlert> {
        self.alerts.subscribe()
    }

    /// Reserves `amount_usd` against every budget in `keys` that exists, all
    /// or nothing.
    pub fn reserve(
        self: &Arc<Self>,
        keys: &[String],
        amount_usd: f64,
    ) -> Result<Reservation, BudgetExceeded> {
        let amount = to_nanos_ceil(amount_usd);
        let now = Utc::now();
        let mut accounts = self.lock();
        let mut charged = Vec::new();
        for key in keys {
            let Some(account) = accounts.get_mut(key) else {
                continue;
            };
            account.roll(now);
            // Saturating: a huge limit or a huge reported cost must neither
            // wrap around (letting a call through) nor panic.
            let committed = account.spent.saturating_add(account.reserved);
            if committed.saturating_add(amount) > account.limit {
                return Err(BudgetExceeded {
                    key: key.clone(),
                    limit_usd: to_usd(account.limit),
                    spent_usd: to_usd(account.spent),
                    reserved_usd: to_usd(account.reserved),
                    needed_usd: to_usd(amount),
                    on_exhausted: account.config.on_exhausted.clone(),
                });
            }
            charged.push(key.clone());
        }
        for key in &charged {
            if let Some(account) = accounts.get_mut(key) {
                account.reserved = account.reserved.saturating_add(amount);
            }
        }
        Ok(Reservation {
            budgets: self.clone(),
            keys: charged,
            amount,
            open: true,
        })
    }

    fn settle(&self, keys: &[String], reserved: u64, actual: u64) {
        let mut alerts = Vec::new();
        {
            let mut accounts = self.lock();
            for key in keys {
                let Some(account) = accounts.get_mut(key) else {
                    continue;
                };
                account.reserved = account.reserved.saturating_sub(reserved);
                account.spent = account.spent.saturating_add(actual);
                let threshold = account.config.alert_threshold;
                if !account.alerted && account.spent as f64 >= account.limit as f64 * threshold {
                    account.alerted = true;
                    alerts.push(BudgetAlert {
                        key: key.clone(),
                        spent_usd: to_usd(account.spent),
                        limit_usd: to_usd(account.limit),
                        threshold,
                    });
                }
            }
        }
        for alert in alerts {
            tracing::warn!(budget = %alert.key, spent = alert.spent_usd, limit = alert.limit_usd, "budget alert threshold crossed");
            let _ = self.alerts.send(alert);
        }
        if actual > 0 {
            self.dirty.notify_one();
        }
    }

    pub fn statuses(&self) -> Vec<BudgetStatus> {
        let now = Utc::now();
        let mut accounts = self.lock();
        let mut statuses: Vec<BudgetStatus> = accounts
            .iter_mut()
            .map(|(key, a)| {
                a.roll(now);
                BudgetStatus {
                    key: key.clone(),
                    limit_usd: to_usd(a.limit),
                    spent_usd: to_usd(a.spent),
                    reserved_usd: to_usd(a.reserved),
                    period: a.config.period,
                    period_start: a.period_start,
                    period_end: a.config.period.end_of(a.period_start),
                    on_exhausted: a.config.on_exhausted.clone(),
                }
            })
            .collect();
        statuses.sort_by(|a, b| a.key.cmp(&b.key));
        statuses
    }

    fn records(&self) -> Vec<BudgetRecord> {
        self.lock()
            .iter()
            .map(|(key, a)| BudgetRecord {
                key: key.clone(),
                period_start: a.period_start,
                spent_nanos: a.spent,
            })
            .collect()
    }

    /// Persists spend whenever it changes (coalescing bursts into one write)
    /// until `stop`, then writes a last time.
    pub async fn persist_until(self: Arc<Self>, stop: CancellationToken) {
        loop {
            let stopping = tokio::select! {
                () = self.dirty.notified() => false,
                () = stop.cancelled() => true,
            };
            if let Err(e) = self.store.save(&self.records()).await {
                tracing::error!(error = %e, "could not persist budget spend; will retry on the next change");
            }
            if stopping {
                return;
            }
        }
    }
}

/// Money set aside for one call. Settle it with the real cost; dropping it
/// unsettled releases it (the call never happened or was abandoned).
#[derive(Debug)]
pub struct Reservation {
    budgets: Arc<Budgets>,
    keys: Vec<String>,
    amount: u64,
    open: bool,
}

impl Reservation {
    pub fn settle(mut self, actual_usd: f64) {
        self.open = false;
        self.budgets.settle(&self.keys, self.amount, to_nanos(actual_usd));
    }

    /// Settles at exactly the amount reserved (for a call whose real cost
    /// cannot be known), and returns it in USD.
    pub fn settle_in_full(mut self) -> f64 {
        self.open = false;
        self.budgets.settle(&self.keys, self.amount, self.amount);
        to_usd(self.amount)
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.open {
            self.budgets.settle(&self.keys, self.amount, 0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::budget_store::MemoryBudgetStore;

    async fn budgets(limit: f64) -> Arc<Budgets> {
        let config = BudgetConfig {
            limit_usd: limit,
            period: Period::Daily,
            alert_threshold: 0.5,
            on_exhausted: Exhausted::Reject,
        };
        Budgets::load(
            HashMap::from([("role:dev".to_owned(), config)]),
            Arc::new(MemoryBudgetStore::default()),
        )
        .await
        .unwrap()
    }

    #[tokio::test]
    async fn reserve_settle_and_release() {
        let b = budgets(1.0).await;
        let keys = vec!["role:dev".to_owned(), "role:unbudgeted".to_owned()];
        let r = b.reserve(&keys, 0.6).unwrap();
        assert!(b.reserve(&keys, 0.6).is_err(), "0.6 + 0.6 reserved exceeds 1.0");
        let mut alerts = b.subscribe_alerts();
        r.settle(0.55);
        assert_eq!(alerts.try_recv().unwrap().key, "role:dev");
        let r2 = b.reserve(&keys, 0.45).unwrap();
        drop(r2); // released, nothing spent
        let status = &b.statuses()[0];
        assert_eq!((status.spent_usd, status.reserved_usd), (0.55, 0.0));
    }

    #[tokio::test]
    async fn huge_limits_and_costs_saturate_instead_of_overflowing() {
        let b = budgets(1e300).await;
        let keys = vec!["role:dev".to_owned()];
        let first = b.reserve(&keys, 1e10).unwrap();
        let second = b.reserve(&keys, 1e10).unwrap();
        first.settle(1e30);
        second.settle(1e10);
        let status = &b.statuses()[0];
        assert_eq!(status.spent_usd, to_usd(u64::MAX));
        assert_eq!(status.reserved_usd, 0.0);

        // A spent-out budget refuses the next call rather than wrapping.
        let small = budgets(1.0).await;
        small.reserve(&keys, 0.5).unwrap().settle(f64::MAX);
        assert!(small.reserve(&keys, 0.5).is_err());
    }
}
