//! Users read and written many at a time: the sign-ins of concurrent
//! handshakes (`core::sign_ins`), each list bound as one JSON array so that
//! every statement has a fixed text, compiled once and cached whatever the
//! number of users.

use super::SqliteStore;
use crate::store::rows::{Dialect, user_columns, user_from_row, user_with_rooms_from_row};
use crate::store::{GlobalRole, StoreError, StoreResult, UserRecord, UserUpsert};
use sqlx::Sqlite;
use sqlx::sqlite::SqliteConnection;

/// Users with the ids of their rooms, for a JSON array of user ids.
const USERS_WITH_ROOMS: &str = concat!(
    "SELECT ",
    user_columns!(),
    ", \
         (SELECT json_group_array(room_id) FROM \
             (SELECT room_id FROM members WHERE user_id = users.id ORDER BY room_id)) AS rooms \
     FROM users WHERE id IN (SELECT value FROM json_each(?1))"
);

/// `UPSERT_USER` for a JSON array of `[id, username, name, role, disabled]`
/// rows with distinct ids (`?2`: the time a new row is created at). A field
/// left null keeps the stored value, as in the one-user statement: the
/// update looks its row up again in `input`, since `excluded` holds the
/// defaults a new row would get, not what was asked.
const UPSERT_USERS: &str = concat!(
    "WITH input (id, username, name, role, disabled) AS \
         (SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4 FROM json_each(?1)) \
     INSERT INTO users (id, username, name, role, disabled, created_at) \
     SELECT id, COALESCE(username, id), name, COALESCE(role, 'member'), COALESCE(disabled, 0), ?2 \
     FROM input WHERE true \
     ON CONFLICT (id) DO UPDATE SET \
         username = COALESCE((SELECT i.username FROM input i WHERE i.id = excluded.id), username), \
         name = COALESCE((SELECT i.name FROM input i WHERE i.id = excluded.id), name), \
         role = COALESCE((SELECT i.role FROM input i WHERE i.id = excluded.id), role), \
         disabled = COALESCE((SELECT i.disabled FROM input i WHERE i.id = excluded.id), disabled) \
     RETURNING ",
    user_columns!()
);

/// A list bound as one JSON text.
fn json_list<T: serde::Serialize>(values: &T) -> StoreResult<String> {
    serde_json::to_string(values).map_err(|e| StoreError::Database(sqlx::Error::Encode(e.into())))
}

impl SqliteStore {
    /// [`crate::store::Store::users_with_rooms`] on SQLite.
    pub(super) async fn read_users_with_rooms(
        &self,
        ids: &[String],
    ) -> StoreResult<Vec<(UserRecord, Vec<String>)>> {
        let rows = sqlx::query(USERS_WITH_ROOMS)
            .bind(json_list(&ids)?)
            .fetch_all(&self.readers)
            .await
            .map_err(Sqlite::read_error)?;
        let found = rows.iter().map(user_with_rooms_from_row::<Sqlite>);
        Ok(found.collect::<sqlx::Result<_>>()?)
    }
}

/// [`crate::store::Store::put_users`]'s statement, on the writer.
pub(super) async fn upsert_users(
    conn: &mut SqliteConnection,
    users: Vec<UserUpsert>,
    now: i64,
) -> StoreResult<Vec<UserRecord>> {
    let rows: Vec<_> = users
        .iter()
        .map(|u| {
            (
                &u.id,
                &u.username,
                &u.name,
                u.role.as_ref().map(GlobalRole::as_str),
                u.disabled,
            )
        })
        .collect();
    let rows = sqlx::query(UPSERT_USERS)
        .bind(json_list(&rows)?)
        .bind(now)
        .fetch_all(&mut *conn)
        .await?;
    Ok(rows
        .iter()
        .map(user_from_row)
        .collect::<sqlx::Result<_>>()?)
}
