//! The load scenarios: fanout, ingest, connections, resume.
//!
//! Every loop is bounded twice, by a count and by a deadline, so a server that
//! stops answering ends the run with a report rather than a hang.

use crate::conn::{Lite, Target, Ws, send_frame, sent_at, subscribe_frame};
use crate::stats::{Percentiles, Samples};
use crate::{BenchError, Progress};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::{Semaphore, watch};
use tokio_tungstenite::tungstenite::Message;

/// How long a run waits, after the last send, for deliveries still in flight.
const DRAIN: Duration = Duration::from_secs(5);
/// Parallel handshakes while setting a scenario up.
const SETUP_CONCURRENCY: usize = 64;

type Sink = SplitSink<Ws, Message>;
type Stream = SplitStream<Ws>;

/// Microseconds since the run's start: the clock every send instant uses,
/// shared by senders and receivers in this process.
#[derive(Clone, Copy)]
struct Clock(Instant);

impl Clock {
    fn micros(&self) -> u64 {
        u64::try_from(self.0.elapsed().as_micros()).unwrap_or(u64::MAX)
    }
}

/// A prefix that keeps this run's rooms and users apart from earlier runs'
/// on a server that keeps its data.
fn run_id(scenario: &str) -> String {
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    format!("{scenario}{millis}")
}

/// Connects many users at once (bounded concurrency), in the given order.
async fn connect_all(target: &Target, users: &[String]) -> Result<Vec<Ws>, BenchError> {
    let mut out = Vec::with_capacity(users.len());
    for chunk in users.chunks(SETUP_CONCURRENCY) {
        let mut handles = Vec::with_capacity(chunk.len());
        for user in chunk {
            let (target, user) = (target.clone(), user.clone());
            handles.push(tokio::spawn(async move { target.connect(&user).await }));
        }
        for handle in handles {
            out.push(
                handle
                    .await
                    .map_err(|e| BenchError::Setup(e.to_string()))??,
            );
        }
    }
    Ok(out)
}

/// Subscribes and waits for `subscribed`; returns its `last_seq`.
async fn subscribe(ws: &mut Ws, room: &str, since_seq: Option<i64>) -> Result<i64, BenchError> {
    ws.send(Message::text(subscribe_frame(room, since_seq)))
        .await
        .map_err(|e| BenchError::Setup(format!("subscribe {room}: {e}")))?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, ws.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => {
                if let Some(lite) = Lite::parse(&text) {
                    match lite.kind.as_str() {
                        "subscribed" => return Ok(lite.last_seq.unwrap_or(0)),
                        "error" => {
                            return Err(BenchError::Setup(format!("subscribe {room}: {text}")));
                        }
                        _ => {}
                    }
                }
            }
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(e))) => return Err(BenchError::Setup(format!("subscribe {room}: {e}"))),
            Ok(None) => return Err(BenchError::Setup(format!("subscribe {room}: closed"))),
            Err(_) => return Err(BenchError::Setup(format!("subscribe {room}: timed out"))),
        }
    }
}

/// Shared counters for the progress line and the report.
#[derive(Default)]
struct Counters {
    sent: AtomicU64,
    acked: AtomicU64,
    delivered: AtomicU64,
    errors: AtomicU64,
}

/// What one reader task saw.
#[derive(Default)]
struct ReaderOut {
    latencies: Samples,
    acks: Samples,
    acked_seqs: Vec<i64>,
    last_delivery: Option<Instant>,
}

