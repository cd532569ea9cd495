//! The baseline: the cheapest useful axum endpoint on this machine, measured by the same wrk
//! settings as the query API, so the API's figures read as a fraction of it.

use axum::{Json, Router, routing::get};
use serde_json::{Value, json};

#[derive(clap::Args)]
pub struct Args {
    /// Where to listen, e.g. 127.0.0.1:18491.
    #[arg(long)]
    addr: String,
}

pub fn router() -> Router {
    Router::new().route("/hello", get(hello))
}

async fn hello() -> Json<Value> {
    Json(json!({ "hello": "world" }))
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(&args.addr).await?;
    eprintln!("hello: listening on {}", listener.local_addr()?);
    axum::serve(listener, router()).await?;
    Ok(())
}
