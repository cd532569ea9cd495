//! `cortex policy check` as a policy author runs it.

use std::process::{Command, Output};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/command/rules/tests/fixtures");

fn check(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cortex"))
        .args(["policy", "check"])
        .args(args)
        .output()
        .expect("run cortex")
}

fn fixture(path: &str) -> String {
    format!("{FIXTURES}/{path}")
}

#[test]
fn json_output_is_exactly_one_object_with_state_and_reason() {
    let out = check(&[
        &fixture("policies/AllowedLocations_Deny.json"),
        &fixture("resources/vm-westus.json"),
        "--params",
        &fixture("resources/allowed-locations-params.json"),
        "--json",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    let keys: Vec<_> = v.as_object().unwrap().keys().cloned().collect();
    assert_eq!(keys, ["reason", "state"]);
    assert_eq!(v["state"], "non_compliant");
    assert_eq!(v["reason"]["actual"], "westus");
}

#[test]
fn a_policy_that_does_not_compile_exits_2_with_the_faults_on_stderr() {
    let dir = std::env::temp_dir().join(format!("cortex-check-{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.json");
    std::fs::write(&bad, r#"{"if": {"field": "name", "bogus": 1}, "then": {"effect": "audit"}}"#).unwrap();
    let out = check(&[bad.to_str().unwrap(), &fixture("resources/vm-westus.json")]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/if/bogus") && err.contains("unknown operator"), "{err}");
    assert!(out.stdout.is_empty());
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_missing_input_file_is_an_error_naming_it() {
    let out = check(&["/nonexistent/policy.json", &fixture("resources/vm-westus.json")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/policy.json"));
}
