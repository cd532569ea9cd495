//! `cortex audit …` (DESIGN §9, issue 23): the log read back for auditors.

use std::{
    io::{IsTerminal, Read, Write},
    os::unix::fs::OpenOptionsExt,
    path::PathBuf,
    process::ExitCode,
};

use anyhow::Context;
use clap::{ArgGroup, Subcommand};
use cortex_events::{StreamName, catalog::AuditSealed};
use cortex_query::audit::{self, AuditEntry, seal, verify};
use uuid::Uuid;

use crate::config::{DatabaseArgs, StoreArgs};

/// `println!` that ends quietly when stdout is gone (`cortex audit history | head`) instead
/// of panicking: what is left to print has no reader.
macro_rules! out {
    ($($arg:tt)*) => {{
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

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
    /// The resource as recorded at TIME or at its stream's revision N, with its compliance
    /// results as they stood then, by replay: the shape of `GET /v1/resources/{id}`. Exit 1
    /// when it did not exist yet, or was deleted by then.
    #[command(group(ArgGroup::new("point").required(true).args(["at", "revision"])))]
    State {
        #[arg(long)]
        resource: Uuid,
        /// RFC 3339; not in the future.
        #[arg(long, value_parser = past_time)]
        at: Option<chrono::DateTime<chrono::Utc>>,
        /// A revision of the resource's stream (0 is its first event).
        #[arg(long)]
        revision: Option<u64>,
        /// Print the route's JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        db: DatabaseArgs,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// The tenant's compliance summary as it stood at TIME, by replaying the log up to TIME
    /// through the compliance projection's model: the shape of `GET /v1/compliance/summary`.
    Summary {
        #[arg(long)]
        tenant: Uuid,
        /// RFC 3339 (`2026-12-01T00:00:00Z`); not in the future.
        #[arg(long, value_parser = past_time)]
        at: chrono::DateTime<chrono::Utc>,
        #[arg(long = "group-by", value_enum)]
        group_by: Option<SummaryGroup>,
        /// Print the route's JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        db: DatabaseArgs,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Write a new Ed25519 signing key for seals (PKCS#8 PEM, mode 0600) to FILE, which must
    /// not exist yet; print its public key (64 hex digits).
    Keygen {
        #[arg(long)]
        out: PathBuf,
    },
    /// Seal the log: sign the running digest of every event up to the log's head (chained to
    /// the previous seal), append `AuditSealed` to the stream `audit-seals`, and print the
    /// seal as one JSON line to keep outside the database (README, "Audit seals").
    Seal {
        /// The signing key (`cortex audit keygen`).
        #[arg(long, env = "CORTEX_AUDIT_KEY")]
        key: PathBuf,
        /// Print only the JSON line (it is printed in any case; without this flag a line for
        /// people follows on stderr).
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        db: DatabaseArgs,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Verify the log: every stream's hash chain, every seal in the log and the one given.
    /// Exit 0 clean, 1 on any finding, 2 on a usage error; progress on stderr.
    Verify {
        /// Only the chains of this tenant's streams (the seals still cover the whole log).
        #[arg(long)]
        tenant: Option<Uuid>,
        /// A seal kept outside the log (its JSON line; `-` reads it from stdin). Its key is
        /// the one every seal must be signed with.
        #[arg(long)]
        seal: Option<String>,
        /// Without `--seal`, the key whose public half seals must be signed with (else the
        /// first seal's key is trusted).
        #[arg(long, env = "CORTEX_AUDIT_KEY")]
        key: Option<PathBuf>,
        /// Print one JSON object `{streams, events, seals, trusted_key, findings}`.
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
                out!("{}", serde_json::json!({ "items": items }));
            } else {
                print_table(&items);
            }
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::State { resource, at, revision, json, db, store } => {
            use audit::as_of::{Cut, ResourceAt, resource_at};
            let cut = match (at, revision) {
                (Some(at), _) => Cut::At(at),
                (None, Some(n)) => Cut::Revision(n),
                // clap requires one of them.
                (None, None) => return Ok(usage(&anyhow::anyhow!("give --at or --revision"))),
            };
            let pool = db.pool().await?;
            let store = store.open(&pool)?;
            let found = resource_at(store.as_ref(), None, resource, cut)
                .await
                .with_context(|| format!("replaying resource {resource}"))?;
            match found {
                ResourceAt::NotYet => {
                    eprintln!("resource {resource} did not exist yet at that point");
                    Ok(ExitCode::from(1))
                }
                ResourceAt::Deleted => {
                    eprintln!("resource {resource} was deleted by then");
                    Ok(ExitCode::from(1))
                }
                ResourceAt::Found(detail) if json => {
                    out!("{}", serde_json::to_string(&detail)?);
                    Ok(ExitCode::SUCCESS)
                }
                ResourceAt::Found(detail) => {
                    print_state(&detail);
                    Ok(ExitCode::SUCCESS)
                }
            }
        }
        AuditCommand::Summary { tenant, at, group_by, json, db, store } => {
            let pool = db.pool().await?;
            let store = store.open(&pool)?;
            let summary = audit::as_of::summary_at(store.as_ref(), tenant, at, group_by.map(Into::into))
                .await
                .with_context(|| format!("replaying tenant {tenant}'s log up to {at}"))?;
            if json {
                out!("{}", serde_json::to_string(&summary)?);
            } else {
                print_summary(&summary, at);
            }
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::Keygen { out } => keygen(&out),
        AuditCommand::Seal { key, json, db, store } => {
            let key = seal::read_key(&key)?;
            let pool = db.pool().await?;
            let store = store.open(&pool)?;
            let sealed = seal::seal(store.as_ref(), &key).await.context("sealing the log")?;
            // The line to keep: the seal without the stream heads (they stay in the log).
            out!("{}", serde_json::to_string(&AuditSealed { heads: Vec::new(), ..sealed.clone() })?);
            if !json {
                eprintln!(
                    "sealed {} events up to position {}: digest {}",
                    sealed.events, sealed.position, sealed.digest
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::Verify { tenant, seal: kept, key, json, db, store } => {
            // A seal or key that cannot be read is a usage error (exit 2), as clap's are.
            let kept = match kept.as_deref().map(read_kept).transpose() {
                Ok(kept) => kept,
                Err(e) => return Ok(usage(&e)),
            };
            let trusted_key = match (&kept, key) {
                (None, Some(key)) => match seal::read_key(&key) {
                    Ok(key) => Some(seal::public_key(&key)),
                    Err(e) => return Ok(usage(&e.into())),
                },
                _ => None,
            };
            let pool = db.pool().await?;
            let store = store.open(&pool)?;
            // Only for the progress line: without a count it shows what is done.
            let total = store.count_after(None).await.unwrap_or_else(|e| {
                tracing::debug!(error = format!("{e:#}"), "no total for the progress line");
                None
            });
            let tty = std::io::stderr().is_terminal();
            let progress = |done: u64| {
                if tty {
                    let of = total.map(|t| format!(" of {t}")).unwrap_or_default();
                    eprint!("\rverifying: {done}{of} events");
                    let _ = std::io::stderr().flush();
                }
            };
            let report = verify::Verify { tenant, kept, trusted_key }
                .run(store.as_ref(), progress)
                .await
                .context("verifying the log")?;
            if tty {
                eprintln!();
            }
            if json {
                out!("{}", serde_json::to_string(&report)?);
            } else {
                print_report(&report);
            }
            Ok(if report.findings.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) })
        }
    }
}

/// Writes a new key to `out` (never over an existing file), 0600 from its creation.
fn keygen(out: &std::path::Path) -> anyhow::Result<ExitCode> {
    let key = seal::generate_key();
    let pem = seal::key_pem(&key)?;
    let mut file = match std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(out) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            eprintln!(
                "{} exists: a key is never overwritten (seals signed with it would no longer verify)",
                out.display()
            );
            return Ok(ExitCode::from(1));
        }
        Err(e) => return Err(e).with_context(|| format!("creating {}", out.display())),
    };
    file.write_all(pem.as_bytes()).with_context(|| format!("writing {}", out.display()))?;
    out!("{}", seal::public_key(&key));
    Ok(ExitCode::SUCCESS)
}

/// `--group-by` of `audit summary`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum SummaryGroup {
    Subscription,
    ResourceType,
    Policy,
}

impl From<SummaryGroup> for cortex_query::reads::GroupBy {
    fn from(g: SummaryGroup) -> Self {
        match g {
            SummaryGroup::Subscription => Self::Subscription,
            SummaryGroup::ResourceType => Self::ResourceType,
            SummaryGroup::Policy => Self::Policy,
        }
    }
}

fn print_state(detail: &cortex_query::reads::resources::ResourceDetail) {
    let r = &detail.resource;
    out!("{} ({}) at revision {}", r.name, r.resource_id, r.revision);
    out!("  id               {}", r.id);
    out!("  type             {}", r.resource_type);
    out!("  location         {}", r.location);
    out!("  subscription     {}", r.subscription_id);
    out!("  resource group   {}", r.resource_group);
    out!("  tags             {}", r.tags);
    out!("  registered       {}", r.registered_at);
    out!("  updated          {}", r.updated_at);
    out!("  compliance       {}", r.compliance_state.as_deref().unwrap_or("-"));
    for c in &detail.compliance {
        out!("    {} {:<15} {}", c.policy_id, c.state, c.reason.as_deref().unwrap_or(""));
    }
}

fn print_summary(summary: &cortex_query::reads::compliance::Summary, at: chrono::DateTime<chrono::Utc>) {
    let line = |label: &str, t: &cortex_query::reads::compliance::Tally| {
        let pct = t.percentage.map(|p| format!("{:.1} %", p * 100.0)).unwrap_or_else(|| "-".into());
        out!(
            "{label:<48} {:>8} {:>10} {:>14} {:>8} {:>8}",
            t.total,
            t.compliant,
            t.non_compliant,
            t.exempt,
            pct
        );
    };
    out!("as of {at}");
    out!("{:<48} {:>8} {:>10} {:>14} {:>8} {:>8}", "", "total", "compliant", "non_compliant", "exempt", "%");
    line("all", &summary.tally);
    for g in &summary.groups {
        let label = match &g.name {
            Some(name) => format!("{} ({name})", g.key),
            None => g.key.clone(),
        };
        line(&label, &g.tally);
    }
}

/// `--at`: an RFC 3339 time, not in the future (else clap's usage error, exit 2).
fn past_time(text: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    let at = chrono::DateTime::parse_from_rfc3339(text)
        .map_err(|e| format!("not an RFC 3339 time (2026-12-01T00:00:00Z): {e}"))?
        .with_timezone(&chrono::Utc);
    if at > chrono::Utc::now() {
        return Err(format!("{text} is in the future"));
    }
    Ok(at)
}

fn usage(e: &anyhow::Error) -> ExitCode {
    eprintln!("error: {e:#}");
    ExitCode::from(2)
}

/// A kept seal: its JSON line from a file, or from stdin (`-`).
fn read_kept(path: &str) -> anyhow::Result<AuditSealed> {
    let mut text = String::new();
    if path == "-" {
        std::io::stdin().read_to_string(&mut text).context("reading the seal from stdin")?;
    } else {
        text = std::fs::read_to_string(path).with_context(|| format!("reading the seal {path}"))?;
    }
    serde_json::from_str(text.trim()).with_context(|| format!("the seal {path} is not a seal's JSON line"))
}

fn print_report(report: &verify::Report) {
    out!(
        "{} events in {} streams, {} seal(s){}: {}",
        report.events,
        report.streams,
        report.seals,
        report.trusted_key.as_deref().map(|k| format!(" (trusted key {k})")).unwrap_or_default(),
        if report.findings.is_empty() {
            "clean".to_owned()
        } else {
            format!("{} finding(s)", report.findings.len())
        }
    );
    for f in &report.findings {
        out!("  {}", serde_json::to_string(f).unwrap_or_default());
    }
}

fn resource_streams(id: Uuid) -> Vec<StreamName> {
    vec![StreamName::resource(id), StreamName::compliance(id)]
}

/// One line per event, then one indented line per change.
fn print_table(items: &[AuditEntry]) {
    out!("{:<24} {:<26} {:>4}  {:<26} {:<40} CORRELATION", "TIME", "STREAM", "REV", "EVENT", "ACTOR");
    for e in items {
        out!(
            "{:<24} {:<26} {:>4}  {:<26} {:<40} {}{}",
            e.occurred_at.format("%Y-%m-%d %H:%M:%S%.3fZ"),
            short_stream(&e.stream),
            e.revision,
            e.event_type,
            e.actor,
            e.correlation_id,
            e.source.as_deref().map(|s| format!("  source {s}")).unwrap_or_default(),
        );
        for c in &e.changes {
            out!("    {}: {} → {}", c.field, c.before, c.after);
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

/// Seals the log whenever the last seal in it is `every` old (or there is none), checking
/// every `every / 10` (at most a minute): any number of processes seal once between them, and
/// two at the same moment cannot both append (the second is refused and skips).
pub async fn seal_every(
    store: std::sync::Arc<dyn cortex_events::EventStore>,
    key: ed25519_dalek::SigningKey,
    every: std::time::Duration,
) {
    let check = (every / 10).clamp(std::time::Duration::from_millis(100), std::time::Duration::from_secs(60));
    loop {
        match due(store.as_ref(), every).await {
            Ok(true) => match seal::seal(store.as_ref(), &key).await {
                Ok(s) => {
                    tracing::info!(position = %s.position, events = s.events, digest = %s.digest, "sealed the log")
                }
                Err(seal::SealError::Concurrent | seal::SealError::EmptyLog) => {}
                Err(e) => tracing::warn!(
                    error = format!("{:#}", anyhow::Error::from(e)),
                    "sealing the log failed; retrying"
                ),
            },
            Ok(false) => {}
            Err(e) => tracing::warn!(
                error = format!("{:#}", anyhow::Error::from(e)),
                "reading the last seal failed; retrying"
            ),
        }
        tokio::time::sleep(check).await;
    }
}

/// Whether the last seal is `every` old, or there is none.
async fn due(
    store: &dyn cortex_events::EventStore,
    every: std::time::Duration,
) -> Result<bool, seal::SealError> {
    let Some((last, _)) = seal::last_seal(store).await? else { return Ok(true) };
    let at = chrono::DateTime::parse_from_rfc3339(&last.sealed_at)
        .map_err(|e| seal::SealError::BadSeal(format!("sealed_at: {e}")))?;
    let age = chrono::Utc::now().signed_duration_since(at).to_std().unwrap_or_default();
    Ok(age >= every)
}
