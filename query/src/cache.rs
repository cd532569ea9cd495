//! The two-level cache of DESIGN §5: L1 in this process (`dashmap`, bounded by entries and
//! bytes), L2 shared by every instance over RESP (Dragonfly; Redis in tests), then
//! PostgreSQL. An entry is a [`Prepared`] answer (served as bytes) and the read-model
//! revision it was built from: the checkpoints this instance knew when it started the read,
//! a lower bound of what the read saw (see [`crate::fresh`]).
//!
//! Keys (DESIGN §6): `cx:v1:{tenant}:r:{resource_id}` and `cx:v1:{tenant}:p:{policy_id}` for
//! one entity; `cx:v1:{tenant}:q:{generation}:{digest of the query}` for lists, summaries and
//! trends, where the generation is the tenant's last change per projection — a change bumps
//! it, so older list entries are never read again and expire.
//!
//! **Validity.** An entry is served only if its revision reaches what it must include: for
//! an entity, the entity's last change and its tenant's last whole-model change seen here;
//! for any entry, the floor (the checkpoints read after notices may have been lost) and a
//! client's `X-Cortex-After`. A read that a change overtook while it ran is not stored. So a
//! stale entry that another instance wrote to L2 after its invalidation is refused by every
//! instance that has seen the change, and expires with its TTL.
//!
//! **Faults.** Caches are used only while the notice stream is live ([`Freshness::is_live`]).
//! An L2 that does not answer within [`L2_TIMEOUT`] counts as a miss and is left alone for
//! [`L2_BACKOFF`]; the client reconnects by itself.

use std::{
    future::Future,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use axum::http::HeaderValue;
use bytes::{BufMut, Bytes, BytesMut};
use cortex_events::{
    Position,
    wire::{cache_key_prefix, cache_key_with},
};
use dashmap::DashMap;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::{
    fresh::{Entity, Freshness, Positions, Projection, ZERO, reaches},
    reads::{Prepared, ReadError},
};

/// What is cached under one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub prepared: Prepared,
    /// The known checkpoints when the read began.
    pub built: Positions,
}

impl Entry {
    fn size(&self, key: &str) -> usize {
        self.prepared.body.len() + self.prepared.etag.len() + key.len() + 96
    }

    /// `1`, four big-endian u64 (the revision), the tag's length (u16) and bytes, the body.
    fn encode(&self) -> Bytes {
        let etag = self.prepared.etag.as_bytes();
        let mut b = BytesMut::with_capacity(1 + 32 + 2 + etag.len() + self.prepared.body.len());
        b.put_u8(1);
        for p in self.built {
            b.put_u64(p.major);
            b.put_u64(p.minor);
        }
        b.put_u16(etag.len() as u16);
        b.put_slice(etag);
        b.put_slice(&self.prepared.body);
        b.freeze()
    }

    fn decode(mut raw: Bytes) -> Option<Self> {
        use bytes::Buf;
        if raw.remaining() < 35 || raw.get_u8() != 1 {
            return None;
        }
        let mut built = ZERO;
        for slot in &mut built {
            *slot = Position::new(raw.get_u64(), raw.get_u64());
        }
        let len = raw.get_u16() as usize;
        if raw.remaining() < len {
            return None;
        }
        // Only what `Prepared` makes: visible ASCII (`to_str`), else not an entry of ours.
        let etag = HeaderValue::from_maybe_shared(raw.split_to(len)).ok().filter(|v| v.to_str().is_ok())?;
        Some(Self { prepared: Prepared { body: raw, etag }, built })
    }
}

