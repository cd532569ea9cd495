//! Whether a policy applies to a resource at all, following Azure's applicability logic for
//! audit/deny/modify/append effects: only the `type`, `name` and `kind` conditions of the
//! `if` block are evaluated, every other condition is taken as whatever would let the rule
//! match (true, or false under a `not`). If the rule cannot match, the resource is
//! `not_applicable` and leaves the policy's totals.
//!
//! Azure's special cases are followed:
//! * only `kind` and/or `name` conditions (no `type`, nothing else): applies to everything;
//! * only `type` with `name` or `kind` (nothing else): only `type` conditions count;
//! * `type`, `name`/`kind` and other conditions: all three count;
//! * a rule with a `location` condition never applies to subscriptions;
//! * resources of the `Microsoft.Resources` provider other than subscriptions and resource
//!   groups (deployments, …) are never evaluated.

use crate::condition::Lhs;
use crate::condition::{Node, Selector};
use crate::evaluate::Evaluator;
use crate::field::FieldRef;
use crate::resource::ResourceContext;

/// Which selector conditions decide applicability for one rule, worked out at compile time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Applicability {
    by_type: bool,
    by_name: bool,
    by_kind: bool,
    has_location_condition: bool,
}

impl Applicability {
    pub(crate) fn analyse(root: &Node) -> Self {
        let (mut types, mut names, mut kinds, mut others, mut location) = (false, false, false, false, false);
        root.for_each_leaf(&mut |leaf| {
            match leaf.selector {
                Some(Selector::Type) => types = true,
                Some(Selector::Name) => names = true,
                Some(Selector::Kind) => kinds = true,
                None => others = true,
            }
            if matches!(leaf.lhs, Lhs::Field(FieldRef::Location)) {
                location = true;
            }
        });
        let (by_type, by_name, by_kind) = match (types, others) {
            (false, false) => (false, false, false),
            (true, false) => (true, false, false),
            _ => (types, names, kinds),
        };
        Self { by_type, by_name, by_kind, has_location_condition: location }
    }

    /// Whether the rule can apply to the resource.
    pub(crate) fn applies<'a>(&self, root: &'a Node, ctx: &'a ResourceContext<'a>) -> bool {
        if self.has_location_condition && ctx.is_subscription() {
            return false;
        }
        let provider_resource =
            ctx.resource_type.get(..20).is_some_and(|p| p.eq_ignore_ascii_case("Microsoft.Resources/"));
        if provider_resource && !ctx.is_subscription() && !ctx.is_resource_group() {
            return false;
        }
        if !(self.by_type || self.by_name || self.by_kind) {
            return true;
        }
        self.possible(root, &mut Evaluator::new(ctx)).0
    }

    fn counts(&self, selector: Option<Selector>) -> bool {
        match selector {
            Some(Selector::Type) => self.by_type,
            Some(Selector::Name) => self.by_name,
            Some(Selector::Kind) => self.by_kind,
            None => false,
        }
    }

    /// (can be true, can be false) with non-deciding conditions left open.
    fn possible<'a>(&self, node: &'a Node, ev: &mut Evaluator<'a>) -> (bool, bool) {
        match node {
            Node::AllOf(children) => children.iter().fold((true, false), |(t, f), c| {
                let (ct, cf) = self.possible(c, ev);
                (t && ct, f || cf)
            }),
            Node::AnyOf(children) => children.iter().fold((false, true), |(t, f), c| {
                let (ct, cf) = self.possible(c, ev);
                (t || ct, f && cf)
            }),
            Node::Not(child) => {
                let (t, f) = self.possible(child, ev);
                (f, t)
            }
            Node::Leaf(leaf) if self.counts(leaf.selector) => match ev.leaf(leaf) {
                Ok(b) => (b, !b),
                Err(_) => (true, true),
            },
            Node::Leaf(_) => (true, true),
        }
    }
}
