//! What this instance knows of how far the read models got, and of what changed: the state
//! behind the cache's validity rules, read-your-writes and the live change stream
//! (DESIGN §5, §6).
//!
//! It is fed by the projections' notices: `cortex.changes.{tenant}.{model}` (rows of a
//! tenant's model changed at a position) and `cortex.checkpoints.{projection}` (a projection
//! committed everything up to a position) — from NATS, or from the in-process bus when one
//! `cortex serve` runs every component. From them it keeps:
//!
//! - the **known checkpoint** of each projection (a lower bound of what PostgreSQL holds:
//!   a notice is sent after its commit), which read-your-writes waits on and which a cache
//!   entry records as the revision it was built from;
//! - per tenant, the **last change** of each projection (the generation that list and
//!   summary keys carry) and the last "whole model changed" notice;
//! - per entity (a resource or a policy), the last change position, for a window longer
//!   than any cache entry lives;
//! - a **floor**: the checkpoints read from PostgreSQL when notices may have been missed
//!   (at start, after NATS was unreachable or dropped messages). Nothing built before the
//!   floor is served from a cache.
//!
//! **Staleness bound.** Caches are used only while the notice stream is known to be live:
//! with NATS, a round trip to the server (`flush`) must have succeeded within the stale
//! bound (default 5 s), and a disconnection or a slow-consumer drop makes it not live at
//! once. A change whose notice never arrived is therefore served stale for at most the
//! bound; past it, every read goes to PostgreSQL until the stream is live again and the
//! floor has been raised.

use std::{
    sync::{
        Arc, Mutex, RwLock,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use cortex_events::{
    Position,
    wire::{ChangeNotice, CheckpointNotice},
};
use dashmap::DashMap;
use sqlx::{PgPool, Row};
use tokio::sync::{broadcast, watch};
use uuid::Uuid;

/// The projections the query side reads (`cortex_projections::registry()` names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Projection {
    Resources = 0,
    Compliance = 1,
}

impl Projection {
    pub const ALL: [Projection; 2] = [Projection::Resources, Projection::Compliance];

    pub fn name(self) -> &'static str {
        match self {
            Self::Resources => "resources",
            Self::Compliance => "compliance",
        }
    }

    fn of_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.name() == name)
    }

    /// The projection whose notices carry `model` (DESIGN §6 model names).
    pub fn of_model(model: &str) -> Option<Self> {
        match model {
            "resources" => Some(Self::Resources),
            "compliance" | "policies" => Some(Self::Compliance),
            _ => None,
        }
    }
}

/// One position per [`Projection`], indexed by it.
pub type Positions = [Position; 2];

pub const ZERO: Positions = [Position::new(0, 0); 2];

/// Whether `a` reaches `b` for every projection in `of`.
pub fn reaches(a: &Positions, b: &Positions, of: &[Projection]) -> bool {
    of.iter().all(|&p| a[p as usize] >= b[p as usize])
}

/// Raises every projection of `into` to `to`'s; whether any moved.
fn raise_all(into: &mut Positions, to: &Positions) -> bool {
    Projection::ALL.into_iter().fold(false, |moved, p| raise(into, p, to[p as usize]) | moved)
}

fn raise(into: &mut Positions, p: Projection, to: Position) -> bool {
    let slot = &mut into[p as usize];
    if to > *slot {
        *slot = to;
        true
    } else {
        false
    }
}

/// The models of change notices (DESIGN §6), each with its own slot in a live stream's
/// resume id: one commit may announce several models at one position.
pub const MODELS: [&str; 3] = ["resources", "compliance", "policies"];

/// A model's slot in [`MODELS`].
pub fn model_index(model: &str) -> Option<usize> {
    MODELS.iter().position(|m| *m == model)
}

/// One position per model of [`MODELS`].
pub type ModelPositions = [Position; 3];

/// The position just after `p` (for marks that an entry built *at* `p` must not pass).
fn after(p: Position) -> Position {
    Position::new(p.major, p.minor.saturating_add(1))
}

/// What a live stream receives.
#[derive(Debug, Clone)]
pub enum Live {
    Change(Arc<TenantChange>),
    /// Changes may have been missed (notices lost, an instance resynchronised).
    Reset(&'static str),
}

/// The kinds of entity a cache keeps by id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Entity {
    Resource,
    Policy,
}

