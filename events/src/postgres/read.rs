//! Reads: one stream by revision, `$all` pages under the visibility horizon, and the head.

use sqlx::{PgPool, postgres::PgRow};

use super::{Inner, LogOrder, pg, rows};
use crate::{Catalog, Direction, EventFilter, Position, RecordedEvent, StoreError, StreamName};

/// Stream reads see every committed event at once (a command handler must read its own
/// writes); only `$all` readers wait for the visibility horizon.
#[tracing::instrument(name = "es.read_stream", skip(inner), fields(stream = %stream))]
pub(crate) async fn read_stream(
    inner: &Inner,
    stream: &StreamName,
    from: u64,
    dir: Direction,
    max: usize,
) -> Result<Vec<RecordedEvent>, StoreError> {
    let limit = i64::try_from(max).unwrap_or(i64::MAX);
    // FROM_END (u64::MAX) saturates to i64::MAX: "from the end".
    let from = i64::try_from(from).unwrap_or(i64::MAX);
    let sql = match dir {
        Direction::Forwards => format!(
            "SELECT {} FROM es_events WHERE stream_name = $1 AND stream_revision >= $2 \
             ORDER BY stream_revision ASC LIMIT $3",
            rows::EVENT_COLUMNS
        ),
        Direction::Backwards => format!(
            "SELECT {} FROM es_events WHERE stream_name = $1 AND stream_revision <= $2 \
             ORDER BY stream_revision DESC LIMIT $3",
            rows::EVENT_COLUMNS
        ),
    };
    let found = sqlx::query(&sql)
        .bind(stream.as_str())
        .bind(from)
        .bind(limit)
        .fetch_all(inner.pool())
        .await
        .map_err(pg("read stream"))?;
    let events: Vec<RecordedEvent> =
        found.iter().map(|r| rows::decode(&inner.catalog, r)).collect::<Result<_, _>>()?;
    // A read that reached the stream's end tells the committer its head.
    let head = match dir {
        Direction::Forwards if from == 0 && (events.len() as i64) < limit => Some(events.last()),
        Direction::Backwards if from == i64::MAX && limit > 0 => Some(events.first()),
        _ => None,
    };
    if let Some(head) = head {
        inner.heads.prime([(stream.as_str().to_owned(), head_of(head))]);
    }
    Ok(events)
}

fn head_of(last: Option<&RecordedEvent>) -> Option<(u64, String)> {
    last.map(|e| (e.revision, e.metadata.hash.clone()))
}

/// Every event of each stream, in one statement per chunk of streams.
///
/// One index lookup per name (`unnest` × `LATERAL` on the primary key), each already in
/// revision order. Not `stream_name = ANY($1) ORDER BY …`: without statistics PostgreSQL
/// counts each of 1,000 names as 0.5 % of the log, so both a custom plan and a generic one
/// prepared while the log was small scanned and sorted the whole log (1–2 s per batch at
/// 300,000 events, issue 22). The `ORDER BY` also keeps PostgreSQL from flattening the
/// lookup into a join it could answer with a scan.
#[tracing::instrument(name = "es.read_streams", skip_all, fields(streams = streams.len()))]
pub(crate) async fn read_streams(
    inner: &Inner,
    streams: &[StreamName],
) -> Result<std::collections::HashMap<StreamName, Vec<RecordedEvent>>, StoreError> {
    // Bounded so that one statement's answer stays a few megabytes.
    const CHUNK: usize = 1000;
    let sql = format!(
        "SELECT e.* FROM unnest($1::text[]) AS s(name) CROSS JOIN LATERAL \
           (SELECT {} FROM es_events WHERE stream_name = s.name ORDER BY stream_revision) e",
        rows::EVENT_COLUMNS
    );
    let mut names: Vec<&str> = streams.iter().map(StreamName::as_str).collect();
    // A name asked twice would read its events twice.
    names.sort_unstable();
    names.dedup();
    let mut found: std::collections::HashMap<StreamName, Vec<RecordedEvent>> =
        std::collections::HashMap::with_capacity(names.len());
    for chunk in names.chunks(CHUNK) {
        let page = sqlx::query(&sql).bind(chunk).fetch_all(inner.pool()).await.map_err(pg("read streams"))?;
        for row in &page {
            let event = rows::decode(&inner.catalog, row)?;
            found.entry(event.stream.clone()).or_default().push(event);
        }
    }
    inner
        .heads
        .prime(streams.iter().map(|s| (s.as_str().to_owned(), head_of(found.get(s).and_then(|e| e.last())))));
    Ok(found)
}

/// One scanned row of `$all`: its position, and the event when it matched the filter.
pub(crate) struct Scanned {
    pub position: Position,
    pub event: Option<RecordedEvent>,
}

