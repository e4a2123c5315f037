//! Workflow templates: named stages, each a task for one role, that run in
//! the order their dependencies give and hand their results on.
//!
//! A stage's prompt is a template. `{{ inputs.NAME }}` is filled with the
//! run's input when the run is created; `{{ stages.NAME.output }}` with that
//! stage's result when the stage that names it is dispatched, so a stage may
//! only name the stages it depends on directly. Input text is inserted as
//! it is: an input that itself reads `{{ stages.x.output }}` is filled in
//! too, which is the input's author's doing and harmless.
//!
//! A template is checked whole before it is used or stored
//! ([`WorkflowTemplate::validate`]): unique names, known dependencies, no
//! cycle, and placeholders that can be filled.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::task::{
    MAX_DESCRIPTION_LEN, MAX_TITLE_LEN, ValidationError, validate_run_settings, validate_text,
};
use crate::{Role, UpstreamPolicy};

/// Most stages one template may have.
pub const MAX_STAGES: usize = 50;
/// Longest template, stage or input name.
pub const MAX_NAME_LEN: usize = 64;

/// A reusable multi-stage piece of work.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkflowTemplate {
    /// Letters, digits, `-` and `_`; what runs name.
    #[schema(min_length = 1, max_length = 64)]
    pub name: String,
    #[serde(default)]
    #[schema(max_length = 65536)]
    pub description: String,
    /// The inputs a run must give, by name.
    #[serde(default)]
    pub inputs: Vec<String>,
    /// At least one; in any order (dependencies decide the run order).
    #[schema(min_items = 1, max_items = 50)]
    pub stages: Vec<StageTemplate>,
}

/// One stage of a template: the task it becomes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StageTemplate {
    /// Unique within the template; letters, digits, `-` and `_`.
    #[schema(min_length = 1, max_length = 64)]
    pub name: String,
    pub role: Role,
    /// The task's title; the stage's name when absent. May use `{{ inputs.NAME }}`.
    #[serde(default)]
    pub title: Option<String>,
    /// The task's description, with `{{ inputs.NAME }}` and
    /// `{{ stages.NAME.output }}` placeholders.
    #[schema(max_length = 65536)]
    pub prompt: String,
    /// Stages that must be done first; stages with none start at once.
    #[serde(default)]
    pub depends_on: Vec<String>,
    /// Wait for a person's approval in `review` before the stage is done.
    #[serde(default)]
    pub requires_approval: bool,
    /// `wait` (the default here) lets a retried failed stage continue the
    /// run; `fail` fails this stage with it.
    #[serde(default = "wait")]
    pub on_upstream_failure: UpstreamPolicy,
    #[serde(default)]
    #[schema(minimum = 1, maximum = 86400)]
    pub timeout_secs: Option<u32>,
    /// Automatic retries, as on a task; the role's default when absent.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 20)]
    pub max_attempts: Option<u32>,
    #[serde(default)]
    #[schema(minimum = 0, maximum = 3600)]
    pub retry_backoff_secs: Option<u32>,
}

fn wait() -> UpstreamPolicy {
    UpstreamPolicy::Wait
}

/// A `{{ … }}` placeholder of a prompt template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placeholder<'a> {
    Input(&'a str),
    StageOutput(&'a str),
}

/// One piece of a template: text as it is, or a placeholder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Piece<'a> {
    Text(&'a str),
    /// The placeholder and its whole source text (`{{ … }}`).
    Slot(Placeholder<'a>, &'a str),
}

/// Splits `template` into text and placeholders; an unclosed `{{` or one
/// that names neither an input nor a stage's output is an error.
fn pieces(template: &str) -> Result<Vec<Piece<'_>>, String> {
    let mut pieces = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find("{{") {
        let Some(len) = rest[open..].find("}}") else {
            return Err("a `{{` is never closed with `}}`".into());
        };
        let source = &rest[open..open + len + 2];
        let inner = source[2..source.len() - 2].trim();
        let placeholder = match inner.split('.').collect::<Vec<_>>()[..] {
            ["inputs", name] if valid_name(name) => Placeholder::Input(name),
            ["stages", name, "output"] if valid_name(name) => Placeholder::StageOutput(name),
            _ => {
                return Err(format!(
                    "`{source}` is not `{{{{ inputs.NAME }}}}` or `{{{{ stages.NAME.output }}}}`"
                ));
            }
        };
        if open > 0 {
            pieces.push(Piece::Text(&rest[..open]));
        }
        pieces.push(Piece::Slot(placeholder, source));
        rest = &rest[open + len + 2..];
    }
    if !rest.is_empty() {
        pieces.push(Piece::Text(rest));
    }
    Ok(pieces)
}