impl Entity {
    /// The entity a change notice's ids name.
    pub fn of_model(model: &str) -> Option<Self> {
        match model {
            "resources" | "compliance" => Some(Self::Resource),
            "policies" => Some(Self::Policy),
            _ => None,
        }
    }

    pub fn tag(self) -> &'static str {
        match self {
            Self::Resource => "r",
            Self::Policy => "p",
        }
    }
}

/// Per tenant: the last change of each projection, and the last "whole model" change.
#[derive(Debug, Clone, Copy)]
struct TenantMarks {
    last: Positions,
    whole: Positions,
    /// The last change of any policy: a resource's answer shows the results of its enabled
    /// policies, so enabling, disabling or deleting one changes it without naming it.
    policies: Position,
}

impl Default for TenantMarks {
    fn default() -> Self {
        Self { last: ZERO, whole: ZERO, policies: Position::new(0, 0) }
    }
}

/// One change as the live stream and the cache see it.
#[derive(Debug, Clone)]
pub struct TenantChange {
    pub tenant_id: Uuid,
    pub projection: Projection,
    pub notice: ChangeNotice,
    /// The notice as the `data:` line of a server-sent event and the blank line that ends
    /// the event (`data: {json}\n\n`), encoded once for every live stream that sends it.
    pub sse_data: bytes::Bytes,
}

#[cfg(test)]
impl TenantChange {
    /// One entity of `tenant_id`'s `model` changed at `position`, as a notice brings it.
    pub(crate) fn for_test(tenant_id: Uuid, model: &str, position: Position) -> Self {
        let notice = ChangeNotice {
            model: model.to_owned(),
            ids: vec![Uuid::now_v7().to_string()],
            position,
            at: chrono::Utc::now(),
        };
        let projection = Projection::of_model(model).expect("a model of MODELS");
        let sse_data = sse_data(&serde_json::to_vec(&notice).unwrap(), &notice);
        Self { tenant_id, projection, notice, sse_data }
    }
}

/// Changes a live stream may fall behind its tenant's before it is told to reread
/// (`event: reset`).
const LIVE_CAPACITY: usize = 4096;

/// How long entity change marks are kept: longer than any cache entry lives, so that a
/// stale entry written after its invalidation is refused for as long as it can exist.
fn mark_retention(ttl: Duration) -> Duration {
    ttl + Duration::from_secs(30)
}

/// Settings of [`Freshness`].
#[derive(Debug, Clone, Copy)]
pub struct FreshnessSettings {
    /// Longest time a read may be staler than PostgreSQL when notices stop (default 5 s).
    pub stale_bound: Duration,
    /// Longest a cache entry lives (entity marks are kept longer than this).
    pub cache_ttl: Duration,
    /// Changes kept for `Last-Event-ID` resumption of the live stream.
    pub replay_capacity: usize,
}

impl Default for FreshnessSettings {
    fn default() -> Self {
        Self {
            stale_bound: Duration::from_secs(5),
            cache_ttl: Duration::from_secs(120),
            replay_capacity: 10_000,
        }
    }
}

/// The shared state; see the module doc. Cheap to clone.
#[derive(Clone)]
pub struct Freshness {
    inner: Arc<Inner>,
}

struct Inner {
    pool: PgPool,
    settings: FreshnessSettings,
    /// Known checkpoints (max-merged).
    checkpoints: watch::Sender<Positions>,
    floor: RwLock<Positions>,
    tenants: DashMap<Uuid, TenantMarks>,
    entities: DashMap<(Uuid, Entity, Uuid), (Positions, Instant)>,
    /// Milliseconds since `epoch` until which the notice stream counts as live.
    live_until: AtomicU64,
    /// Set when notices may have been missed: the next live moment raises the floor first.
    resync: AtomicBool,
    /// Whether notices come from NATS (else the in-process bus, live by construction).
    remote: AtomicBool,
    epoch: Instant,
    /// The live streams' channels, one per tenant with a stream open: a change wakes only
    /// the streams of its tenant. Dropped by [`Freshness::prune`] once no stream is left.
    live: DashMap<Uuid, broadcast::Sender<Live>>,
    replay: Mutex<Replay>,
    /// Called with the ids of every change (and on a resync with none): the cache drops
    /// its own entries.
    on_change: RwLock<Vec<OnChange>>,
    on_resync: RwLock<Vec<OnResync>>,
}

type OnChange = Arc<dyn Fn(&TenantChange) + Send + Sync>;
type OnResync = Arc<dyn Fn() + Send + Sync>;

