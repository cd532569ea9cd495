//! SSE fan-out. `clients` streams of `GET /v1/changes` are opened (at most
//! `connect_concurrency` connecting at once, so the listen backlog does not overflow), then
//! commands go out at `rate` per second for `seconds`; for every `change` event a client
//! receives, the delay is its arrival time minus the event's `at` (RFC 3339, set by the
//! projection runner right after the commit; same machine, same clock). The server's
//! memory (VmRSS, VmHWM of `--server-pid`) is read before the clients connect, once they
//! all are, and at the end; the CPU the server and the driver used while recording (both
//! share the machine).
//!
//! With `--baseline`, the same clients and rate measure the hello server's bare broadcast
//! instead (`GET /hello/changes`, each command a `POST /hello/changes` stamping `at`): what
//! this machine allows any axum server with that many streams.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    sync::{Semaphore, watch},
    task::JoinHandle,
    time::MissedTickBehavior,
};

use crate::{
    procfs::{Cpu, memory, open_files_limit},
    records::{Api, await_visible, client, settle, storage_account, write, write_batch},
    stats::{Delays, fmt},
};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    api: Api,
    /// Concurrent GET /v1/changes streams.
    #[arg(long, default_value_t = 10_000)]
    clients: usize,
    /// How long commands are sent once every client is connected.
    #[arg(long, default_value_t = 15)]
    seconds: u64,
    /// Commands per second during the measurement (updates of 100 resources of the driver's own).
    #[arg(long, default_value_t = 20.0)]
    rate: f64,
    /// The `cortex serve` process whose memory is reported.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Measure the hello server (`--url` names it): `GET /hello/changes` streams, each
    /// command a `POST /hello/changes`.
    #[arg(long)]
    baseline: bool,
    /// Most streams being opened at once.
    #[arg(long, default_value_t = 200)]
    connect_concurrency: usize,
    /// How long every client may take to connect.
    #[arg(long, default_value_t = 180)]
    connect_within: u64,
}

/// What one client saw.
#[derive(Debug, Default)]
pub struct ClientResult {
    pub connected: bool,
    /// The stream ended (or failed) before the client was told to stop.
    pub ended_early: bool,
    pub error: Option<String>,
    /// `change` events received while recording.
    pub events: u64,
    /// `reset` events received while recording (the stream fell behind: reread, follow).
    pub resets: u64,
    /// Their delays, ms.
    pub delays: Vec<f32>,
}

/// Shared by every client: the counters the driver watches and the switch that starts
/// recording.
#[derive(Default)]
pub struct Board {
    pub connected: AtomicU64,
    pub failed: AtomicU64,
    pub events: AtomicU64,
    pub resets: AtomicU64,
    pub recording: AtomicBool,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let api = args.api.clone();
    let writer = client()?;
    let streams = stream_client()?;

    let path = if args.baseline { "/hello/changes" } else { "/v1/changes" };
    let probe =
        streams.get(api.at(path)).bearer_auth(&api.key).header("accept", "text/event-stream").send().await?;
    match probe.status().as_u16() {
        200 => drop(probe),
        404 => {
            println!("SKIPPED reason={path}_not_served");
            return Ok(());
        }
        s => bail!("GET {path} answered {s}: {}", probe.text().await.unwrap_or_default()),
    }
    if let Some(limit) = open_files_limit()
        && limit < args.clients as u64 + 256
    {
        bail!("{} clients need more than {limit} open files: raise `ulimit -n`", args.clients);
    }

    // The resources the writes update, created before anyone listens.
    let tag = format!("e{}", chrono::Utc::now().timestamp() % 1_000_000);
    if !args.baseline {
        let ids = write_batch(&writer, &api, (0..100).map(|n| storage_account(&tag, n, 0)).collect()).await?;
        await_visible(&writer, &api, &ids[ids.len() - 1..], Duration::from_secs(60)).await?;
        settle(&writer, &api, Duration::from_secs(1), Duration::from_secs(120)).await?;
    }