/// The placeholders of a template that [`WorkflowTemplate::validate`]
/// accepted (an invalid one has none).
pub fn placeholders(template: &str) -> Vec<Placeholder<'_>> {
    pieces(template)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|piece| match piece {
            Piece::Slot(placeholder, _) => Some(placeholder),
            Piece::Text(_) => None,
        })
        .collect()
}

/// `template` with each placeholder `fill` has a value for replaced, the
/// others left as they are.
pub fn render<'a>(template: &'a str, fill: impl Fn(Placeholder<'a>) -> Option<&'a str>) -> String {
    let Ok(pieces) = pieces(template) else {
        return template.to_owned();
    };
    let mut out = String::with_capacity(template.len());
    for piece in pieces {
        match piece {
            Piece::Text(text) => out.push_str(text),
            Piece::Slot(placeholder, source) => out.push_str(fill(placeholder).unwrap_or(source)),
        }
    }
    out
}

/// Whether `name` may name a template, a stage or an input.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn invalid(field: &'static str, reason: impl Into<String>) -> ValidationError {
    ValidationError {
        field,
        reason: reason.into(),
    }
}

fn check_name(field: &'static str, name: &str) -> Result<(), ValidationError> {
    if valid_name(name) {
        Ok(())
    } else {
        Err(invalid(
            field,
            format!("{name:?} must be 1 to {MAX_NAME_LEN} letters, digits, `-` or `_`"),
        ))
    }
}

impl WorkflowTemplate {
    /// Checks the template whole: names, limits, dependencies (known, no
    /// cycle) and placeholders (declared inputs, direct dependencies).
    pub fn validate(&self) -> Result<(), ValidationError> {
        check_name("name", &self.name)?;
        validate_text("description", &self.description, MAX_DESCRIPTION_LEN, true)?;
        for input in &self.inputs {
            check_name("inputs", input)?;
        }
        if self.stages.is_empty() || self.stages.len() > MAX_STAGES {
            return Err(invalid(
                "stages",
                format!("must have 1 to {MAX_STAGES} stages, got {}", self.stages.len()),
            ));
        }
        let mut seen = HashMap::new();
        for stage in &self.stages {
            check_name("stages", &stage.name)?;
            if seen.insert(stage.name.as_str(), stage).is_some() {
                return Err(invalid(
                    "stages",
                    format!("two stages are named {:?}", stage.name),
                ));
            }
        }
        for stage in &self.stages {
            self.validate_stage(stage, &seen)?;
        }
        self.run_order().map(|_| ())
    }

