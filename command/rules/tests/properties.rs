//! Property tests: random rules and resources never panic or hang, and compilation is a
//! deterministic function of its input.

mod common;

use cortex_rules::{Policy, PolicyDefinitionInput, Resource, ResourceContext};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

const FIELDS: &[&str] = &[
    "name",
    "type",
    "location",
    "kind",
    "id",
    "fullName",
    "tags",
    "tags.env",
    "tags['cost-center']",
    "Microsoft.Storage/storageAccounts/minimumTlsVersion",
    "Microsoft.Storage/storageAccounts/sku.name",
    "Microsoft.Storage/storageAccounts/networkAcls.ipRules[*].action",
    "Microsoft.Network/networkSecurityGroups/securityRules[*].access",
    "Microsoft.Network/networkSecurityGroups/securityRules[*]",
    "colour",
];

const OPERATORS: &[&str] = &[
    "equals",
    "notEquals",
    "like",
    "notLike",
    "match",
    "notMatch",
    "matchInsensitively",
    "notMatchInsensitively",
    "contains",
    "notContains",
    "in",
    "notIn",
    "containsKey",
    "notContainsKey",
    "less",
    "lessOrEquals",
    "greater",
    "greaterOrEquals",
    "exists",
    "bogus",
];

const EXPRESSIONS: &[&str] = &[
    "[field('name')]",
    "[int(field('name'))]",
    "[length(field('Microsoft.Network/networkSecurityGroups/securityRules[*]'))]",
    "[concat(resourceGroup().name, '-', subscription().subscriptionId)]",
    "[if(empty(field('kind')), 'none', toLower(field('kind')))]",
    "[first(split(field('location'), 's'))]",
    "[substring(field('name'), 0, 3)]",
    "[parameters('p')]",
    "[current()]",
    "[resourceGroup().tags['env']]",
    "[concat('a'",
    "[add(1, 'x')]",
];

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-5i64..5).prop_map(|n| json!(n)),
        "[a-zA-Z0-9 *#?.-]{0,8}".prop_map(Value::String),
        proptest::sample::select(EXPRESSIONS).prop_map(|e| json!(e)),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map("[a-zA-Z]{1,6}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn leaf() -> impl Strategy<Value = Value> {
    let lhs = prop_oneof![
        proptest::sample::select(FIELDS).prop_map(|f| ("field", json!(f))),
        scalar().prop_map(|v| ("value", v)),
        (proptest::sample::select(FIELDS), proptest::option::of(json_value())).prop_map(|(f, w)| (
            "count",
            match w {
                Some(w) => json!({"field": f, "where": {"field": f, "equals": w}}),
                None => json!({"field": f}),
            }
        )),
    ];
    (lhs, proptest::sample::select(OPERATORS), json_value()).prop_map(|((side, l), op, r)| {
        let mut m = Map::new();
        m.insert(side.to_owned(), l);
        m.insert(op.to_owned(), r);
        Value::Object(m)
    })
}

fn condition() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(4, 32, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(|c| json!({"allOf": c})),
            proptest::collection::vec(inner.clone(), 0..4).prop_map(|c| json!({"anyOf": c})),
            inner.prop_map(|c| json!({"not": c})),
        ]
    })
}

fn rule() -> impl Strategy<Value = Value> {
    let effect =
        proptest::sample::select(&["audit", "deny", "disabled", "modify", "[parameters('p')]", "nope"][..]);
    prop_oneof![
        9 => (condition(), effect).prop_map(|(c, e)| json!({"if": c, "then": {"effect": e}})),
        1 => json_value(),
    ]
}

fn input() -> impl Strategy<Value = PolicyDefinitionInput> {
    (rule(), proptest::option::of(scalar()), proptest::option::of("(all|Indexed|weird)")).prop_map(
        |(rule, p, mode)| {
            let mut values = Map::new();
            if let Some(p) = p {
                values.insert("p".into(), p);
            }
            PolicyDefinitionInput {
                rule,
                parameters: json!({"p": {"type": "String", "defaultValue": "audit"}}),
                parameter_values: values,
                mode,
            }
        },
    )
}

fn resource() -> impl Strategy<Value = Resource> {
    (
        proptest::sample::select(
            &[
                "Microsoft.Storage/storageAccounts",
                "Microsoft.Network/networkSecurityGroups",
                "Microsoft.Resources/resourceGroups",
                "Microsoft.Resources/subscriptions",
            ][..],
        ),
        "[a-z0-9-]{0,10}",
        "[a-zA-Z ]{0,10}",
        json_value(),
        proptest::collection::btree_map("[a-z-]{1,5}", "[a-z]{0,5}", 0..3),
    )
        .prop_map(|(t, name, location, properties, tags)| {
            let mut record = common::resource(t, if name.is_empty() { "x" } else { &name }, json!({}));
            record.location = location;
            record.properties = properties;
            record.tags = tags;
            record
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn random_rules_and_resources_never_panic(input in input(), resource in resource()) {
        if let Ok(compiled) = Policy::compile(&input) {
            let ctx = ResourceContext::new(&resource, None, None);
            let evaluation = compiled.evaluate(&ctx);
            // Anything but compliant explains itself.
            prop_assert!(evaluation.state == cortex_rules::ComplianceState::Compliant || evaluation.reason.is_some());
        }
    }

    #[test]
    fn compilation_is_deterministic(input in input()) {
        let first = Policy::compile(&input);
        let second = Policy::compile(&input.clone());
        prop_assert_eq!(first, second);
    }

    #[test]
    fn evaluation_is_deterministic(input in input(), resource in resource()) {
        if let Ok(compiled) = Policy::compile(&input) {
            let ctx = ResourceContext::new(&resource, None, None);
            prop_assert_eq!(compiled.evaluate(&ctx), compiled.evaluate(&ctx));
        }
    }

    #[test]
    fn arbitrary_expression_text_never_panics(text in "\\[[a-zA-Z(),' .\\[\\]0-9-]{0,40}\\]") {
        let rule = json!({"if": {"value": text, "equals": "x"}, "then": {"effect": "audit"}});
        if let Ok(compiled) = common::compile(rule) {
            let record = common::storage(json!({}));
            let _ = compiled.evaluate(&ResourceContext::new(&record, None, None));
        }
    }
}