/// What a query reads, for its cache key.
#[derive(Debug, Clone)]
pub enum CacheKey {
    /// One resource or policy by id.
    Entity(Entity, Uuid),
    /// A list, summary or trend: a kind and the normalised query (its `Debug` text).
    Query { kind: &'static str, query: String },
}

/// Bounds of the cache.
#[derive(Debug, Clone, Copy)]
pub struct CacheSettings {
    pub l1_entries: usize,
    pub l1_bytes: usize,
    /// How long an entry lives in either level.
    pub ttl: Duration,
}

impl Default for CacheSettings {
    fn default() -> Self {
        Self { l1_entries: 50_000, l1_bytes: 256 * 1024 * 1024, ttl: Duration::from_secs(120) }
    }
}

/// Longest an L2 command may take before it counts as a miss.
pub const L2_TIMEOUT: Duration = Duration::from_millis(250);
/// How long L2 is left alone after it failed.
pub const L2_BACKOFF: Duration = Duration::from_secs(1);

/// Hit and miss counters, for tests and the benchmark.
#[derive(Debug, Default)]
pub struct CacheStats {
    pub l1_hits: AtomicU64,
    pub l2_hits: AtomicU64,
    pub misses: AtomicU64,
    pub bypassed: AtomicU64,
}

/// Both levels and the freshness state. Cheap to clone.
#[derive(Clone)]
pub struct Cache {
    fresh: Freshness,
    l1: Arc<L1>,
    l2: Option<L2>,
    pub stats: Arc<CacheStats>,
}

impl Cache {
    /// A cache over `fresh`, with an L2 at `l2_url` when given; hooks itself to `fresh` so
    /// that changes drop its L1 entries and a resync empties L1.
    pub fn new(
        fresh: Freshness,
        settings: CacheSettings,
        l2_url: Option<&str>,
    ) -> Result<Self, redis::RedisError> {
        let l1 = Arc::new(L1::new(settings));
        let l2 = l2_url.map(|url| L2::new(url, settings.ttl)).transpose()?;
        let on_change = l1.clone();
        fresh.on_change(Arc::new(move |change| {
            let Some(entity) = Entity::of_model(&change.notice.model) else { return };
            if change.notice.ids.is_empty() {
                on_change.remove_prefix(&cache_key_prefix(change.tenant_id));
            } else {
                for id in &change.notice.ids {
                    on_change.remove(&entity_key(change.tenant_id, entity, id));
                }
            }
        }));
        let on_resync = l1.clone();
        fresh.on_resync(Arc::new(move || on_resync.clear()));
        Ok(Self { fresh, l1, l2, stats: Arc::default() })
    }

    pub fn freshness(&self) -> &Freshness {
        &self.fresh
    }

    /// The drop that one instance per change runs on L2 (the queue group's member). It has
    /// a connection of its own, made where the notice tasks run (the pipeline runtime in
    /// `cortex serve`): reads never depend on that runtime's threads, nor drops on the API's.
    pub fn shared_drop(&self) -> Option<crate::fresh::SharedDrop> {
        let l2 = self.l2.as_ref()?.detached();
        Some(Arc::new(move |tenant, entity, ids: Vec<String>| {
            let l2 = l2.clone();
            let keys: Vec<String> = ids.iter().map(|id| entity_key(tenant, entity, id)).collect();
            tokio::spawn(async move { l2.delete(keys).await });
        }))
    }

    /// L2's state for `/readyz`.
    pub async fn l2_status(&self) -> Option<Result<(), String>> {
        Some(self.l2.as_ref()?.ping().await)
    }

