//! One method per API route the CLI uses, with the route's request and
//! answer types; the shapes are those of `vapora-backend`'s handlers.

use chrono::{DateTime, Utc};
use reqwest::Method;
use serde::Serialize;
use serde_json::json;
use vapora_shared::{
    Agent, NewSchedule, NewTask, NewWorkflow, Project, ProjectId, Schedule, ScheduleId, Task, TaskId,
    WorkflowId, WorkflowRun,
};

use super::wire::{Board, BudgetReport, IssuedKey, KeyInfo, Page, TemplateInfo};
use super::{ApiClient, ApiError, Reply, query};

/// Filters and paging of `GET /api/v1/tasks`.
#[derive(Debug, Default)]
pub struct TaskQuery {
    pub project: Option<ProjectId>,
    pub status: Option<String>,
    pub role: Option<String>,
    pub schedule: Option<ScheduleId>,
    pub limit: Option<u16>,
    pub cursor: Option<String>,
}

/// Filters and paging of `GET /api/v1/workflows`.
#[derive(Debug, Default)]
pub struct WorkflowQuery {
    pub project: Option<ProjectId>,
    pub status: Option<String>,
    pub schedule: Option<ScheduleId>,
    pub limit: Option<u16>,
    pub cursor: Option<String>,
}

/// Body of `POST /api/v1/keys`; `role` is `admin`, `member` or `viewer`.
#[derive(Debug, Serialize)]
pub struct KeyRequest {
    pub name: String,
    pub role: String,
    pub projects: Vec<ProjectId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
}

fn page_query(limit: Option<u16>, cursor: Option<String>) -> Vec<(&'static str, String)> {
    query([("limit", limit.map(|l| l.to_string())), ("cursor", cursor)])
}

impl ApiClient {
    pub async fn create_project(&self, name: &str, description: &str) -> Result<Reply<Project>, ApiError> {
        let body = json!({ "name": name, "description": description });
        let url = self.url(&["projects"], &[]);
        self.call(Method::POST, url, Some(&body)).await
    }

    pub async fn list_projects(
        &self,
        limit: Option<u16>,
        cursor: Option<String>,
    ) -> Result<Reply<Page<Project>>, ApiError> {
        let url = self.url(&["projects"], &page_query(limit, cursor));
        self.call(Method::GET, url, None).await
    }

    pub async fn get_project(&self, id: ProjectId) -> Result<Reply<Project>, ApiError> {
        let url = self.url(&["projects", &id.to_string()], &[]);
        self.call(Method::GET, url, None).await
    }

    pub async fn board(&self, id: ProjectId, limit: Option<u16>) -> Result<Reply<Board>, ApiError> {
        let q = query([("limit", limit.map(|l| l.to_string()))]);
        let url = self.url(&["projects", &id.to_string(), "board"], &q);
        self.call(Method::GET, url, None).await
    }

    /// `204 No Content` on success.
    pub async fn delete_project(&self, id: ProjectId) -> Result<(), ApiError> {
        let url = self.url(&["projects", &id.to_string()], &[]);
        self.send(Method::DELETE, url, None).await.map(drop)
    }

    pub async fn create_task(&self, task: &NewTask) -> Result<Reply<Task>, ApiError> {
        let body = serde_json::to_value(task).expect("a NewTask always serializes");
        let url = self.url(&["tasks"], &[]);
        self.call(Method::POST, url, Some(&body)).await
    }

    pub async fn list_tasks(&self, q: TaskQuery) -> Result<Reply<Page<Task>>, ApiError> {
        let mut pairs = query([
            ("project_id", q.project.map(|p| p.to_string())),
            ("status", q.status),
            ("role", q.role),
            ("schedule_id", q.schedule.map(|s| s.to_string())),
        ]);
        pairs.extend(page_query(q.limit, q.cursor));
        let url = self.url(&["tasks"], &pairs);
        self.call(Method::GET, url, None).await
    }

    pub async fn get_task(&self, id: TaskId) -> Result<Reply<Task>, ApiError> {
        let url = self.url(&["tasks", &id.to_string()], &[]);
        self.call(Method::GET, url, None).await
    }

    /// `POST /api/v1/tasks/{id}/<action>`: `cancel`, `retry` or `approve`.
    pub async fn task_action(&self, id: TaskId, action: &str) -> Result<Reply<Task>, ApiError> {
        let url = self.url(&["tasks", &id.to_string(), action], &[]);
        self.call(Method::POST, url, None).await
    }

    /// `POST /api/v1/tasks/{id}/reject` with `comment`.
    pub async fn reject_task(&self, id: TaskId, comment: &str) -> Result<Reply<Task>, ApiError> {
        let url = self.url(&["tasks", &id.to_string(), "reject"], &[]);
        let body = serde_json::json!({ "comment": comment });
        self.call(Method::POST, url, Some(&body)).await
    }

