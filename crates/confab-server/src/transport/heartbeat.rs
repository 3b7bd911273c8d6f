//! WebSocket heartbeats: the writer pings every `server.heartbeat_ms`, the
//! reader notes each pong, and a peer that leaves two pings in a row
//! unanswered is closed. A half-open TCP connection (a phone that lost its
//! network) would otherwise hold its presence, typing state and queue until
//! the kernel gives up, which can take hours.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

/// Pings missed in a row before the connection is closed.
pub const MISSED_PONGS_LIMIT: u32 = 2;

/// Pings sent since the last pong, shared by a connection's reader (which
/// sees pongs) and writer (which sends pings).
#[derive(Debug, Clone, Default)]
pub struct Liveness {
    unanswered: Arc<AtomicU32>,
}

impl Liveness {
    /// The peer answered: every earlier ping counts as answered.
    pub fn pong(&self) {
        self.unanswered.store(0, Ordering::Release);
    }

    /// Called at each heartbeat tick, before sending a ping. Returns false
    /// when [`MISSED_PONGS_LIMIT`] pings are already unanswered: the peer is
    /// gone and the connection must close instead.
    pub fn ping_due(&self) -> bool {
        self.unanswered.fetch_add(1, Ordering::AcqRel) < MISSED_PONGS_LIMIT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_missed_pongs_end_the_connection_and_a_pong_resets() {
        let live = Liveness::default();
        assert!(live.ping_due(), "first ping");
        assert!(live.ping_due(), "first missed, second ping");
        live.pong();
        assert!(live.ping_due());
        assert!(live.ping_due());
        assert!(!live.ping_due(), "two missed in a row");
    }
}
