//! Freshness at a steady command rate. Commands go out open-loop at `rate` per second (a
//! slow answer does not slow the sender; past `max_inflight` unanswered ones a tick is
//! dropped and counted). Most are updates of the driver's own pool of resources (a tag
//! changes: a new revision), one in `new_every` registers a new resource. For each answer
//! (`resource_id`, `revision`) of a uniform sample, one in `track_every`, a poller sends
//! plain `GET /v1/resources/{id}` — no `X-Cortex-After` — every `poll_ms` until the body's
//! `revision` reaches the answered one: the delay is from the command's answer to the
//! arrival of the first GET that shows it (so it includes that GET's own latency; its
//! resolution is the poll interval). At most `pollers` writes are polled at once; the wait
//! for a free poller is part of the delay and reported on its own.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use tokio::{sync::Semaphore, task::JoinSet, time::MissedTickBehavior};

use crate::{
    procfs::Cpu,
    records::{Api, await_visible, client, settle, storage_account, visible_revision, write, write_batch},
    stats::{Delays, fmt},
};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    api: Api,
    /// Commands per second, sent open-loop.
    #[arg(long, default_value_t = 1000.0)]
    rate: f64,
    /// How long commands are sent.
    #[arg(long, default_value_t = 15)]
    seconds: u64,
    /// Resources of the driver's own that the updates cycle through (created first).
    #[arg(long, default_value_t = 2000)]
    pool: u64,
    /// One command in this many registers a new resource; the others update.
    #[arg(long, default_value_t = 5)]
    new_every: u64,
    /// Milliseconds between two GETs of one pending write.
    #[arg(long, default_value_t = 2.0)]
    poll_ms: f64,
    /// Most writes being polled at once (the others wait for a poller; their wait counts).
    #[arg(long, default_value_t = 256)]
    pollers: usize,
    /// Poll one write in this many (a uniform sample: fewer pending writes, so fewer GETs
    /// competing with the commands and fewer waits for a poller).
    #[arg(long, default_value_t = 10)]
    track_every: u64,
    /// Most commands awaiting their answer; a tick finding this many is dropped.
    #[arg(long, default_value_t = 512)]
    max_inflight: usize,
    /// The `cortex serve` process whose CPU use is reported.
    #[arg(long)]
    server_pid: Option<u32>,
    /// A write not visible this many seconds after its answer counts as never visible.
    #[arg(long, default_value_t = 5)]
    visible_within: u64,
}

#[derive(Default)]
struct Tally {
    delays: Vec<f64>,
    answers: Vec<f64>,
    /// Time from the answer until a poller was free (part of the delay).
    waits: Vec<f64>,
    invisible: u64,
    errors: u64,
    gets: u64,
    first_error: Option<String>,
}

impl Tally {
    fn error(&mut self, e: anyhow::Error) {
        self.errors += 1;
        self.first_error.get_or_insert_with(|| format!("{e:#}"));
    }
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let client = client()?;
    let run_tag = format!("{}", chrono::Utc::now().timestamp() % 1_000_000);
    let pool_tag = format!("f{run_tag}");
    let new_tag = format!("n{run_tag}");

    eprintln!("freshness: creating a pool of {} resources", args.pool);
    let mut last_ids = Vec::new();
    let all: Vec<u64> = (0..args.pool).collect();
    for chunk in all.chunks(1000) {
        let records = chunk.iter().map(|&n| storage_account(&pool_tag, n, 0)).collect();
        let ids = write_batch(&client, &args.api, records).await?;
        last_ids.extend(ids.last().cloned());
    }
    await_visible(&client, &args.api, &last_ids, Duration::from_secs(60)).await?;
    // The evaluator and the compliance projection are still deciding the new pool: measured
    // from here, the first second's delays were theirs (p99 at 50 commands/s: 72 ms, against
    // 13 ms once quiet).
    settle(&client, &args.api, Duration::from_secs(1), Duration::from_secs(120)).await?;