    fn validate_stage(
        &self,
        stage: &StageTemplate,
        stages: &HashMap<&str, &StageTemplate>,
    ) -> Result<(), ValidationError> {
        let at = |reason: String| invalid("stages", format!("stage {:?}: {reason}", stage.name));
        validate_text("stages", &stage.prompt, MAX_DESCRIPTION_LEN, false)
            .map_err(|e| at(format!("prompt {}", e.reason)))?;
        if let Some(title) = &stage.title {
            validate_text("stages", title, MAX_TITLE_LEN, false)
                .map_err(|e| at(format!("title {}", e.reason)))?;
        }
        for dependency in &stage.depends_on {
            if !stages.contains_key(dependency.as_str()) {
                return Err(at(format!("depends on {dependency:?}, which is not a stage")));
            }
        }
        let texts = [Some(stage.prompt.as_str()), stage.title.as_deref()];
        for text in texts.into_iter().flatten() {
            for piece in pieces(text).map_err(at)? {
                match piece {
                    Piece::Slot(Placeholder::Input(name), source)
                        if !self.inputs.iter().any(|i| i == name) =>
                    {
                        return Err(at(format!(
                            "{source} names an input the template does not declare"
                        )));
                    }
                    Piece::Slot(Placeholder::StageOutput(name), source)
                        if !stage.depends_on.iter().any(|d| d == name) =>
                    {
                        return Err(at(format!(
                            "{source} names a stage this one does not depend on (add it to depends_on)"
                        )));
                    }
                    _ => {}
                }
            }
        }
        // The bounds a task has, checked here so that a run never fails half-made.
        validate_run_settings(stage.timeout_secs, stage.max_attempts, stage.retry_backoff_secs)
            .map_err(|e| at(e.to_string()))?;
        Ok(())
    }