/// Reads one connection until `stop`: counts deliveries and their latency,
/// and for a sender, acks (each ack or error frees one send slot).
async fn read_loop(
    mut stream: Stream,
    clock: Clock,
    counters: Arc<Counters>,
    slots: Option<Arc<Semaphore>>,
    mut stop: watch::Receiver<bool>,
) -> ReaderOut {
    let mut out = ReaderOut::default();
    loop {
        let next = tokio::select! {
            next = stream.next() => next,
            _ = stop.changed() => break,
        };
        let text = match next {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Close(_))) | None => break,
            Some(Ok(_)) => continue,
            Some(Err(_)) => {
                counters.errors.fetch_add(1, Relaxed);
                break;
            }
        };
        let Some(lite) = Lite::parse(&text) else {
            continue;
        };
        match lite.kind.as_str() {
            "new_message" => {
                if let Some(sent) = lite.message.as_ref().and_then(|m| sent_at(&m.content)) {
                    out.latencies.record(clock.micros().saturating_sub(sent));
                    counters.delivered.fetch_add(1, Relaxed);
                    out.last_delivery = Some(Instant::now());
                }
            }
            "message_ack" => {
                counters.acked.fetch_add(1, Relaxed);
                if let Some(sent) = lite.req_id.as_ref().and_then(serde_json::Value::as_u64) {
                    out.acks.record(clock.micros().saturating_sub(sent));
                }
                if let Some(seq) = lite.seq {
                    out.acked_seqs.push(seq);
                }
                if let Some(slots) = &slots {
                    slots.add_permits(1);
                }
            }
            "error" => {
                counters.errors.fetch_add(1, Relaxed);
                if let Some(slots) = &slots {
                    slots.add_permits(1);
                }
            }
            _ => {}
        }
    }
    out
}

/// Sends into `room` until `until`: paced at `interval` when given, else as
/// fast as the `slots` (sends awaiting their ack) allow.
async fn send_loop(
    mut sink: Sink,
    room: String,
    clock: Clock,
    counters: Arc<Counters>,
    slots: Arc<Semaphore>,
    interval: Option<Duration>,
    until: Instant,
) -> Sink {
    let mut next_at = Instant::now();
    while Instant::now() < until {
        if let Some(interval) = interval {
            tokio::time::sleep_until(next_at.into()).await;
            next_at += interval;
        }
        let left = until.saturating_duration_since(Instant::now());
        let permit = match tokio::time::timeout(left, slots.acquire()).await {
            Ok(Ok(permit)) => permit,
            _ => break,
        };
        permit.forget();
        if sink
            .send(Message::text(send_frame(&room, clock.micros())))
            .await
            .is_err()
        {
            counters.errors.fetch_add(1, Relaxed);
            break;
        }
        counters.sent.fetch_add(1, Relaxed);
    }
    sink
}

