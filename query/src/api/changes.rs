//! `GET /v1/changes`: the tenant's read-model changes as server-sent events, as they commit
//! (DESIGN §5), fed by the change notices this instance receives.
//!
//! - `event: change`, `data:` the notice (`{model, ids, position, at}`; empty `ids` = the
//!   whole model changed, e.g. after a rebuild).
//! - `id:` a resume token: how far this stream got in each model (`resources`, `compliance`,
//!   `policies`: one commit may announce several models at one position). A client that
//!   reconnects with `Last-Event-ID` (browsers' `EventSource` do so by themselves) gets the
//!   changes it missed that this instance still holds, then the live ones.
//! - `event: reset`: changes may have been lost (the client fell behind, or resumed from
//!   further back than this instance holds): reread what you show, then go on.
//! - A `: heartbeat` comment after every `CORTEX_SSE_HEARTBEAT_SECONDS` without an event
//!   keeps proxies from closing a quiet stream.
//!
//! Every change reaches every stream of its tenant (each tenant has a channel of its own,
//! [`Freshness::subscribe`](crate::fresh::Freshness::subscribe)), so the cost of a change
//! is one write per client of that tenant. Two things keep that cost down when many clients
//! are connected:
//! - A stream sends, in one body frame (one write), every event waiting for it when it
//!   wakes. Under load a stream wakes less often than changes come, and the events that
//!   came meanwhile share a write, so a burst does not queue one write per event per
//!   client.
//! - The part of an event that every stream sends alike (`data:`) is encoded once per change
//!   ([`TenantChange::sse_data`]); a stream adds only its own `event:` and `id:` lines. The
//!   heartbeat timer is moved only when it fires, not on every event.

use std::{collections::VecDeque, convert::Infallible, fmt::Write as _, pin::Pin, sync::Arc, time::Duration};

use axum::{
    body::{Body, Bytes},
    extract::State,
    http::{HeaderMap, HeaderValue, header},
    response::{IntoResponse, Response},
};
use bytes::BytesMut;
use cortex_events::Position;
use cortex_http::{problem::ApiError, tenants::Caller};
use futures::Stream;
use serde_json::json;
use tokio::{
    sync::broadcast::{
        self,
        error::{RecvError, TryRecvError},
    },
    time::{Instant, Sleep},
};
use uuid::Uuid;

use super::QueryState;
use crate::fresh::{Live, MODELS, ModelPositions, Projection, TenantChange, model_index};

/// Writes a resume id: `{resources}.{compliance}.{policies}` positions, each as its token
/// (32 hex digits, [`Position::token`]), by hand: `format!` of the hex digits was a tenth
/// of the server's time when thousands of streams follow one tenant.
fn write_cursor(out: &mut BytesMut, cursor: &ModelPositions) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut id = [b'.'; 3 * 33 - 1];
    for (p, token) in cursor.iter().zip(id.chunks_mut(33)) {
        for (half, digits) in [p.major, p.minor].into_iter().zip(token.chunks_mut(16)) {
            for (i, digit) in digits.iter_mut().enumerate() {
                *digit = DIGITS[((half >> (60 - 4 * i)) & 0xf) as usize];
            }
        }
    }
    out.extend_from_slice(&id);
}

fn decode(text: &str) -> Option<ModelPositions> {
    let mut parts = text.trim().split('.');
    let mut cursor = [Position::new(0, 0); 3];
    for slot in &mut cursor {
        *slot = parts.next()?.parse().ok()?;
    }
    parts.next().is_none().then_some(cursor)
}

/// The stream's position in each model when it starts: the known checkpoints.
fn cursor_of(checkpoints: &crate::fresh::Positions) -> ModelPositions {
    let mut cursor = [Position::new(0, 0); 3];
    for (i, model) in MODELS.iter().enumerate() {
        if let Some(p) = Projection::of_model(model) {
            cursor[i] = checkpoints[p as usize];
        }
    }
    cursor
}

/// A frame grows past this only by its last event: a long backlog goes out in several.
const FRAME_BYTES: usize = 64 * 1024;

/// One client's stream.
struct Feed {
    tenant_id: Uuid,
    rx: broadcast::Receiver<Live>,
    /// Changes taken from `rx` (or kept for a resume) and not yet sent.
    backlog: VecDeque<Arc<TenantChange>>,
    cursor: ModelPositions,
    reset: Option<String>,
    /// `rx` has closed: send what is left, then end.
    closed: bool,
    fresh: crate::fresh::Freshness,
    heartbeat: Duration,
    /// When the stream last sent anything; the heartbeat is due `heartbeat` after it.
    last_sent: Instant,
    timer: Pin<Box<Sleep>>,
    frame: BytesMut,
}

