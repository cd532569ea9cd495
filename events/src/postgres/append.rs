//! Appends: expected-revision checks, the hash chain, idempotent retries and group commit.
//!
//! An append is two statements and no explicit transaction: read the stream's last
//! revision and hash, then insert the sealed events in one `INSERT … SELECT FROM UNNEST`
//! (atomic on its own). Correctness does not rest on the read: the primary key
//! `(stream_name, stream_revision)` refuses a second writer of the same revision, and the
//! `event_id` key refuses an event stored twice; either refusal is then resolved as a
//! conflict or as an idempotent retry by looking at what is stored.
//!
//! Group commit: appends wait in a queue; a committer takes every waiting append (up to
//! `max_group`), reads the heads of all their streams in one query and inserts all their
//! events in one statement — one round trip pair and one WAL flush for the group. Appends to
//! the same stream in one group are applied in queue order, each against the revision the
//! previous one left. If the group statement fails, every append in it is retried alone,
//! so one conflicting append never fails its neighbours.

use std::{collections::HashMap, sync::Arc};

use sqlx::{PgPool, Row};
use tokio::sync::{Mutex, mpsc, oneshot};
use tracing::Instrument;
use uuid::Uuid;

use super::{Inner, pg};
use crate::{
    AppendOutcome, ExpectedRevision, NewEvent, Position, StoreError, StreamName, hash::GENESIS_HASH,
};

/// Retries of an `Any`/`StreamExists` append that lost a race to a concurrent writer.
const MAX_RACE_RETRIES: usize = 16;

/// The head of a stream: last revision and its hash.
type Head = Option<(u64, String)>;

fn expected_holds(expected: ExpectedRevision, last: Option<u64>) -> bool {
    match expected {
        ExpectedRevision::Any => true,
        ExpectedRevision::NoStream => last.is_none(),
        ExpectedRevision::StreamExists => last.is_some(),
        ExpectedRevision::Exact(n) => last == Some(n),
    }
}

/// Rows of one insert statement, column by column (UNNEST takes arrays).
#[derive(Default)]
struct Rows {
    stream: Vec<String>,
    category: Vec<String>,
    revision: Vec<i64>,
    event_id: Vec<Uuid>,
    event_type: Vec<String>,
    schema_version: Vec<i32>,
    tenant_id: Vec<Uuid>,
    data: Vec<String>,
    metadata: Vec<String>,
    hash: Vec<String>,
}

impl Rows {
    /// Seals `events` after `head` and adds them; returns the new head.
    fn push(&mut self, stream: &StreamName, head: &Head, events: &[NewEvent]) -> (u64, String) {
        let texts = events.iter().map(|e| crate::hash::canonical_json(&e.data)).collect();
        self.push_canonical(stream, head, events, texts)
    }

    /// [`Rows::push`] given the canonical text of each event's data.
    fn push_canonical(
        &mut self,
        stream: &StreamName,
        head: &Head,
        events: &[NewEvent],
        texts: Vec<String>,
    ) -> (u64, String) {
        let (mut next, mut prev) = match head {
            Some((rev, hash)) => (rev + 1, hash.clone()),
            None => (0, GENESIS_HASH.to_owned()),
        };
        for (e, data) in events.iter().zip(texts) {
            // One serialisation of the data serves the hash and the stored row.
            let meta = e.seal_with_data(&prev, &data);
            self.stream.push(stream.as_str().to_owned());
            self.category.push(stream.category().to_owned());
            self.revision.push(next as i64);
            self.event_id.push(e.event_id);
            self.event_type.push(e.event_type.clone());
            self.schema_version.push(e.schema_version as i32);
            self.tenant_id.push(e.provenance.tenant_id);
            self.data.push(data);
            self.metadata.push(meta.canonical_text(true));
            self.hash.push(meta.hash.clone());
            prev = meta.hash;
            next += 1;
        }
        (next - 1, prev)
    }

    fn is_empty(&self) -> bool {
        self.stream.is_empty()
    }
}