/// The last changes, for resuming a live stream.
struct Replay {
    items: std::collections::VecDeque<Arc<TenantChange>>,
    capacity: usize,
    /// Per model, the highest position this instance does not hold (dropped from `items`,
    /// or before it last resynchronised): a resume from before it cannot be complete.
    dropped: ModelPositions,
}

impl Freshness {
    /// A state that knows nothing yet: not live, a resync due.
    pub fn new(pool: PgPool, settings: FreshnessSettings) -> Self {
        Self {
            inner: Arc::new(Inner {
                pool,
                settings,
                checkpoints: watch::channel(ZERO).0,
                floor: RwLock::new(ZERO),
                tenants: DashMap::new(),
                entities: DashMap::new(),
                live_until: AtomicU64::new(0),
                resync: AtomicBool::new(true),
                remote: AtomicBool::new(false),
                epoch: Instant::now(),
                live: DashMap::new(),
                replay: Mutex::new(Replay {
                    items: Default::default(),
                    capacity: settings.replay_capacity.max(1),
                    dropped: [Position::new(0, 0); 3],
                }),
                on_change: RwLock::new(Vec::new()),
                on_resync: RwLock::new(Vec::new()),
            }),
        }
    }

    pub fn settings(&self) -> &FreshnessSettings {
        &self.inner.settings
    }

    pub(crate) fn on_change(&self, f: OnChange) {
        self.inner.on_change.write().unwrap_or_else(|e| e.into_inner()).push(f);
    }

    pub(crate) fn on_resync(&self, f: OnResync) {
        self.inner.on_resync.write().unwrap_or_else(|e| e.into_inner()).push(f);
    }

    fn now_ms(&self) -> u64 {
        self.inner.epoch.elapsed().as_millis() as u64
    }

    /// Whether caches may be used now (see the module doc).
    pub fn is_live(&self) -> bool {
        !self.inner.resync.load(Ordering::Acquire)
            && self.now_ms() < self.inner.live_until.load(Ordering::Acquire)
    }

    /// The notice stream just proved live (a NATS round trip, or the in-process bus).
    /// Raises the floor first when notices may have been missed.
    pub async fn confirm_live(&self) -> Result<(), sqlx::Error> {
        if self.inner.resync.load(Ordering::Acquire) {
            self.resync_now().await?;
        }
        let until = if self.inner.remote.load(Ordering::Acquire) {
            self.now_ms() + self.inner.settings.stale_bound.as_millis() as u64
        } else {
            u64::MAX
        };
        self.inner.live_until.store(until, Ordering::Release);
        Ok(())
    }

    /// Notices may have been missed (disconnection, a dropped message): no cache until
    /// the stream is live again and the floor raised.
    pub fn lost_notices(&self, why: &str) {
        if !self.inner.resync.swap(true, Ordering::AcqRel) {
            tracing::warn!(why, "change notices may have been missed: caches bypassed until resynchronised");
        }
        self.inner.live_until.store(0, Ordering::Release);
    }

    /// Reads every projection's checkpoint from PostgreSQL: they become the floor and the
    /// known checkpoints, and every cache drops its entries.
    #[tracing::instrument(name = "query.resync", skip_all)]
    pub async fn resync_now(&self) -> Result<(), sqlx::Error> {
        // Cleared before reading: a notice lost while we read sets it again.
        self.inner.resync.store(false, Ordering::Release);
        let read = self.read_checkpoints().await;
        let positions = match read {
            Ok(p) => p,
            Err(e) => {
                self.inner.resync.store(true, Ordering::Release);
                return Err(e);
            }
        };
        *self.inner.floor.write().unwrap_or_else(|e| e.into_inner()) = positions;
        self.merge_checkpoints(positions);
        {
            // What came before the floor may never have reached this instance.
            let mut replay = self.inner.replay.lock().unwrap_or_else(|e| e.into_inner());
            for (i, model) in MODELS.iter().enumerate() {
                if let Some(p) = Projection::of_model(model) {
                    replay.dropped[i] = replay.dropped[i].max(positions[p as usize]);
                }
            }
        }
        self.reset_live("this instance may have missed changes and resynchronised");
        for f in self.inner.on_resync.read().unwrap_or_else(|e| e.into_inner()).iter() {
            f();
        }
        tracing::info!(resources = %positions[0], compliance = %positions[1], "caches resynchronised");
        Ok(())
    }

