//! What the stored results cost, summed per role.

use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use vapora_shared::{ProjectId, Role};

use super::{Database, StorageError};

/// The results of one role's tasks, summed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RoleSpend {
    pub role: Role,
    /// Tasks holding a result (done, or in review).
    pub tasks: u64,
    pub tokens_in: u64,
    pub tokens_out: u64,
    pub cost_usd: f64,
}

impl Database {
    /// Spend per role of the results of `project`'s tasks (or of every
    /// project in `within`, or of all), most expensive role first. A task's
    /// result is its latest attempt's, so this is what the stored results
    /// cost, not every call ever made (budgets count those).
    pub async fn spend_by_role(
        &self,
        project: Option<ProjectId>,
        within: Option<&[ProjectId]>,
    ) -> Result<Vec<RoleSpend>, StorageError> {
        let mut conditions = vec!["result != NONE"];
        if project.is_some() {
            conditions.push("project_id = $project");
        }
        if within.is_some() {
            conditions.push("project_id IN $within");
        }
        let sql = format!(
            "SELECT role, count() AS tasks, math::sum(result.tokens_in) AS tokens_in, \
             math::sum(result.tokens_out) AS tokens_out, math::sum(result.cost_usd) AS cost_usd \
             FROM task WHERE {} GROUP BY role",
            conditions.join(" AND ")
        );
        let rows = self
            .fetch_all(&sql, json!({ "project": project, "within": within }))
            .await?;
        let mut spend = rows
            .into_iter()
            .map(|row| serde_json::from_value::<RoleSpend>(row).map_err(StorageError::from))
            .collect::<Result<Vec<_>, _>>()?;
        spend.sort_by(|a, b| {
            b.cost_usd
                .total_cmp(&a.cost_usd)
                .then_with(|| a.role.cmp(&b.role))
        });
        Ok(spend)
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use vapora_shared::testing::{new_project, new_task};
    use vapora_shared::{TaskResult, TaskStatus};

    use super::*;

    #[tokio::test]
    async fn sums_the_results_of_each_role_within_a_project() {
        let db = Database::connect("mem://").await.unwrap();
        let project = new_project().into_project(Utc::now()).unwrap();
        let other = new_project().into_project(Utc::now()).unwrap();
        for p in [&project, &other] {
            db.insert_project(p, None).await.unwrap();
        }
        for (project_id, role, cost) in [
            (project.id, "developer", 0.25),
            (project.id, "developer", 0.5),
            (project.id, "reviewer", 1.0),
            (other.id, "developer", 8.0),
        ] {
            let mut task = new_task(project_id).into_task(Utc::now()).unwrap();
            task.role = vapora_shared::Role::parse(role).unwrap();
            task.status = TaskStatus::Done;
            task.result = Some(TaskResult {
                output: "ok".into(),
                provider: "fake".into(),
                model: "m".into(),
                tokens_in: 10,
                tokens_out: 20,
                cost_usd: cost,
                attempts: 1,
                output_truncated: false,
            });
            assert!(db.insert_task(&task, "r").await.unwrap());
        }
        // A task without a result costs nothing and is not counted.
        let waiting = new_task(project.id).into_task(Utc::now()).unwrap();
        assert!(db.insert_task(&waiting, "r").await.unwrap());

        let spend = db.spend_by_role(Some(project.id), None).await.unwrap();
        let summary: Vec<_> = spend
            .iter()
            .map(|s| (s.role.to_string(), s.tasks, s.tokens_out, s.cost_usd))
            .collect();
        assert_eq!(
            summary,
            [
                ("reviewer".to_string(), 1, 20, 1.0),
                ("developer".to_string(), 2, 40, 0.75)
            ]
        );
        let everywhere = db.spend_by_role(None, None).await.unwrap();
        assert_eq!(everywhere[0].cost_usd, 8.75);
        let scoped = db.spend_by_role(None, Some(&[other.id])).await.unwrap();
        assert_eq!(scoped.len(), 1);
        assert_eq!(scoped[0].tasks, 1);
    }
}
