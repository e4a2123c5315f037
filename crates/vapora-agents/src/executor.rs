//! Runs one task attempt through a language model.

use std::borrow::Cow;

use futures::StreamExt;
use vapora_llm_router::{ChatMessage, ChatRequest, LlmClient, LlmError, StreamEvent};
use vapora_shared::wire::TaskAttempt;
use vapora_shared::{PromptContext, Role, Task, TaskResult};

use crate::RoleCatalog;

#[derive(Debug, thiserror::Error)]
pub enum ExecutionError {
    #[error("no system prompt is configured for role {0}")]
    UnknownRole(String),
    #[error(transparent)]
    Llm(#[from] LlmError),
    #[error("the agent failed internally while running the attempt")]
    Panicked,
}

/// What an agent is asked to do: the part of a task (or of a task attempt
/// received over NATS) that goes into the prompt.
#[derive(Debug, Clone)]
pub struct Assignment<'a> {
    pub role: &'a Role,
    pub title: &'a str,
    pub description: Cow<'a, str>,
    /// Sections after the description (see [`PromptContext`]).
    pub context: Cow<'a, [PromptContext]>,
}

impl<'a> From<&'a Task> for Assignment<'a> {
    fn from(task: &'a Task) -> Self {
        Self {
            role: &task.role,
            title: &task.title,
            description: task.prompt_description(),
            context: Cow::Owned(task.prompt_context()),
        }
    }
}

impl<'a> From<&'a TaskAttempt> for Assignment<'a> {
    fn from(attempt: &'a TaskAttempt) -> Self {
        Self {
            role: &attempt.role,
            title: &attempt.title,
            description: Cow::Borrowed(&attempt.description),
            context: Cow::Borrowed(&attempt.context),
        }
    }
}

/// The chat request an agent sends for `task`: the role's system prompt,
/// then the title, the description and each context section under its
/// label.
pub fn build_request(roles: &RoleCatalog, task: Assignment<'_>) -> Result<ChatRequest, ExecutionError> {
    let system = roles
        .system_prompt(task.role)
        .ok_or_else(|| ExecutionError::UnknownRole(task.role.to_string()))?;
    let mut user = format!("Task: {}", task.title);
    if !task.description.trim().is_empty() {
        user.push_str("\n\n");
        user.push_str(&task.description);
    }
    for section in task.context.iter() {
        user.push_str(&format!("\n\n## {}\n\n{}", section.label, section.text));
    }
    Ok(ChatRequest {
        messages: vec![ChatMessage::system(system), ChatMessage::user(user)],
        role: Some(task.role.to_string()),
        ..ChatRequest::default()
    })
}

/// Runs `task` and returns its result. Every streamed chunk is handed to
/// `on_chunk` as it arrives. Dropping the future aborts the call (the stream
/// is dropped, which closes the provider connection).
pub async fn execute(
    llm: &dyn LlmClient,
    roles: &RoleCatalog,
    task: Assignment<'_>,
    mut on_chunk: impl FnMut(&str) + Send,
) -> Result<TaskResult, ExecutionError> {
    let request = build_request(roles, task)?;
    let mut stream = llm.stream(&request).await?;
    while let Some(event) = stream.next().await {
        match event? {
            StreamEvent::Delta(text) => on_chunk(&text),
            StreamEvent::Finished(done) => {
                return Ok(TaskResult {
                    output: done.text,
                    provider: done.provider,
                    model: done.model,
                    tokens_in: done.usage.input_tokens,
                    tokens_out: done.usage.output_tokens,
                    cost_usd: done.cost_usd,
                    attempts: done.attempts,
                    output_truncated: false,
                });
            }
        }
    }
    Err(ExecutionError::Llm(LlmError::Truncated {
        provider: llm.provider().to_owned(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prompt_carries_each_context_section_after_the_description() {
        let role = Role::parse("developer").unwrap();
        let context = [
            PromptContext {
                label: "Your previous answer (attempt 1), which was rejected".into(),
                text: "fn main() {}".into(),
            },
            PromptContext {
                label: "The reviewer's comment: address it in a new answer".into(),
                text: "Print a greeting.".into(),
            },
        ];
        let assignment = Assignment {
            role: &role,
            title: "Write main",
            description: Cow::Borrowed("In Rust."),
            context: Cow::Borrowed(&context),
        };
        let request = build_request(&RoleCatalog::builtin(), assignment).unwrap();
        assert_eq!(
            request.messages[1].content,
            "Task: Write main\n\nIn Rust.\n\n\
             ## Your previous answer (attempt 1), which was rejected\n\nfn main() {}\n\n\
             ## The reviewer's comment: address it in a new answer\n\nPrint a greeting."
        );
    }
}