/// Waits until `done()` or the drain deadline.
async fn drain(done: impl Fn() -> bool) {
    let deadline = Instant::now() + DRAIN;
    while !done() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Prints a progress line every second until dropped.
fn progress(name: &'static str, counters: Arc<Counters>, on: bool) -> Option<Progress> {
    on.then(|| {
        Progress::start(move |elapsed| {
            format!(
                "{name} {elapsed:>5.1}s  sent {}  acked {}  delivered {}  errors {}",
                counters.sent.load(Relaxed),
                counters.acked.load(Relaxed),
                counters.delivered.load(Relaxed),
                counters.errors.load(Relaxed)
            )
        })
    })
}

/// `fanout` options.
#[derive(clap::Args, Debug, Clone)]
pub struct FanoutArgs {
    /// Rooms.
    #[arg(long, default_value_t = 50)]
    pub rooms: usize,
    /// Members per room, each its own user and connection, all subscribed.
    #[arg(long, default_value_t = 4)]
    pub members: usize,
    /// Members per room that also send.
    #[arg(long, default_value_t = 1)]
    pub senders: usize,
    /// Total messages per second over all senders; absent = saturate.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Sends a sender may have awaiting their ack (saturating mode). At 8
    /// neither confab nor the baseline is saturated on 2 cores (both
    /// deliver more with more in flight); confab peaks near 32.
    #[arg(long, default_value_t = 32)]
    pub window: usize,
    /// Seconds of sending.
    #[arg(long, default_value_t = 5.0)]
    pub duration: f64,
    /// Extra members per room that subscribe and then never read (protocol.md §5.3).
    #[arg(long, default_value_t = 0)]
    pub stalled_readers: usize,
}

/// `fanout` results.
#[derive(Debug, Serialize)]
pub struct FanoutReport {
    /// Always `fanout`.
    pub scenario: &'static str,
    /// Rooms.
    pub rooms: usize,
    /// Reading members per room.
    pub members: usize,
    /// Senders per room.
    pub senders: usize,
    /// Stalled members per room.
    pub stalled_readers: usize,
    /// Asked rate (msgs/s over all senders), `null` = saturating.
    pub rate: Option<f64>,
    /// Sends in flight per sender when saturating.
    pub window: usize,
    /// Messages sent.
    pub sent: u64,
    /// Messages acked (stored).
    pub acked: u64,
    /// `new_message` frames received by reading members.
    pub delivered: u64,
    /// `acked × members`: what every reading member should get.
    pub expected: u64,
    /// Deliveries per second, first send to last delivery.
    pub delivered_per_s: f64,
    /// Sender timestamp → receipt.
    pub latency: Percentiles,
    /// Error frames, failed sends and broken connections of reading members.
    pub errors: u64,
    /// Wall seconds from first send to last delivery.
    pub elapsed_s: f64,
}

/// Runs `fanout`.
pub async fn fanout(
    target: &Target,
    args: &FanoutArgs,
    show_progress: bool,
) -> Result<FanoutReport, BenchError> {
    if args.senders > args.members || args.members == 0 || args.rooms == 0 {
        return Err(BenchError::Setup(
            "need rooms ≥ 1 and 1 ≤ members, senders ≤ members".into(),
        ));
    }
    let run = run_id("f");
    let per_room = args.members + args.stalled_readers;
    let room_ids: Vec<String> = (0..args.rooms).map(|r| format!("{run}-r{r}")).collect();
    let mut users = Vec::new();
    for (r, room) in room_ids.iter().enumerate() {
        let members: Vec<String> = (0..per_room).map(|m| format!("{run}-r{r}-m{m}")).collect();
        target.create_room(room, &members).await?;
        users.extend(members);
    }
    let mut sockets = connect_all(target, &users).await?;
    for (i, ws) in sockets.iter_mut().enumerate() {
        subscribe(ws, &room_ids[i / per_room], None).await?;
    }

    let clock = Clock(Instant::now());
    let counters = Arc::new(Counters::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    let interval = args
        .rate
        .filter(|rate| *rate > 0.0)
        .map(|rate| Duration::from_secs_f64((args.rooms * args.senders) as f64 / rate));
    let window = if interval.is_some() {
        // Paced: the window only guards against an unanswering server.
        args.window.max(1024)
    } else {
        args.window.max(1)
    };
    let start = Instant::now();
    let until = start + Duration::from_secs_f64(args.duration);
    let _progress = progress("fanout", counters.clone(), show_progress);
    let mut readers = Vec::new();
    let mut senders = Vec::new();
    let mut stalled = Vec::new();
    let mut idle_sinks = Vec::new();
    for (i, ws) in sockets.into_iter().enumerate() {
        let m = i % per_room;
        if m >= args.members {
            // Connected and subscribed, never read again.
            stalled.push(ws);
            continue;
        }
        let (sink, stream) = ws.split();
        let slots = (m < args.senders).then(|| Arc::new(Semaphore::new(window)));
        readers.push(tokio::spawn(read_loop(
            stream,
            clock,
            counters.clone(),
            slots.clone(),
            stop_rx.clone(),
        )));
        match slots {
            Some(slots) => senders.push(tokio::spawn(send_loop(
                sink,
                room_ids[i / per_room].clone(),
                clock,
                counters.clone(),
                slots,
                interval,
                until,
            ))),
            None => idle_sinks.push(sink),
        }
    }
    let mut sinks = Vec::new();
    for sender in senders {
        sinks.push(sender.await.map_err(|e| BenchError::Setup(e.to_string()))?);
    }
    let members = args.members as u64;
    drain(|| {
        let acked = counters.acked.load(Relaxed);
        acked + counters.errors.load(Relaxed) >= counters.sent.load(Relaxed)
            && counters.delivered.load(Relaxed) >= acked * members
    })
    .await;
    let _ = stop_tx.send(true);
    let mut latencies = Samples::default();
    let mut last = start;
    for reader in readers {
        let out = reader.await.map_err(|e| BenchError::Setup(e.to_string()))?;
        latencies.merge(out.latencies);
        if let Some(t) = out.last_delivery {
            last = last.max(t);
        }
    }
    drop((stalled, sinks, idle_sinks));
    let elapsed = last.duration_since(start).as_secs_f64().max(1e-9);
    let acked = counters.acked.load(Relaxed);
    let delivered = counters.delivered.load(Relaxed);
    Ok(FanoutReport {
        scenario: "fanout",
        rooms: args.rooms,
        members: args.members,
        senders: args.senders,
        stalled_readers: args.stalled_readers,
        rate: args.rate,
        window,
        sent: counters.sent.load(Relaxed),
        acked,
        delivered,
        expected: acked * members,
        delivered_per_s: delivered as f64 / elapsed,
        latency: latencies.summary(),
        errors: counters.errors.load(Relaxed),
        elapsed_s: elapsed,
    })
}

/// `ingest` options.
#[derive(clap::Args, Debug, Clone)]
pub struct IngestArgs {
    /// Concurrent senders, each its own user and connection.
    #[arg(long, default_value_t = 8)]
    pub senders: usize,
    /// Rooms the senders share (sender i writes to room i mod rooms); 0 = one room per sender.
    #[arg(long, default_value_t = 0)]
    pub rooms: usize,
    /// Sends a sender may have awaiting their ack (1 = strictly one at a time).
    #[arg(long, default_value_t = 32)]
    pub window: usize,
    /// Seconds of sending.
    #[arg(long, default_value_t = 5.0)]
    pub duration: f64,
}

/// `ingest` results.
#[derive(Debug, Serialize)]
pub struct IngestReport {
    /// Always `ingest`.
    pub scenario: &'static str,
    /// Senders.
    pub senders: usize,
    /// Rooms.
    pub rooms: usize,
    /// Sends in flight per sender.
    pub window: usize,
    /// Messages sent.
    pub sent: u64,
    /// Messages acked (stored).
    pub stored: u64,
    /// Acks per second, first send to last ack.
    pub stored_per_s: f64,
    /// Send → ack.
    pub ack_latency: Percentiles,
    /// Error frames and failed sends.
    pub errors: u64,
    /// Rooms whose acked seqs are not exactly 1..=n, or whose stored `last_seq`
    /// differs from n.
    pub gaps: u64,
    /// Wall seconds from first send to last ack.
    pub elapsed_s: f64,
}

/// Runs `ingest`.
pub async fn ingest(
    target: &Target,
    args: &IngestArgs,
    show_progress: bool,
) -> Result<IngestReport, BenchError> {
    if args.senders == 0 {
        return Err(BenchError::Setup("need at least one sender".into()));
    }
    let rooms = if args.rooms == 0 {
        args.senders
    } else {
        args.rooms
    };
    let run = run_id("i");
    let users: Vec<String> = (0..args.senders).map(|s| format!("{run}-s{s}")).collect();
    let room_ids: Vec<String> = (0..rooms).map(|r| format!("{run}-r{r}")).collect();
    for (r, room) in room_ids.iter().enumerate() {
        let members: Vec<String> = users
            .iter()
            .enumerate()
            .filter(|(s, _)| s % rooms == r)
            .map(|(_, u)| u.clone())
            .collect();
        target.create_room(room, &members).await?;
    }
    let sockets = connect_all(target, &users).await?;
    let clock = Clock(Instant::now());
    let counters = Arc::new(Counters::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    let start = Instant::now();
    let until = start + Duration::from_secs_f64(args.duration);
    let _progress = progress("ingest", counters.clone(), show_progress);
    let mut readers = Vec::new();
    let mut senders = Vec::new();
    for (s, ws) in sockets.into_iter().enumerate() {
        let (sink, stream) = ws.split();
        let slots = Arc::new(Semaphore::new(args.window.max(1)));
        readers.push(tokio::spawn(read_loop(
            stream,
            clock,
            counters.clone(),
            Some(slots.clone()),
            stop_rx.clone(),
        )));
        senders.push(tokio::spawn(send_loop(
            sink,
            room_ids[s % rooms].clone(),
            clock,
            counters.clone(),
            slots,
            None,
            until,
        )));
    }
    let mut sinks = Vec::new();
    for sender in senders {
        sinks.push(sender.await.map_err(|e| BenchError::Setup(e.to_string()))?);
    }
    drain(|| {
        counters.acked.load(Relaxed) + counters.errors.load(Relaxed) >= counters.sent.load(Relaxed)
    })
    .await;
    let last = Instant::now();
    let _ = stop_tx.send(true);
    let mut acks = Samples::default();
    let mut seqs: Vec<Vec<i64>> = vec![Vec::new(); rooms];
    for (s, reader) in readers.into_iter().enumerate() {
        let out = reader.await.map_err(|e| BenchError::Setup(e.to_string()))?;
        acks.merge(out.acks);
        seqs[s % rooms].extend(out.acked_seqs);
    }
    drop(sinks);
    let mut gaps = 0;
    for (r, mut room_seqs) in seqs.into_iter().enumerate() {
        room_seqs.sort_unstable();
        let consecutive = room_seqs
            .iter()
            .enumerate()
            .all(|(k, seq)| *seq == k as i64 + 1);
        let stored = target
            .last_seq(&room_ids[r], &users[r % args.senders])
            .await?;
        if !consecutive || stored != room_seqs.len() as i64 {
            gaps += 1;
        }
    }
    let elapsed = last.duration_since(start).as_secs_f64().max(1e-9);
    let stored = counters.acked.load(Relaxed);
    Ok(IngestReport {
        scenario: "ingest",
        senders: args.senders,
        rooms,
        window: args.window,
        sent: counters.sent.load(Relaxed),
        stored,
        stored_per_s: stored as f64 / elapsed,
        ack_latency: acks.summary(),
        errors: counters.errors.load(Relaxed),
        gaps,
        elapsed_s: elapsed,
    })
}

/// `connections` options.
#[derive(clap::Args, Debug, Clone)]
pub struct ConnectionsArgs {
    /// Connections to open.
    #[arg(long, default_value_t = 1000)]
    pub count: usize,
    /// Handshakes in flight at once.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Distinct users (connection i is user i mod users); 0 = one per connection.
    #[arg(long, default_value_t = 0)]
    pub users: usize,
    /// Seconds to hold every connection open and idle after the last one opened.
    #[arg(long, default_value_t = 2.0)]
    pub hold: f64,
    /// Name the users `PREFIX-u0`, `PREFIX-u1`… instead of fresh ids, so a
    /// later run with the same prefix (say, after restarting the server on
    /// the same data) is a reconnect storm of users that already exist.
    #[arg(long)]
    pub user_prefix: Option<String>,
    /// The server's process id: its VmRSS is read before and after.
    #[arg(long)]
    pub pid: Option<u32>,
}

/// `connections` results.
#[derive(Debug, Serialize)]
pub struct ConnectionsReport {
    /// Always `connections`.
    pub scenario: &'static str,
    /// Asked.
    pub count: usize,
    /// Handshakes in flight at once.
    pub concurrency: usize,
    /// Authenticated (got `connection_established`).
    pub opened: u64,
    /// Refused or failed.
    pub failures: u64,
    /// The first failure, to say why.
    pub first_failure: Option<String>,
    /// Opened per second.
    pub connect_per_s: f64,
    /// Still open at the end of the hold.
    pub still_open: u64,
    /// Server VmRSS before, KiB (with `--pid`).
    pub rss_before_kib: Option<u64>,
    /// Server VmRSS with every connection open, KiB.
    pub rss_after_kib: Option<u64>,
    /// (after − before) / opened, KiB.
    pub rss_per_connection_kib: Option<f64>,
}

/// VmRSS of a process in KiB, from /proc.
fn vm_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Runs `connections`.
pub async fn connections(
    target: &Target,
    args: &ConnectionsArgs,
    show_progress: bool,
) -> Result<ConnectionsReport, BenchError> {
    let run = args.user_prefix.clone().unwrap_or_else(|| run_id("c"));
    let users = if args.users == 0 {
        args.count
    } else {
        args.users
    };
    let rss_before = args.pid.and_then(vm_rss_kib);
    let counters = Arc::new(Counters::default());
    let open = Arc::new(AtomicU64::new(0));
    let first_failure = Arc::new(std::sync::Mutex::new(None::<String>));
    let (stop_tx, stop_rx) = watch::channel(false);
    let gate = Arc::new(Semaphore::new(args.concurrency.max(1)));
    let _progress = show_progress.then(|| {
        let (counters, open) = (counters.clone(), open.clone());
        Progress::start(move |elapsed| {
            format!(
                "connections {elapsed:>5.1}s  open {}  failures {}",
                open.load(Relaxed),
                counters.errors.load(Relaxed)
            )
        })
    });
    let start = Instant::now();
    let mut handles = Vec::with_capacity(args.count);
    for i in 0..args.count {
        let permit = gate
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| BenchError::Setup(e.to_string()))?;
        let (target, counters, open, first_failure) = (
            target.clone(),
            counters.clone(),
            open.clone(),
            first_failure.clone(),
        );
        let mut stop = stop_rx.clone();
        let user = format!("{run}-u{}", i % users);
        handles.push(tokio::spawn(async move {
            let result = target.connect(&user).await;
            drop(permit);
            let mut ws = match result {
                Ok(ws) => ws,
                Err(e) => {
                    counters.errors.fetch_add(1, Relaxed);
                    if let Ok(mut first) = first_failure.lock() {
                        first.get_or_insert(e.to_string());
                    }
                    return None;
                }
            };
            let connected = Instant::now();
            open.fetch_add(1, Relaxed);
            // Idle, but answering the server's pings (the read loop does).
            let alive = loop {
                tokio::select! {
                    next = ws.next() => match next {
                        Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break false,
                        Some(Ok(_)) => {}
                    },
                    _ = stop.changed() => break true,
                }
            };
            open.fetch_sub(1, Relaxed);
            Some((connected, alive))
        }));
    }
    // Wait for the last handshakes.
    let _ = gate.acquire_many(args.concurrency.max(1) as u32).await;
    let opened_at = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(args.hold)).await;
    let rss_after = args.pid.and_then(vm_rss_kib);
    let still_open = open.load(Relaxed);
    let _ = stop_tx.send(true);
    let mut opened = 0u64;
    let mut last_connect = start;
    for handle in handles {
        if let Ok(Some((connected, _))) = handle.await {
            opened += 1;
            last_connect = last_connect.max(connected);
        }
    }
    let _ = opened_at;
    let elapsed = last_connect.duration_since(start).as_secs_f64().max(1e-9);
    let failure = first_failure.lock().ok().and_then(|f| f.clone());
    Ok(ConnectionsReport {
        scenario: "connections",
        count: args.count,
        concurrency: args.concurrency,
        opened,
        failures: counters.errors.load(Relaxed),
        first_failure: failure,
        connect_per_s: opened as f64 / elapsed,
        still_open,
        rss_before_kib: rss_before,
        rss_after_kib: rss_after,
        rss_per_connection_kib: match (rss_before, rss_after) {
            (Some(before), Some(after)) if opened > 0 => {
                Some(after.saturating_sub(before) as f64 / opened as f64)
            }
            _ => None,
        },
    })
}

/// `resume` options.
#[derive(clap::Args, Debug, Clone)]
pub struct ResumeArgs {
    /// Rooms, each with one sender.
    #[arg(long, default_value_t = 4)]
    pub rooms: usize,
    /// Members per room that drop and resume.
    #[arg(long, default_value_t = 4)]
    pub resumers: usize,
    /// Total messages per second over all rooms' senders.
    #[arg(long, default_value_t = 400.0)]
    pub rate: f64,
    /// Drops (and resumes) per resumer.
    #[arg(long, default_value_t = 3)]
    pub cycles: usize,
    /// Milliseconds a resumer stays away before it resumes.
    #[arg(long, default_value_t = 200)]
    pub away_ms: u64,
    /// Seconds of sending.
    #[arg(long, default_value_t = 4.0)]
    pub duration: f64,
}

/// `resume` results.
#[derive(Debug, Serialize)]
pub struct ResumeReport {
    /// Always `resume`.
    pub scenario: &'static str,
    /// Rooms.
    pub rooms: usize,
    /// Resumers per room.
    pub resumers: usize,
    /// Messages acked.
    pub acked: u64,
    /// Resumes done (`subscribe_room` with `since_seq` after a drop).
    pub resumes: u64,
    /// From the resuming `subscribe_room` to the message at the
    /// `subscribed.last_seq` it announced.
    pub catch_up: Percentiles,
    /// Seqs a resumer skipped.
    pub gaps: u64,
    /// Seqs a resumer received twice (or out of order).
    pub duplicates: u64,
    /// Seqs a resumer had not received at the end (of the room's last acked).
    pub missing: u64,
    /// Errors (refusals, failed connects).
    pub errors: u64,
}

/// What one resumer saw.
#[derive(Default)]
struct ResumerOut {
    resumes: u64,
    catch_up: Samples,
    gaps: u64,
    duplicates: u64,
    last_seen: i64,
}

/// One resumer: follows the room, drops, resumes with `since_seq`, checks
/// every seq is the one after the last.
#[allow(clippy::too_many_arguments)] // one call site, every argument distinct
async fn resumer(
    target: Target,
    user: String,
    room: String,
    cycles: usize,
    period: Duration,
    away: Duration,
    sender_done: Arc<AtomicU64>,
    final_seq: Arc<AtomicI64>,
) -> Result<ResumerOut, BenchError> {
    let mut out = ResumerOut::default();
    let mut since: Option<i64> = None;
    for cycle in 0..=cycles {
        let mut ws = target.connect(&user).await?;
        let asked = Instant::now();
        let announced = subscribe(&mut ws, &room, since).await?;
        let mut caught_up = since.is_none() || announced <= out.last_seen;
        if since.is_some() {
            out.resumes += 1;
            if caught_up {
                out.catch_up.record(0);
            }
        }
        let last_cycle = cycle == cycles;
        let until = Instant::now() + period;
        let hard_stop = Instant::now() + period + DRAIN;
        loop {
            let now = Instant::now();
            let done = if last_cycle {
                sender_done.load(Relaxed) == 1 && out.last_seen >= final_seq.load(Relaxed)
                    || now >= hard_stop
            } else {
                now >= until
            };
            if done {
                break;
            }
            let wait = Duration::from_millis(20);
            let next = match tokio::time::timeout(wait, ws.next()).await {
                Ok(next) => next,
                Err(_) => continue,
            };
            let text = match next {
                Some(Ok(Message::Text(text))) => text,
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                    return Err(BenchError::Connect(format!("{user} lost its connection")));
                }
                Some(Ok(_)) => continue,
            };
            let Some(lite) = Lite::parse(&text) else {
                continue;
            };
            if lite.kind != "new_message" {
                continue;
            }
            let Some(seq) = lite.message.map(|m| m.seq) else {
                continue;
            };
            if seq <= out.last_seen {
                out.duplicates += 1;
                continue;
            }
            if seq > out.last_seen + 1 {
                out.gaps += (seq - out.last_seen - 1) as u64;
            }
            out.last_seen = seq;
            if !caught_up && seq >= announced {
                caught_up = true;
                out.catch_up
                    .record(u64::try_from(asked.elapsed().as_micros()).unwrap_or(u64::MAX));
            }
        }
        drop(ws);
        since = Some(out.last_seen);
        if !last_cycle {
            tokio::time::sleep(away).await;
        }
    }
    Ok(out)
}