/// Inserts rows; answers the position of every inserted (stream, revision).
#[tracing::instrument(name = "es.insert", skip_all, fields(rows = rows.stream.len()))]
async fn insert(pool: &PgPool, rows: Rows) -> Result<HashMap<(String, u64), Position>, sqlx::Error> {
    let returned = sqlx::query(
        "INSERT INTO es_events (stream_name, category, stream_revision, event_id, event_type, \
                                schema_version, tenant_id, data, metadata, hash) \
         SELECT s, c, r, i, t, v, tn, d::json, m::json, h \
         FROM UNNEST($1::text[], $2::text[], $3::int8[], $4::uuid[], $5::text[], $6::int4[], \
                     $7::uuid[], $8::text[], $9::text[], $10::text[]) AS u(s, c, r, i, t, v, tn, d, m, h) \
         RETURNING stream_name, stream_revision, tx_id, seq",
    )
    .bind(rows.stream)
    .bind(rows.category)
    .bind(rows.revision)
    .bind(rows.event_id)
    .bind(rows.event_type)
    .bind(rows.schema_version)
    .bind(rows.tenant_id)
    .bind(rows.data)
    .bind(rows.metadata)
    .bind(rows.hash)
    .fetch_all(pool)
    .await?;
    returned
        .iter()
        .map(|row| {
            let stream: String = row.try_get(0)?;
            let rev: i64 = row.try_get(1)?;
            Ok(((stream, rev as u64), super::rows::position_of(row)?))
        })
        .collect()
}

#[tracing::instrument(name = "es.stream_head", skip(pool), fields(stream = %stream))]
async fn stream_head(pool: &PgPool, stream: &StreamName) -> Result<Head, StoreError> {
    let row = sqlx::query(
        "SELECT stream_revision, hash FROM es_events WHERE stream_name = $1 \
         ORDER BY stream_revision DESC LIMIT 1",
    )
    .bind(stream.as_str())
    .fetch_optional(pool)
    .await
    .map_err(pg("read stream head"))?;
    row.map(|r| Ok((r.try_get::<i64, _>(0)? as u64, r.try_get::<String, _>(1)?)))
        .transpose()
        .map_err(pg("decode stream head"))
}

