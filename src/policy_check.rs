//! `cortex policy check`: try an Azure Policy rule against one resource, locally.

use std::{path::Path, process::ExitCode};

use anyhow::Context;
use cortex_command::rules::{self, Mode, check::CheckError};
use serde_json::Value;

use crate::cli::PolicyCheckArgs;

fn read_json(path: &Path, what: &str) -> anyhow::Result<Value> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the {what} file {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("the {what} file {} is not JSON", path.display()))
}

/// Exit 0 whatever the state; 2 when the policy does not compile (faults on stderr); 1 when
/// an input file cannot be read or is not of the expected shape.
pub fn run(args: &PolicyCheckArgs) -> anyhow::Result<ExitCode> {
    let policy = read_json(&args.policy, "policy")?;
    let resource = read_json(&args.resource, "resource")?;
    let params = args.params.as_deref().map(|p| read_json(p, "parameter values")).transpose()?;
    let group = args.rg.as_deref().map(|p| read_json(p, "resource group")).transpose()?;
    let mode = args.mode.map(|m| match m {
        ModeArg::All => Mode::All,
        ModeArg::Indexed => Mode::Indexed,
    });
    match rules::check::check(&policy, &resource, params.as_ref(), mode, group.as_ref()) {
        Ok(outcome) if args.json => {
            println!("{}", outcome.to_json());
            Ok(ExitCode::SUCCESS)
        }
        Ok(outcome) => {
            println!("{}", outcome.render());
            Ok(ExitCode::SUCCESS)
        }
        Err(e @ CheckError::Compile(_)) => {
            eprintln!("{}", e.render());
            Ok(ExitCode::from(2))
        }
        Err(e) => Err(anyhow::anyhow!(e.render())),
    }
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ModeArg {
    All,
    Indexed,
}
