//! Rate limits and connection caps: what stops one user or one address from
//! flooding the node (protocol.md §2.1 close 4029, §2.4 `rate_limited`).
//!
//! Every counter here is per node: a user connected to two nodes gets each
//! node's allowance. Limiters are keyed maps shared by all connections (one
//! entry per active user or address, not one object per connection), and
//! [`Limits::gc`] drops entries that are back to a fresh state, so the maps
//! stay as small as the set of recently active keys.
//!
//! # Layout
//! - [`rate`]: [`KeyedRate`], a token bucket per key (the `governor` crate).
//! - [`caps`]: [`ConnCap`], a count of open connections per key, released
//!   by dropping the [`ConnSlot`] it hands out.

pub mod caps;
pub mod rate;

pub use caps::{ConnCap, ConnSlot};
pub use rate::KeyedRate;

use crate::config::Config;
use crate::metrics::Refusals;
use std::net::IpAddr;

/// Every limit of one node, built once from the configuration.
pub struct Limits {
    /// `send_message` (WebSocket and REST) per user.
    pub messages: KeyedRate<String>,
    /// `add_reaction` / `remove_reaction` per user.
    pub reactions: KeyedRate<String>,
    /// `typing` broadcasts per user; the rest are coalesced.
    pub typing: KeyedRate<String>,
    /// WebSocket handshakes per client address.
    pub handshakes: KeyedRate<IpAddr>,
    /// Open WebSockets per user.
    pub user_conns: ConnCap<String>,
    /// Open WebSockets per client address.
    pub addr_conns: ConnCap<IpAddr>,
    /// `send_message` by anonymous visitors, per client address: each of
    /// their connections has a fresh id, so the address is the stable key.
    pub anonymous_messages: KeyedRate<IpAddr>,
    /// `send_message` by visitors who came back with a visitor token, per
    /// visitor id, at the anonymous rate: they have an identity of their own.
    pub returning_visitor_messages: KeyedRate<String>,
    /// Open anonymous WebSockets per client address (stricter than `addr_conns`).
    pub anonymous_conns: ConnCap<IpAddr>,
}

impl Limits {
    /// Builds the limiters from `[rate_limit]` and `[limits]`; each counts
    /// its refusals in its series of `refusals`.
    pub fn new(config: &Config, refusals: &Refusals) -> Self {
        let rates = &config.rate_limit;
        let r = refusals.clone();
        Limits {
            messages: KeyedRate::new(rates.messages_per_minute, rates.burst).counting(r.message),
            reactions: KeyedRate::new(rates.reactions_per_minute, rates.reaction_burst)
                .counting(r.reaction),
            typing: KeyedRate::new(rates.typing_per_minute, rates.typing_burst).counting(r.typing),
            handshakes: KeyedRate::new(rates.handshakes_per_minute, rates.handshake_burst)
                .counting(r.handshake),
            user_conns: ConnCap::new(config.limits.max_connections_per_user)
                .counting(r.user_connections),
            addr_conns: ConnCap::new(config.limits.max_connections_per_address)
                .counting(r.address_connections),
            anonymous_messages: KeyedRate::new(
                rates.anonymous_messages_per_minute,
                rates.anonymous_burst,
            )
            .counting(r.anonymous_message.clone()),
            returning_visitor_messages: KeyedRate::new(
                rates.anonymous_messages_per_minute,
                rates.anonymous_burst,
            )
            .counting(r.anonymous_message),
            anonymous_conns: ConnCap::new(config.limits.max_anonymous_connections_per_address)
                .counting(r.anonymous_connections),
        }
    }

    /// Forgets rate-limit entries that are indistinguishable from fresh ones
    /// (their bucket has refilled), and gives the freed memory back. Run
    /// periodically by the server; the connection caps clean up by themselves.
    pub fn gc(&self) {
        self.messages.gc();
        self.reactions.gc();
        self.typing.gc();
        self.handshakes.gc();
        self.anonymous_messages.gc();
        self.returning_visitor_messages.gc();
    }

    /// Entries held by all rate limiters (for stats and tests).
    pub fn tracked_keys(&self) -> usize {
        self.messages.len()
            + self.reactions.len()
            + self.typing.len()
            + self.handshakes.len()
            + self.anonymous_messages.len()
            + self.returning_visitor_messages.len()
    }
}
