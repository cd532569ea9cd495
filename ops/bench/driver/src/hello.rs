//! The baselines, measured in the same run on the same machine so the API's figures read as
//! a fraction of them:
//! - `GET /hello`: the cheapest useful axum endpoint, for wrk at the same settings as the
//!   query API.
//! - `GET /hello/changes`: the least a live stream can do, for the SSE fan-out. Every
//!   `POST /hello/changes` sends `event: change` with `data: {"at": now}` to every connected
//!   stream through one `tokio::sync::broadcast`, encoded once; a stream writes each event
//!   as it receives it (no resume ids, tenants, heartbeats or middleware).

use std::convert::Infallible;

use axum::{
    Json, Router,
    body::{Body, Bytes},
    extract::State,
    http::{StatusCode, header},
    response::IntoResponse,
    routing::get,
};
use serde_json::{Value, json};
use tokio::sync::broadcast;

#[derive(clap::Args)]
pub struct Args {
    /// Where to listen, e.g. 127.0.0.1:18491.
    #[arg(long)]
    addr: String,
}

pub fn router() -> Router {
    let (changes, _) = broadcast::channel::<Bytes>(4096);
    Router::new()
        .route("/hello", get(hello))
        .route("/hello/changes", get(follow).post(announce))
        .with_state(changes)
}

async fn follow(State(changes): State<broadcast::Sender<Bytes>>) -> impl IntoResponse {
    let events = futures::stream::unfold(changes.subscribe(), |mut rx| async move {
        loop {
            match rx.recv().await {
                Ok(event) => return Some((Ok::<_, Infallible>(event), rx)),
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    (
        [(header::CONTENT_TYPE, "text/event-stream"), (header::CACHE_CONTROL, "no-cache")],
        Body::from_stream(events),
    )
}

async fn announce(State(changes): State<broadcast::Sender<Bytes>>) -> StatusCode {
    let at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    // No stream is not an error.
    let _ = changes.send(format!("event: change\ndata: {{\"at\":\"{at}\"}}\n\n").into());
    StatusCode::NO_CONTENT
}

async fn hello() -> Json<Value> {
    Json(json!({ "hello": "world" }))
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(&args.addr).await?;
    eprintln!("hello: listening on {}", listener.local_addr()?);
    // As `cortex serve` sets its connections.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, router()).await?;
    Ok(())
}
