//! Logging and tracing set-up: one subscriber for the whole process.

use clap::{Args, ValueEnum};
use tracing_subscriber::{EnvFilter, fmt, prelude::*};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

#[derive(Debug, Clone, Args)]
pub struct LogArgs {
    /// Log filter in `tracing` syntax, e.g. `info,cortex_events=debug`.
    #[arg(long = "log", env = "CORTEX_LOG", default_value = "info", global = true)]
    pub filter: String,
    #[arg(long = "log-format", env = "CORTEX_LOG_FORMAT", value_enum, default_value = "text", global = true)]
    pub format: LogFormat,
}

/// Installs the global subscriber. Logs go to stderr so that stdout stays for command
/// output (JSON for scripts).
pub fn init(args: &LogArgs) {
    let filter = EnvFilter::try_new(&args.filter).unwrap_or_else(|e| {
        eprintln!("warning: invalid log filter {:?} ({e}); using \"info\"", args.filter);
        EnvFilter::new("info")
    });
    let registry = tracing_subscriber::registry().with(filter);
    match args.format {
        LogFormat::Text => registry.with(fmt::layer().with_writer(std::io::stderr)).init(),
        LogFormat::Json => registry.with(fmt::layer().json().with_writer(std::io::stderr)).init(),
    }
}
