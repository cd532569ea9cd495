//! The API's error type is shared with the query API (`cortex_http::problem`); this module
//! maps the command side's own errors onto it.

pub use cortex_http::problem::{ApiError, FieldError, PROBLEM_JSON, describe};

use crate::aggregate::{DomainError, FieldFault};

impl From<FieldFault> for FieldError {
    fn from(f: FieldFault) -> Self {
        Self { pointer: f.pointer, detail: f.message }
    }
}

impl From<DomainError> for ApiError {
    fn from(e: DomainError) -> Self {
        match e {
            DomainError::NotFound { what } => Self::NotFound { what },
            DomainError::Invalid(faults) => {
                let errors: Vec<FieldError> = faults.into_iter().map(FieldError::from).collect();
                Self::Invalid { detail: describe(&errors), errors }
            }
            DomainError::RuleDoesNotCompile(compile) => {
                let errors: Vec<FieldError> = compile
                    .faults
                    .iter()
                    .map(|f| FieldError {
                        pointer: format!("/{}{}", f.part, f.pointer),
                        detail: f.message.clone(),
                    })
                    .collect();
                Self::Unprocessable {
                    detail: format!("the rule does not compile: {}", describe(&errors)),
                    errors,
                }
            }
            DomainError::Conflict(detail) => Self::Conflict(detail),
        }
    }
}

impl From<crate::handlers::CommandError> for ApiError {
    fn from(e: crate::handlers::CommandError) -> Self {
        use crate::handlers::CommandError as E;
        match e {
            E::Domain(d) => d.into(),
            E::Stale { what, expected, actual } => Self::PreconditionFailed {
                what,
                expected: expected.to_string(),
                actual: actual.map_or_else(|| "none".to_owned(), |r| r.to_string()),
            },
            e @ E::Contended { .. } => Self::Conflict(e.to_string()),
            E::Store(s) => s.into(),

            e @ E::Undecodable { .. } => Self::Unexpected(anyhow::Error::new(e)),
        }
    }
}