/// Runs `resume`.
pub async fn resume(
    target: &Target,
    args: &ResumeArgs,
    show_progress: bool,
) -> Result<ResumeReport, BenchError> {
    if args.rooms == 0 || args.rate <= 0.0 {
        return Err(BenchError::Setup("need rooms ≥ 1 and rate > 0".into()));
    }
    let run = run_id("r");
    let room_ids: Vec<String> = (0..args.rooms).map(|r| format!("{run}-r{r}")).collect();
    let mut sender_users = Vec::new();
    for (r, room) in room_ids.iter().enumerate() {
        let members: Vec<String> = (0..=args.resumers)
            .map(|m| format!("{run}-r{r}-m{m}"))
            .collect();
        target.create_room(room, &members).await?;
        sender_users.push(members[0].clone());
    }
    let clock = Clock(Instant::now());
    let counters = Arc::new(Counters::default());
    let _progress = progress("resume", counters.clone(), show_progress);
    let sender_sockets = connect_all(target, &sender_users).await?;
    let period = Duration::from_secs_f64(args.duration / (args.cycles as f64 + 1.0));
    let away = Duration::from_millis(args.away_ms);
    let senders_done = Arc::new(AtomicU64::new(0));
    let finals: Vec<Arc<AtomicI64>> = (0..args.rooms)
        .map(|_| Arc::new(AtomicI64::new(0)))
        .collect();
    let mut resumers = Vec::new();
    for (r, room) in room_ids.iter().enumerate() {
        for m in 1..=args.resumers {
            resumers.push(tokio::spawn(resumer(
                target.clone(),
                format!("{run}-r{r}-m{m}"),
                room.clone(),
                args.cycles,
                period,
                away,
                senders_done.clone(),
                finals[r].clone(),
            )));
        }
    }
    // Let the resumers subscribe before the load starts.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (stop_tx, stop_rx) = watch::channel(false);
    let interval = Duration::from_secs_f64(args.rooms as f64 / args.rate);
    let until = Instant::now() + Duration::from_secs_f64(args.duration);
    let mut readers = Vec::new();
    let mut senders = Vec::new();
    for (r, ws) in sender_sockets.into_iter().enumerate() {
        let (sink, stream) = ws.split();
        let slots = Arc::new(Semaphore::new(1024));
        readers.push(tokio::spawn(read_loop(
            stream,
            clock,
            counters.clone(),
            Some(slots.clone()),
            stop_rx.clone(),
        )));
        senders.push(tokio::spawn(send_loop(
            sink,
            room_ids[r].clone(),
            clock,
            counters.clone(),
            slots,
            Some(interval),
            until,
        )));
    }
    let mut sinks = Vec::new();
    for sender in senders {
        sinks.push(sender.await.map_err(|e| BenchError::Setup(e.to_string()))?);
    }
    drain(|| {
        counters.acked.load(Relaxed) + counters.errors.load(Relaxed) >= counters.sent.load(Relaxed)
    })
    .await;
    let _ = stop_tx.send(true);
    for (r, reader) in readers.into_iter().enumerate() {
        let out = reader.await.map_err(|e| BenchError::Setup(e.to_string()))?;
        let max = out.acked_seqs.iter().copied().max().unwrap_or(0);
        finals[r].store(max, Relaxed);
    }
    senders_done.store(1, Relaxed);
    let mut report = ResumeReport {
        scenario: "resume",
        rooms: args.rooms,
        resumers: args.resumers,
        acked: counters.acked.load(Relaxed),
        resumes: 0,
        catch_up: Percentiles::default(),
        gaps: 0,
        duplicates: 0,
        missing: 0,
        errors: counters.errors.load(Relaxed),
    };
    let mut catch_up = Samples::default();
    let mut per_room: HashMap<usize, usize> = HashMap::new();
    for (i, handle) in resumers.into_iter().enumerate() {
        let r = i / args.resumers.max(1);
        *per_room.entry(r).or_default() += 1;
        match handle.await {
            Ok(Ok(out)) => {
                report.resumes += out.resumes;
                report.gaps += out.gaps;
                report.duplicates += out.duplicates;
                report.missing +=
                    finals[r].load(Relaxed).saturating_sub(out.last_seen).max(0) as u64;
                catch_up.merge(out.catch_up);
            }
            _ => report.errors += 1,
        }
    }
    report.catch_up = catch_up.summary();
    drop(sinks);
    Ok(report)
}