    /// The checkpoints as PostgreSQL holds them now (zero for a projection not started).
    #[tracing::instrument(name = "query.read_checkpoints", skip_all, err)]
    pub async fn read_checkpoints(&self) -> Result<Positions, sqlx::Error> {
        let rows =
            sqlx::query("SELECT projection, position_major, position_minor FROM projection_checkpoints")
                .fetch_all(&self.inner.pool)
                .await?;
        let mut positions = ZERO;
        for row in rows {
            let name: String = row.try_get("projection")?;
            if let Some(p) = Projection::of_name(&name) {
                let major: i64 = row.try_get("position_major")?;
                let minor: i64 = row.try_get("position_minor")?;
                positions[p as usize] = Position::new(major as u64, minor as u64);
            }
        }
        Ok(positions)
    }

    fn merge_checkpoints(&self, positions: Positions) {
        self.inner.checkpoints.send_if_modified(|known| raise_all(known, &positions));
    }

    /// The known checkpoints now.
    pub fn checkpoints(&self) -> Positions {
        *self.inner.checkpoints.borrow()
    }

    pub fn floor(&self) -> Positions {
        *self.inner.floor.read().unwrap_or_else(|e| e.into_inner())
    }

    /// The generation of a tenant's lists over `of`: per projection, its last change or the
    /// floor, whichever is later. An entry kept under it was built at or after it.
    pub fn generation(&self, tenant_id: Uuid) -> Positions {
        let mut g = self.floor();
        if let Some(marks) = self.inner.tenants.get(&tenant_id) {
            raise_all(&mut g, &marks.last);
        }
        g
    }

    /// The latest change an entity entry must include to be served: its own last change,
    /// its tenant's last whole-model change, and the floor.
    pub fn entity_mark(&self, tenant_id: Uuid, entity: Entity, id: Uuid) -> Positions {
        let mut m = self.floor();
        if let Some(marks) = self.inner.tenants.get(&tenant_id) {
            raise_all(&mut m, &marks.whole);
            if entity == Entity::Resource {
                raise(&mut m, Projection::Compliance, marks.policies);
            }
        }
        if let Some(e) = self.inner.entities.get(&(tenant_id, entity, id)) {
            raise_all(&mut m, &e.0);
        }
        m
    }

