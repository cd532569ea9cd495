//! Policy effects: what happens to a resource the rule matches.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The effect a compiled policy reports. `modify` and `append` are accepted and reported as
/// `audit`: PolicyCortex records compliance, it does not change resources.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Effect {
    Audit,
    Deny,
    /// Never evaluated.
    Disabled,
}

impl Effect {
    /// Reads an effect name (case-insensitive, as Azure accepts `Audit`, `audit`, `AUDIT`).
    pub(crate) fn parse(name: &str) -> Result<Effect, String> {
        match name.to_ascii_lowercase().as_str() {
            "audit" | "modify" | "append" => Ok(Effect::Audit),
            "deny" => Ok(Effect::Deny),
            "disabled" => Ok(Effect::Disabled),
            "auditifnotexists" | "deployifnotexists" | "denyaction" | "manual" => Err(format!(
                "effect '{name}' is not supported (supported: audit, deny, disabled, modify, append)"
            )),
            _ => Err(format!("unknown effect '{name}'")),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Effect::Audit => "audit",
            Effect::Deny => "deny",
            Effect::Disabled => "disabled",
        }
    }
}

impl fmt::Display for Effect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modify_and_append_are_reported_as_audit() {
        assert_eq!(Effect::parse("Modify"), Ok(Effect::Audit));
        assert_eq!(Effect::parse("append"), Ok(Effect::Audit));
    }

    #[test]
    fn effect_names_are_case_insensitive() {
        assert_eq!(Effect::parse("DENY"), Ok(Effect::Deny));
        assert_eq!(Effect::parse("Disabled"), Ok(Effect::Disabled));
    }

    #[test]
    fn existence_effects_and_nonsense_are_refused() {
        assert!(Effect::parse("deployIfNotExists").is_err());
        assert!(Effect::parse("explode").is_err());
    }
}
