//! The statements both backends spell alike but for placeholders
//! ([`Statement`]), run by the shared reads and write jobs of
//! [`super::queries`]: the SQL in one place, what runs it in another.

use crate::store::rows::{
    Statement, member_columns, rating_columns, room_columns, statement, user_columns,
};

/// A user's [`user_columns`] by `(id)`.
pub(super) const USER_BY_ID: Statement = statement!(concat!(
    "SELECT ",
    user_columns!(),
    " FROM users WHERE id = ?1"
));
/// A room's [`room_columns`] by `(id)`.
pub(super) const ROOM_BY_ID: Statement = statement!(concat!(
    "SELECT ",
    room_columns!(),
    " FROM rooms WHERE id = ?1"
));
/// A membership's [`member_columns`] by `(room, user)`.
pub(super) const MEMBER_BY_IDS: Statement = statement!(concat!(
    "SELECT ",
    member_columns!(),
    " FROM members WHERE room_id = ?1 AND user_id = ?2"
));
/// The ids of a user's rooms in id order: `(user)`.
pub(super) const USER_ROOM_IDS: Statement =
    statement!("SELECT room_id FROM members WHERE user_id = ?1 ORDER BY room_id");
/// A room's members with their users' display fields: `(room)`.
pub(super) const LIST_MEMBERS: Statement = statement!(
    "SELECT mb.room_id, mb.user_id, mb.role, mb.last_read_seq, mb.joined_at, \
            COALESCE(u.username, mb.user_id) AS username, u.name, u.role AS user_role \
     FROM members mb LEFT JOIN users u ON u.id = mb.user_id \
     WHERE mb.room_id = ?1 ORDER BY mb.joined_at, mb.user_id"
);
/// An upload's record by `(id)`.
pub(super) const ATTACHMENT_BY_ID: Statement =
    statement!("SELECT * FROM attachments WHERE id = ?1");
/// The room with the direct key `(key)`.
pub(super) const ROOM_BY_DIRECT_KEY: Statement = statement!(concat!(
    "SELECT ",
    room_columns!(),
    " FROM rooms WHERE direct_key = ?1"
));
/// Removes a member: `(room, user)`.
pub(super) const REMOVE_MEMBER: Statement =
    statement!("DELETE FROM members WHERE room_id = ?1 AND user_id = ?2");
/// Drops every reaction to a message: `(message)`.
pub(super) const DELETE_REACTIONS: Statement =
    statement!("DELETE FROM reactions WHERE message_id = ?1");
/// Adds a reaction unless present: `(message, user, emoji, at)`.
pub(super) const INSERT_REACTION: Statement = statement!(
    "INSERT INTO reactions (message_id, user_id, emoji, created_at) VALUES (?1, ?2, ?3, ?4) \
     ON CONFLICT DO NOTHING"
);
/// Removes a reaction: `(message, user, emoji)`.
pub(super) const DELETE_REACTION: Statement =
    statement!("DELETE FROM reactions WHERE message_id = ?1 AND user_id = ?2 AND emoji = ?3");
/// Takes a lease for a holder until a time, or renews it, unless another
/// holder's has not run out: `(name, holder, expires_at, now)`; a row when
/// the holder has it.
pub(super) const TAKE_LEASE: Statement = statement!(
    "INSERT INTO leases (name, holder, expires_at) VALUES (?1, ?2, ?3) \
     ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at \
     WHERE leases.expires_at < ?4 OR leases.holder = ?2 \
     RETURNING holder"
);
/// Stores an upload's record: its seven columns.
pub(super) const INSERT_ATTACHMENT: Statement = statement!(
    "INSERT INTO attachments (id, uploader_id, sha256, content_type, size, name, created_at) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
);
/// Stores a session's rating, replacing the room's earlier one, returning
/// its [`rating_columns`]: `(room, user, rating, feedback, rated_at)`.
/// `excluded` and `RETURNING` are spelled alike by both backends.
pub(super) const UPSERT_RATING: Statement = statement!(concat!(
    "INSERT INTO session_ratings (room_id, user_id, rating, feedback, rated_at) \
     VALUES (?1, ?2, ?3, ?4, ?5) \
     ON CONFLICT (room_id) DO UPDATE SET user_id = excluded.user_id, \
         rating = excluded.rating, feedback = excluded.feedback, rated_at = excluded.rated_at \
     RETURNING ",
    rating_columns!()
));
/// A room's rating by `(room)`.
pub(super) const RATING_BY_ROOM: Statement = statement!(concat!(
    "SELECT ",
    rating_columns!(),
    " FROM session_ratings WHERE room_id = ?1"
));
/// Rated sessions (`count`, a `BIGINT`) and their mean (`average`, a
/// double, `NULL` when none): the cast turns PostgreSQL's `NUMERIC` mean
/// into a double and is a no-op on SQLite's `REAL`.
pub(super) const RATING_SUMMARY: Statement = statement!(
    "SELECT COUNT(*) AS count, CAST(AVG(rating) AS DOUBLE PRECISION) AS average \
     FROM session_ratings"
);
