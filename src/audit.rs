//! `cortex audit …` (DESIGN §9, issue 23): the log read back for auditors.

use std::process::ExitCode;

use anyhow::Context;
use clap::{ArgGroup, Subcommand};
use cortex_events::StreamName;
use cortex_query::audit::{self, AuditEntry};
use uuid::Uuid;

use crate::config::{DatabaseArgs, StoreArgs};

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Every event of a resource (its own stream and its compliance stream) or of a policy
    /// (its stream, exemptions included), oldest first: revision, position, time, event type,
    /// actor, source, correlation id, and what changed field by field (before → after).
    /// Deleted entities included. Exit 1 when the entity has no events.
    #[command(group(ArgGroup::new("entity").required(true).args(["resource", "policy", "cloud_id"])))]
    History {
        /// The resource's id (our UUID).
        #[arg(long)]
        resource: Option<Uuid>,
        /// The policy's id.
        #[arg(long)]
        policy: Option<Uuid>,
        /// The resource's cloud id (as in inventory records), with `--tenant`.
        #[arg(long = "cloud-id", requires = "tenant")]
        cloud_id: Option<String>,
        /// The tenant of `--cloud-id`.
        #[arg(long)]
        tenant: Option<Uuid>,
        /// Print `{"items": [...]}` for scripts.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        db: DatabaseArgs,
        #[command(flatten)]
        store: StoreArgs,
    },
}

pub async fn run(command: AuditCommand) -> anyhow::Result<ExitCode> {
    match command {
        AuditCommand::History { resource, policy, cloud_id, tenant, json, db, store } => {
            let (what, streams) = match (resource, policy, cloud_id, tenant) {
                (Some(id), ..) => (format!("resource {id}"), resource_streams(id)),
                (_, Some(id), ..) => (format!("policy {id}"), vec![StreamName::policy(id)]),
                (_, _, Some(cloud_id), Some(tenant)) => {
                    let id = cortex_events::resource_id(tenant, &cloud_id);
                    (format!("resource {cloud_id} of tenant {tenant} (id {id})"), resource_streams(id))
                }
                // clap requires one of them, and a tenant with --cloud-id.
                _ => anyhow::bail!("give --resource, --policy, or --cloud-id with --tenant"),
            };
            let pool = db.pool().await?;
            let store = store.open(&pool)?;
            let items = audit::history(store.as_ref(), &streams)
                .await
                .with_context(|| format!("reading the events of {what}"))?;
            if items.is_empty() {
                eprintln!("no events: {what} has never been recorded");
                return Ok(ExitCode::from(1));
            }
            if json {
                println!("{}", serde_json::json!({ "items": items }));
            } else {
                print_table(&items);
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn resource_streams(id: Uuid) -> Vec<StreamName> {
    vec![StreamName::resource(id), StreamName::compliance(id)]
}

/// One line per event, then one indented line per change.
fn print_table(items: &[AuditEntry]) {
    println!("{:<24} {:<26} {:>4}  {:<26} {:<28} CORRELATION", "TIME", "STREAM", "REV", "EVENT", "ACTOR");
    for e in items {
        println!(
            "{:<24} {:<26} {:>4}  {:<26} {:<28} {}{}",
            e.occurred_at.format("%Y-%m-%d %H:%M:%S%.3fZ"),
            short_stream(&e.stream),
            e.revision,
            e.event_type,
            e.actor,
            e.correlation_id,
            e.source.as_deref().map(|s| format!("  source {s}")).unwrap_or_default(),
        );
        for c in &e.changes {
            println!("    {}: {} → {}", c.field, c.before, c.after);
        }
    }
}

/// `resource-0190…` → `resource-0190…` shortened to its category and the id's first 8 digits.
fn short_stream(stream: &str) -> String {
    match stream.split_once('-') {
        Some((category, id)) if id.len() > 8 => format!("{category}-{}…", &id[..8]),
        _ => stream.to_owned(),
    }
}
