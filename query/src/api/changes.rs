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
use crate::fresh::{Live, MODELS, ModelPositions, Projection, TenantChange, model_index};

/// `{resources}.{compliance}.{policies}` positions.
fn encode(cursor: &ModelPositions) -> String {
    format!("{}.{}.{}", cursor[0].token(), cursor[1].token(), cursor[2].token())
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

struct Feed {
    tenant_id: Uuid,
    rx: broadcast::Receiver<Live>,
    backlog: VecDeque<Arc<TenantChange>>,
    cursor: ModelPositions,
    reset: Option<String>,
    fresh: crate::fresh::Freshness,
}

impl Feed {
    async fn next(mut self) -> Option<(Result<Event, Infallible>, Self)> {
        loop {
            if let Some(reason) = self.reset.take() {
                // Go on from what is committed now: the client rereads, then follows.
                let now = self.fresh.checkpoints();
                let from_now = cursor_of(&now);
                for (slot, now) in self.cursor.iter_mut().zip(from_now) {
                    *slot = (*slot).max(now);
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
                    Ok(Live::Change(c)) => c,
                    Ok(Live::Reset(why)) => {
                        self.reset = Some(why.to_owned());
                        continue;
                    }
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        self.reset = Some(format!("this stream fell behind by {n} changes"));
                        continue;
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                },
            };
            let Some(slot) = model_index(&change.notice.model) else { continue };
            // A whole-model notice (empty ids, after a rebuild) may repeat a position already
            // sent: it always goes out.
            let whole = change.notice.ids.is_empty();
            if change.tenant_id != self.tenant_id || (!whole && change.notice.position <= self.cursor[slot]) {
                continue;
            }
            self.cursor[slot] = self.cursor[slot].max(change.notice.position);
            let event = Event::default().event("change").id(encode(&self.cursor)).data(&*change.json);
            return Some((Ok(event), self));
        }
    }
}

fn feed(
    state: &QueryState,
    tenant_id: Uuid,
    last_event_id: Option<ModelPositions>,
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
        None => (VecDeque::new(), cursor_of(&fresh.checkpoints()), None),
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
        let c = [Position::new(1, 2), Position::new(3, 4), Position::new(5, 6)];
        assert_eq!(decode(&encode(&c)), Some(c));
        assert_eq!(decode("nope"), None);
        assert_eq!(decode("00.11.22"), None);
        assert_eq!(decode(&format!("{}.x", encode(&c))), None);
    }
}
