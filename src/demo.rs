//! `cortex demo load`: fill a running PolicyCortex with demo policies and a generated Azure
//! estate, through the public command API (the work is in `cortex_command::demo`).

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use cortex_command::demo::{self, ClientConfig, LoadOptions, LoadReport, Progress};
use secrecy::SecretString;

#[derive(Debug, Subcommand)]
pub enum DemoCommand {
    /// Create demo policies (real Azure built-ins) and submit a generated Azure estate through
    /// the command API. The same seed gives the same data, and running the same load again
    /// replays it (idempotency keys) rather than duplicating it. Exit 1 if the API refused
    /// any record.
    Load(LoadArgs),
}

#[derive(Debug, Args)]
pub struct LoadArgs {
    /// Inventory records to generate, resource groups included.
    #[arg(long, default_value_t = 500)]
    pub resources: usize,
    /// Policies to create.
    #[arg(long, default_value_t = 12)]
    pub policies: usize,
    /// Seed of the generator.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Base URL of the command API.
    #[arg(long, env = "CORTEX_API_URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// The tenant's API key (`cortex tenants create`).
    #[arg(long = "api-key", env = "CORTEX_API_KEY", hide_env_values = true)]
    pub api_key: SecretString,
    /// Batch requests in flight at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub concurrency: u16,
    /// Print the report as one JSON object.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(command: DemoCommand) -> anyhow::Result<ExitCode> {
    match command {
        DemoCommand::Load(args) => load(args).await,
    }
}

async fn load(args: LoadArgs) -> anyhow::Result<ExitCode> {
    let config = ClientConfig::new(args.url.clone(), args.api_key);
    let options = LoadOptions {
        concurrency: usize::from(args.concurrency),
        ..LoadOptions::new(args.resources, args.policies, args.seed)
    };
    // A live counter for people at a terminal; scripts get the report only.
    let live = !args.json && std::io::stderr().is_terminal();
    let progress = move |p: Progress| {
        if live {
            let (what, done, total) = match p {
                Progress::Policies { done, total } => ("policies", done, total),
                Progress::Resources { done, total } => ("resources", done, total),
            };
            // Progress is a courtesy: a closed or full stderr must not stop the load.
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r{what}: {done}/{total}   ");
            if done == total {
                let _ = writeln!(err);
            }
        }
    };
    let report = demo::load(&config, &options, &progress)
        .await
        .with_context(|| format!("loading the demo data into {}", args.url))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report).context("encoding the report")?);
    } else {
        print_summary(&report);
    }
    Ok(if report.item_errors == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn print_summary(report: &LoadReport) {
    println!(
        "created {} policies and submitted {} resources ({} changed) in {:.1} s",
        report.policies_created,
        report.resources_submitted,
        report.resources_changed,
        report.elapsed.as_secs_f64()
    );
    if let Some(position) = &report.last_position {
        println!("position: {position} (send as X-Cortex-After to read these writes)");
    }
    if report.item_errors > 0 {
        println!("{} records were refused; the first:", report.item_errors);
        for error in &report.item_error_samples {
            println!("  #{} {}: {}", error.index, error.id, error.detail);
        }
    }
}
