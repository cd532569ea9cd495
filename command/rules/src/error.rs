//! Compile faults: every problem found in a policy, each with where it is and what is wrong.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Which part of the policy input a fault points into.
///
/// The names match the command API body (`rule`, `parameters`, `parameter_values`, `mode`),
/// so the HTTP layer can name the offending field without translating.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultPart {
    /// The `policyRule` (`if` / `then`).
    Rule,
    /// The parameter definitions.
    Parameters,
    /// The assignment's parameter values.
    ParameterValues,
    /// The policy mode.
    Mode,
}

impl fmt::Display for FaultPart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FaultPart::Rule => "rule",
            FaultPart::Parameters => "parameters",
            FaultPart::ParameterValues => "parameter_values",
            FaultPart::Mode => "mode",
        })
    }
}

/// One reason a policy does not compile.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CompileFault {
    /// The part of the input the pointer is relative to.
    pub part: FaultPart,
    /// RFC 6901 JSON pointer into that part, e.g. `/if/allOf/1/field` (empty for the whole part).
    pub pointer: String,
    /// What is wrong, in lower case.
    pub message: String,
}

impl CompileFault {
    pub(crate) fn new(part: FaultPart, pointer: &str, message: impl Into<String>) -> Self {
        Self { part, pointer: pointer.to_owned(), message: message.into() }
    }
}

impl fmt::Display for CompileFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pointer = if self.pointer.is_empty() { "" } else { &self.pointer };
        write!(f, "{}{}: {}", self.part, pointer, self.message)
    }
}

/// All the faults found in a policy that does not compile (never empty).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("the policy does not compile: {}", list(.faults))]
pub struct CompileErrors {
    /// Every fault, in a stable order (object keys as the input map iterates them, array
    /// items by index), so the same input always gives the same list.
    pub faults: Vec<CompileFault>,
}

fn list(faults: &[CompileFault]) -> String {
    faults.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
}

/// Appends one JSON-pointer token, escaped as RFC 6901 requires.
pub(crate) fn pointer_join(base: &str, token: &str) -> String {
    let mut out = String::with_capacity(base.len() + token.len() + 1);
    out.push_str(base);
    out.push('/');
    for c in token.chars() {
        match c {
            '~' => out.push_str("~0"),
            '/' => out.push_str("~1"),
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointer_tokens_escape_tilde_and_slash() {
        assert_eq!(pointer_join("/if", "a/b~c"), "/if/a~1b~0c");
    }

    #[test]
    fn compile_errors_display_every_fault() {
        let errors = CompileErrors {
            faults: vec![
                CompileFault::new(FaultPart::Rule, "/if/equalz", "unknown operator 'equalz'"),
                CompileFault::new(FaultPart::Mode, "", "unknown mode 'x'"),
            ],
        };
        assert_eq!(
            errors.to_string(),
            "the policy does not compile: rule/if/equalz: unknown operator 'equalz'; mode: unknown mode 'x'"
        );
    }
}