    /// Handles one notice (subject and JSON payload as published).
    pub fn receive(&self, subject: &str, payload: &[u8]) {
        let mut parts = subject.split('.');
        match (parts.next(), parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some("cortex"), Some("checkpoints"), Some(_), None, None) => {
                match serde_json::from_slice::<CheckpointNotice>(payload) {
                    Ok(n) => {
                        if let Some(p) = Projection::of_name(&n.projection) {
                            let mut all = self.checkpoints();
                            raise(&mut all, p, n.position);
                            self.merge_checkpoints(all);
                        }
                    }
                    Err(e) => tracing::warn!(subject, error = %e, "ignoring a malformed checkpoint notice"),
                }
            }
            _ => match parse_change(subject, payload) {
                Some(Ok((tenant_id, notice))) => {
                    let Some(projection) = Projection::of_model(&notice.model) else { return };
                    let sse_data = sse_data(payload, &notice);
                    self.change(TenantChange { tenant_id, projection, notice, sse_data })
                }
                Some(Err(e)) => tracing::warn!(subject, error = %e, "ignoring a malformed change notice"),
                None => {}
            },
        }
    }

    fn change(&self, change: TenantChange) {
        let (t, p, pos) = (change.tenant_id, change.projection, change.notice.position);
        // Entity ids are UUIDs; one that is not cannot be matched to a cached entry, so the
        // notice then counts for the whole model.
        let ids: Option<Vec<Uuid>> = change.notice.ids.iter().map(|id| id.parse().ok()).collect();
        {
            let mut marks = self.inner.tenants.entry(t).or_default();
            raise(&mut marks.last, p, pos);
            if change.notice.ids.is_empty() || ids.is_none() {
                // Strictly after: a rebuild's swap announces the position the retired tables
                // had already reached, and what was built from them must go.
                raise(&mut marks.whole, p, after(pos));
                raise(&mut marks.last, p, after(pos));
            }
            if change.notice.model == "policies" {
                marks.policies = marks.policies.max(pos);
            }
        }
        if let Some(entity) = Entity::of_model(&change.notice.model) {
            let now = Instant::now();
            for id in ids.iter().flatten() {
                let mut e = self.inner.entities.entry((t, entity, *id)).or_insert((ZERO, now));
                raise(&mut e.0, p, pos);
                e.1 = now;
            }
        }
        for f in self.inner.on_change.read().unwrap_or_else(|e| e.into_inner()).iter() {
            f(&change);
        }
        let change = Arc::new(change);
        {
            let mut replay = self.inner.replay.lock().unwrap_or_else(|e| e.into_inner());
            if replay.items.len() >= replay.capacity
                && let Some(old) = replay.items.pop_front()
                && let Some(i) = model_index(&old.notice.model)
            {
                replay.dropped[i] = replay.dropped[i].max(old.notice.position);
            }
            replay.items.push_back(change.clone());
        }
        // Sent outside the map's lock: a send wakes every stream of the tenant.
        let channel = self.inner.live.get(&change.tenant_id).map(|c| c.value().clone());
        if let Some(channel) = channel {
            // No stream left (not yet pruned) is not an error.
            let _ = channel.send(Live::Change(change));
        }
    }

    /// Tells every live stream, of every tenant, that it may have missed changes.
    fn reset_live(&self, why: &'static str) {
        // Sent outside the map's locks: a send wakes every stream of a tenant.
        let channels: Vec<_> = self.inner.live.iter().map(|c| c.value().clone()).collect();
        for channel in channels {
            let _ = channel.send(Live::Reset(why));
        }
    }

    /// Forgets entity marks older than any cache entry can be, and the live channels of
    /// tenants with no stream left.
    pub fn prune(&self) {
        let keep = mark_retention(self.inner.settings.cache_ttl);
        let now = Instant::now();
        self.inner.entities.retain(|_, (_, at)| now.duration_since(*at) < keep);
        // A stream subscribing meanwhile waits for its shard: it never gets a channel that
        // is being dropped.
        self.inner.live.retain(|_, channel| channel.receiver_count() > 0);
    }

    /// Every change of `tenant_id` from now on, and every reset (use [`replay_after`] for
    /// the changes kept for resumption).
    ///
    /// [`replay_after`]: Self::replay_after
    pub fn subscribe(&self, tenant_id: Uuid) -> broadcast::Receiver<Live> {
        self.inner.live.entry(tenant_id).or_insert_with(|| broadcast::channel(LIVE_CAPACITY).0).subscribe()
    }

    /// The kept changes of `tenant_id` after `from` (per model), oldest first, and whether
    /// they are complete (this instance holds everything after `from`).
    pub fn replay_after(&self, tenant_id: Uuid, from: &ModelPositions) -> (Vec<Arc<TenantChange>>, bool) {
        let replay = self.inner.replay.lock().unwrap_or_else(|e| e.into_inner());
        let complete = (0..MODELS.len()).all(|i| replay.dropped[i] <= from[i]);
        let items = replay
            .items
            .iter()
            .filter(|c| {
                c.tenant_id == tenant_id
                    && model_index(&c.notice.model).is_some_and(|i| c.notice.position > from[i])
            })
            .cloned()
            .collect();
        (items, complete)
    }

    /// Waits until every projection in `of` is known to have passed `after`, up to `bound`.
    /// Woken by checkpoint notices; while the notice stream is not live it also reads the
    /// checkpoints from PostgreSQL every 100 ms, so that a NATS outage does not turn every
    /// read-your-writes query into a timeout.
    #[tracing::instrument(name = "query.wait_for", skip(self, of), fields(after = %after))]
    pub async fn wait_for(
        &self,
        of: &[Projection],
        after: Position,
        bound: Duration,
    ) -> Result<(), Positions> {
        let target = [after; 2];
        let mut rx = self.inner.checkpoints.subscribe();
        let deadline = tokio::time::Instant::now() + bound;
        let mut last_poll: Option<tokio::time::Instant> = None;
        loop {
            let known = *rx.borrow_and_update();
            if reaches(&known, &target, of) {
                return Ok(());
            }
            // Once at the start (the notice may have come before we subscribed, or this
            // process hears no notices), then every POLL while notices are not live.
            let due = last_poll.is_none_or(|t| !self.is_live() && t.elapsed() >= POLL);
            if due {
                last_poll = Some(tokio::time::Instant::now());
                if let Ok(p) = self.read_checkpoints().await {
                    self.merge_checkpoints(p);
                    if reaches(&p, &target, of) {
                        return Ok(());
                    }
                }
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Err(self.checkpoints());
            }
            // Woken by a checkpoint, or within POLL to notice that the stream stopped being live.
            tokio::select! {
                changed = rx.changed() => if changed.is_err() { return Err(self.checkpoints()) },
                _ = tokio::time::sleep_until((now + POLL).min(deadline)) => {}
            }
        }
    }
}

