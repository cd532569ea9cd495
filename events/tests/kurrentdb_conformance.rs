//! The conformance suite on the KurrentDB adapter, against the server named by
//! `CORTEX_KURRENTDB_TEST_URL` (e.g. `kurrentdb://admin:changeit@localhost:2113?tls=false`).
//!
//! Without that variable there is nothing to run against: this binary then lists every
//! case as skipped, by name, and counts none as passed. (A libtest binary can only pass or
//! ignore a test, hence `harness = false`.)

mod conformance;

use std::{process::ExitCode, sync::Arc};

use cortex_events::{EventStore, kurrent::KurrentEventStore};

macro_rules! names {
    ($($name:ident),+ $(,)?) => { &[$(stringify!($name)),+] };
}

const CASES: &[&str] = for_each_case!(names);

macro_rules! run_cases {
    ($($name:ident),+ $(,)?) => {
        async fn run_all(url: &str) -> (usize, Vec<&'static str>) {
            let mut passed = 0;
            let mut failed = Vec::new();
            $(
                let store_factory = factory(url);
                let outcome = tokio::spawn(conformance::$name(conformance::Harness::new(store_factory))).await;
                match outcome {
                    Ok(()) => { passed += 1; println!("test kurrentdb::{} ... ok", stringify!($name)); }
                    Err(e) => { failed.push(stringify!($name)); println!("test kurrentdb::{} ... FAILED: {e}", stringify!($name)); }
                }
            )+
            (passed, failed)
        }
    };
}

for_each_case!(run_cases);

fn factory(url: &str) -> conformance::Factory {
    let url = url.to_owned();
    Arc::new(move |catalog| {
        Arc::new(KurrentEventStore::new(&url, catalog).expect("valid CORTEX_KURRENTDB_TEST_URL"))
            as Arc<dyn EventStore>
    })
}

fn main() -> ExitCode {
    let Ok(url) = std::env::var("CORTEX_KURRENTDB_TEST_URL") else {
        println!(
            "\nkurrentdb conformance: SKIPPED, CORTEX_KURRENTDB_TEST_URL is not set ({} cases not run):",
            CASES.len()
        );
        for name in CASES {
            println!("  skipped: kurrentdb::{name}");
        }
        println!();
        return ExitCode::SUCCESS;
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    let (passed, failed) = runtime.block_on(run_all(&url));
    println!("\nkurrentdb conformance: {passed} passed; {} failed", failed.len());
    if failed.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}