    /// The answer for `key`, from L1, L2 or `build` (PostgreSQL), whichever is first valid;
    /// a built answer is stored in both levels unless a change overtook its read.
    /// `of` names the projections the read depends on; `after` is a client's read-your-writes
    /// position, which the caller has already waited for.
    // Debug level: on a hit this is the whole request, and an INFO span would cost more than
    // the lookup; the reads under it have spans of their own.
    #[tracing::instrument(name = "query.cached", level = "debug", skip_all, fields(tenant_id = %tenant_id))]
    pub async fn get_or_build<F, Fut>(
        &self,
        tenant_id: Uuid,
        key: CacheKey,
        of: &[Projection],
        after: Option<Position>,
        build: F,
    ) -> Result<Prepared, ReadError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Prepared, ReadError>>,
    {
        if !self.fresh.is_live() {
            self.stats.bypassed.fetch_add(1, Ordering::Relaxed);
            return build().await;
        }
        let need = |fresh: &Freshness| {
            let mut need = match &key {
                CacheKey::Entity(entity, id) => fresh.entity_mark(tenant_id, *entity, *id),
                CacheKey::Query { .. } => fresh.generation(tenant_id),
            };
            if let Some(after) = after {
                for p in of {
                    need[*p as usize] = need[*p as usize].max(after);
                }
            }
            need
        };
        let needed = need(&self.fresh);
        let full_key = match &key {
            CacheKey::Entity(entity, id) => {
                entity_key(tenant_id, *entity, id.hyphenated().encode_lower(&mut Uuid::encode_buffer()))
            }
            // The generation alone, not a client's `after`: every token would make a key.
            CacheKey::Query { kind, query } => {
                query_key(tenant_id, &self.fresh.generation(tenant_id), of, kind, query)
            }
        };
        if let Some(entry) = self.l1.get(&full_key)
            && reaches(&entry.built, &needed, of)
        {
            self.stats.l1_hits.fetch_add(1, Ordering::Relaxed);
            return Ok(entry.prepared.clone());
        }
        if let Some(l2) = &self.l2
            && let Some(entry) = l2.get(&full_key).await
            && reaches(&entry.built, &needed, of)
        {
            self.stats.l2_hits.fetch_add(1, Ordering::Relaxed);
            let prepared = entry.prepared.clone();
            if reaches(&entry.built, &need(&self.fresh), of) {
                self.l1.insert(full_key, Arc::new(entry));
            }
            return Ok(prepared);
        }
        self.stats.misses.fetch_add(1, Ordering::Relaxed);
        // Read before the build, so the data is at least this recent (a hit never needs it).
        let built = self.fresh.checkpoints();
        let prepared = build().await?;
        // Stored only if nothing it must include changed while it was read, and the notice
        // stream stayed live throughout.
        let still = need(&self.fresh);
        let unchanged = of.iter().all(|p| still[*p as usize] == needed[*p as usize]);
        if self.fresh.is_live() && unchanged && reaches(&built, &needed, of) {
            let entry = Entry { prepared: prepared.clone(), built };
            if let Some(l2) = &self.l2 {
                let (l2, key, value) = (l2.clone(), full_key.clone(), entry.encode());
                tokio::spawn(async move { l2.set(key, value).await });
            }
            self.l1.insert(full_key, Arc::new(entry));
        }
        Ok(prepared)
    }
}

/// `cx:v1:{tenant}:r:{id}` / `…:p:{id}`.
pub fn entity_key(tenant_id: Uuid, entity: Entity, id: &str) -> String {
    let mut key = cache_key_with(tenant_id, entity.tag().len() + 1 + id.len());
    key.push_str(entity.tag());
    key.push(':');
    key.push_str(id);
    key
}

/// `cx:v1:{tenant}:q:{generation of the projections read}:{digest}`.
fn query_key(tenant_id: Uuid, generation: &Positions, of: &[Projection], kind: &str, query: &str) -> String {
    let generation: Vec<String> = of.iter().map(|p| generation[*p as usize].token()).collect();
    let digest = Sha256::new().chain_update(kind).chain_update([0]).chain_update(query).finalize();
    format!("{}q:{}:{}", cache_key_prefix(tenant_id), generation.join("."), &hex::encode(digest)[..32])
}

/// L1: a concurrent map bounded by entries and bytes. Past a bound it evicts the least
/// recently used tenth (by a use clock), so eviction costs O(1) per insert on average.
struct L1 {
    map: DashMap<String, Slot>,
    entries: AtomicUsize,
    bytes: AtomicUsize,
    clock: AtomicU64,
    evicting: Mutex<()>,
    settings: CacheSettings,
}

struct Slot {
    entry: Arc<Entry>,
    size: usize,
    used: AtomicU64,
    at: Instant,
}

impl L1 {
    fn new(settings: CacheSettings) -> Self {
        Self {
            map: DashMap::new(),
            entries: AtomicUsize::new(0),
            bytes: AtomicUsize::new(0),
            clock: AtomicU64::new(0),
            evicting: Mutex::new(()),
            settings,
        }
    }