impl Feed {
    fn new(
        tenant_id: Uuid,
        rx: broadcast::Receiver<Live>,
        backlog: VecDeque<Arc<TenantChange>>,
        cursor: ModelPositions,
        reset: Option<String>,
        fresh: crate::fresh::Freshness,
        heartbeat: Duration,
    ) -> Self {
        let now = Instant::now();
        Self {
            tenant_id,
            rx,
            backlog,
            cursor,
            reset,
            closed: false,
            fresh,
            heartbeat,
            last_sent: now,
            timer: Box::pin(tokio::time::sleep_until(now + heartbeat)),
            frame: BytesMut::new(),
        }
    }

    /// Appends the next event that is ready without waiting to `frame`; false when none is.
    fn take_ready(&mut self) -> bool {
        loop {
            if let Some(reason) = self.reset.take() {
                self.write_reset(&reason);
                return true;
            }
            let Some(change) = self.backlog.pop_front() else {
                if self.closed {
                    return false;
                }
                let received = match self.rx.try_recv() {
                    Ok(live) => Ok(live),
                    Err(TryRecvError::Empty) => return false,
                    Err(TryRecvError::Lagged(n)) => Err(RecvError::Lagged(n)),
                    Err(TryRecvError::Closed) => Err(RecvError::Closed),
                };
                self.accept(received);
                continue;
            };
            let Some(slot) = model_index(&change.notice.model) else { continue };
            // A whole-model notice (empty ids, after a rebuild) may repeat a position already
            // sent: it always goes out.
            let whole = change.notice.ids.is_empty();
            if change.tenant_id != self.tenant_id || (!whole && change.notice.position <= self.cursor[slot]) {
                continue;
            }
            self.cursor[slot] = self.cursor[slot].max(change.notice.position);
            self.frame.extend_from_slice(b"event: change\nid: ");
            write_cursor(&mut self.frame, &self.cursor);
            self.frame.extend_from_slice(b"\n");
            self.frame.extend_from_slice(&change.sse_data);
            return true;
        }
    }

    /// Takes what a receive gave: a change to send, or the cause of a reset.
    fn accept(&mut self, received: Result<Live, RecvError>) {
        match received {
            Ok(Live::Change(c)) => self.backlog.push_back(c),
            Ok(Live::Reset(why)) => self.reset = Some(why.to_owned()),
            Err(RecvError::Lagged(n)) => self.reset = Some(format!("this stream fell behind by {n} changes")),
            Err(RecvError::Closed) => self.closed = true,
        }
    }

    fn write_reset(&mut self, reason: &str) {
        // Go on from what is committed now: the client rereads, then follows.
        let now = self.fresh.checkpoints();
        let from_now = cursor_of(&now);
        for (slot, now) in self.cursor.iter_mut().zip(from_now) {
            *slot = (*slot).max(now);
        }
        let data = json!({"reason": reason, "checkpoints": {"resources": now[0], "compliance": now[1]}});
        self.frame.extend_from_slice(b"event: reset\nid: ");
        write_cursor(&mut self.frame, &self.cursor);
        let _ = write!(self.frame, "\ndata: {data}\n\n");
    }

    /// The next body frame: every event ready now, else the first to come (and all ready
    /// with it), else a heartbeat once the stream has been quiet for `heartbeat`.
    async fn next(mut self) -> Option<(Result<Bytes, Infallible>, Self)> {
        loop {
            while self.frame.len() < FRAME_BYTES && self.take_ready() {}
            if !self.frame.is_empty() {
                self.last_sent = Instant::now();
                let frame = self.frame.split().freeze();
                // The spare room of a large frame (a resume's backlog) is not kept for the
                // stream's lifetime.
                if self.frame.capacity() > 4096 {
                    self.frame = BytesMut::new();
                }
                return Some((Ok(frame), self));
            }
            if self.closed {
                return None;
            }
            tokio::select! {
                biased;
                received = self.rx.recv() => self.accept(received),
                () = self.timer.as_mut() => {
                    let due = self.last_sent + self.heartbeat;
                    let now = Instant::now();
                    if now >= due {
                        self.frame.extend_from_slice(b": heartbeat\n\n");
                        self.timer.as_mut().reset(now + self.heartbeat);
                    } else {
                        self.timer.as_mut().reset(due);
                    }
                }
            }
        }
    }
}

