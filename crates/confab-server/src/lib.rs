//! The confab chat server.
//!
//! # Layout
//! The folders follow the layers a frame passes through:
//! - [`transport`]: HTTP and WebSocket — routes, the unified `/ws` session,
//!   REST handlers, error bodies. Knows sockets and bytes; knows no SQL.
//! - [`core`]: what chat means — validation, permissions, rooms, messages,
//!   read state. Talks to storage and the hub through their interfaces.
//! - [`store`]: the room log and everything persisted, behind one trait.
//! - [`hub`]: this node's live state — connections, room subscriptions,
//!   typing — and the local fan-out of pre-serialized frames.
//! - [`broker`]: the publish/subscribe bus between nodes (Redis, NATS).
//! - [`limits`]: rate limits and connection caps, per node.
//! - [`metrics`]: the series `GET /metrics` reports, one registry per server.
//! - [`auth`]: tokens and the server key.
//! - [`signing`]: the signature on what confab sends to the app's back-end.
//! - [`identity`]: the identities the server keeps for itself and the one
//!   id rule, below both `auth` and `core`.
//! - [`config`]: the typed configuration.
//! - [`tasks`]: the background tasks, owned and stopped on shutdown.
//! - [`app`]: builds all of the above from a [`Config`] and serves it on a
//!   listener until a shutdown future resolves.

pub mod app;
pub mod auth;
pub mod broker;
pub mod config;
pub mod core;
pub mod hub;
pub mod identity;
pub mod limits;
pub mod metrics;
pub mod signing;
pub mod store;
pub mod tasks;
pub mod transport;

pub use app::App;
pub use config::Config;