    fn get(&self, key: &str) -> Option<Arc<Entry>> {
        let slot = self.map.get(key)?;
        if slot.at.elapsed() >= self.settings.ttl {
            drop(slot);
            self.remove(key);
            return None;
        }
        // The use clock moves on inserts only, and a slot is written only when it was last
        // used before the latest insert: hits on a warm cache then bump no shared counter (one
        // bumped by every hit, from both cores, was 2 % of a cached GET's CPU).
        let now = self.clock.load(Ordering::Relaxed);
        if slot.used.load(Ordering::Relaxed) != now {
            slot.used.store(now, Ordering::Relaxed);
        }
        Some(slot.entry.clone())
    }

    fn insert(&self, key: String, entry: Arc<Entry>) {
        let size = entry.size(&key);
        if size > self.settings.l1_bytes / 16 {
            return; // one answer may not crowd out the rest
        }
        // Newer than every entry read before it.
        let used = AtomicU64::new(self.clock.fetch_add(1, Ordering::Relaxed) + 1);
        // Counted before it is in the map, so that a removal racing with this insert never
        // takes the counters below zero.
        self.bytes.fetch_add(size, Ordering::Relaxed);
        self.entries.fetch_add(1, Ordering::Relaxed);
        if let Some(old) = self.map.insert(key, Slot { entry, size, used, at: Instant::now() }) {
            self.forget(&old);
        }
        if self.entries.load(Ordering::Relaxed) > self.settings.l1_entries
            || self.bytes.load(Ordering::Relaxed) > self.settings.l1_bytes
        {
            self.evict();
        }
    }

    fn forget(&self, slot: &Slot) {
        self.entries.fetch_sub(1, Ordering::Relaxed);
        self.bytes.fetch_sub(slot.size, Ordering::Relaxed);
    }

    fn remove(&self, key: &str) {
        if let Some((_, slot)) = self.map.remove(key) {
            self.forget(&slot);
        }
    }

    fn remove_prefix(&self, prefix: &str) {
        self.map.retain(|k, slot| {
            let keep = !k.starts_with(prefix);
            if !keep {
                self.forget(slot);
            }
            keep
        });
    }

    fn clear(&self) {
        self.remove_prefix("");
    }

