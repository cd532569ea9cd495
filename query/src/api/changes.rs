//! `GET /v1/changes`: the tenant's read-model changes as server-sent events, as they commit
//! (DESIGN §5), fed by the change notices this instance receives.
//!
//! - `event: change`, `data:` the notice (`{model, ids, position, at}`; empty `ids` = the
//!   whole model changed, e.g. after a rebuild).
//! - `id:` a resume token: how far this stream got in each projection. A client that
//!   reconnects with `Last-Event-ID` (browsers' `EventSource` do so by themselves) gets the
//!   changes it missed that this instance still holds, then the live ones.
//! - `event: reset`: changes may have been lost (the client fell behind, or resumed from
//!   further back than this instance holds): reread what you show, then go on.
//! - A `: heartbeat` comment every `CORTEX_SSE_HEARTBEAT_SECONDS` keeps proxies from closing
//!   a quiet stream.

use std::{collections::VecDeque, convert::Infallible, sync::Arc};

use axum::{
    extract::State,
    http::HeaderMap,
    response::{
        IntoResponse, Response,
        sse::{Event, KeepAlive, Sse},
    },
};
use cortex_events::Position;
use cortex_http::{problem::ApiError, tenants::Caller};
use futures::Stream;
use serde_json::json;
use tokio::sync::broadcast;
use uuid::Uuid;

use super::QueryState;
use crate::fresh::{Positions, Projection, TenantChange};

/// `{resources position}.{compliance position}`.
fn encode(cursor: &Positions) -> String {
    format!("{}.{}", cursor[0].token(), cursor[1].token())
}

fn decode(text: &str) -> Option<Positions> {
    let (a, b) = text.trim().split_once('.')?;
    Some([a.parse::<Position>().ok()?, b.parse::<Position>().ok()?])
}

struct Feed {
    tenant_id: Uuid,
    rx: broadcast::Receiver<Arc<TenantChange>>,
    backlog: VecDeque<Arc<TenantChange>>,
    cursor: Positions,
    reset: Option<String>,
    fresh: crate::fresh::Freshness,
}

impl Feed {
    async fn next(mut self) -> Option<(Result<Event, Infallible>, Self)> {
        loop {
            if let Some(reason) = self.reset.take() {
                // Go on from what is committed now: the client rereads, then follows.
                let now = self.fresh.checkpoints();
                for p in Projection::ALL {
                    self.cursor[p as usize] = self.cursor[p as usize].max(now[p as usize]);
                }
                let event = Event::default().event("reset").id(encode(&self.cursor)).data(
                    json!({"reason": reason, "checkpoints": {"resources": now[0], "compliance": now[1]}})
                        .to_string(),
                );
                return Some((Ok(event), self));
            }
            let change = match self.backlog.pop_front() {
                Some(c) => c,
                None => match self.rx.recv().await {
                    Ok(c) => c,
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        self.reset = Some(format!("this stream fell behind by {n} changes"));
                        continue;
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                },
            };
            let slot = change.projection as usize;
            if change.tenant_id != self.tenant_id || change.notice.position <= self.cursor[slot] {
                continue;
            }
            self.cursor[slot] = change.notice.position;
            let event = Event::default().event("change").id(encode(&self.cursor)).data(&*change.json);
            return Some((Ok(event), self));
        }
    }
}

fn feed(
    state: &QueryState,
    tenant_id: Uuid,
    last_event_id: Option<Positions>,
) -> impl Stream<Item = Result<Event, Infallible>> + use<> {
    let fresh = state.cache.freshness().clone();
    // Subscribed before the backlog is taken: nothing falls between the two (duplicates are
    // skipped by position).
    let rx = fresh.subscribe();
    let (backlog, cursor, reset) = match last_event_id {
        Some(from) => {
            let (items, complete) = fresh.replay_after(tenant_id, &from);
            let reset = (!complete).then(|| "resumed from further back than this instance holds".to_owned());
            (items.into(), from, reset)
        }
        None => (VecDeque::new(), fresh.checkpoints(), None),
    };
    futures::stream::unfold(Feed { tenant_id, rx, backlog, cursor, reset, fresh }, Feed::next)
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
                "not an id this stream sent (two position tokens joined by '.')",
            )
        })?),
    };
    let events = feed(&state, caller.tenant_id, last);
    let keep_alive = KeepAlive::new().interval(state.settings.heartbeat).text("heartbeat");
    Ok(Sse::new(events).keep_alive(keep_alive).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resume_ids_round_trip_and_reject_junk() {
        let c = [Position::new(1, 2), Position::new(3, 4)];
        assert_eq!(decode(&encode(&c)), Some(c));
        assert_eq!(decode("nope"), None);
        assert_eq!(decode("00.11"), None);
    }
}