    /// The stages' indices in an order where each comes after its
    /// dependencies; a cycle is an error naming the stages on it.
    pub fn run_order(&self) -> Result<Vec<usize>, ValidationError> {
        let index: HashMap<&str, usize> = self
            .stages
            .iter()
            .enumerate()
            .map(|(i, s)| (s.name.as_str(), i))
            .collect();
        let mut unmet: Vec<usize> = self.stages.iter().map(|s| s.depends_on.len()).collect();
        let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); self.stages.len()];
        for (i, stage) in self.stages.iter().enumerate() {
            for dependency in &stage.depends_on {
                if let Some(&d) = index.get(dependency.as_str()) {
                    dependents[d].push(i);
                }
            }
        }
        let mut ready: Vec<usize> = (0..self.stages.len()).filter(|&i| unmet[i] == 0).collect();
        let mut order = Vec::with_capacity(self.stages.len());
        while let Some(i) = ready.pop() {
            order.push(i);
            for &dependent in &dependents[i] {
                unmet[dependent] -= 1;
                if unmet[dependent] == 0 {
                    ready.push(dependent);
                }
            }
        }
        if order.len() == self.stages.len() {
            return Ok(order);
        }
        let mut on_cycle: Vec<&str> = (0..self.stages.len())
            .filter(|i| unmet[*i] > 0)
            .map(|i| self.stages[i].name.as_str())
            .collect();
        on_cycle.sort_unstable();
        Err(invalid(
            "stages",
            format!("the dependencies form a cycle through {}", on_cycle.join(", ")),
        ))
    }

    /// Checks a run's inputs: every declared one given, nothing else.
    pub fn check_inputs(&self, inputs: &BTreeMap<String, String>) -> Result<(), ValidationError> {
        if let Some(missing) = self.inputs.iter().find(|i| !inputs.contains_key(*i)) {
            return Err(invalid(
                "inputs",
                format!("template {:?} needs input {missing:?}", self.name),
            ));
        }
        if let Some(unknown) = inputs.keys().find(|k| !self.inputs.contains(k)) {
            return Err(invalid(
                "inputs",
                format!(
                    "template {:?} has no input {unknown:?}; it takes: {}",
                    self.name,
                    self.inputs.join(", ")
                ),
            ));
        }
        for value in inputs.values() {
            validate_text("inputs", value, MAX_DESCRIPTION_LEN, true)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stage(name: &str, deps: &[&str], prompt: &str) -> StageTemplate {
        StageTemplate {
            name: name.into(),
            role: Role::parse("developer").unwrap(),
            title: None,
            prompt: prompt.into(),
            depends_on: deps.iter().map(|d| (*d).to_owned()).collect(),
            requires_approval: false,
            on_upstream_failure: UpstreamPolicy::Wait,
            timeout_secs: None,
            max_attempts: None,
            retry_backoff_secs: None,
        }
    }

    fn template(stages: Vec<StageTemplate>) -> WorkflowTemplate {
        WorkflowTemplate {
            name: "t".into(),
            description: String::new(),
            inputs: vec!["feature".into()],
            stages,
        }
    }

    #[test]
    fn stages_run_after_their_dependencies() {
        let t = template(vec![
            stage("review", &["build", "test"], "{{ stages.build.output }}"),
            stage("build", &["design"], "{{stages.design.output}}"),
            stage("test", &["design"], "x"),
            stage("design", &[], "{{ inputs.feature }}"),
        ]);
        t.validate().unwrap();
        let order: Vec<&str> = t
            .run_order()
            .unwrap()
            .into_iter()
            .map(|i| t.stages[i].name.as_str())
            .collect();
        let pos = |n: &str| order.iter().position(|s| *s == n).unwrap();
        assert!(pos("design") < pos("build") && pos("design") < pos("test"));
        assert!(pos("build") < pos("review") && pos("test") < pos("review"));
    }

    #[test]
    fn a_cycle_is_refused_with_its_stages_named() {
        let t = template(vec![
            stage("a", &["c"], "x"),
            stage("b", &["a"], "x"),
            stage("c", &["b"], "x"),
            stage("d", &[], "x"),
        ]);
        let error = t.validate().unwrap_err();
        assert_eq!(error.reason, "the dependencies form a cycle through a, b, c");
    }

    #[test]
    fn placeholders_must_name_a_declared_input_or_a_direct_dependency() {
        let undeclared = template(vec![stage("a", &[], "{{ inputs.other }}")]);
        assert!(
            undeclared
                .validate()
                .unwrap_err()
                .reason
                .contains("does not declare")
        );
        let indirect = template(vec![
            stage("a", &[], "x"),
            stage("b", &["a"], "x"),
            stage("c", &["b"], "{{ stages.a.output }}"),
        ]);
        assert!(
            indirect
                .validate()
                .unwrap_err()
                .reason
                .contains("does not depend on")
        );
        let unknown_dep = template(vec![stage("a", &["zz"], "x")]);
        assert!(unknown_dep.validate().unwrap_err().reason.contains("not a stage"));
        let garbled = template(vec![stage("a", &[], "{{ nope }}")]);
        assert!(garbled.validate().is_err());
        let unclosed = template(vec![stage("a", &[], "{{ inputs.feature")]);
        assert!(unclosed.validate().is_err());
        let twice = template(vec![stage("a", &[], "x"), stage("a", &[], "y")]);
        assert!(twice.validate().unwrap_err().reason.contains("two stages"));
    }

    #[test]
    fn render_fills_what_it_knows_and_keeps_the_rest() {
        let text = "Do {{ inputs.feature }} after {{stages.design.output}}.";
        let inputs_only = render(text, |p| match p {
            Placeholder::Input("feature") => Some("login"),
            _ => None,
        });
        assert_eq!(inputs_only, "Do login after {{stages.design.output}}.");
        let both = render(&inputs_only, |p| match p {
            Placeholder::StageOutput("design") => Some("the design"),
            _ => None,
        });
        assert_eq!(both, "Do login after the design.");
    }

    #[test]
    fn inputs_are_checked_against_the_declared_ones() {
        let t = template(vec![stage("a", &[], "x")]);
        let mut inputs = BTreeMap::new();
        assert!(
            t.check_inputs(&inputs)
                .unwrap_err()
                .reason
                .contains("needs input")
        );
        inputs.insert("feature".to_owned(), "login".to_owned());
        t.check_inputs(&inputs).unwrap();
        inputs.insert("extra".to_owned(), "x".to_owned());
        assert!(t.check_inputs(&inputs).unwrap_err().reason.contains("no input"));
    }
}
