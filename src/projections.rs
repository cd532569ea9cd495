//! `cortex projections list | status | rebuild` (DESIGN §9).

use std::{io::IsTerminal, process::ExitCode, sync::Arc, time::Duration};

use anyhow::Context;
use clap::Subcommand;
use cortex_projections::{
    Projector,
    rebuild::{Progress, Rebuild, RebuildReport, rebuild_all},
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
        /// Rebuild every projection, side by side from one read of the log.
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
            // The evaluator runs on the same runner, so it has a status row too.
            let mut names: Vec<&str> = cortex_projections::registry().iter().map(|p| p.name()).collect();
            names.push(cortex_command::evaluator::NAME);
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
                    None if name == cortex_command::evaluator::NAME => {
                        eprintln!(
                            "error: the evaluator is not rebuilt: it appends decisions to the log, and a rebuild \
                             would decide the whole past again (docs/decisions.md, \"Compliance evaluator\")"
                        );
                        return Ok(ExitCode::from(2));
                    }
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
            let names: Vec<&'static str> = projectors.iter().map(|p| p.name()).collect();
            let rebuilds = projectors
                .into_iter()
                .map(|projector| {
                    Rebuild::new(
                        store.clone(),
                        pool.clone(),
                        db.database_url.expose_secret(),
                        projector,
                        projection.settings(),
                        notifier.clone(),
                    )
                })
                .collect();
            let bars = Arc::new(Bars::new(&names));
            let shown = bars.clone();
            let outcomes = rebuild_all(rebuilds, restart, Arc::new(move |name, p| shown.show(name, p))).await;
            bars.finish();
            let mut reports = Vec::new();
            let mut failed = false;
            for (name, outcome) in names.iter().zip(outcomes) {
                match outcome {
                    Ok(report) => {
                        if !json {
                            print_report(&report);
                        }
                        reports.push(report);
                    }
                    Err(e) => {
                        failed = true;
                        eprintln!("error: rebuilding {name}: {:#}", anyhow::Error::new(e));
                    }
                }
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&reports)?);
            }
            Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
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
        if let Some(p) = &r.progress {
            println!(
                "{:<20} {} {}: {} of {} resources",
                "",
                p["work"].as_str().unwrap_or("work"),
                p["policy_id"].as_str().unwrap_or(""),
                p["done"],
                p["total"]
            );
        }
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

/// Progress bars on stderr, a line per projection: redrawn in place on a terminal, each
/// printed every ten seconds otherwise (logs, CI).
struct Bars {
    names: Vec<&'static str>,
    tty: bool,
    state: std::sync::Mutex<BarsState>,
}

struct BarsState {
    lines: Vec<Option<String>>,
    drawn: bool,
    printed: Vec<std::time::Instant>,
}

impl Bars {
    fn new(names: &[&'static str]) -> Self {
        let long_ago = std::time::Instant::now()
            .checked_sub(Duration::from_secs(60))
            .unwrap_or_else(std::time::Instant::now);
        Self {
            names: names.to_vec(),
            tty: std::io::stderr().is_terminal(),
            state: std::sync::Mutex::new(BarsState {
                lines: vec![None; names.len()],
                drawn: false,
                printed: vec![long_ago; names.len()],
            }),
        }
    }

    fn show(&self, name: &'static str, p: Progress) {
        let Some(i) = self.names.iter().position(|n| *n == name) else { return };
        let of = p.total.map_or_else(String::new, |t| format!(" / {t}"));
        let percent = p.total.filter(|t| *t > 0).map_or(0.0, |t| p.done as f64 * 100.0 / t as f64);
        let width = 30usize;
        let filled = (((percent / 100.0) * width as f64).round() as usize).min(width);
        let eta = p.eta.map_or_else(|| "-".to_owned(), |e| format!("{:.0} s", e.as_secs_f64()));
        let line = format!(
            "{name:<12} [{}{}] {}{} events  {:.0} ev/s  ETA {}",
            "#".repeat(filled),
            " ".repeat(width - filled),
            p.done,
            of,
            p.events_per_second,
            eta
        );
        let Ok(mut state) = self.state.lock() else { return };
        state.lines[i] = Some(line.clone());
        if self.tty {
            let mut out = String::new();
            if state.drawn {
                out.push_str(&format!("\x1b[{}A", self.names.len()));
            }
            for line in &state.lines {
                out.push_str(&format!("\r\x1b[2K{}\n", line.as_deref().unwrap_or("")));
            }
            state.drawn = true;
            eprint!("{out}");
        } else if state.printed[i].elapsed() >= Duration::from_secs(10) {
            state.printed[i] = std::time::Instant::now();
            eprintln!("{line}");
        }
    }

    /// Off a terminal, prints each bar's last state once more.
    fn finish(&self) {
        if self.tty {
            return;
        }
        if let Ok(state) = self.state.lock() {
            for line in state.lines.iter().flatten() {
                eprintln!("{line}");
            }
        }
    }
}
