//! A connection's writer: the one task that writes to its socket.
//!
//! It drains the connection's bounded [`crate::hub::Outbox`], gathering
//! whatever is queued into one flush, sends heartbeat pings, and closes the
//! socket with the code the session or the hub asked for. No write may block
//! longer than `server.write_timeout_ms`, so a peer that stops reading holds
//! the writer, and the socket, for a bounded time only.

use super::dialect::{Render, Rendered};
use crate::hub::{Outbound, OutboxReceiver};
use crate::metrics::Metrics;
use crate::transport::heartbeat::Liveness;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use confab_protocol::CloseCode;
use futures_util::SinkExt;
use futures_util::stream::SplitSink;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Frames written per flush at most, so one busy connection cannot hog its writer.
const WRITE_BATCH: usize = 64;

/// The close sent to a peer that missed two pongs. 4008 because the client
/// is not reading its socket (a reading client answers pings by itself) and
/// the remedy is the slow consumer's: reconnect and resume with `since_seq`.
const HEARTBEAT_CLOSE: (u16, &str) = (4008, "no pong: heartbeat missed");

/// The socket half the writer owns.
pub(super) type Sink = SplitSink<WebSocket, Message>;

/// How the writer's socket is kept from blocking forever.
#[derive(Debug, Clone, Copy)]
pub(super) struct WriterTimes {
    /// Between heartbeat pings.
    pub heartbeat: Duration,
    /// How long one write (a batch, a ping, the close frame) may block.
    pub write_timeout: Duration,
}

/// What the writer needs besides the socket and the queue.
pub(super) struct WriterContext {
    /// Cancelled when the server stops: queued frames go out, then 1012.
    pub shutdown: CancellationToken,
    /// Heartbeat and write bounds.
    pub times: WriterTimes,
    /// Pongs seen by the session's reader.
    pub liveness: Liveness,
    /// Where slow-consumer and heartbeat closes are counted.
    pub metrics: Arc<Metrics>,
}

/// A close frame with a static reason.
pub(super) fn close_message(code: u16, reason: &'static str) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: Utf8Bytes::from_static(reason),
    }))
}

/// What became of one blocking write.
enum Written {
    /// Written and flushed; a queued close was reached if `Some`.
    Done(Option<u16>),
    /// The socket failed: the peer is gone.
    Failed,
    /// The connection was killed while the write was blocked.
    Killed,
    /// The write blocked past the write timeout.
    TimedOut,
}

/// Runs one write against the kill token and the write timeout, so that a
/// peer which stops reading can hold the writer for a bounded time only. A
/// write the kernel gave up on (TCP_USER_TIMEOUT: the peer took nothing for
/// that long) counts as timed out too: the peer stalled, it did not leave.
async fn bounded<T>(
    kill: &CancellationToken,
    write_timeout: Duration,
    write: impl Future<Output = Result<T, axum::Error>>,
    done: impl FnOnce(T) -> Written,
) -> Written {
    tokio::select! {
        biased;
        () = kill.cancelled() => Written::Killed,
        written = tokio::time::timeout(write_timeout, write) => match written {
            Ok(Ok(value)) => done(value),
            Ok(Err(error)) if stalled(&error) => Written::TimedOut,
            Ok(Err(_)) => Written::Failed,
            Err(_) => Written::TimedOut,
        },
    }
}

/// Whether a socket error is the kernel timing out a peer that acknowledged
/// nothing for the TCP user timeout (a stalled reader, or a vanished one):
/// a slow consumer, not a client that left.
pub(super) fn stalled(error: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            return io.kind() == std::io::ErrorKind::TimedOut;
        }
        source = e.source();
    }
    false
}