    let rss_before = args.server_pid.and_then(memory);
    let board = Arc::new(Board::default());
    let (stop, stopped) = watch::channel(false);
    eprintln!("sse: opening {} streams", args.clients);
    let started = Instant::now();
    let handles = open(&api, path, args.clients, args.connect_concurrency, &board, &stopped);
    let deadline = started + Duration::from_secs(args.connect_within);
    let mut last_report = Instant::now();
    loop {
        let (c, f) = (board.connected.load(Ordering::Relaxed), board.failed.load(Ordering::Relaxed));
        if (c + f) as usize >= args.clients || Instant::now() > deadline {
            break;
        }
        if last_report.elapsed() > Duration::from_secs(5) {
            eprintln!("sse: {c} connected, {f} failed");
            last_report = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let connect_time = started.elapsed();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_connected = args.server_pid.and_then(memory);
    eprintln!(
        "sse: {} connected in {:.1} s; {} commands/s for {} s",
        board.connected.load(Ordering::Relaxed),
        connect_time.as_secs_f64(),
        args.rate,
        args.seconds
    );

    board.recording.store(true, Ordering::SeqCst);
    let cpu = Cpu::start(args.server_pid);
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / args.rate));
    ticker.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let total = (args.rate * args.seconds as f64).round() as u64;
    let mut writes = tokio::task::JoinSet::new();
    for i in 0..total {
        ticker.tick().await;
        let (writer, api) = (writer.clone(), api.clone());
        if args.baseline {
            writes.spawn(async move {
                let sent = writer.post(api.at("/hello/changes")).send().await;
                sent.is_ok_and(|r| r.status().is_success())
            });
        } else {
            let record = storage_account(&tag, i % 100, i + 1);
            writes.spawn(async move { write(&writer, &api, &record).await.is_ok() });
        }
    }
    let mut written = 0u64;
    while let Some(ok) = writes.join_next().await {
        written += u64::from(ok.unwrap_or(false));
    }
    // Deliveries of the last commits.
    tokio::time::sleep(Duration::from_secs(2)).await;
    board.recording.store(false, Ordering::SeqCst);
    let cores = cpu.cores();
    let rss_after = args.server_pid.and_then(memory);
    let results = stop_all(stop, handles).await;
    let summary = Summary::of(&results);
    if let Some(e) = results.iter().find_map(|r| r.error.clone()) {
        eprintln!("sse: first client error: {e}");
    }
    let kb = |m: Option<(u64, u64)>, hwm: bool| {
        m.map_or_else(|| "-".into(), |(rss, peak)| (if hwm { peak } else { rss }).to_string())
    };
    println!(
        "RESULT clients={} connected={} failed={} ended_early={} connect_s={:.1} writes={written} events={} resets={} \
         per_client_min={} per_client_mean={:.1} per_client_max={} p50={} p99={} max={} \
         rss_before_kb={} rss_connected_kb={} rss_after_kb={} hwm_kb={} server_cpu={} driver_cpu={} machine_cpu={}",
        args.clients,
        summary.connected,
        summary.failed,
        summary.ended_early,
        connect_time.as_secs_f64(),
        summary.events,
        summary.resets,
        summary.min,
        summary.mean,
        summary.max,
        fmt(summary.delays.percentile(50.0)),
        fmt(summary.delays.percentile(99.0)),
        fmt(summary.delays.max()),
        kb(rss_before, false),
        kb(rss_connected, false),
        kb(rss_after, false),
        kb(rss_after, true),
        fmt(cores.server),
        fmt(cores.driver),
        fmt(cores.machine),
    );
    Ok(())
}

/// A client for long-lived streams: no overall timeout, no idle pool.
pub fn stream_client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(0)
        .build()?)
}

/// Tells every client to stop, and what each saw (a client whose task failed saw nothing).
pub async fn stop_all(
    stop: watch::Sender<bool>,
    handles: Vec<JoinHandle<ClientResult>>,
) -> Vec<ClientResult> {
    // The clients may all have ended already.
    let _ = stop.send(true);
    let mut results = Vec::with_capacity(handles.len());
    for h in handles {
        results.push(h.await.unwrap_or_default());
    }
    results
}

