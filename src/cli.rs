//! The command line (DESIGN §9). `cortex --help` lists only commands that work.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use std::path::PathBuf;

use crate::{
    config::{DatabaseArgs, ServeArgs},
    migrate, policy_check, serve,
    telemetry::LogArgs,
    tenants,
};

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
    /// Run the service: the command and query APIs (`/v1/…`, `/healthz`, `/openapi.json`)
    /// and the projection runners. Applies pending migrations first; SIGTERM or Ctrl-C drains
    /// in-flight requests.
    Serve(ServeArgs),
    /// Read models: list them, show their status, rebuild them (blue/green).
    Projections {
        #[command(subcommand)]
        command: crate::projections::ProjectionsCommand,
    },
    /// Event replay audits: an entity's history, field by field.
    Audit {
        #[command(subcommand)]
        command: crate::audit::AuditCommand,
    },
    /// Manage tenants and their API keys.
    Tenants {
        #[command(subcommand)]
        command: TenantsCommand,
    },
    /// Demo data: fill a running PolicyCortex with a generated Azure estate and policies,
    /// through its public API.
    Demo {
        #[command(subcommand)]
        command: crate::demo::DemoCommand,
    },
    /// Work with Azure Policy rules locally.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum TenantsCommand {
    /// Create a tenant and its first API key; prints `{"tenant_id", "api_key"}`. The key is
    /// shown only here: the database keeps only its hash.
    Create {
        /// A name for people (1 to 200 characters).
        name: String,
        #[command(flatten)]
        db: DatabaseArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Evaluate a policy against one resource and print the state and the reason. Exit 0
    /// whatever the state, 2 when the policy does not compile (faults on stderr).
    Check(PolicyCheckArgs),
}

#[derive(Debug, clap::Args)]
pub struct PolicyCheckArgs {
    /// An Azure policy definition (as Azure publishes it, its `properties`, or a bare
    /// `policyRule`).
    pub policy: PathBuf,
    /// An inventory record (id, name, type, location, kind, tags, properties, …).
    pub resource: PathBuf,
    /// Parameter values by name (`{"x": v}` or Azure's `{"x": {"value": v}}`).
    #[arg(long)]
    pub params: Option<PathBuf>,
    /// Override the definition's mode.
    #[arg(long, value_enum)]
    pub mode: Option<policy_check::ModeArg>,
    /// The resource's resource group (`name`, `location`, `tags`).
    #[arg(long)]
    pub rg: Option<PathBuf>,
    /// Print exactly one JSON object `{"state", "reason"}`.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Migrate { db } => {
            let applied = migrate::run(&db).await?;
            println!("{applied}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Policy { command: PolicyCommand::Check(args) } => policy_check::run(&args),
        Command::Demo { command } => crate::demo::run(command).await,
        Command::Projections { command } => crate::projections::run(command).await,
        Command::Audit { command } => crate::audit::run(command).await,
        Command::Serve(args) => {
            serve::Application::build(&args).await?.run_until_stopped().await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Tenants { command: TenantsCommand::Create { name, db } } => {
            println!("{}", tenants::create(&db, &name).await?);
            Ok(ExitCode::SUCCESS)
        }
    }
}
