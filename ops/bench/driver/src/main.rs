//! `cortex-bench`: the parts of `ops/bench/queries` that wrk cannot do.
//!
//! * `hello`: the baseline, an axum `GET /hello` answering a small constant JSON, served the
//!   way `cortex serve` serves (multi-threaded tokio, mimalloc).
//! * `prepare`: reads the tenant's resource ids and types from the query API, writes the
//!   path files the wrk scripts cycle through, and fetches each warm id once.
//! * `freshness`: commands at a steady open-loop rate; per answer, the delay until a plain
//!   `GET /v1/resources/{id}` (no `X-Cortex-After`) shows that revision.
//! * `sse`: thousands of `GET /v1/changes` streams; per change event delivered, the delay
//!   from its `at` (set right after the commit) to its arrival, and the server's memory.
//!
//! Each measurement prints one `RESULT key=value …` line (as the wrk scripts do) that the
//! shell script reads; progress goes to stderr.

mod freshness;
mod hello;
mod prepare;
mod procfs;
mod records;
mod sse;
mod stats;

use clap::{Parser, Subcommand};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "cortex-bench", about = "PolicyCortex query benchmark driver (ops/bench/queries)")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the baseline: GET /hello answers {"hello":"world"}.
    Hello(hello::Args),
    /// Write the wrk path files from the read models and warm the ids.
    Prepare(prepare::Args),
    /// Freshness at a steady command rate: command answer → visible through a GET.
    Freshness(freshness::Args),
    /// SSE fan-out: delay from commit to delivery over many GET /v1/changes streams.
    Sse(sse::Args),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        match cli.command {
            Command::Hello(args) => hello::run(args).await,
            Command::Prepare(args) => prepare::run(args).await,
            Command::Freshness(args) => freshness::run(args).await,
            Command::Sse(args) => sse::run(args).await,
        }
    })
}