    eprintln!("freshness: {} commands/s for {} s", args.rate, args.seconds);
    let tally = Arc::new(Mutex::new(Tally::default()));
    let inflight = Arc::new(Semaphore::new(args.max_inflight));
    let pollers = Arc::new(Semaphore::new(args.pollers));
    let poll = Duration::from_secs_f64(args.poll_ms / 1000.0);
    let within = Duration::from_secs(args.visible_within);
    let total = (args.rate * args.seconds as f64).round() as u64;
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / args.rate));
    ticker.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let mut tasks = JoinSet::new();
    let (mut sent, mut dropped) = (0u64, 0u64);
    let cpu = Cpu::start(args.server_pid);
    let started = Instant::now();
    for i in 0..total {
        ticker.tick().await;
        let Ok(permit) = inflight.clone().try_acquire_owned() else {
            dropped += 1;
            continue;
        };
        sent += 1;
        let record = if i % args.new_every == 0 {
            storage_account(&new_tag, i, 0)
        } else {
            storage_account(&pool_tag, i % args.pool, i + 1)
        };
        let (client, api, tally, pollers) =
            (client.clone(), args.api.clone(), tally.clone(), pollers.clone());
        let track_every = args.track_every.max(1);
        tasks.spawn(async move {
            let t0 = Instant::now();
            let written = write(&client, &api, &record).await;
            let answered = Instant::now();
            drop(permit);
            let written = match written {
                Ok(w) => w,
                Err(e) => return tally.lock().unwrap().error(e),
            };
            if i % track_every != 0 {
                return tally.lock().unwrap().answers.push(ms(answered - t0));
            }
            let Ok(_poller) = pollers.acquire().await else { return };
            {
                let mut t = tally.lock().unwrap();
                t.answers.push(ms(answered - t0));
                t.waits.push(ms(answered.elapsed()));
            }
            let mut gets = 0;
            let outcome = loop {
                gets += 1;
                match visible_revision(&client, &api, &written.resource_id).await {
                    Ok(Some(rev)) if rev >= written.revision => break Ok(Some(ms(answered.elapsed()))),
                    Ok(_) if answered.elapsed() > within => break Ok(None),
                    Ok(_) => tokio::time::sleep(poll).await,
                    Err(e) => break Err(e),
                }
            };
            let mut t = tally.lock().unwrap();
            t.gets += gets;
            match outcome {
                Ok(Some(delay)) => t.delays.push(delay),
                Ok(None) => t.invisible += 1,
                Err(e) => t.error(e),
            }
        });
        // Reap finished tasks as we go, so the set stays small.
        while tasks.try_join_next().is_some() {}
    }
    let sending = started.elapsed();
    let cores = cpu.cores();
    while tasks.join_next().await.is_some() {}

    let t = std::mem::take(&mut *tally.lock().unwrap());
    if let Some(e) = &t.first_error {
        eprintln!("freshness: {} errors, the first: {e}", t.errors);
    }
    let delays = Delays::new(t.delays);
    let answers = Delays::new(t.answers);
    let waits = Delays::new(t.waits);
    println!(
        "RESULT rate={:.1} sent={sent} dropped={dropped} answered={} errors={} count={} invisible={} \
         p50={} p99={} max={} post_p50={} post_p99={} wait_p50={} wait_p99={} gets_per_s={:.0} poll_ms={} pollers={} track_every={} server_cpu={} driver_cpu={} machine_cpu={}",
        sent as f64 / sending.as_secs_f64(),
        answers.count(),
        t.errors,
        delays.count(),
        t.invisible,
        fmt(delays.percentile(50.0)),
        fmt(delays.percentile(99.0)),
        fmt(delays.max()),
        fmt(answers.percentile(50.0)),
        fmt(answers.percentile(99.0)),
        fmt(waits.percentile(50.0)),
        fmt(waits.percentile(99.0)),
        t.gets as f64 / sending.as_secs_f64(),
        args.poll_ms,
        args.pollers,
        args.track_every.max(1),
        fmt(cores.server),
        fmt(cores.driver),
        fmt(cores.machine),
    );
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