/// Opens `n` streams, each in a task of its own, which reads until `stop` turns true.
pub fn open(
    api: &Api,
    path: &'static str,
    n: usize,
    concurrency: usize,
    board: &Arc<Board>,
    stop: &watch::Receiver<bool>,
) -> Vec<JoinHandle<ClientResult>> {
    let gate = Arc::new(Semaphore::new(concurrency));
    (0..n)
        .map(|_| {
            let (api, board, gate, stop) = (api.clone(), board.clone(), gate.clone(), stop.clone());
            tokio::spawn(listen(api, path, board, gate, stop))
        })
        .collect()
}

async fn listen(
    api: Api,
    path: &'static str,
    board: Arc<Board>,
    gate: Arc<Semaphore>,
    mut stop: watch::Receiver<bool>,
) -> ClientResult {
    let mut result = ClientResult::default();
    let permit = gate.acquire_owned().await;
    let opened = RawStream::open(&api, path).await;
    drop(permit);
    let mut stream = match opened {
        Ok(s) => s,
        Err(e) => {
            result.error = Some(format!("GET {path}: {e:#}"));
            board.failed.fetch_add(1, Ordering::Relaxed);
            return result;
        }
    };
    result.connected = true;
    board.connected.fetch_add(1, Ordering::Relaxed);

    let mut parser = Parser::default();
    let mut on_event = |event: &str, data: &str| {
        if !board.recording.load(Ordering::Relaxed) {
            return;
        }
        if event == "reset" {
            result.resets += 1;
            board.resets.fetch_add(1, Ordering::Relaxed);
        }
        if event != "change" {
            return;
        }
        result.events += 1;
        board.events.fetch_add(1, Ordering::Relaxed);
        if let Some(d) = delay_ms(data, chrono::Utc::now()) {
            result.delays.push(d as f32);
        }
    };
    let leftover = std::mem::take(&mut stream.leftover);
    let mut open = stream.body.feed(&leftover, |bytes| parser.feed(bytes, &mut on_event));
    let mut buf = vec![0u8; 16 * 1024];
    while open {
        tokio::select! {
            _ = stop.wait_for(|s| *s) => break,
            read = stream.sock.read(&mut buf) => match read {
                Ok(0) => open = false,
                Ok(n) => open = stream.body.feed(&buf[..n], |bytes| parser.feed(bytes, &mut on_event)),
                Err(e) => {
                    result.ended_early = true;
                    result.error = Some(format!("stream: {e}"));
                    return result;
                }
            },
        }
    }
    if !open {
        result.ended_early = true;
    }
    result
}

/// One `GET /v1/changes` (or `/hello/changes`) read over a plain HTTP/1.1 connection. Ten
/// thousand streams read through reqwest cost the driver about as much CPU per event as the
/// server spent sending it, on the same two cores; this reads the socket and undoes the
/// chunked framing, no more.
struct RawStream {
    sock: tokio::net::TcpStream,
    /// Body bytes that came with the response head.
    leftover: Vec<u8>,
    body: Body,
}

impl RawStream {
    async fn open(api: &Api, path: &str) -> anyhow::Result<Self> {
        let authority = api.url.trim_end_matches('/').strip_prefix("http://").context("only http:// URLs")?;
        let mut sock = tokio::net::TcpStream::connect(authority).await?;
        sock.set_nodelay(true)?;
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {authority}\r\nAuthorization: Bearer {}\r\n\
             Accept: text/event-stream\r\n\r\n",
            api.key
        );
        sock.write_all(request.as_bytes()).await?;
        let mut head = Vec::with_capacity(1024);
        let mut buf = [0u8; 4096];
        let end = loop {
            let n = sock.read(&mut buf).await?;
            if n == 0 {
                bail!("the connection closed before the response head");
            }
            head.extend_from_slice(&buf[..n]);
            if let Some(i) = head.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            if head.len() > 64 * 1024 {
                bail!("a response head over 64 KiB");
            }
        };
        let text = String::from_utf8_lossy(&head[..end]).to_ascii_lowercase();
        let status = text.split_whitespace().nth(1).unwrap_or("");
        if status != "200" {
            bail!("answered {status}");
        }
        let chunked = text.lines().any(|l| {
            l.split_once(':').is_some_and(|(k, v)| k.trim() == "transfer-encoding" && v.contains("chunked"))
        });
        let body = if chunked { Body::Chunked(Dechunk::default()) } else { Body::Plain };
        Ok(Self { sock, leftover: head[end..].to_vec(), body })
    }
}

