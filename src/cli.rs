//! The command line (DESIGN §9). `cortex --help` lists only commands that work.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::{config::DatabaseArgs, migrate, telemetry::LogArgs};

#[derive(Debug, Parser)]
#[command(name = "cortex", version, about = "PolicyCortex: event-sourced cloud governance")]
pub struct Cli {
    #[command(flatten)]
    pub log: LogArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Apply the database migrations (event store, read models, tenants), creating the
    /// database when it does not exist. Safe to run again.
    Migrate {
        #[command(flatten)]
        db: DatabaseArgs,
    },
}

pub async fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Migrate { db } => {
            let applied = migrate::run(&db).await?;
            println!("{applied}");
            Ok(ExitCode::SUCCESS)
        }
    }
}