/// Drains the outbox into the socket: everything queued is rendered for the
/// dialect, written, then flushed once. Sends heartbeat pings and closes a
/// peer that missed two pongs; on shutdown writes what is queued and closes
/// with 1012.
///
/// A peer that stops reading is a slow consumer (4008) once a write blocks
/// past the write timeout, even while its queue has room, and a kill
/// interrupts a blocked write. The close frame gets the same bound, and then
/// the writer returns whether or not it was written, which lets the session
/// drop the socket: a client that never reads cannot keep it open.
pub(super) async fn write_loop<R: Render>(
    mut sink: Sink,
    mut outbox: OutboxReceiver,
    mut render: R,
    context: WriterContext,
) {
    let WriterContext {
        shutdown,
        times,
        liveness,
        metrics,
    } = context;
    let write_timeout = times.write_timeout;
    let mut ping = tokio::time::interval_at(Instant::now() + times.heartbeat, times.heartbeat);
    let kill = outbox.kill.clone();
    let mut heartbeat_missed = false;
    let close = loop {
        let written = tokio::select! {
            biased;
            () = kill.cancelled() => Written::Killed,
            item = outbox.recv() => match item {
                Some(Outbound::Frame(bytes)) => {
                    let batch = write_batch(&mut sink, &mut outbox, &mut render, bytes);
                    bounded(&kill, write_timeout, batch, Written::Done).await
                }
                Some(Outbound::Close(code)) => Written::Done(Some(code.code())),
                None => Written::Done(Some(CloseCode::Normal.code())),
            },
            () = shutdown.cancelled() => {
                let drain = async {
                    while let Some(Outbound::Frame(bytes)) = outbox.try_recv() {
                        match render.render(bytes) {
                            Rendered::Send(bytes) => sink.feed(Message::Text(bytes)).await.map_err(drop)?,
                            Rendered::Skip => {}
                            Rendered::Close(_) => break,
                        }
                    }
                    sink.flush().await.map_err(drop)
                };
                // Whatever became of the queued frames, the close says 1012.
                let _ = tokio::time::timeout(write_timeout, drain).await;
                Written::Done(Some(CloseCode::Restarting.code()))
            }
            _ = ping.tick() => {
                if !liveness.ping_due() {
                    tracing::debug!("two pings unanswered: closing");
                    // Ends the session's reader too, which then cleans up
                    // presence and typing like any other departure.
                    outbox.kill_with(CloseCode::SlowConsumer);
                    heartbeat_missed = true;
                    Written::Done(Some(HEARTBEAT_CLOSE.0))
                } else {
                    let ping = sink.send(Message::Ping(Default::default()));
                    bounded(&kill, write_timeout, ping, |()| Written::Done(None)).await
                }
            }
        };
        match written {
            Written::Done(None) => {}
            Written::Done(Some(code)) => break Some(code),
            Written::Failed => break None,
            Written::Killed => break Some(outbox.close_code()),
            Written::TimedOut => {
                tracing::debug!("a write blocked past the write timeout: slow consumer");
                outbox.kill_with(CloseCode::SlowConsumer);
                break Some(outbox.close_code());
            }
        }
    };
    if close == Some(CloseCode::SlowConsumer.code()) {
        if heartbeat_missed {
            metrics.heartbeat_closes.inc();
        } else {
            metrics.slow_consumer_closes.inc();
        }
    }
    let goodbye = async {
        if let Some(code) = close {
            let reason = match CloseCode::from_code(code) {
                Some(CloseCode::SlowConsumer) if heartbeat_missed => HEARTBEAT_CLOSE.1,
                Some(known) => known.reason(),
                None => CloseCode::Normal.reason(),
            };
            let _ = sink.send(close_message(code, reason)).await;
        }
        let _ = sink.close().await;
    };
    if tokio::time::timeout(write_timeout, goodbye).await.is_err() {
        tracing::debug!("the close frame could not be written in time: dropping the socket");
    }
}

/// Writes `first` and whatever else is queued (up to [`WRITE_BATCH`]), then
/// flushes once. Returns a close code if a queued close was reached.
async fn write_batch<R: Render>(
    sink: &mut Sink,
    outbox: &mut OutboxReceiver,
    render: &mut R,
    first: Utf8Bytes,
) -> Result<Option<u16>, axum::Error> {
    let mut close = None;
    let mut bytes = first;
    for written in 1.. {
        match render.render(bytes) {
            Rendered::Send(bytes) => sink.feed(Message::Text(bytes)).await?,
            Rendered::Skip => {}
            Rendered::Close(code) => {
                // The session's reader must end too.
                outbox.kill_with(code);
                close = Some(code.code());
                break;
            }
        }
        if written == WRITE_BATCH {
            break;
        }
        match outbox.try_recv() {
            Some(Outbound::Frame(next)) => bytes = next,
            Some(Outbound::Close(code)) => {
                close = Some(code.code());
                break;
            }
            None => break,
        }
    }
    sink.flush().await?;
    Ok(close)
}