/// How the body is framed.
enum Body {
    Plain,
    Chunked(Dechunk),
}

impl Body {
    /// Hands the payload in `bytes` to `out`; false once the body has ended.
    fn feed(&mut self, bytes: &[u8], mut out: impl FnMut(&[u8])) -> bool {
        match self {
            Body::Plain => {
                out(bytes);
                true
            }
            Body::Chunked(d) => d.feed(bytes, out),
        }
    }
}

/// `Transfer-Encoding: chunked` (RFC 9112 §7.1), fed piece by piece: `size[;ext]CRLF data CRLF`
/// until a zero size.
#[derive(Default)]
struct Dechunk {
    size_line: Vec<u8>,
    remaining: usize,
    state: ChunkState,
}

#[derive(Default, PartialEq)]
enum ChunkState {
    #[default]
    Size,
    Data,
    /// The CRLF after a chunk's data.
    AfterData,
    Done,
}

impl Dechunk {
    fn feed(&mut self, mut bytes: &[u8], mut out: impl FnMut(&[u8])) -> bool {
        while !bytes.is_empty() {
            match self.state {
                ChunkState::Size => {
                    let Some(i) = bytes.iter().position(|&b| b == b'\n') else {
                        self.size_line.extend_from_slice(bytes);
                        return true;
                    };
                    self.size_line.extend_from_slice(&bytes[..i]);
                    bytes = &bytes[i + 1..];
                    let line = String::from_utf8_lossy(&self.size_line);
                    let hex = line.split(';').next().unwrap_or("").trim();
                    let size = usize::from_str_radix(hex, 16).unwrap_or(0);
                    self.size_line.clear();
                    if size == 0 {
                        self.state = ChunkState::Done;
                        return false;
                    }
                    (self.remaining, self.state) = (size, ChunkState::Data);
                }
                ChunkState::Data => {
                    let take = self.remaining.min(bytes.len());
                    out(&bytes[..take]);
                    self.remaining -= take;
                    bytes = &bytes[take..];
                    if self.remaining == 0 {
                        self.state = ChunkState::AfterData;
                    }
                }
                ChunkState::AfterData => {
                    // CR then LF: skip up to the LF.
                    if bytes[0] == b'\n' {
                        self.state = ChunkState::Size;
                    }
                    bytes = &bytes[1..];
                }
                ChunkState::Done => return false,
            }
        }
        self.state != ChunkState::Done
    }
}

/// Arrival − `at` of a change event's data, in ms (never below zero). The notice is the
/// server's compact JSON; only its `at` is read (a full parse per event was a third of the
/// driver's time with 10,000 clients).
pub fn delay_ms(data: &str, now: chrono::DateTime<chrono::Utc>) -> Option<f64> {
    let start = data.find("\"at\":\"")? + 6;
    let end = start + data[start..].find('"')?;
    let at = chrono::DateTime::parse_from_rfc3339(&data[start..end]).ok()?;
    let micros = (now - at.with_timezone(&chrono::Utc)).num_microseconds()?;
    Some(micros.max(0) as f64 / 1000.0)
}

/// A `text/event-stream` reader (WHATWG HTML §9.2.6) fed chunk by chunk: lines end in LF,
/// CRLF or CR; `:` lines are comments; a blank line dispatches the event gathered so far
/// (type `message` unless an `event:` field named one) when it has data.
#[derive(Default)]
pub struct Parser {
    line: Vec<u8>,
    after_cr: bool,
    event: String,
    data: String,
    has_data: bool,
}