    /// Drops the least recently used entries until both bounds have a tenth to spare.
    fn evict(&self) {
        let Ok(_one) = self.evicting.try_lock() else { return };
        let entries = self.entries.load(Ordering::Relaxed);
        let bytes = self.bytes.load(Ordering::Relaxed).max(1);
        let over_entries = entries.saturating_sub(self.settings.l1_entries * 9 / 10);
        let over_bytes = bytes.saturating_sub(self.settings.l1_bytes * 9 / 10);
        let share = (over_bytes as f64 / bytes as f64 * entries as f64).ceil() as usize;
        let drop = over_entries.max(share).max(entries / 10).max(1);
        let mut used: Vec<u64> = self.map.iter().map(|s| s.used.load(Ordering::Relaxed)).collect();
        if used.is_empty() {
            return;
        }
        let nth = drop.min(used.len()) - 1;
        let (older, threshold, _) = used.select_nth_unstable(nth);
        let threshold = *threshold;
        // Entries used since the same insert share a clock value: of those at the threshold,
        // only as many go as make up the count, not all of them.
        let mut ties = nth + 1 - older.iter().filter(|u| **u < threshold).count();
        self.map.retain(|_, slot| {
            let keep = match slot.used.load(Ordering::Relaxed).cmp(&threshold) {
                std::cmp::Ordering::Greater => true,
                std::cmp::Ordering::Less => false,
                std::cmp::Ordering::Equal if ties > 0 => {
                    ties -= 1;
                    false
                }
                std::cmp::Ordering::Equal => true,
            };
            if !keep {
                self.forget(slot);
            }
            keep
        });
    }
}

/// L2 over RESP. The connection is made in the background and remade by the client; every
/// command is bounded by [`L2_TIMEOUT`], and a failure leaves L2 alone for [`L2_BACKOFF`].
#[derive(Clone)]
struct L2 {
    client: Arc<redis::Client>,
    conn: Arc<tokio::sync::Mutex<Option<redis::aio::ConnectionManager>>>,
    down_until: Arc<AtomicU64>,
    epoch: Instant,
    ttl: Duration,
}

impl L2 {
    fn new(url: &str, ttl: Duration) -> Result<Self, redis::RedisError> {
        Ok(Self {
            client: Arc::new(redis::Client::open(url)?),
            conn: Arc::default(),
            down_until: Arc::default(),
            epoch: Instant::now(),
            ttl,
        })
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn failed(&self, what: &str, error: &dyn std::fmt::Display) {
        let was = self.down_until.swap(self.now_ms() + L2_BACKOFF.as_millis() as u64, Ordering::Relaxed);
        if was <= self.now_ms() {
            tracing::warn!(what, error = %error, "cache (L2) unavailable; reading PostgreSQL");
        }
    }

    /// The connection; while L2 is in its back-off, none (unless `force`, for readiness).
    /// One connection attempt at a time: requests that queued behind a failed attempt see
    /// the back-off it set and do not try again.
    /// The same server and settings, with a connection (and back-off) of its own.
    fn detached(&self) -> Self {
        Self { conn: Arc::default(), down_until: Arc::default(), ..self.clone() }
    }

    async fn connection(&self, force: bool) -> Option<redis::aio::ConnectionManager> {
        let backing_off = || !force && self.now_ms() < self.down_until.load(Ordering::Relaxed);
        if backing_off() {
            return None;
        }
        let mut slot = self.conn.lock().await;
        if let Some(c) = slot.as_ref() {
            return Some(c.clone());
        }
        if backing_off() {
            return None;
        }
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(L2_TIMEOUT))
            .set_response_timeout(Some(L2_TIMEOUT))
            .set_number_of_retries(1);
        match tokio::time::timeout(L2_TIMEOUT * 2, self.client.get_connection_manager_with_config(config))
            .await
        {
            Ok(Ok(c)) => {
                *slot = Some(c.clone());
                Some(c)
            }
            Ok(Err(e)) => {
                self.failed("connect", &e);
                None
            }
            Err(e) => {
                self.failed("connect", &e);
                None
            }
        }
    }

    async fn run<T: redis::FromRedisValue>(&self, what: &str, cmd: redis::Cmd) -> Option<T> {
        self.run_with(what, cmd, false).await
    }

    async fn run_with<T: redis::FromRedisValue>(
        &self,
        what: &str,
        cmd: redis::Cmd,
        force: bool,
    ) -> Option<T> {
        let mut conn = self.connection(force).await?;
        match tokio::time::timeout(L2_TIMEOUT, cmd.query_async::<T>(&mut conn)).await {
            Ok(Ok(v)) => Some(v),
            Ok(Err(e)) => {
                self.failed(what, &e);
                None
            }
            Err(e) => {
                self.failed(what, &e);
                None
            }
        }
    }

    #[tracing::instrument(name = "cache.l2.get", skip_all)]
    async fn get(&self, key: &str) -> Option<Entry> {
        let raw: Option<Vec<u8>> = self.run("GET", redis::cmd("GET").arg(key).clone()).await?;
        Entry::decode(Bytes::from(raw?))
    }

    #[tracing::instrument(name = "cache.l2.set", skip_all)]
    async fn set(&self, key: String, value: Bytes) {
        let ttl = self.ttl.as_millis() as u64;
        let _: Option<()> =
            self.run("SET", redis::cmd("SET").arg(key).arg(value.as_ref()).arg("PX").arg(ttl).clone()).await;
    }

    #[tracing::instrument(name = "cache.l2.delete", skip_all, fields(keys = keys.len()))]
    async fn delete(&self, keys: Vec<String>) {
        let _: Option<i64> = self.run("DEL", redis::cmd("DEL").arg(keys).clone()).await;
    }

