//! REST handlers under `/api/v1` (protocol.md §4). Each one parses, calls core once,
//! and shapes the answer; rules live in core.
//!
//! Every handler carries a `#[utoipa::path]` and every body a `ToSchema`
//! derive: the OpenAPI document ([`super::openapi`]) is generated from them,
//! and the router registers handlers through the same attribute.

//!
//! # Layout
//! - [`users`]: the caller and user management.
//! - [`rooms`]: rooms and their members.
//! - [`ratings`]: ratings of assistant sessions.
//! - [`messages`]: history, sends, edits, deletes, context, read markers.
//! - [`commands`]: slash commands run over REST.
//! - [`dev`]: the browser client's dev sign-in (only while it is on).
//! - [`attachments`]: uploads and downloads.
//! - [`server`]: stats, health, readiness, metrics, unknown routes.
//! - [`webhooks`]: failed webhook events, and retrying them.

mod attachments;
mod commands;
mod dev;
mod messages;
mod ratings;
mod rooms;
mod server;
mod users;
mod webhooks;

// Re-exported whole (the `#[utoipa::path]` types with them), so routes and
// the OpenAPI document name every handler as `rest::NAME`.
pub use attachments::*;
pub use commands::*;
pub use dev::*;
pub use messages::*;
pub use ratings::*;
pub use rooms::*;
pub use server::*;
pub use users::*;
pub use webhooks::*;