impl Parser {
    pub fn feed(&mut self, bytes: &[u8], mut dispatch: impl FnMut(&str, &str)) {
        for &b in bytes {
            if self.after_cr {
                self.after_cr = false;
                if b == b'\n' {
                    continue;
                }
            }
            match b {
                b'\n' => self.end_line(&mut dispatch),
                b'\r' => {
                    self.after_cr = true;
                    self.end_line(&mut dispatch);
                }
                _ => self.line.push(b),
            }
        }
    }

    fn end_line(&mut self, dispatch: &mut impl FnMut(&str, &str)) {
        // Taken and given back, so that the line buffer keeps its capacity.
        let mut line = std::mem::take(&mut self.line);
        self.field(&line, dispatch);
        line.clear();
        self.line = line;
    }

    fn field(&mut self, line: &[u8], dispatch: &mut impl FnMut(&str, &str)) {
        if line.is_empty() {
            if self.has_data {
                let event = if self.event.is_empty() { "message" } else { &self.event };
                dispatch(event, &self.data);
            }
            self.event.clear();
            self.data.clear();
            self.has_data = false;
            return;
        }
        if line[0] == b':' {
            return;
        }
        let line = String::from_utf8_lossy(line);
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (&*line, ""),
        };
        match field {
            "event" => {
                self.event.clear();
                self.event.push_str(value);
            }
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            _ => {} // id, retry and unknown fields do not matter here
        }
    }
}

struct Summary {
    connected: usize,
    failed: usize,
    ended_early: usize,
    events: u64,
    resets: u64,
    min: u64,
    max: u64,
    mean: f64,
    delays: Delays,
}

