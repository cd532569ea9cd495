//! The path files for wrk: every resource page of the tenant is read once (500 a page), then
//! `ids.paths` holds `warm` ids spread evenly over the estate (each fetched once here, so
//! the measured run only repeats them) and `list.paths` one filtered list per type.

use std::{collections::BTreeSet, path::PathBuf};

use anyhow::{Context, bail};
use futures::{StreamExt, TryStreamExt, stream};
use serde_json::Value;

use crate::records::{Api, client};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    api: Api,
    /// Directory for ids.paths and list.paths.
    #[arg(long)]
    out: PathBuf,
    /// How many ids the GET-by-id run cycles through.
    #[arg(long, default_value_t = 2000)]
    warm: usize,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let client = client()?;
    let mut ids = Vec::new();
    let mut types = BTreeSet::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = "/v1/resources?limit=500".to_string();
        if let Some(c) = &cursor {
            path.push_str("&cursor=");
            path.push_str(c);
        }
        let resp = client.get(args.api.at(&path)).bearer_auth(&args.api.key).send().await?;
        if !resp.status().is_success() {
            bail!("GET {path} answered {}", resp.status());
        }
        let page: Value = resp.json().await?;
        for item in page["items"].as_array().context("a page without items")? {
            ids.push(item["resource_id"].as_str().context("an item without resource_id")?.to_string());
            types.insert(item["type"].as_str().context("an item without type")?.to_string());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    if ids.is_empty() {
        bail!("the tenant has no resources");
    }

    let warm = spread(&ids, args.warm);
    std::fs::create_dir_all(&args.out)?;
    let id_paths: Vec<String> = warm.iter().map(|id| format!("/v1/resources/{id}")).collect();
    std::fs::write(args.out.join("ids.paths"), lines(&id_paths))?;
    let list_paths: Vec<String> =
        types.iter().map(|t| format!("/v1/resources?type={}&limit=50", encode(t))).collect();
    std::fs::write(args.out.join("list.paths"), lines(&list_paths))?;

    // Each warm id once, so that every request of the measured run is a repeat.
    let client = &client;
    let api = &args.api;
    stream::iter(id_paths.iter())
        .map(|path| async move {
            let resp = client.get(api.at(path)).bearer_auth(&api.key).send().await?;
            if resp.status() != 200 {
                bail!("GET {path} answered {}", resp.status());
            }
            resp.bytes().await?;
            Ok(())
        })
        .buffer_unordered(8)
        .try_collect::<()>()
        .await?;

    println!("RESULT resources={} warm={} types={}", ids.len(), warm.len(), types.len());
    Ok(())
}

/// `n` items spread evenly over `all` (all of them when there are fewer).
fn spread(all: &[String], n: usize) -> Vec<String> {
    if n >= all.len() {
        return all.to_vec();
    }
    (0..n).map(|i| all[i * all.len() / n].clone()).collect()
}

fn lines(paths: &[String]) -> String {
    let mut s = paths.join("\n");
    s.push('\n');
    s
}

/// Percent-encoding for a query value: unreserved characters and `/` stay as they are.
fn encode(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_takes_evenly_and_never_more_than_there_are() {
        let all: Vec<String> = (0..10).map(|i| i.to_string()).collect();
        assert_eq!(spread(&all, 5), ["0", "2", "4", "6", "8"]);
        assert_eq!(spread(&all, 20), all);
    }

    #[test]
    fn encode_keeps_slashes_and_escapes_the_rest() {
        assert_eq!(encode("Microsoft.Storage/storageAccounts"), "Microsoft.Storage/storageAccounts");
        assert_eq!(encode("a b&c"), "a%20b%26c");
    }
}
