//! `cortex`: the PolicyCortex binary. Configuration, telemetry, command-line parsing and
//! wiring only; everything else lives in the library crates.

mod audit;
mod cli;
mod config;
mod demo;
mod evaluator;
mod migrate;
mod policy_check;
mod projections;
mod serve;
mod telemetry;
mod tenants;

use std::process::ExitCode;

use clap::Parser;

/// glibc's allocator spent ~45 % of the service's CPU under batch ingestion (perf, issue 4),
/// most of it contending for its arena lock; mimalloc's per-thread heaps remove that.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    telemetry::init(&cli.log);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli::run(cli.command)) {
        Ok(code) => code,
        Err(e) => {
            // Logged once, here, with its whole cause chain (to stderr, like every log).
            tracing::error!(error = format!("{e:#}"), "command failed");
            ExitCode::FAILURE
        }
    }
}
