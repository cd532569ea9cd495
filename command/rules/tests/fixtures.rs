//! Every real Azure built-in policy under `tests/fixtures/policies/` evaluated against the
//! compliant, non-compliant and not-applicable resources listed in `tests/fixtures/manifest.json`.

use std::path::PathBuf;

use cortex_rules::check::definition_input;
use cortex_rules::{Policy, Resource, ResourceContext, ResourceGroupInfo};
use serde_json::Value;

fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn read_json(path: &PathBuf) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every key of `wanted` is in `got` with the same value.
fn contains_subset(got: &Value, wanted: &Value) -> bool {
    match (got, wanted) {
        (Value::Object(g), Value::Object(w)) => {
            w.iter().all(|(k, v)| g.get(k).is_some_and(|gv| contains_subset(gv, v)))
        }
        _ => got == wanted,
    }
}

#[test]
fn every_fixture_policy_evaluates_each_case_as_azure_documents() {
    let dir = fixtures_dir();
    let manifest = read_json(&dir.join("manifest.json"));
    let fixtures = manifest.as_array().expect("the manifest is an array");
    let mut failures = Vec::new();
    let mut cases_run = 0;
    for fixture in fixtures {
        let file = fixture["policy"].as_str().expect("policy file name");
        let policy = read_json(&dir.join("policies").join(file));
        let mut input = definition_input(&policy).unwrap_or_else(|e| panic!("{file}: {e}"));
        if let Some(params) = fixture.get("params").and_then(Value::as_object) {
            input.parameter_values = params.clone();
        }
        for case in fixture["cases"].as_array().expect("cases") {
            cases_run += 1;
            let name = case["name"].as_str().unwrap_or("unnamed case");
            let mut input = input.clone();
            if let Some(params) = case.get("params").and_then(Value::as_object) {
                input.parameter_values.extend(params.clone());
            }
            let compiled = match Policy::compile(&input) {
                Ok(c) => c,
                Err(e) => {
                    failures.push(format!("{file} / {name}: does not compile: {e}"));
                    continue;
                }
            };
            let resource: Resource = serde_json::from_value(case["resource"].clone())
                .unwrap_or_else(|e| panic!("{file} / {name}: resource: {e}"));
            let group: Option<ResourceGroupInfo> =
                case.get("rg").map(|g| serde_json::from_value(g.clone()).expect("rg"));
            let ctx = ResourceContext::new(&resource, group.as_ref(), None);
            let evaluation = compiled.evaluate(&ctx);
            let got = serde_json::to_value(&evaluation).expect("evaluation serialises");
            if got["state"] != case["expect"] {
                failures.push(format!("{file} / {name}: expected {} but got {}", case["expect"], got));
                continue;
            }
            if let Some(effect) = case.get("effect") {
                if &got["effect"] != effect {
                    failures
                        .push(format!("{file} / {name}: expected effect {effect}, got {}", got["effect"]));
                }
            }
            if let Some(reason) = case.get("reason") {
                if !contains_subset(&got["reason"], reason) {
                    failures
                        .push(format!("{file} / {name}: reason {} does not contain {reason}", got["reason"]));
                }
            }
            if got["state"] == "non_compliant" && got["reason"]["kind"] != "condition_matched" {
                failures.push(format!(
                    "{file} / {name}: a non-compliant result must say which condition matched"
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{} of {cases_run} cases failed:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn every_policy_file_in_the_fixtures_folder_is_in_the_manifest_and_compiles() {
    let dir = fixtures_dir();
    let manifest = read_json(&dir.join("manifest.json"));
    let listed: Vec<&str> =
        manifest.as_array().expect("array").iter().filter_map(|f| f["policy"].as_str()).collect();
    let mut files: Vec<String> = std::fs::read_dir(dir.join("policies"))
        .expect("policies folder")
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect();
    files.sort();
    assert!(files.len() >= 25, "at least 25 real built-in policies, found {}", files.len());
    for file in &files {
        assert!(listed.contains(&file.as_str()), "{file} has no cases in the manifest");
    }
    for fixture in manifest.as_array().expect("array") {
        let cases = fixture["cases"].as_array().expect("cases");
        let states: Vec<&str> = cases.iter().filter_map(|c| c["expect"].as_str()).collect();
        assert!(states.contains(&"non_compliant"), "{}: no non-compliant case", fixture["policy"]);
        assert!(states.contains(&"not_applicable"), "{}: no not-applicable case", fixture["policy"]);
        if fixture.get("note").is_none() {
            assert!(states.contains(&"compliant"), "{}: no compliant case", fixture["policy"]);
        }
    }
}