/// How often a read-your-writes wait reads the checkpoints while notices are not live.
const POLL: Duration = Duration::from_millis(100);

/// Where notices come from.
#[derive(Clone)]
pub enum NoticeSource {
    /// NATS: every instance subscribes to every notice; the cache's shared tier is
    /// invalidated by one instance per notice (queue group `cortex-query-cache`).
    Nats(String),
    /// The in-process bus of a `cortex serve` that runs the projections too.
    Local(cortex_projections::LocalBus),
}

/// The queue group whose one member per change drops the shared cache's keys.
pub const CACHE_QUEUE_GROUP: &str = "cortex-query-cache";

/// A message of the shared-tier queue subscription.
pub type SharedDrop = Arc<dyn Fn(Uuid, Entity, Vec<String>) + Send + Sync>;

impl Freshness {
    /// The background tasks that feed this state from `source` (and, through `shared`, drop
    /// the shared cache's keys once per change), reconnecting by themselves.
    pub fn tasks(
        &self,
        source: NoticeSource,
        shared: Option<SharedDrop>,
    ) -> Vec<(&'static str, futures::future::BoxFuture<'static, ()>)> {
        let mut tasks: Vec<(&'static str, futures::future::BoxFuture<'static, ()>)> = Vec::new();
        let pruner = self.clone();
        tasks.push((
            "query.prune",
            Box::pin(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(10));
                loop {
                    tick.tick().await;
                    pruner.prune();
                }
            }),
        ));
        match source {
            NoticeSource::Local(bus) => {
                // One process hears every change once: it is the L2 dropper itself.
                if let Some(drop) = shared {
                    self.on_change(Arc::new(move |c: &TenantChange| {
                        if let Some(entity) = Entity::of_model(&c.notice.model)
                            && !c.notice.ids.is_empty()
                        {
                            drop(c.tenant_id, entity, c.notice.ids.clone());
                        }
                    }));
                }
                let me = self.clone();
                let mut rx = bus.subscribe();
                tasks.push((
                    "query.notices",
                    Box::pin(async move {
                        loop {
                            if let Err(e) = me.confirm_live().await {
                                tracing::warn!(error = %e, "cannot read the checkpoints; retrying");
                                tokio::time::sleep(Duration::from_millis(500)).await;
                                continue;
                            }
                            match rx.recv().await {
                                Ok(m) => me.receive(&m.subject, &m.payload),
                                Err(broadcast::error::RecvError::Lagged(n)) => {
                                    me.lost_notices(&format!("{n} notices dropped by the in-process bus"))
                                }
                                Err(broadcast::error::RecvError::Closed) => return,
                            }
                        }
                    }),
                ));
            }
            NoticeSource::Nats(url) => {
                self.inner.remote.store(true, Ordering::Release);
                let me = self.clone();
                tasks.push(("query.notices", Box::pin(async move { me.follow_nats(url, shared).await })));
            }
        }
        tasks
    }

    #[tracing::instrument(name = "query.nats", skip_all, fields(url = %url))]
    async fn follow_nats(self, url: String, shared: Option<SharedDrop>) {
        let events = self.clone();
        let connect = async_nats::ConnectOptions::new()
            .name("cortex-query")
            .retry_on_initial_connect()
            .event_callback(move |event| {
                let events = events.clone();
                async move {
                    match event {
                        async_nats::Event::Disconnected => events.lost_notices("NATS disconnected"),
                        async_nats::Event::SlowConsumer(_) => {
                            events.lost_notices("NATS dropped messages (slow consumer)")
                        }
                        async_nats::Event::Connected => tracing::info!("NATS connected"),
                        other => tracing::debug!(event = %other, "NATS event"),
                    }
                }
            })
            .connect(url.as_str())
            .await;
        let client = match connect {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "cannot configure NATS; caches stay bypassed");
                return;
            }
        };
        let _probe = AbortOnDrop(tokio::spawn(self.clone().probe(client.clone())));
        loop {
            self.follow_subscriptions(&client, shared.clone()).await;
            self.lost_notices("the NATS subscription ended");
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// Receives every notice until the subscription ends; the queue member drops L2 keys.
    async fn follow_subscriptions(&self, client: &async_nats::Client, shared: Option<SharedDrop>) {
        use futures::StreamExt;
        let mut all = match client.subscribe("cortex.>").await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot subscribe to NATS; retrying");
                return;
            }
        };
        let queue = match &shared {
            Some(drop) => {
                match client
                    .queue_subscribe(cortex_events::wire::ALL_CHANGES, CACHE_QUEUE_GROUP.to_owned())
                    .await
                {
                    Ok(mut queue) => {
                        let drop = drop.clone();
                        Some(AbortOnDrop(tokio::spawn(async move {
                            while let Some(m) = queue.next().await {
                                shared_drop(&drop, &m.subject, &m.payload);
                            }
                        })))
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot join the cache queue group; retrying");
                        return;
                    }
                }
            }
            None => None,
        };
        while let Some(m) = all.next().await {
            self.receive(&m.subject, &m.payload);
        }
        drop(queue);
    }

    /// Keeps the stream live while NATS answers a round trip every fifth of the bound, and
    /// takes it out of service when notices stop arriving although NATS answers: when the
    /// checkpoints in PostgreSQL stay ahead of the notified ones for half the bound (a
    /// projection process that died between commit and publish, or that lost its own link
    /// to NATS), the instance resynchronises.
    async fn probe(self, client: async_nats::Client) {
        let bound = self.inner.settings.stale_bound;
        let period = (bound / 5).max(Duration::from_millis(100));
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut gap: Option<(Instant, Positions)> = None;
        loop {
            tick.tick().await;
            let connected = client.connection_state() == async_nats::connection::State::Connected;
            let flushed =
                connected && matches!(tokio::time::timeout(period, client.flush()).await, Ok(Ok(())));
            if !flushed {
                if !connected {
                    self.lost_notices("NATS unreachable");
                }
                continue;
            }
            if let Ok(stored) = self.read_checkpoints().await {
                let known = self.checkpoints();
                gap = match gap {
                    Some((_, target)) if reaches(&known, &target, &Projection::ALL) => None,
                    Some((since, _)) if since.elapsed() >= bound / 2 => {
                        self.lost_notices("the checkpoints in PostgreSQL moved on without notices");
                        None
                    }
                    Some(g) => Some(g),
                    None if !reaches(&known, &stored, &Projection::ALL) => Some((Instant::now(), stored)),
                    None => None,
                };
            }
            if let Err(e) = self.confirm_live().await {
                tracing::warn!(error = %e, "cannot read the checkpoints to resynchronise; retrying");
            }
        }
    }
}