fn feed(
    state: &QueryState,
    tenant_id: Uuid,
    last_event_id: Option<ModelPositions>,
) -> impl Stream<Item = Result<Bytes, Infallible>> + use<> {
    let fresh = state.cache.freshness().clone();
    // Subscribed before the backlog is taken: nothing falls between the two (duplicates are
    // skipped by position).
    let rx = fresh.subscribe(tenant_id);
    let (backlog, cursor, reset) = match last_event_id {
        Some(from) => {
            let (items, complete) = fresh.replay_after(tenant_id, &from);
            let reset = (!complete).then(|| "resumed from further back than this instance holds".to_owned());
            (items.into(), from, reset)
        }
        None => (VecDeque::new(), cursor_of(&fresh.checkpoints()), None),
    };
    let feed = Feed::new(tenant_id, rx, backlog, cursor, reset, fresh, state.settings.heartbeat);
    futures::stream::unfold(feed, Feed::next)
}

/// The tenant's read-model changes as server-sent events.
#[utoipa::path(get, path = "/v1/changes", tag = "queries", operation_id = "changes",
    params(("Last-Event-ID" = Option<String>, Header, description = "resume after this event's `id`")),
    responses(
        (status = 200, content_type = "text/event-stream",
            description = "`event: change` with `data: {model, ids, position, at}` and a resume `id`; `event: reset` when changes may have been missed (reread, then follow); `: heartbeat` comments"),
        (status = 400, description = "a malformed Last-Event-ID"), (status = 401), (status = 429)))]
