//! Notices after commit (DESIGN §6): what changed (`cortex.changes.{tenant}.{model}`) and how
//! far a projection got (`cortex.checkpoints.{projection}`).
//!
//! With `CORTEX_NATS_URL` set they go to NATS; without it `cortex serve` runs every component
//! in one process, and an in-process bus with the same subjects and payloads stands in.
//! Publishing never fails a projection: the rows are committed already, and the query side
//! bounds how stale it may serve when notices stop (DESIGN §5).

use bytes::Bytes;
use chrono::Utc;
use cortex_events::{
    Position,
    wire::{ChangeNotice, CheckpointNotice, changes_subject, checkpoint_subject},
};
use tokio::sync::broadcast;

use crate::projector::Changes;

/// One published message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub subject: String,
    pub payload: Bytes,
}

/// Where notices go.
#[derive(Clone, Debug)]
pub enum Notifier {
    Nats(async_nats::Client),
    Local(LocalBus),
    /// Nowhere (shadow builds during a rebuild, tools, tests that do not listen).
    Off,
}

/// The in-process stand-in for NATS: a broadcast channel of subject + payload.
#[derive(Clone, Debug)]
pub struct LocalBus {
    tx: broadcast::Sender<Message>,
}

impl LocalBus {
    pub fn new(capacity: usize) -> Self {
        Self { tx: broadcast::channel(capacity).0 }
    }

    /// Every message published from now on (a slow receiver sees `Lagged`, as a slow NATS
    /// consumer would miss messages).
    pub fn subscribe(&self) -> broadcast::Receiver<Message> {
        self.tx.subscribe()
    }
}

impl Default for LocalBus {
    fn default() -> Self {
        Self::new(4096)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("cannot connect to NATS at {url}")]
pub struct ConnectError {
    url: String,
    #[source]
    source: async_nats::ConnectError,
}

impl Notifier {
    /// A NATS client that keeps reconnecting by itself, including when the server is not up
    /// yet at start.
    #[tracing::instrument(name = "nats.connect", skip_all, fields(url = %url))]
    pub async fn nats(url: &str) -> Result<Self, ConnectError> {
        let client = async_nats::ConnectOptions::new()
            .name("cortex-projections")
            .retry_on_initial_connect()
            .connect(url)
            .await
            .map_err(|source| ConnectError { url: url.to_owned(), source })?;
        Ok(Self::Nats(client))
    }

    async fn publish(&self, subject: String, payload: Vec<u8>) {
        match self {
            Self::Nats(client) => {
                if let Err(e) = client.publish(subject.clone(), payload.into()).await {
                    tracing::warn!(subject, error = %e, "cannot publish a notice on NATS");
                }
            }
            // No receiver is not an error: nobody is listening in this process.
            Self::Local(bus) => drop(bus.tx.send(Message { subject, payload: payload.into() })),
            Self::Off => {}
        }
    }

    /// The notices of one commit: each (tenant, model)'s changed ids, then the checkpoint.
    #[tracing::instrument(name = "projection.notify", skip_all, fields(projection, position = %position))]
    pub async fn committed(&self, projection: &str, position: Position, changes: &Changes) {
        if matches!(self, Self::Off) {
            return;
        }
        let at = Utc::now();
        for (tenant, model, ids) in changes.iter() {
            let notice =
                ChangeNotice { model: model.to_owned(), ids: ids.iter().cloned().collect(), position, at };
            self.publish(changes_subject(tenant, model), to_json(&notice)).await;
        }
        let notice = CheckpointNotice { projection: projection.to_owned(), position, at };
        self.publish(checkpoint_subject(projection), to_json(&notice)).await;
    }
}

fn to_json<T: serde::Serialize>(value: &T) -> Vec<u8> {
    // Plain structs of strings, numbers and ids: serialising them cannot fail.
    serde_json::to_vec(value).unwrap_or_default()
}