#[tracing::instrument(name = "es.stream_heads", skip_all, fields(streams = streams.len()))]
async fn stream_heads(pool: &PgPool, streams: &[String]) -> Result<HashMap<String, Head>, StoreError> {
    let rows = sqlx::query(
        "SELECT s, e.stream_revision, e.hash FROM UNNEST($1::text[]) AS s \
         LEFT JOIN LATERAL (SELECT stream_revision, hash FROM es_events \
                            WHERE stream_name = s ORDER BY stream_revision DESC LIMIT 1) e ON true",
    )
    .bind(streams)
    .fetch_all(pool)
    .await
    .map_err(pg("read stream heads"))?;
    rows.iter()
        .map(|r| {
            let s: String = r.try_get(0)?;
            let rev: Option<i64> = r.try_get(1)?;
            let hash: Option<String> = r.try_get(2)?;
            Ok((s, rev.zip(hash).map(|(rev, h)| (rev as u64, h))))
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(pg("decode stream heads"))
}

enum UniqueViolation {
    Revision,
    EventId,
}

fn unique_violation(e: &sqlx::Error) -> Option<UniqueViolation> {
    let db = e.as_database_error()?;
    if db.code().as_deref() != Some("23505") {
        return None;
    }
    match db.constraint() {
        Some("es_events_event_id_key") => Some(UniqueViolation::EventId),
        _ => Some(UniqueViolation::Revision),
    }
}

/// One append on its own (also the fallback of a failed group).
#[tracing::instrument(name = "es.append", skip(pool, events), fields(stream = %stream, %expected, events = events.len()))]
pub(crate) async fn append_single(
    pool: &PgPool,
    stream: &StreamName,
    expected: ExpectedRevision,
    events: &[NewEvent],
) -> Result<AppendOutcome, StoreError> {
    for _ in 0..MAX_RACE_RETRIES {
        let head = stream_head(pool, stream).await?;
        if !expected_holds(expected, head.as_ref().map(|h| h.0)) {
            return match resolve(pool, stream, expected, events).await? {
                Resolution::Done(outcome) => outcome,
                // The stream moved between the two reads; decide again.
                Resolution::Retry => continue,
            };
        }
        let mut rows = Rows::default();
        let (last_rev, _) = rows.push(stream, &head, events);
        match insert(pool, rows).await {
            Ok(positions) => return outcome_of(stream, last_rev, &positions),
            Err(e) => match unique_violation(&e) {
                // A concurrent writer took the revision: re-decide when the caller allows any
                // revision, otherwise it is a conflict (or our own retry that raced us).
                Some(UniqueViolation::Revision)
                    if matches!(expected, ExpectedRevision::Any | ExpectedRevision::StreamExists) =>
                {
                    continue;
                }
                Some(_) => match resolve(pool, stream, expected, events).await? {
                    Resolution::Done(outcome) => return outcome,
                    Resolution::Retry => continue,
                },
                None => return Err(pg("insert events")(e)),
            },
        }
    }
    let actual = stream_head(pool, stream).await?.map(|h| h.0);
    Err(StoreError::WrongExpectedRevision { stream: stream.clone(), expected, actual })
}

fn outcome_of(
    stream: &StreamName,
    last_rev: u64,
    positions: &HashMap<(String, u64), Position>,
) -> Result<AppendOutcome, StoreError> {
    let position = positions.get(&(stream.as_str().to_owned(), last_rev)).copied().ok_or_else(|| {
        StoreError::Corrupt {
            stream: stream.to_string(),
            position: Position::new(0, 0),
            message: format!("insert did not return revision {last_rev}"),
        }
    })?;
    Ok(AppendOutcome { revision: last_rev, position })
}

enum Resolution {
    Done(Result<AppendOutcome, StoreError>),
    Retry,
}

/// The append cannot be written as asked: is it a retry of an append already stored
/// (success, nothing written), a conflict, or a reuse of an event id?
#[tracing::instrument(name = "es.resolve_conflict", skip(pool, events), fields(stream = %stream, %expected))]
async fn resolve(
    pool: &PgPool,
    stream: &StreamName,
    expected: ExpectedRevision,
    events: &[NewEvent],
) -> Result<Resolution, StoreError> {
    let ids: Vec<Uuid> = events.iter().map(|e| e.event_id).collect();
    let found = sqlx::query(
        "SELECT event_id, stream_name, stream_revision, tx_id, seq FROM es_events WHERE event_id = ANY($1)",
    )
    .bind(&ids)
    .fetch_all(pool)
    .await
    .map_err(pg("look up event ids"))?;
    let mut stored: HashMap<Uuid, (String, u64, Position)> = HashMap::with_capacity(found.len());
    for row in &found {
        let id: Uuid = row.try_get(0).map_err(pg("decode event ids"))?;
        let s: String = row.try_get(1).map_err(pg("decode event ids"))?;
        let rev: i64 = row.try_get(2).map_err(pg("decode event ids"))?;
        let pos = super::rows::position_of(row).map_err(pg("decode event ids"))?;
        stored.insert(id, (s, rev as u64, pos));
    }
    if let Some(outcome) = same_append(stream, expected, &ids, &stored) {
        return Ok(Resolution::Done(Ok(outcome)));
    }
    let actual = stream_head(pool, stream).await?.map(|h| h.0);
    if !expected_holds(expected, actual) {
        return Ok(Resolution::Done(Err(StoreError::WrongExpectedRevision {
            stream: stream.clone(),
            expected,
            actual,
        })));
    }
    match ids.iter().find_map(|id| stored.get(id).map(|s| (*id, s))) {
        Some((event_id, (s, revision, _))) => Ok(Resolution::Done(Err(StoreError::DuplicateEventId {
            event_id,
            stream: StreamName::parse(s.clone()).unwrap_or_else(|_| stream.clone()),
            revision: *revision,
        }))),
        None => Ok(Resolution::Retry),
    }
}

/// Whether every id is stored, in this stream, at consecutive revisions in the given order,
/// starting where `expected` says the append started.
fn same_append(
    stream: &StreamName,
    expected: ExpectedRevision,
    ids: &[Uuid],
    stored: &HashMap<Uuid, (String, u64, Position)>,
) -> Option<AppendOutcome> {
    let first = stored.get(ids.first()?)?;
    let start = first.1;
    let start_ok = match expected {
        ExpectedRevision::Exact(n) => start == n + 1,
        ExpectedRevision::NoStream => start == 0,
        ExpectedRevision::Any | ExpectedRevision::StreamExists => true,
    };
    let mut last = None;
    for (i, id) in ids.iter().enumerate() {
        let (s, rev, pos) = stored.get(id)?;
        if s != stream.as_str() || *rev != start + i as u64 {
            return None;
        }
        last = Some(AppendOutcome { revision: *rev, position: *pos });
    }
    last.filter(|_| start_ok)
}

struct Request {
    stream: StreamName,
    expected: ExpectedRevision,
    events: Vec<NewEvent>,
    /// Canonical text of each event's data.
    texts: Vec<String>,
    reply: oneshot::Sender<Result<AppendOutcome, StoreError>>,
}

/// The group-commit queue. Dropping the last store handle closes it and ends the workers.
pub(crate) struct Committer {
    queue: mpsc::Sender<Request>,
}

impl Committer {
    pub(crate) fn start(inner: &Arc<Inner>) -> Self {
        let settings = &inner.settings;
        let (queue, rx) = mpsc::channel::<Request>(settings.max_group * 4);
        let rx = Arc::new(Mutex::new(rx));
        let heads = inner.heads.clone();
        for worker in 0..settings.committers.max(1) {
            // Workers hold the pool and catalog, not the store: no reference cycle keeps
            // them alive after the store is dropped.
            let ctx = GroupCtx { statements: inner.statements().clone(), heads: heads.clone() };
            let rx = rx.clone();
            let max_group = settings.max_group.max(1);
            tokio::spawn(
                async move {
                    loop {
                        let batch = {
                            let mut rx = rx.lock().await;
                            let Some(first) = rx.recv().await else { return };
                            let mut batch = vec![first];
                            while batch.len() < max_group {
                                match rx.try_recv() {
                                    Ok(r) => batch.push(r),
                                    Err(_) => break,
                                }
                            }
                            batch
                        };
                        commit_group(&ctx, batch).await;
                    }
                }
                .instrument(tracing::info_span!("es.committer", worker)),
            );
        }
        Self { queue }
    }

    pub(crate) async fn submit(
        &self,
        stream: StreamName,
        expected: ExpectedRevision,
        events: Vec<NewEvent>,
        texts: Vec<String>,
    ) -> Result<AppendOutcome, StoreError> {
        let (reply, answer) = oneshot::channel();
        let closed = || StoreError::Postgres { step: "queue append", source: sqlx::Error::PoolClosed };
        self.queue.send(Request { stream, expected, events, texts, reply }).await.map_err(|_| closed())?;
        answer.await.map_err(|_| closed())?
    }
}

/// Streams' heads as this process last wrote or read them (`None`: the stream has no
/// events), so that a group whose streams are all known needs one statement instead of two —
/// in particular the appends of a command handler that has just read its stream. Only a
/// hint: the primary key still refuses a stale one (another process wrote meanwhile), the
/// group is then retried alone (which reads the real head) and the entry dropped. A written
/// head is added only after its insert succeeded, so it is never ahead of the table; a read
/// head never replaces an entry (which may be newer than the read).
#[derive(Default)]
pub(crate) struct HeadCache {
    heads: std::sync::Mutex<HashMap<String, Head>>,
}

/// Entries kept before the cache starts over (a few MB).
const HEAD_CACHE_LIMIT: usize = 50_000;

impl HeadCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Head>> {
        // A panic while holding this lock leaves only a hint behind; keep using it.
        self.heads.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn get(&self, streams: &[String]) -> (HashMap<String, Head>, Vec<String>) {
        let heads = self.lock();
        let mut known = HashMap::with_capacity(streams.len());
        let mut unknown = Vec::new();
        for s in streams {
            match heads.get(s) {
                Some(h) => {
                    known.insert(s.clone(), h.clone());
                }
                None => unknown.push(s.clone()),
            }
        }
        (known, unknown)
    }

    fn put(&self, written: impl IntoIterator<Item = (String, (u64, String))>) {
        let mut heads = self.lock();
        if heads.len() > HEAD_CACHE_LIMIT {
            heads.clear();
        }
        heads.extend(written.into_iter().map(|(s, h)| (s, Some(h))));
    }

    /// Heads seen by a read; kept only where nothing is known yet.
    pub(crate) fn prime(&self, seen: impl IntoIterator<Item = (String, Head)>) {
        let mut heads = self.lock();
        if heads.len() > HEAD_CACHE_LIMIT {
            heads.clear();
        }
        for (stream, head) in seen {
            heads.entry(stream).or_insert(head);
        }
    }

    fn forget<'a>(&self, streams: impl IntoIterator<Item = &'a StreamName>) {
        let mut heads = self.lock();
        for s in streams {
            heads.remove(s.as_str());
        }
    }
}

struct GroupCtx {
    statements: Arc<super::Statements>,
    heads: Arc<HeadCache>,
}

impl GroupCtx {
    fn pool(&self) -> &PgPool {
        self.statements.pool()
    }

    async fn alone(&self, r: &Request) -> Result<AppendOutcome, StoreError> {
        self.heads.forget([&r.stream]);
        append_single(self.pool(), &r.stream, r.expected, &r.events).await
    }
}

#[tracing::instrument(name = "es.group_commit", skip_all, fields(appends = batch.len()))]
async fn commit_group(ctx: &GroupCtx, batch: Vec<Request>) {
    let mut streams: Vec<String> = batch.iter().map(|r| r.stream.as_str().to_owned()).collect();
    streams.sort_unstable();
    streams.dedup();
    let (mut heads, unknown) = ctx.heads.get(&streams);
    if !unknown.is_empty() {
        match stream_heads(ctx.pool(), &unknown).await {
            Ok(h) => heads.extend(h),
            Err(_) => return retry_alone(ctx, batch).await,
        }
    }
    let mut rows = Rows::default();
    let mut grouped: Vec<(Request, u64)> = Vec::with_capacity(batch.len());
    let mut alone: Vec<Request> = Vec::new();
    for mut r in batch {
        let head = heads.get(r.stream.as_str()).cloned().flatten();
        if expected_holds(r.expected, head.as_ref().map(|h| h.0)) {
            // Taken: should the group fail, the append is retried alone from its events.
            let new_head = rows.push_canonical(&r.stream, &head, &r.events, std::mem::take(&mut r.texts));
            let last_rev = new_head.0;
            heads.insert(r.stream.as_str().to_owned(), Some(new_head));
            grouped.push((r, last_rev));
        } else {
            alone.push(r);
        }
    }
    if !rows.is_empty() {
        match insert(ctx.pool(), rows).await {
            Ok(positions) => {
                ctx.heads.put(grouped.iter().filter_map(|(r, _)| {
                    heads.get(r.stream.as_str()).cloned().flatten().map(|h| (r.stream.as_str().to_owned(), h))
                }));
                for (r, last_rev) in grouped {
                    let _ = r.reply.send(outcome_of(&r.stream, last_rev, &positions));
                }
            }
            Err(e) => {
                super::note_if_lost(&e);
                tracing::debug!(error = %e, "group insert refused; retrying each append alone");
                alone.extend(grouped.into_iter().map(|(r, _)| r));
            }
        }
    }
    retry_alone(ctx, alone).await;
}

async fn retry_alone(ctx: &GroupCtx, batch: Vec<Request>) {
    for r in batch {
        let out = ctx.alone(&r).await;
        let _ = r.reply.send(out);
    }
}
