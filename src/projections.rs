//! `cortex projections list | status | rebuild` (DESIGN §9).

use std::{io::IsTerminal, process::ExitCode, sync::Arc, time::Duration};

use anyhow::Context;
use clap::Subcommand;
use cortex_projections::{
    Projector,
    rebuild::{Progress, Rebuild, RebuildReport},
    status,
};
use secrecy::ExposeSecret;

use crate::config::{DatabaseArgs, NatsArgs, ProjectionArgs, StoreArgs};

#[derive(Debug, Subcommand)]
pub enum ProjectionsCommand {
    /// The projections this build knows: name, schema, the events they read, the models
    /// their change notices name.
    List {
        /// Print JSON for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Each projection (and a rebuild's shadow): state, position, lag in events, events/s,
    /// runner, last error.
    Status {
        /// Print JSON for scripts.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        db: DatabaseArgs,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Blue/green rebuild: build shadow tables from position zero while the live ones keep
    /// serving, compare, swap atomically. Resumes an interrupted rebuild. Exit 0 once swapped.
    Rebuild {
        /// The projection to rebuild (see `list`).
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        name: Option<String>,
        /// Rebuild every projection, one after another.
        #[arg(long)]
        all: bool,
        /// Throw away the shadow an interrupted rebuild left, instead of resuming it.
        #[arg(long)]
        restart: bool,
        /// Print the report as JSON for scripts.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        db: DatabaseArgs,
        #[command(flatten)]
        store: StoreArgs,
        #[command(flatten)]
        nats: NatsArgs,
        #[command(flatten)]
        projection: ProjectionArgs,
    },
}

pub async fn run(command: ProjectionsCommand) -> anyhow::Result<ExitCode> {
    match command {
        ProjectionsCommand::List { json } => {
            list(json)?;
            Ok(ExitCode::SUCCESS)
        }
        ProjectionsCommand::Status { json, db, store } => {
            crate::migrate::run(&db).await?;
            let pool = db.pool().await?;
            let store = store.open(&pool)?;
            let names: Vec<&str> = cortex_projections::registry().iter().map(|p| p.name()).collect();
            let mut rows =
                status::statuses(&pool, &names).await.context("reading the projections' status")?;
            for row in &mut rows {
                let at =
                    row.position.as_deref().map(str::parse).transpose().context("a stored checkpoint")?;
                row.lag = store.count_after(at).await.context("counting the lag")?;
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                print_status(&rows);
            }
            Ok(ExitCode::SUCCESS)
        }
        ProjectionsCommand::Rebuild { name, all, restart, json, db, store, nats, projection } => {
            let projectors: Vec<Arc<dyn Projector>> = if all {
                cortex_projections::registry()
            } else {
                let name = name.unwrap_or_default();
                let found = cortex_projections::registry().into_iter().find(|p| p.name() == name);
                match found {
                    Some(p) => vec![p],
                    None => {
                        eprintln!(
                            "error: no projection named {name:?}; `cortex projections list` shows them"
                        );
                        return Ok(ExitCode::from(2));
                    }
                }
            };
            crate::migrate::run(&db).await?;
            let pool = db.pool().await?;
            let store = store.open(&pool)?;
            let notifier = nats.notifier().await?;
            let mut reports = Vec::new();
            for projector in projectors {
                let name = projector.name();
                let rebuild = Rebuild::new(
                    store.clone(),
                    pool.clone(),
                    db.database_url.expose_secret(),
                    projector,
                    projection.settings(),
                    notifier.clone(),
                );
                let bar = Bar::new(name);
                let report = rebuild.run(restart, |p| bar.show(p)).await;
                bar.finish();
                let report = report.with_context(|| format!("rebuilding {name}"))?;
                if !json {
                    print_report(&report);
                }
                reports.push(report);
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&reports)?);
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn list(json: bool) -> anyhow::Result<()> {
    let rows: Vec<serde_json::Value> = cortex_projections::registry()
        .iter()
        .map(|p| {
            serde_json::json!({
                "name": p.name(),
                "schema": format!("rm_{}", p.name()),
                "reads": describe(&p.filter()),
                "models": p.models(),
            })
        })
        .collect();
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        println!("{:<12} {:<16} {:<28} MODELS", "NAME", "SCHEMA", "READS");
        for r in &rows {
            let models: Vec<&str> =
                r["models"].as_array().into_iter().flatten().filter_map(|m| m.as_str()).collect();
            println!(
                "{:<12} {:<16} {:<28} {}",
                r["name"].as_str().unwrap_or(""),
                r["schema"].as_str().unwrap_or(""),
                r["reads"].as_str().unwrap_or(""),
                models.join(", ")
            );
        }
    }
    Ok(())
}

/// `categories resource, policy` / `types …` / `every event`.
fn describe(filter: &cortex_events::EventFilter) -> String {
    let mut parts = Vec::new();
    if !filter.categories.is_empty() {
        parts.push(format!("categories {}", filter.categories.join(", ")));
    }
    if !filter.event_types.is_empty() {
        parts.push(format!("types {}", filter.event_types.join(", ")));
    }
    if parts.is_empty() { "every event".to_owned() } else { parts.join("; ") }
}

fn print_status(rows: &[status::Status]) {
    println!(
        "{:<20} {:<12} {:<34} {:>10} {:>10}  LAST ERROR",
        "PROJECTION", "STATE", "POSITION", "LAG", "EVENTS/S"
    );
    for r in rows {
        let error = r.last_error.as_ref().map_or_else(String::new, |f| {
            let mut text = f.message.clone();
            if let (Some(id), Some(stream), Some(at)) = (&f.event_id, &f.stream, &f.position) {
                text = format!("event {id} ({stream} at {at}): {text}");
            }
            text
        });
        println!(
            "{:<20} {:<12} {:<34} {:>10} {:>10.0}  {}",
            r.projection,
            r.state,
            r.position.as_deref().unwrap_or("-"),
            r.lag.map_or_else(|| "-".to_owned(), |l| l.to_string()),
            r.events_per_second,
            error
        );
    }
}

fn print_report(r: &RebuildReport) {
    println!(
        "rebuilt {} in {:.1} s: {} events applied, now at {}{}",
        r.projection,
        r.seconds,
        r.events,
        r.position.as_deref().unwrap_or("the start"),
        r.resumed_from.as_deref().map_or_else(String::new, |p| format!(" (resumed from {p})"))
    );
    if !r.compared_at_same_position {
        println!(
            "  note: the live tables were behind the shadow (no runner following the log); they were compared anyway"
        );
    }
    for t in &r.tables {
        let verdict = if t.differs() { "DIFFERS" } else { "same" };
        println!(
            "  {:<16} live {:>9} rows  shadow {:>9} rows  {verdict}",
            t.table, t.live_rows, t.shadow_rows
        );
    }
}

/// A one-line progress bar on stderr: redrawn in place on a terminal, a line every ten
/// seconds otherwise (logs, CI).
struct Bar {
    name: &'static str,
    tty: bool,
    last_line: std::sync::Mutex<std::time::Instant>,
    last: std::sync::Mutex<Option<String>>,
}

impl Bar {
    fn new(name: &'static str) -> Self {
        let long_ago = std::time::Instant::now()
            .checked_sub(Duration::from_secs(60))
            .unwrap_or_else(std::time::Instant::now);
        Self {
            name,
            tty: std::io::stderr().is_terminal(),
            last_line: std::sync::Mutex::new(long_ago),
            last: std::sync::Mutex::new(None),
        }
    }

    fn show(&self, p: Progress) {
        let of = p.total.map_or_else(String::new, |t| format!(" / {t}"));
        let percent = p.total.filter(|t| *t > 0).map_or(0.0, |t| p.done as f64 * 100.0 / t as f64);
        let width = 30usize;
        let filled = ((percent / 100.0) * width as f64).round() as usize;
        let eta = p.eta.map_or_else(|| "-".to_owned(), |e| format!("{:.0} s", e.as_secs_f64()));
        let line = format!(
            "{} [{}{}] {}{} events  {:.0} ev/s  ETA {}",
            self.name,
            "#".repeat(filled.min(width)),
            " ".repeat(width - filled.min(width)),
            p.done,
            of,
            p.events_per_second,
            eta
        );
        if let Ok(mut last) = self.last.lock() {
            *last = Some(line.clone());
        }
        if self.tty {
            eprint!("\r\x1b[2K{line}");
        } else if let Ok(mut last) = self.last_line.lock()
            && last.elapsed() >= Duration::from_secs(10)
        {
            *last = std::time::Instant::now();
            eprintln!("{line}");
        }
    }

    /// Ends the bar's line; off a terminal, prints the last state once more.
    fn finish(&self) {
        if self.tty {
            eprintln!();
        } else if let Some(line) = self.last.lock().ok().and_then(|mut l| l.take()) {
            eprintln!("{line}");
        }
    }
}