pub async fn stream(
    State(state): State<QueryState>,
    caller: Caller,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let last = match headers.get("last-event-id") {
        None => None,
        Some(v) => Some(v.to_str().ok().and_then(decode).ok_or_else(|| {
            ApiError::invalid_field(
                "Last-Event-ID",
                "not an id this stream sent (three position tokens joined by '.')",
            )
        })?),
    };
    let body = Body::from_stream(feed(&state, caller.tenant_id, last));
    let headers = [
        (header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream")),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
    ];
    Ok((headers, body).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    use cortex_events::wire::ChangeNotice;
    use futures::StreamExt;

    fn encode(cursor: &ModelPositions) -> String {
        let mut out = BytesMut::new();
        write_cursor(&mut out, cursor);
        String::from_utf8(out.to_vec()).unwrap()
    }

    fn change(tenant_id: Uuid, model: &str, position: Position) -> Live {
        Live::Change(Arc::new(TenantChange::for_test(tenant_id, model, position)))
    }

    /// A new stream of `tenant` from the start of the log. Its freshness state's database
    /// is never reached: a stream asks it only for the checkpoints it has been told.
    fn live(
        tenant: Uuid,
        rx: broadcast::Receiver<Live>,
        heartbeat: Duration,
    ) -> Pin<Box<impl Stream<Item = Result<Bytes, Infallible>>>> {
        let pool = sqlx::PgPool::connect_lazy("postgres://nobody@127.0.0.1:1/none").unwrap();
        let fresh = crate::fresh::Freshness::new(pool, Default::default());
        let feed = Feed::new(tenant, rx, VecDeque::new(), [Position::new(0, 0); 3], None, fresh, heartbeat);
        Box::pin(futures::stream::unfold(feed, Feed::next))
    }

    /// Splits a body frame into its events: (event, id, data).
    fn events(frame: &[u8]) -> Vec<(String, String, String)> {
        let text = std::str::from_utf8(frame).unwrap();
        assert!(text.ends_with("\n\n"), "a frame holds whole events: {text:?}");
        let field = |block: &str, name: &str| {
            block.lines().find_map(|l| l.strip_prefix(name)).unwrap_or_default().to_owned()
        };
        text.split_terminator("\n\n")
            .map(|block| (field(block, "event: "), field(block, "id: "), field(block, "data: ")))
            .collect()
    }

    #[tokio::test]
    async fn a_stream_sends_every_waiting_event_in_one_frame_and_only_its_tenants() {
        let (tx, rx) = broadcast::channel(16);
        let (tenant, other) = (Uuid::now_v7(), Uuid::now_v7());
        let heartbeat = Duration::from_secs(60);
        let mut stream = live(tenant, rx, heartbeat);

        tx.send(change(tenant, "resources", Position::new(1, 0))).unwrap();
        tx.send(change(other, "resources", Position::new(2, 0))).unwrap();
        tx.send(change(tenant, "compliance", Position::new(3, 0))).unwrap();
        // Already sent by position: skipped.
        tx.send(change(tenant, "resources", Position::new(1, 0))).unwrap();
        let frame = stream.next().await.unwrap().unwrap();
        let got = events(&frame);
        assert_eq!(got.len(), 2, "both of this tenant's changes in one frame: {got:?}");
        assert_eq!(got[0].0, "change");
        let first = decode(&got[0].1).unwrap();
        assert_eq!(first, [Position::new(1, 0), Position::new(0, 0), Position::new(0, 0)]);
        let second = decode(&got[1].1).unwrap();
        assert_eq!(second, [Position::new(1, 0), Position::new(3, 0), Position::new(0, 0)]);
        assert_eq!(serde_json::from_str::<ChangeNotice>(&got[1].2).unwrap().model, "compliance");

        // Then a change that comes while the stream waits, alone.
        let waiting = tokio::spawn(async move { (stream.next().await, stream) });
        tokio::time::sleep(Duration::from_millis(20)).await;
        tx.send(change(tenant, "policies", Position::new(4, 0))).unwrap();
        let (frame, mut stream) = waiting.await.unwrap();
        let got = events(&frame.unwrap().unwrap());
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(decode(&got[0].1).unwrap()[2], Position::new(4, 0));

        // More than a channel holds: the stream says it fell behind, then sends what the
        // channel still has (the last 16).
        for i in 0..40 {
            tx.send(change(tenant, "resources", Position::new(10 + i, 0))).unwrap();
        }
        let got = events(&stream.next().await.unwrap().unwrap());
        assert_eq!(got.len(), 17, "{got:?}");
        assert_eq!(got[0].0, "reset", "{got:?}");
        assert!(got[0].2.contains("fell behind by 24 changes"), "{got:?}");
        let sent: Vec<u64> = got[1..].iter().map(|e| decode(&e.1).unwrap()[0].major).collect();
        assert_eq!(sent, (34..50).collect::<Vec<_>>());

        // A reset the instance announces; then the channel closes with changes still in it:
        // they go out, then the stream ends.
        tx.send(Live::Reset("this instance may have missed changes")).unwrap();
        tx.send(change(tenant, "resources", Position::new(60, 0))).unwrap();
        drop(tx);
        let got = events(&stream.next().await.unwrap().unwrap());
        assert_eq!(got.iter().map(|e| e.0.as_str()).collect::<Vec<_>>(), ["reset", "change"], "{got:?}");
        assert!(got[0].2.contains("may have missed"), "{got:?}");
        assert!(stream.next().await.is_none(), "the stream ends with its channel");
    }

    #[tokio::test(start_paused = true)]
    async fn a_quiet_stream_sends_a_heartbeat_each_interval_after_its_last_event() {
        let (tx, rx) = broadcast::channel(16);
        let tenant = Uuid::now_v7();
        let heartbeat = Duration::from_secs(10);
        let start = Instant::now();
        let mut stream = live(tenant, rx, heartbeat);
        let frame = stream.next().await.unwrap().unwrap();
        assert_eq!(&frame[..], b": heartbeat\n\n");
        assert_eq!(start.elapsed(), heartbeat);

        tokio::time::sleep(Duration::from_secs(4)).await;
        tx.send(change(tenant, "resources", Position::new(1, 0))).unwrap();
        let sent = Instant::now();
        assert_eq!(events(&stream.next().await.unwrap().unwrap())[0].0, "change");
        // Due a whole interval after that event, not at the timer's earlier deadline.
        let frame = stream.next().await.unwrap().unwrap();
        assert_eq!(&frame[..], b": heartbeat\n\n");
        assert_eq!(sent.elapsed(), heartbeat);
    }

    #[test]
    fn resume_ids_round_trip_and_reject_junk() {
        let c = [Position::new(1, 2), Position::new(3, 4), Position::new(u64::MAX, 0x0123_4567_89ab_cdef)];
        let id = encode(&c);
        assert_eq!(id, c.map(|p| p.token()).join("."));
        assert_eq!(decode(&id), Some(c));
        assert_eq!(decode("nope"), None);
        assert_eq!(decode("00.11.22"), None);
        assert_eq!(decode(&format!("{}.x", encode(&c))), None);
    }
}