impl Summary {
    fn of(results: &[ClientResult]) -> Self {
        let connected: Vec<&ClientResult> = results.iter().filter(|r| r.connected).collect();
        let events: u64 = connected.iter().map(|r| r.events).sum();
        Summary {
            connected: connected.len(),
            failed: results.len() - connected.len(),
            ended_early: connected.iter().filter(|r| r.ended_early).count(),
            events,
            resets: connected.iter().map(|r| r.resets).sum(),
            min: connected.iter().map(|r| r.events).min().unwrap_or(0),
            max: connected.iter().map(|r| r.events).max().unwrap_or(0),
            mean: if connected.is_empty() { 0.0 } else { events as f64 / connected.len() as f64 },
            delays: Delays::new(
                connected.iter().flat_map(|r| r.delays.iter().map(|&d| f64::from(d))).collect(),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(chunks: &[&str]) -> Vec<(String, String)> {
        let mut p = Parser::default();
        let mut out = Vec::new();
        for c in chunks {
            p.feed(c.as_bytes(), |e, d| out.push((e.to_string(), d.to_string())));
        }
        out
    }

    #[test]
    fn parser_dispatches_on_blank_lines_across_chunks_and_line_endings() {
        let got = events(&[
            ": heartbeat\n\n",
            "event: change\nid: a1\ndata: {\"at\":",
            "\"x\"}\n",
            "\n",
            "event: change\r\ndata: one\r\ndata: two\r\n\r\n",
            "event:change\rdata:three\r\r",
            "data: plain\n\n",
            "event: change\n\n", // no data: nothing dispatched
        ]);
        assert_eq!(
            got,
            [
                ("change".into(), "{\"at\":\"x\"}".into()),
                ("change".into(), "one\ntwo".into()),
                ("change".into(), "three".into()),
                ("message".into(), "plain".into()),
            ]
        );
    }

    #[test]
    fn chunked_bodies_are_undone_across_any_split() {
        let wire = b"7\r\nevent: \r\n19;ext=1\r\nchange\ndata: {}\n\n: heartb\r\n0\r\n\r\n";
        for split in 1..wire.len() {
            let (mut d, mut out) = (Dechunk::default(), Vec::new());
            let open = d.feed(&wire[..split], |b| out.extend_from_slice(b));
            let after = d.feed(&wire[split..], |b| out.extend_from_slice(b));
            assert_eq!(
                String::from_utf8_lossy(&out),
                "event: change\ndata: {}\n\n: heartb",
                "split at {split}"
            );
            assert!(!after, "split at {split}: the zero chunk ends the body");
            assert!(open || split >= wire.len() - 5, "split at {split}: ended early");
        }
    }

    #[test]
    fn delay_is_arrival_minus_at() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-01-01T00:00:00.050Z").unwrap().to_utc();
        let data = r#"{"model":"resources","ids":["x"],"position":"00","at":"2026-01-01T00:00:00.010Z"}"#;
        assert_eq!(delay_ms(data, now), Some(40.0));
        let later = r#"{"at":"2026-01-01T00:00:01Z"}"#;
        assert_eq!(delay_ms(later, now), Some(0.0));
        assert_eq!(delay_ms("not json", now), None);
    }

    /// A board that records from the start, and the switch that stops its clients.
    fn recording() -> (Arc<Board>, watch::Sender<bool>, watch::Receiver<bool>) {
        let board = Arc::new(Board::default());
        board.recording.store(true, Ordering::SeqCst);
        let (stop, stopped) = watch::channel(false);
        (board, stop, stopped)
    }

    /// Many clients on one tiny SSE server: every client connects and reads every change
    /// event, heartbeats and ids aside.
    #[tokio::test]
    async fn clients_read_every_change_event_of_a_stream() {
        use axum::response::sse::{Event, KeepAlive, Sse};
        use futures::stream::{self, StreamExt};

        let app = axum::Router::new().route(
            "/v1/changes",
            axum::routing::get(|| async {
                let at = chrono::Utc::now().to_rfc3339();
                let changes = (0..3).map(move |i| {
                    Ok::<_, std::convert::Infallible>(
                        Event::default().event("change").id(format!("p{i}")).data(format!(
                            r#"{{"model":"resources","ids":[],"position":"{i:032x}","at":"{at}"}}"#
                        )),
                    )
                });
                let reset = Event::default().event("reset").data("fell behind");
                let changes = changes.chain(std::iter::once(Ok(reset)));
                Sse::new(stream::iter(changes).chain(stream::pending()))
                    .keep_alive(KeepAlive::new().interval(Duration::from_millis(10)))
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });

        let api = Api { url, key: "k".into() };
        let (board, stop, stopped) = recording();
        let handles = open(&api, "/v1/changes", 20, 5, &board, &stopped);
        let deadline = Instant::now() + Duration::from_secs(30);
        while (board.events.load(Ordering::Relaxed) < 60 || board.resets.load(Ordering::Relaxed) < 20)
            && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let s = Summary::of(&stop_all(stop, handles).await);
        assert_eq!((s.connected, s.failed, s.ended_early), (20, 0, 0));
        assert_eq!((s.min, s.max, s.events, s.resets), (3, 3, 60, 20));
        assert_eq!(s.delays.count(), 60);
    }

    /// The hello server's bare broadcast: every announced change reaches every stream once.
    #[tokio::test]
    async fn the_baseline_sends_each_announced_change_to_every_stream() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, crate::hello::router()).await });

        let api = Api { url, key: "k".into() };
        let (board, stop, stopped) = recording();
        let handles = open(&api, "/hello/changes", 10, 5, &board, &stopped);
        let deadline = Instant::now() + Duration::from_secs(30);
        while board.connected.load(Ordering::Relaxed) < 10 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let client = client().unwrap();
        for _ in 0..3 {
            let answer = client.post(api.at("/hello/changes")).send().await.unwrap();
            assert_eq!(answer.status(), 204);
        }
        while board.events.load(Ordering::Relaxed) < 30 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let s = Summary::of(&stop_all(stop, handles).await);
        assert_eq!((s.connected, s.failed, s.ended_early), (10, 0, 0));
        assert_eq!((s.min, s.max, s.events), (3, 3, 30));
        assert_eq!(s.delays.count(), 30, "every event carries its `at`");
    }
}
