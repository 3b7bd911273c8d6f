//! The load scenarios: fanout, ingest, connections, resume, and data (reads
//! at scale).
//!
//! Every loop is bounded twice, by a count and by a deadline, so a server that
//! stops answering ends the run with a report rather than a hang.

use crate::conn::{Lite, SendShape, Target, Ws, send_frame, sent_at, subscribe_frame};
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
            // A room-scoped dialect's message (`/ws/chat/{id}/`: in
            // `message.message_text`; `/ws/sessions/{id}/`: in `content`).
            "message" => {
                let text = match (&lite.message, &lite.content) {
                    (Some(message), _) => message.message_text.as_str(),
                    (None, Some(content)) => content.as_str(),
                    (None, None) => continue,
                };
                if let Some(sent) = sent_at(text) {
                    out.latencies.record(clock.micros().saturating_sub(sent));
                    counters.delivered.fetch_add(1, Relaxed);
                    out.last_delivery = Some(Instant::now());
                }
            }
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

/// Where a sender sends, and what each of its sends carries.
struct Sending {
    /// The room.
    room: String,
    /// `client_msg_id` and metadata, or not.
    shape: SendShape,
}

/// Sends into `to.room` until `until`: paced at `interval` when given, else
/// as fast as the `slots` (sends awaiting their ack) allow.
async fn send_loop(
    mut sink: Sink,
    to: Sending,
    clock: Clock,
    counters: Arc<Counters>,
    slots: Arc<Semaphore>,
    interval: Option<Duration>,
    until: Instant,
) -> Sink {
    let mut next_at = Instant::now();
    let mut n: u64 = 0;
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
            .send(Message::text(send_frame(
                &to.room,
                clock.micros(),
                to.shape,
                n,
            )))
            .await
            .is_err()
        {
            counters.errors.fetch_add(1, Relaxed);
            break;
        }
        counters.sent.fetch_add(1, Relaxed);
        n += 1;
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

mod connections;
mod data;
mod data_seed;
mod fanout;
mod ingest;
mod resume;

pub use connections::*;
pub use data::*;
pub use fanout::*;
pub use ingest::*;
pub use resume::*;