    pub async fn create_workflow(&self, new: &NewWorkflow) -> Result<Reply<WorkflowRun>, ApiError> {
        let body = serde_json::to_value(new).expect("a NewWorkflow always serializes");
        let url = self.url(&["workflows"], &[]);
        self.call(Method::POST, url, Some(&body)).await
    }

    pub async fn list_workflows(&self, q: WorkflowQuery) -> Result<Reply<Page<WorkflowRun>>, ApiError> {
        let mut pairs = query([
            ("project_id", q.project.map(|p| p.to_string())),
            ("status", q.status),
            ("schedule_id", q.schedule.map(|s| s.to_string())),
        ]);
        pairs.extend(page_query(q.limit, q.cursor));
        let url = self.url(&["workflows"], &pairs);
        self.call(Method::GET, url, None).await
    }

    pub async fn get_workflow(&self, id: WorkflowId) -> Result<Reply<WorkflowRun>, ApiError> {
        let url = self.url(&["workflows", &id.to_string()], &[]);
        self.call(Method::GET, url, None).await
    }

    pub async fn cancel_workflow(&self, id: WorkflowId) -> Result<Reply<WorkflowRun>, ApiError> {
        let url = self.url(&["workflows", &id.to_string(), "cancel"], &[]);
        self.call(Method::POST, url, None).await
    }

    /// `POST /api/v1/workflows/{id}/stages/{stage}/retry`: the run, the
    /// stage queued again.
    pub async fn retry_stage(&self, id: WorkflowId, stage: &str) -> Result<Reply<WorkflowRun>, ApiError> {
        let url = self.url(&["workflows", &id.to_string(), "stages", stage, "retry"], &[]);
        self.call(Method::POST, url, None).await
    }

    /// Every template; not paged.
    pub async fn list_templates(&self) -> Result<Reply<Vec<TemplateInfo>>, ApiError> {
        let url = self.url(&["workflow-templates"], &[]);
        self.call(Method::GET, url, None).await
    }

    pub async fn get_template(&self, name: &str) -> Result<Reply<TemplateInfo>, ApiError> {
        let url = self.url(&["workflow-templates", name], &[]);
        self.call(Method::GET, url, None).await
    }

    pub async fn create_schedule(&self, new: &NewSchedule) -> Result<Reply<Schedule>, ApiError> {
        let body = serde_json::to_value(new).expect("a NewSchedule always serializes");
        let url = self.url(&["schedules"], &[]);
        self.call(Method::POST, url, Some(&body)).await
    }

    /// Every schedule the key may see (of one project); not paged.
    pub async fn list_schedules(&self, project: Option<ProjectId>) -> Result<Reply<Vec<Schedule>>, ApiError> {
        let q = query([("project_id", project.map(|p| p.to_string()))]);
        let url = self.url(&["schedules"], &q);
        self.call(Method::GET, url, None).await
    }

    pub async fn get_schedule(&self, id: ScheduleId) -> Result<Reply<Schedule>, ApiError> {
        let url = self.url(&["schedules", &id.to_string()], &[]);
        self.call(Method::GET, url, None).await
    }

    /// The deleted schedule, as it was.
    pub async fn delete_schedule(&self, id: ScheduleId) -> Result<Reply<Schedule>, ApiError> {
        let url = self.url(&["schedules", &id.to_string()], &[]);
        self.call(Method::DELETE, url, None).await
    }

    pub async fn list_agents(
        &self,
        limit: Option<u16>,
        cursor: Option<String>,
    ) -> Result<Reply<Page<Agent>>, ApiError> {
        let url = self.url(&["agents"], &page_query(limit, cursor));
        self.call(Method::GET, url, None).await
    }

    pub async fn budgets(&self, project: Option<ProjectId>) -> Result<Reply<BudgetReport>, ApiError> {
        let url = self.url(
            &["budgets"],
            &query([("project_id", project.map(|p| p.to_string()))]),
        );
        self.call(Method::GET, url, None).await
    }

    pub async fn create_key(&self, key: &KeyRequest) -> Result<Reply<IssuedKey>, ApiError> {
        let body = serde_json::to_value(key).expect("a KeyRequest always serializes");
        let url = self.url(&["keys"], &[]);
        self.call(Method::POST, url, Some(&body)).await
    }

    pub async fn list_keys(
        &self,
        limit: Option<u16>,
        cursor: Option<String>,
    ) -> Result<Reply<Page<KeyInfo>>, ApiError> {
        let url = self.url(&["keys"], &page_query(limit, cursor));
        self.call(Method::GET, url, None).await
    }

    /// `DELETE /api/v1/keys/{id}` revokes; the answer is the revoked key.
    pub async fn revoke_key(&self, id: &str) -> Result<Reply<KeyInfo>, ApiError> {
        let url = self.url(&["keys", id], &[]);
        self.call(Method::DELETE, url, None).await
    }

    /// The caller's own key (`GET /api/v1/me`).
    pub async fn me(&self) -> Result<Reply<KeyInfo>, ApiError> {
        let url = self.url(&["me"], &[]);
        self.call(Method::GET, url, None).await
    }
}