    #[tracing::instrument(name = "cache.l2.ping", skip_all)]
    async fn ping(&self) -> Result<(), String> {
        // An attempt even inside the back-off: readiness reports now.
        let pong: Option<String> = self.run_with("PING", redis::cmd("PING"), true).await;
        match pong {
            Some(_) => Ok(()),
            None => Err("no answer to PING".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(body: &str, at: u64) -> Entry {
        Entry {
            prepared: Prepared {
                body: Bytes::from(body.to_owned()),
                etag: HeaderValue::from_static("\"t\""),
            },
            built: [Position::new(at, 1), Position::new(at, 2)],
        }
    }

    #[test]
    fn entries_survive_their_encoding() {
        let e = entry("{\"a\":1}", 7);
        assert_eq!(Entry::decode(e.encode()), Some(e));
        assert_eq!(Entry::decode(Bytes::from_static(b"\x02rest")), None);
        assert_eq!(Entry::decode(Bytes::from_static(b"")), None);
    }

    #[test]
    fn l1_keeps_to_its_bounds_and_keeps_what_is_used() {
        let l1 = L1::new(CacheSettings { l1_entries: 100, l1_bytes: 1 << 20, ttl: Duration::from_secs(60) });
        l1.insert("hot".into(), Arc::new(entry("x", 1)));
        for i in 0..1000 {
            l1.insert(format!("k{i}"), Arc::new(entry("x", 1)));
            assert!(l1.get("hot").is_some(), "the entry in use was evicted at {i}");
        }
        assert!(l1.entries.load(Ordering::Relaxed) <= 100);
        assert_eq!(l1.entries.load(Ordering::Relaxed), l1.map.len());
        let l1 =
            L1::new(CacheSettings { l1_entries: 1000, l1_bytes: 64 * 1024, ttl: Duration::from_secs(60) });
        for i in 0..1000 {
            l1.insert(format!("k{i}"), Arc::new(entry(&"y".repeat(1000), 1)));
        }
        assert!(l1.bytes.load(Ordering::Relaxed) <= 64 * 1024);
        l1.remove_prefix("k");
        assert_eq!((l1.entries.load(Ordering::Relaxed), l1.bytes.load(Ordering::Relaxed)), (0, 0));
        // Entries read since the same insert share a use-clock value: going over the bound
        // then evicts a tenth of them, not all.
        let l1 = L1::new(CacheSettings { l1_entries: 100, l1_bytes: 1 << 20, ttl: Duration::from_secs(60) });
        for i in 0..100 {
            l1.insert(format!("k{i}"), Arc::new(entry("x", 1)));
        }
        for i in 0..100 {
            assert!(l1.get(&format!("k{i}")).is_some());
        }
        l1.insert("new".into(), Arc::new(entry("x", 1)));
        assert_eq!(l1.map.len(), 90, "down to nine tenths of the bound, not emptied");
        assert!(l1.get("new").is_some(), "the entry just inserted is among the most recent");
        l1.remove_prefix("");
        assert_eq!((l1.entries.load(Ordering::Relaxed), l1.bytes.load(Ordering::Relaxed)), (0, 0));
    }

    #[test]
    fn entity_keys_are_the_prefix_tag_and_id() {
        let (t, id) = (Uuid::now_v7(), Uuid::now_v7());
        assert_eq!(entity_key(t, Entity::Resource, &id.to_string()), format!("cx:v1:{t}:r:{id}"));
        assert_eq!(entity_key(t, Entity::Policy, "p-1"), format!("cx:v1:{t}:p:p-1"));
    }

    #[test]
    fn query_keys_carry_the_prefix_and_generation() {
        let t = Uuid::now_v7();
        let g = [Position::new(1, 2), Position::new(3, 4)];
        let k = query_key(t, &g, &[Projection::Compliance], "summary", "SummaryQuery { group_by: None }");
        assert!(k.starts_with(&format!("cx:v1:{t}:q:{}:", Position::new(3, 4).token())), "{k}");
        let g2 = [Position::new(1, 2), Position::new(3, 5)];
        assert_ne!(
            k,
            query_key(t, &g2, &[Projection::Compliance], "summary", "SummaryQuery { group_by: None }")
        );
        assert_eq!(
            k,
            query_key(
                t,
                &[ZERO[0], g[1]],
                &[Projection::Compliance],
                "summary",
                "SummaryQuery { group_by: None }"
            )
        );
    }
}