/// A task that ends with its owner (tasks of a task that is aborted are not).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// `data: {json}\n\n` of a notice: its payload as published (just parsed, so valid JSON)
/// when that is one line, else the notice encoded again, compact: a line break inside would
/// end the event's `data:` line early.
fn sse_data(payload: &[u8], notice: &ChangeNotice) -> bytes::Bytes {
    let encoded;
    let json = if payload.iter().any(|b| matches!(b, b'\n' | b'\r')) {
        encoded = serde_json::to_vec(notice).unwrap_or_default();
        &encoded[..]
    } else {
        payload
    };
    let mut out = bytes::BytesMut::with_capacity(json.len() + 8);
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(json);
    out.extend_from_slice(b"\n\n");
    out.freeze()
}

/// A `cortex.changes.{tenant}.{model}` message: its tenant and notice; `None` for any other
/// subject.
fn parse_change(subject: &str, payload: &[u8]) -> Option<Result<(Uuid, ChangeNotice), serde_json::Error>> {
    let (tenant, model) = subject.strip_prefix("cortex.changes.")?.split_once('.')?;
    let tenant_id = tenant.parse::<Uuid>().ok().filter(|_| !model.contains('.'))?;
    Some(serde_json::from_slice(payload).map(|notice| (tenant_id, notice)))
}

