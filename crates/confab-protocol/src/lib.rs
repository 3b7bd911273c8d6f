//! confab's wire contract (`docs/protocol.md`), as Rust types.
//!
//! This crate holds only what travels on the wire: one enum of frames a client
//! sends ([`ClientFrame`]), one enum of frames the server sends
//! ([`ServerFrame`]), the message and room objects they carry, and the error
//! codes. It does no I/O, so the server, the tests, the load generator and the
//! fuzz targets all decode and encode a frame with exactly the same code.
//!
//! # Layout
//! - [`client`]: client → server frames and [`decode_client_frame`], which turns
//!   any text into either a frame or a typed [`DecodeError`] (never a panic).
//! - [`server`]: server → client frames.
//! - [`dialect`]: the room-scoped dialects' frames (`/ws/chat/{id}/`,
//!   `/ws/sessions/{id}/`).
//! - [`command`]: the answer to a slash command.
//! - [`model`]: the objects frames carry (message, room summary, sender, …).
//! - [`error`]: the contract's error codes and WebSocket close codes.
//! - [`ids`]: ids that clients may send as strings or numbers, and `req_id`.
//! - [`time`]: RFC 3339 UTC timestamps with milliseconds.

pub mod client;
pub mod command;
pub mod dialect;
pub mod error;
pub mod ids;
pub mod model;
pub mod server;
pub mod time;

pub use client::{
    ClientFrame, DecodeError, Envelope, RawFrame, contains_nul, decode_client_frame,
    decode_client_frame_limited, parse_frame,
};
pub use command::{CommandCode, CommandResult};
pub use error::{CloseCode, ErrorCode};
pub use ids::{JsonNumber, ReqId};
pub use model::*;
pub use server::ServerFrame;
pub use time::Timestamp;

/// The protocol version announced in `connection_established`.
pub const PROTOCOL_VERSION: u32 = 1;