/// Up to `limit` rows after `after` whose transactions are below the visibility horizon,
/// in `$all` order, undecoded (see [`decode_page`]). Filtered-out rows come back without
/// their payload so that the scan can still advance (and checkpoint) past them.
#[tracing::instrument(name = "es.read_all_page", skip(pool, filter))]
pub(crate) async fn fetch_page(
    pool: PgPool,
    after: Position,
    filter: EventFilter,
    limit: i64,
    order: LogOrder,
) -> Result<Vec<PgRow>, StoreError> {
    let (bound, order_by) = match order {
        LogOrder::Visibility => (
            "(tx_id, seq) > ($1, $2) AND tx_id < pg_snapshot_xmin(pg_current_snapshot())::text::bigint",
            "ORDER BY tx_id, seq",
        ),
        LogOrder::SequenceOnly => ("$1::bigint IS NOT NULL AND seq > $2", "ORDER BY seq"),
    };
    // The payload (`data`, `metadata`: nearly all of a row's bytes) only of matching rows: a
    // projection that reads a fifth of the log does not pay for sending the rest.
    let sql = format!(
        "SELECT matched, tx_id, seq, stream_name, stream_revision, event_type, schema_version, \
                CASE WHEN matched THEN data END AS data, CASE WHEN matched THEN metadata END AS metadata, \
                recorded_at \
           FROM (SELECT (cardinality($3::text[]) = 0 OR category = ANY($3)) \
                        AND (cardinality($4::text[]) = 0 OR event_type = ANY($4)) AS matched, {} \
                   FROM es_events WHERE {bound} {order_by} LIMIT $5) page {order_by}",
        rows::EVENT_COLUMNS
    );
    sqlx::query(&sql)
        .bind(after.major as i64)
        .bind(after.minor as i64)
        .bind(&filter.categories)
        .bind(&filter.event_types)
        .bind(limit)
        .fetch_all(&pool)
        .await
        .map_err(pg("read $all page"))
}

/// The position of a fetched row (cheap: no payload decoding).
pub(crate) fn row_position(row: &PgRow) -> Result<Position, StoreError> {
    rows::position_of(row).map_err(pg("decode $all page"))
}

/// Decodes a fetched page: matched rows become events, the others positions only.
pub(crate) fn decode_page(catalog: &Catalog, page: &[PgRow]) -> Result<Vec<Scanned>, StoreError> {
    page.iter()
        .map(|row| {
            let matched: bool = sqlx::Row::try_get(row, "matched").map_err(pg("decode $all page"))?;
            if matched {
                let event = rows::decode(catalog, row)?;
                Ok(Scanned { position: event.position, event: Some(event) })
            } else {
                Ok(Scanned { position: row_position(row)?, event: None })
            }
        })
        .collect()
}

/// Whether any committed row lies beyond `after`, visible or not yet (held back by an older
/// open transaction): a caught-up subscriber then looks again soon instead of sleeping
/// until the next notification.
#[tracing::instrument(name = "es.rows_beyond", skip(pool))]
pub(crate) async fn rows_beyond(pool: &PgPool, after: Position) -> Result<bool, StoreError> {
    // Not `EXISTS (…)`: PostgreSQL drops an `ORDER BY … LIMIT` inside `EXISTS`, and the generic
    // plan of the prepared statement then scanned the whole table from its oldest rows on
    // every call (one per subscription wake-up). This walks the position index from `after`.
    sqlx::query_scalar::<_, i64>(
        "SELECT tx_id FROM es_events WHERE (tx_id, seq) > ($1, $2) ORDER BY tx_id, seq LIMIT 1",
    )
    .bind(after.major as i64)
    .bind(after.minor as i64)
    .fetch_optional(pool)
    .await
    .map(|row| row.is_some())
    .map_err(pg("check for newer events"))
}

/// The position of the last committed event. It may be briefly invisible to `$all`
/// readers while an older transaction is open; lag measured against it includes that.
#[tracing::instrument(name = "es.head", skip(pool))]
pub(crate) async fn last_committed(pool: &PgPool) -> Result<Option<Position>, StoreError> {
    let row = sqlx::query("SELECT tx_id, seq FROM es_events ORDER BY tx_id DESC, seq DESC LIMIT 1")
        .fetch_optional(pool)
        .await
        .map_err(pg("read head"))?;
    row.map(|r| rows::position_of(&r)).transpose().map_err(pg("decode head"))
}

/// Committed events after `from` (exclusive), for lag and progress figures.
///
/// After a position (a lag: usually the last few events) it walks the position index from
/// there, on the store's pool ([`Inner::pool`]): a custom plan without statistics guessed a
/// third of the log and scanned all of it. The whole log (`None`, a rebuild's total) is a
/// plain count on the given pool, where PostgreSQL may scan in parallel: every row is read
/// either way, and a scan reads them fastest.
#[tracing::instrument(name = "es.count_after", skip(inner))]
pub(crate) async fn count_after(inner: &Inner, from: Option<Position>) -> Result<u64, StoreError> {
    let n: i64 = match from {
        Some(from) => sqlx::query_scalar("SELECT count(*) FROM es_events WHERE (tx_id, seq) > ($1, $2)")
            .bind(from.major as i64)
            .bind(from.minor as i64)
            .fetch_one(inner.pool())
            .await
            .map_err(pg("count events"))?,
        None => sqlx::query_scalar("SELECT count(*) FROM es_events")
            .fetch_one(inner.given())
            .await
            .map_err(pg("count events"))?,
    };
    Ok(n as u64)
}
