//! What an agent is told about a task besides its title and description:
//! the results of the tasks it depends on (placed by the description's
//! `{{ stages.NAME.output }}` or given as context sections), and, after a
//! rejection, the rejected answer with the reviewer's comment.
//!
//! Built from the task as stored, the same way wherever the task runs: in
//! the backend's own workers or in an agent server across JetStream.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::workflow::{Placeholder, placeholders, render};
use crate::{Role, Task, TaskId};

/// A finished dependency's result, as its dependent's agent sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct UpstreamResult {
    pub task_id: TaskId,
    pub title: String,
    pub role: Role,
    pub output: String,
    /// Its workflow stage, when it is one: what `{{ stages.NAME.output }}`
    /// in the dependent's prompt names.
    #[serde(default)]
    pub stage: Option<String>,
}

/// A result in review that a person rejected, and their comment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Rejection {
    /// The attempt whose result was rejected.
    pub attempt: u32,
    pub comment: String,
    /// That attempt's output, as the model wrote it.
    pub previous_output: String,
    pub at: DateTime<Utc>,
}

/// Body of `POST /api/v1/tasks/{id}/reject`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RejectTask {
    /// What to change; the next attempt's prompt carries it. Not blank.
    #[schema(min_length = 1, max_length = 16384)]
    pub comment: String,
}

/// Something the model should know besides the task itself, such as a
/// rejected output and the reviewer's comment: a heading and its text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PromptContext {
    pub label: String,
    pub text: String,
}

impl Task {
    /// The description as the agent gets it: a workflow stage's
    /// `{{ stages.NAME.output }}` placeholders filled with its dependencies'
    /// results.
    pub fn prompt_description(&self) -> Cow<'_, str> {
        if self.workflow.is_none() || self.upstream.is_empty() {
            return Cow::Borrowed(&self.description);
        }
        Cow::Owned(render(&self.description, |placeholder| match placeholder {
            Placeholder::StageOutput(stage) => self
                .upstream
                .iter()
                .find(|done| done.stage.as_deref() == Some(stage))
                .map(|done| done.output.as_str()),
            Placeholder::Input(_) => None,
        }))
    }

    /// What the next attempt's prompt carries besides title and
    /// description.
    pub fn prompt_context(&self) -> Vec<PromptContext> {
        let named = placeholders(&self.description);
        let mut context: Vec<PromptContext> = self
            .upstream
            .iter()
            // A result the description places itself is not repeated.
            .filter(|done| {
                done.stage
                    .as_deref()
                    .is_none_or(|stage| !named.contains(&Placeholder::StageOutput(stage)))
            })
            .map(|done| PromptContext {
                label: format!(
                    "Result of the {} task \"{}\", which this task builds on",
                    done.role, done.title
                ),
                text: done.output.clone(),
            })
            .collect();
        let Some(rejection) = &self.rejection else {
            return context;
        };
        context.extend([
            PromptContext {
                label: format!(
                    "Your previous answer (attempt {}), which was rejected",
                    rejection.attempt
                ),
                text: rejection.previous_output.clone(),
            },
            PromptContext {
                label: "The reviewer's comment: address it in a new answer".into(),
                text: rejection.comment.clone(),
            },
        ]);
        context
    }
}
