//! Users read and written many at a time: the sign-ins of concurrent
//! handshakes (`core::sign_ins`), each list bound as arrays so that every
//! statement has a fixed text, prepared once whatever the number of users.

use super::PgStore;
use crate::store::rows::{Dialect, user_columns, user_from_row, user_with_rooms_from_row};
use crate::store::{GlobalRole, StoreResult, UserRecord, UserUpsert};
use sqlx::postgres::{PgConnection, Postgres};

/// Users with the ids of their rooms, for an array of user ids.
const USERS_WITH_ROOMS: &str = concat!(
    "SELECT ",
    user_columns!(),
    ", \
         ARRAY(SELECT room_id FROM members WHERE user_id = users.id ORDER BY room_id) AS rooms \
     FROM users WHERE id = ANY($1)"
);

/// `UPSERT_USER` for users with distinct ids, their fields as parallel
/// arrays (`$6`: the time a new row is created at). A field left null keeps
/// the stored value, as in the one-user statement: the update looks its row
/// up again in `input`, since `EXCLUDED` holds the defaults a new row would
/// get, not what was asked.
const UPSERT_USERS: &str = concat!(
    "WITH input AS (SELECT * FROM UNNEST($1::TEXT[], $2::TEXT[], $3::TEXT[], $4::TEXT[], $5::BOOLEAN[]) \
         AS i (id, username, name, role, disabled)) \
     INSERT INTO users (id, username, name, role, disabled, created_at) \
     SELECT id, COALESCE(username, id), name, COALESCE(role, 'member'), COALESCE(disabled, FALSE), $6 \
     FROM input \
     ON CONFLICT (id) DO UPDATE SET \
         username = COALESCE((SELECT i.username FROM input i WHERE i.id = EXCLUDED.id), users.username), \
         name = COALESCE((SELECT i.name FROM input i WHERE i.id = EXCLUDED.id), users.name), \
         role = COALESCE((SELECT i.role FROM input i WHERE i.id = EXCLUDED.id), users.role), \
         disabled = COALESCE((SELECT i.disabled FROM input i WHERE i.id = EXCLUDED.id), users.disabled) \
     RETURNING ",
    user_columns!()
);

impl PgStore {
    /// [`crate::store::Store::users_with_rooms`] on PostgreSQL.
    pub(super) async fn read_users_with_rooms(
        &self,
        ids: &[String],
    ) -> StoreResult<Vec<(UserRecord, Vec<String>)>> {
        let rows = sqlx::query(USERS_WITH_ROOMS)
            .bind(ids)
            .fetch_all(&self.pool)
            .await
            .map_err(Postgres::read_error)?;
        let found = rows.iter().map(user_with_rooms_from_row::<Postgres>);
        Ok(found.collect::<sqlx::Result<_>>()?)
    }
}

/// [`crate::store::Store::put_users`]'s statement, on the writer.
pub(super) async fn upsert_users(
    conn: &mut PgConnection,
    users: Vec<UserUpsert>,
    now: i64,
) -> StoreResult<Vec<UserRecord>> {
    let ids: Vec<&str> = users.iter().map(|u| u.id.as_str()).collect();
    let usernames: Vec<Option<&str>> = users.iter().map(|u| u.username.as_deref()).collect();
    let names: Vec<Option<&str>> = users.iter().map(|u| u.name.as_deref()).collect();
    let roles: Vec<Option<&str>> = users
        .iter()
        .map(|u| u.role.as_ref().map(GlobalRole::as_str))
        .collect();
    let disabled: Vec<Option<bool>> = users.iter().map(|u| u.disabled).collect();
    let rows = sqlx::query(UPSERT_USERS)
        .bind(ids)
        .bind(usernames)
        .bind(names)
        .bind(roles)
        .bind(disabled)
        .bind(now)
        .fetch_all(&mut *conn)
        .await?;
    Ok(rows
        .iter()
        .map(user_from_row)
        .collect::<sqlx::Result<_>>()?)
}
