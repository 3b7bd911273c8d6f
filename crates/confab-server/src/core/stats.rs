//! Counters behind `GET /api/v1/stats`.

use super::ratings::RatingSummary;
use super::{Caller, Chat, ChatError, ChatResult};
use serde::Serialize;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Messages stored per second over the last minute, in one-second buckets.
/// Recording is one short lock; reading sums at most 60 buckets.
pub struct RateWindow {
    start: Instant,
    /// (second since `start`, messages stored in it), oldest first.
    buckets: Mutex<std::collections::VecDeque<(u64, u64)>>,
}

/// The window's length.
const WINDOW: Duration = Duration::from_secs(60);

impl Default for RateWindow {
    fn default() -> Self {
        RateWindow {
            start: Instant::now(),
            buckets: Mutex::new(std::collections::VecDeque::with_capacity(61)),
        }
    }
}

impl RateWindow {
    fn second(&self) -> u64 {
        self.start.elapsed().as_secs()
    }

    /// Counts one stored message now.
    pub fn record(&self) {
        let now = self.second();
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match buckets.back_mut() {
            Some((second, count)) if *second == now => *count += 1,
            _ => buckets.push_back((now, 1)),
        }
        while buckets
            .front()
            .is_some_and(|(s, _)| now - s >= WINDOW.as_secs())
        {
            buckets.pop_front();
        }
    }

    /// Messages stored in the last 60 seconds.
    pub fn last_minute(&self) -> u64 {
        let now = self.second();
        let buckets = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        buckets
            .iter()
            .filter(|(s, _)| now - s < WINDOW.as_secs())
            .map(|(_, count)| count)
            .sum()
    }
}

/// The answer of `GET /api/v1/stats`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Stats {
    /// Open WebSocket connections on this node.
    pub connections: usize,
    /// Users with at least one connection on this node.
    pub users_online: usize,
    /// Rooms stored.
    pub rooms: i64,
    /// Messages stored (deleted ones included: they keep their seq).
    pub messages_stored: i64,
    /// Messages stored through this node in the last 60 s.
    pub messages_last_minute: u64,
    /// `messages_last_minute / 60`.
    pub messages_per_second: f64,
    /// Assistant sessions rated and their mean rating.
    pub ratings: RatingSummary,
}

impl Chat {
    /// Server-wide counters; global admins and the server key only.
    pub async fn stats(&self, caller: &Caller) -> ChatResult<Stats> {
        if !caller.is_admin() {
            return Err(ChatError::Forbidden("stats are for admins".into()));
        }
        let (rooms, messages_stored) = self.store.counts().await?;
        let ratings = self.rating_summary().await?;
        let last_minute = self.sent_rate.last_minute();
        Ok(Stats {
            connections: self.hub.connection_count(),
            users_online: self.hub.users_online(),
            rooms,
            messages_stored,
            messages_last_minute: last_minute,
            messages_per_second: last_minute as f64 / WINDOW.as_secs_f64(),
            ratings,
        })
    }

    /// Whether this node can serve (`GET /readyz`): storage answers, and
    /// the broker, if there is one, is connected.
    pub async fn readiness(&self) -> Readiness {
        let storage = match self.store.ping().await {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(error = %e, "readiness check failed: storage");
                false
            }
        };
        let broker = self.cluster.broker_ready();
        if broker == Some(false) {
            tracing::warn!("readiness check failed: broker disconnected");
        }
        Readiness { storage, broker }
    }
}

/// What [`Chat::readiness`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Readiness {
    /// Storage answered.
    pub storage: bool,
    /// The broker is connected; `None` without one (a single node).
    pub broker: Option<bool>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_what_was_recorded_in_the_window() {
        let window = RateWindow::default();
        for _ in 0..5 {
            window.record();
        }
        assert_eq!(window.last_minute(), 5);
    }
}
