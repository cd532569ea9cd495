//! Benchmarks: `cargo bench -p cortex-rules`.
//!
//! * `compile/<fixture>`: compiling each real built-in policy.
//! * `evaluate/<fixture>`: evaluating it against a typical resource it applies to.
//! * `throughput/100k_resources_x_20_policies`: one thread, a context built per resource and
//!   20 policies evaluated against it, as the compliance evaluator will.
//! * before those, a latency pass prints p50/p99/max of single evaluations over every
//!   (fixture, case) pair of the manifest, since criterion reports means, not percentiles.

use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use cortex_rules::check::definition_input;
use cortex_rules::{
    CompiledPolicy, Policy, PolicyDefinitionInput, Resource, ResourceContext, ResourceGroupInfo,
};
use criterion::{Criterion, Throughput};
use serde_json::Value;

struct Fixture {
    name: String,
    input: PolicyDefinitionInput,
    compiled: CompiledPolicy,
    /// (resource, resource group, expected state) for every manifest case.
    cases: Vec<(Resource, Option<ResourceGroupInfo>, String)>,
}

fn load() -> Vec<Fixture> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let read = |p: PathBuf| -> Value {
        serde_json::from_str(&std::fs::read_to_string(&p).expect("fixture file")).expect("json")
    };
    let manifest = read(dir.join("manifest.json"));
    manifest
        .as_array()
        .expect("manifest array")
        .iter()
        .map(|entry| {
            let name = entry["policy"].as_str().expect("policy").to_owned();
            let mut input = definition_input(&read(dir.join("policies").join(&name))).expect("policy shape");
            if let Some(params) = entry.get("params").and_then(Value::as_object) {
                input.parameter_values = params.clone();
            }
            let compiled = Policy::compile(&input).expect("fixture compiles");
            let cases = entry["cases"]
                .as_array()
                .expect("cases")
                .iter()
                .filter(|c| c.get("params").is_none())
                .map(|c| {
                    let resource: Resource = serde_json::from_value(c["resource"].clone()).expect("resource");
                    let group = c.get("rg").map(|g| serde_json::from_value(g.clone()).expect("rg"));
                    (resource, group, c["expect"].as_str().unwrap_or_default().to_owned())
                })
                .collect();
            Fixture { name: name.trim_end_matches(".json").to_owned(), input, compiled, cases }
        })
        .collect()
}

/// p50/p99/max of single evaluations, each timed on its own, over all manifest cases, and
/// the slowest (policy, case) pairs by their own p99.
fn latency_percentiles(fixtures: &[Fixture]) {
    const ROUNDS: usize = 2_000;
    let contexts: Vec<Vec<ResourceContext<'_>>> = fixtures
        .iter()
        .map(|f| f.cases.iter().map(|(r, g, _)| ResourceContext::new(r, g.as_ref(), None)).collect())
        .collect();
    let mut per_pair: Vec<(String, Vec<Duration>)> = Vec::new();
    for (fixture, ctxs) in fixtures.iter().zip(&contexts) {
        for (i, _) in ctxs.iter().enumerate() {
            per_pair.push((format!("{} case {i}", fixture.name), Vec::with_capacity(ROUNDS)));
        }
    }
    for _round in 0..ROUNDS {
        let mut pair = 0;
        for (fixture, ctxs) in fixtures.iter().zip(&contexts) {
            for ctx in ctxs {
                let start = Instant::now();
                black_box(fixture.compiled.evaluate(black_box(ctx)));
                let elapsed = start.elapsed();
                if let Some((_, samples)) = per_pair.get_mut(pair) {
                    samples.push(elapsed);
                }
                pair += 1;
            }
        }
    }
    let quantile = |samples: &mut Vec<Duration>, q: f64| {
        samples.sort_unstable();
        samples.get(((samples.len() as f64 - 1.0) * q) as usize).copied().unwrap_or_default()
    };
    let mut all: Vec<Duration> = per_pair.iter().flat_map(|(_, s)| s.iter().copied()).collect();
    println!(
        "latency of one (resource, policy) evaluation over {} samples: p50 {:?}, p99 {:?}, p99.9 {:?}, max {:?}",
        all.len(),
        quantile(&mut all, 0.50),
        quantile(&mut all, 0.99),
        quantile(&mut all, 0.999),
        all.last().copied().unwrap_or_default()
    );
    let mut slowest: Vec<(Duration, Duration, &str)> = per_pair
        .iter_mut()
        .map(|(name, samples)| (quantile(samples, 0.99), quantile(samples, 0.5), name.as_str()))
        .collect();
    slowest.sort_unstable_by_key(|s| std::cmp::Reverse(s.0));
    for (p99, p50, name) in slowest.iter().take(5) {
        println!("  slowest: {name}: p50 {p50:?}, p99 {p99:?}");
    }
}

fn compile_and_evaluate(c: &mut Criterion, fixtures: &[Fixture]) {
    let mut compile = c.benchmark_group("compile");
    for fixture in fixtures {
        compile.bench_function(&fixture.name, |b| b.iter(|| Policy::compile(black_box(&fixture.input))));
    }
    compile.finish();

    let mut evaluate = c.benchmark_group("evaluate");
    for fixture in fixtures {
        // A typical resource: one the policy applies to (non-compliant first, else compliant).
        let typical = ["non_compliant", "compliant"]
            .iter()
            .find_map(|state| fixture.cases.iter().find(|(_, _, s)| s == state));
        let Some((resource, group, _)) = typical else { continue };
        let ctx = ResourceContext::new(resource, group.as_ref(), None);
        evaluate.bench_function(&fixture.name, |b| b.iter(|| fixture.compiled.evaluate(black_box(&ctx))));
    }
    evaluate.finish();
}

fn throughput(c: &mut Criterion, fixtures: &[Fixture]) {
    const RESOURCES: usize = 100_000;
    const POLICIES: usize = 20;
    let policies: Vec<&CompiledPolicy> = fixtures.iter().map(|f| &f.compiled).take(POLICIES).collect();
    // A mixed estate: every manifest resource, repeated with distinct names.
    let templates: Vec<&Resource> = fixtures.iter().flat_map(|f| f.cases.iter().map(|(r, _, _)| r)).collect();
    let estate: Vec<Resource> = (0..RESOURCES)
        .map(|i| {
            let mut r = templates[i % templates.len()].clone();
            r.name = format!("{}-{i}", r.name);
            r.id = format!("{}-{i}", r.id);
            r
        })
        .collect();
    let mut group = c.benchmark_group("throughput");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    group.throughput(Throughput::Elements((RESOURCES * policies.len()) as u64));
    group.bench_function("100k_resources_x_20_policies", |b| {
        b.iter(|| {
            let mut non_compliant = 0usize;
            for resource in &estate {
                let ctx = ResourceContext::new(resource, None, None);
                for policy in &policies {
                    if policy.evaluate(&ctx).state == cortex_rules::ComplianceState::NonCompliant {
                        non_compliant += 1;
                    }
                }
            }
            black_box(non_compliant)
        });
    });
    group.finish();
}

fn main() {
    let fixtures = load();
    latency_percentiles(&fixtures);
    let mut criterion = Criterion::default().configure_from_args();
    compile_and_evaluate(&mut criterion, &fixtures);
    throughput(&mut criterion, &fixtures);
    criterion.final_summary();
}
