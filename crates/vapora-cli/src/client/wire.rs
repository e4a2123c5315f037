//! Answer bodies the client reads that `vapora-shared` does not define:
//! they live in the backend crate (pages, keys, budgets, the event
//! envelope), which a client should not link. Unknown fields are ignored,
//! so a newer server with more fields still works.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;
use vapora_shared::{Project, ProjectId, Task, TaskStatus};

/// One page of a list endpoint.
#[derive(Debug, Deserialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// `GET /api/v1/projects/{id}/board`.
#[derive(Debug, Deserialize)]
pub struct Board {
    pub project: Project,
    pub columns: Vec<BoardColumn>,
}

#[derive(Debug, Deserialize)]
pub struct BoardColumn {
    pub status: TaskStatus,
    pub tasks: Vec<Task>,
    /// The column has more tasks than shown.
    pub next_cursor: Option<String>,
}

/// A key as the API shows it: everything but the secret.
#[derive(Debug, Deserialize)]
pub struct KeyInfo {
    pub id: String,
    pub name: String,
    pub role: String,
    pub projects: Vec<ProjectId>,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// `POST /api/v1/keys`: the key with its secret, shown this once.
#[derive(Debug, Deserialize)]
pub struct IssuedKey {
    pub key: String,
    #[serde(flatten)]
    pub info: KeyInfo,
}

/// `GET /api/v1/budgets`.
#[derive(Debug, Deserialize)]
pub struct BudgetReport {
    pub spend: Vec<RoleSpend>,
    pub budgets: Vec<Budget>,
}

/// What one role's tasks have used.
#[derive(Debug, Deserialize)]
pub struct RoleSpend {
    pub role: String,
    pub tasks: u64,
    pub tokens_in: u64,
    pub tokens_out: u64,
    pub cost_usd: f64,
}

/// One configured budget and where it stands (the router's
/// `BudgetStatus`).
#[derive(Debug, Deserialize)]
pub struct Budget {
    /// What the budget limits, e.g. `provider:openai`.
    pub key: String,
    pub limit_usd: f64,
    pub spent_usd: f64,
    pub reserved_usd: f64,
    /// `daily`, `weekly` or `monthly`.
    pub period: String,
    pub period_start: DateTime<Utc>,
    pub period_end: DateTime<Utc>,
    pub on_exhausted: OnExhausted,
}

/// What the router does with a call that does not fit the budget:
/// `{"action":"reject"}` or `{"action":"downgrade","route":"…"}`.
#[derive(Debug, Deserialize)]
pub struct OnExhausted {
    pub action: String,
    pub route: Option<String>,
}

/// A workflow template as the CLI shows it. `vapora-shared`'s
/// `WorkflowTemplate` refuses unknown fields (it also reads templates
/// files), so a newer server's template would not decode; and the prompts
/// are not shown.
#[derive(Debug, Deserialize)]
pub struct TemplateInfo {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub inputs: Vec<String>,
    pub stages: Vec<TemplateStage>,
}

#[derive(Debug, Deserialize)]
pub struct TemplateStage {
    pub name: String,
    pub role: String,
    #[serde(default)]
    pub depends_on: Vec<String>,
    #[serde(default)]
    pub requires_approval: bool,
}

/// The `data:` of one server-sent event: `{"seq":17,"type":…,"data":…}`.
/// `data` stays JSON: only the types a command acts on are decoded, so
/// that event types added later pass through `vapora events` untouched.
#[derive(Debug, Deserialize)]
pub struct Envelope {
    pub seq: Option<u64>,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub data: Value,
}

/// `data` of a `resync` event: events after `since` are gone for good.
#[derive(Debug, Deserialize)]
pub struct Resync {
    pub since: Option<u64>,
}
