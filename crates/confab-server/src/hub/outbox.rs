//! A connection's bounded outgoing queue.
//!
//! Everything sent to a client goes through its [`Outbox`]: replies from its
//! own session and frames fanned out by the hub alike, so a client sees them
//! in the order they were queued. The queue is bounded in frames and in bytes;
//! when a push would pass either bound the connection is a slow consumer and is
//! closed with 4008 (protocol.md §5.3) instead of blocking the room or growing
//! without limit. Frames are shared (`Utf8Bytes` is reference-counted), so the
//! byte count is what this connection holds up, not what it copied.

use axum::extract::ws::Utf8Bytes;
use confab_protocol::{CloseCode, ServerFrame};
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use tokio::sync::{Notify, mpsc};
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
    /// Bytes queued and not yet taken by the writer.
    queued_bytes: Arc<AtomicUsize>,
    max_bytes: usize,
    /// Signalled whenever the writer takes a frame, for [`Outbox::push_paced`].
    taken: Arc<Notify>,
}

/// The receiving side, owned by the connection's writer.
pub struct OutboxReceiver {
    rx: mpsc::Receiver<Outbound>,
    /// See [`Outbox::kill`].
    pub kill: CancellationToken,
    close_code: Arc<AtomicU16>,
    queued_bytes: Arc<AtomicUsize>,
    taken: Arc<Notify>,
}

impl OutboxReceiver {
    /// The code to close with after a kill.
    pub fn close_code(&self) -> u16 {
        self.close_code.load(Ordering::Acquire)
    }

    /// The next queued item; `None` once every sender is gone.
    pub async fn recv(&mut self) -> Option<Outbound> {
        let item = self.rx.recv().await;
        self.taken(item.as_ref());
        item
    }

    /// The next queued item if one is ready.
    pub fn try_recv(&mut self) -> Option<Outbound> {
        let item = self.rx.try_recv().ok();
        self.taken(item.as_ref());
        item
    }

    fn taken(&self, item: Option<&Outbound>) {
        if let Some(Outbound::Frame(bytes)) = item {
            self.queued_bytes.fetch_sub(bytes.len(), Ordering::AcqRel);
            self.taken.notify_one();
        }
    }

    /// Kills the connection from the writer's side (a missed heartbeat): the
    /// session's reader, selecting on the same token, ends too.
    pub fn kill_with(&self, code: CloseCode) {
        kill(&self.kill, &self.close_code, code);
    }
}

/// Records `code` and cancels `token`, once: the first kill's code wins.
fn kill(token: &CancellationToken, close_code: &AtomicU16, code: CloseCode) {
    if !token.is_cancelled() {
        close_code.store(code.code(), Ordering::Release);
        token.cancel();
    }
}

/// Creates a queue holding at most `max_frames` frames and `max_bytes` bytes
/// (a single frame larger than `max_bytes` is still accepted into an empty
/// queue, so no frame is undeliverable).
pub fn outbox(max_frames: usize, max_bytes: usize) -> (Outbox, OutboxReceiver) {
    let (tx, rx) = mpsc::channel(max_frames);
    let kill = CancellationToken::new();
    let close_code = Arc::new(AtomicU16::new(CloseCode::SlowConsumer.code()));
    let queued_bytes = Arc::new(AtomicUsize::new(0));
    let taken = Arc::new(Notify::new());
    (
        Outbox {
            tx,
            kill: kill.clone(),
            close_code: close_code.clone(),
            queued_bytes: queued_bytes.clone(),
            max_bytes,
            taken: taken.clone(),
        },
        OutboxReceiver {
            rx,
            kill,
            close_code,
            queued_bytes,
            taken,
        },
    )
}

impl Outbox {
    /// Queues already-serialized bytes. Returns false if the connection is gone
    /// or was just closed as a slow consumer.
    pub fn push(&self, bytes: Utf8Bytes) -> bool {
        let len = bytes.len();
        let before = self.queued_bytes.fetch_add(len, Ordering::AcqRel);
        if before > 0 && before + len > self.max_bytes {
            self.queued_bytes.fetch_sub(len, Ordering::AcqRel);
            self.kill_with(CloseCode::SlowConsumer);
            return false;
        }
        match self.tx.try_send(Outbound::Frame(bytes)) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.queued_bytes.fetch_sub(len, Ordering::AcqRel);
                self.kill_with(CloseCode::SlowConsumer);
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.queued_bytes.fetch_sub(len, Ordering::AcqRel);
                false
            }
        }
    }

    /// Queues a frame of a long series produced for this connection alone (a
    /// `since_seq` replay), waiting while the queue is more than half full, in
    /// frames or bytes. The series then goes at the client's reading speed and
    /// leaves half the queue for live events, instead of filling it and
    /// getting a reader that keeps up closed as a slow consumer. Returns false
    /// if the connection is gone.
    pub async fn push_paced(&self, bytes: Utf8Bytes) -> bool {
        loop {
            if self.is_killed() || self.tx.is_closed() {
                return false;
            }
            let queued_frames = self.tx.max_capacity() - self.tx.capacity();
            let queued_bytes = self.queued_bytes.load(Ordering::Acquire);
            if queued_frames == 0
                || (queued_frames < self.tx.max_capacity() / 2
                    && queued_bytes + bytes.len() <= self.max_bytes / 2)
            {
                return self.push(bytes);
            }
            tokio::select! {
                () = self.taken.notified() => {}
                () = self.kill.cancelled() => return false,
            }
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
        kill(&self.kill, &self.close_code, code);
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
        let (out, rx) = outbox(2, 1 << 20);
        assert!(out.push("a".into()));
        assert!(out.push("b".into()));
        assert!(!out.push("c".into()));
        assert!(rx.kill.is_cancelled());
        assert_eq!(rx.close_code(), 4008);
    }

    #[tokio::test]
    async fn a_queue_over_its_byte_budget_kills_with_4008() {
        let (out, rx) = outbox(100, 10);
        assert!(
            out.push("a".repeat(25).into()),
            "one big frame fits an empty queue"
        );
        assert!(!out.push("b".into()), "nothing more while it waits");
        assert!(rx.kill.is_cancelled());
        assert_eq!(rx.close_code(), 4008);

        let (out, mut rx) = outbox(100, 10);
        assert!(out.push("12345".into()));
        assert!(out.push("12345".into()));
        assert!(matches!(rx.recv().await, Some(Outbound::Frame(_))));
        assert!(out.push("abcde".into()), "taking a frame frees its bytes");
        assert!(!rx.kill.is_cancelled());
        assert!(rx.try_recv().is_some() && rx.try_recv().is_some());
        assert!(rx.try_recv().is_none());
        assert!(
            out.push("0123456789".into()),
            "an emptied queue takes a full budget"
        );
    }

    #[tokio::test]
    async fn a_paced_series_waits_for_the_reader_instead_of_overflowing() {
        let (out, mut rx) = outbox(4, 1 << 20);
        let producer = tokio::spawn(async move {
            for n in 0..20 {
                assert!(out.push_paced(format!("{n}").into()).await);
            }
            out
        });
        let mut got = Vec::new();
        while got.len() < 20 {
            if let Some(Outbound::Frame(b)) = rx.recv().await {
                got.push(b.as_str().to_owned());
            }
        }
        let out = producer.await.unwrap();
        assert!(
            !out.is_killed(),
            "a series 5× the queue never overflowed it"
        );
        assert_eq!(got, (0..20).map(|n| n.to_string()).collect::<Vec<_>>());
    }
}
