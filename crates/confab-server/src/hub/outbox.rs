//! A connection's bounded outgoing queue.
//!
//! Everything sent to a client goes through its [`Outbox`]: replies from its
//! own session and frames fanned out by the hub alike, so a client sees them
//! in the order they were queued. The queue is bounded; when a push finds it
//! full the connection is a slow consumer and is closed with 4008 (spec §5.3)
//! instead of blocking the room or growing without limit.

use axum::extract::ws::Utf8Bytes;
use confab_protocol::{CloseCode, ServerFrame};
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// What a connection's writer task receives.
#[derive(Debug)]
pub enum Outbound {
    /// A serialized frame, shared between all its recipients.
    Frame(Utf8Bytes),
    /// Close the socket with this code after the frames queued before it.
    Close(CloseCode),
}

/// The sending side of a connection's queue. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Outbox {
    tx: mpsc::Sender<Outbound>,
    /// Cancelled when the connection must close at once (slow consumer, disabled
    /// user); the writer then sends `close_code` without draining the queue.
    kill: CancellationToken,
    close_code: Arc<AtomicU16>,
}

/// The receiving side, owned by the connection's writer.
pub struct OutboxReceiver {
    /// Queued frames.
    pub rx: mpsc::Receiver<Outbound>,
    /// See [`Outbox::kill`].
    pub kill: CancellationToken,
    close_code: Arc<AtomicU16>,
}

impl OutboxReceiver {
    /// The code to close with after a kill.
    pub fn close_code(&self) -> u16 {
        self.close_code.load(Ordering::Acquire)
    }
}

/// Creates a queue holding at most `capacity` frames.
pub fn outbox(capacity: usize) -> (Outbox, OutboxReceiver) {
    let (tx, rx) = mpsc::channel(capacity);
    let kill = CancellationToken::new();
    let close_code = Arc::new(AtomicU16::new(CloseCode::SlowConsumer.code()));
    (
        Outbox {
            tx,
            kill: kill.clone(),
            close_code: close_code.clone(),
        },
        OutboxReceiver {
            rx,
            kill,
            close_code,
        },
    )
}

impl Outbox {
    /// Queues already-serialized bytes. Returns false if the connection is gone
    /// or was just closed as a slow consumer.
    pub fn push(&self, bytes: Utf8Bytes) -> bool {
        match self.tx.try_send(Outbound::Frame(bytes)) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.kill_with(CloseCode::SlowConsumer);
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    /// Serializes and queues one frame meant for this connection only.
    pub fn send(&self, frame: &ServerFrame) -> bool {
        self.push(Utf8Bytes::from(frame.to_json()))
    }

    /// Queues a close after everything already queued.
    pub fn close(&self, code: CloseCode) {
        if self.tx.try_send(Outbound::Close(code)).is_err() {
            self.kill_with(code);
        }
    }

    /// Closes the connection at once with `code`, dropping what is queued.
    pub fn kill_with(&self, code: CloseCode) {
        if !self.kill.is_cancelled() {
            self.close_code.store(code.code(), Ordering::Release);
            self.kill.cancel();
        }
    }

    /// A token cancelled when the connection is killed, for tasks to select on.
    pub fn kill_token(&self) -> CancellationToken {
        self.kill.clone()
    }

    /// Whether the connection was killed.
    pub fn is_killed(&self) -> bool {
        self.kill.is_cancelled()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_queue_kills_with_4008() {
        let (out, rx) = outbox(2);
        assert!(out.push("a".into()));
        assert!(out.push("b".into()));
        assert!(!out.push("c".into()));
        assert!(rx.kill.is_cancelled());
        assert_eq!(rx.close_code(), 4008);
    }
}