/// Hands a change notice's entity ids to the shared tier's drop (the queue member's part).
fn shared_drop(drop: &SharedDrop, subject: &str, payload: &[u8]) {
    if let Some(Ok((tenant_id, notice))) = parse_change(subject, payload)
        && let Some(entity) = Entity::of_model(&notice.model)
        && !notice.ids.is_empty()
    {
        drop(tenant_id, entity, notice.ids);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn models_map_to_their_projection_and_entity() {
        assert_eq!(Projection::of_model("resources"), Some(Projection::Resources));
        assert_eq!(Projection::of_model("policies"), Some(Projection::Compliance));
        assert_eq!(Projection::of_model("compliance"), Some(Projection::Compliance));
        assert_eq!(Entity::of_model("compliance"), Some(Entity::Resource));
        assert_eq!(Entity::of_model("policies"), Some(Entity::Policy));
        assert_eq!(Projection::of_model("other"), None);
    }

    #[test]
    fn change_subjects_name_a_tenant_and_a_model_and_nothing_else() {
        let t = Uuid::now_v7();
        let payload = br#"{"model":"resources","ids":["a"],"position":"00000000000000010000000000000002","at":"2026-12-02T00:00:00Z"}"#;
        let (tenant, notice) =
            parse_change(&format!("cortex.changes.{t}.resources"), payload).unwrap().unwrap();
        assert_eq!((tenant, notice.ids), (t, vec!["a".to_owned()]));
        assert!(parse_change(&format!("cortex.changes.{t}.resources"), b"{").unwrap().is_err());
        assert!(parse_change(&format!("cortex.changes.{t}.a.b"), payload).is_none());
        assert!(parse_change("cortex.changes.not-a-tenant.resources", payload).is_none());
        assert!(parse_change("cortex.checkpoints.resources", payload).is_none());
    }

    #[test]
    fn a_notice_is_one_data_line_even_when_published_over_several() {
        let one = br#"{"model":"resources","ids":["a"],"position":"00000000000000010000000000000002","at":"2026-12-02T00:00:00Z"}"#;
        let t = Uuid::now_v7();
        let (_, notice) = parse_change(&format!("cortex.changes.{t}.resources"), one).unwrap().unwrap();
        let mut expected = b"data: ".to_vec();
        expected.extend_from_slice(one);
        expected.extend_from_slice(b"\n\n");
        assert_eq!(&sse_data(one, &notice)[..], &expected[..], "a one-line payload goes out as published");

        let pretty = serde_json::to_vec_pretty(&notice).unwrap();
        let (_, parsed) = parse_change(&format!("cortex.changes.{t}.resources"), &pretty).unwrap().unwrap();
        let data = sse_data(&pretty, &parsed);
        let text = std::str::from_utf8(&data).unwrap();
        let line = text.strip_prefix("data: ").and_then(|t| t.strip_suffix("\n\n")).unwrap();
        assert!(!line.contains(['\n', '\r']), "{text:?}");
        assert_eq!(serde_json::from_str::<ChangeNotice>(line).unwrap(), notice);
    }

    #[tokio::test]
    async fn a_change_reaches_the_streams_of_its_tenant_a_reset_every_stream() {
        let pool = sqlx::PgPool::connect_lazy("postgres://nobody@127.0.0.1:1/none").unwrap();
        let fresh = Freshness::new(pool, FreshnessSettings::default());
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let (mut a1, mut a2, mut b1) = (fresh.subscribe(a), fresh.subscribe(a), fresh.subscribe(b));
        fresh.change(TenantChange::for_test(a, "resources", Position::new(1, 0)));
        for rx in [&mut a1, &mut a2] {
            assert!(matches!(rx.try_recv(), Ok(Live::Change(c)) if c.tenant_id == a));
        }
        assert!(b1.try_recv().is_err(), "another tenant's stream is not woken");

        fresh.reset_live("resynchronised");
        for rx in [&mut a1, &mut a2, &mut b1] {
            assert!(matches!(rx.try_recv(), Ok(Live::Reset("resynchronised"))));
        }

        // A tenant's channel goes with its last stream, and comes back with the next.
        drop((a1, a2));
        fresh.prune();
        assert!(!fresh.inner.live.contains_key(&a) && fresh.inner.live.contains_key(&b));
        let mut again = fresh.subscribe(a);
        fresh.change(TenantChange::for_test(a, "resources", Position::new(2, 0)));
        assert!(matches!(again.try_recv(), Ok(Live::Change(_))));
    }

    #[test]
    fn reaching_is_per_projection() {
        let a = [Position::new(5, 0), Position::new(1, 0)];
        let b = [Position::new(2, 0), Position::new(2, 0)];
        assert!(reaches(&a, &b, &[Projection::Resources]));
        assert!(!reaches(&a, &b, &[Projection::Compliance]));
        assert!(!reaches(&a, &b, &Projection::ALL));
    }
}
