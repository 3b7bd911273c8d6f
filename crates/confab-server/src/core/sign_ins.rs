//! The sign-ins of concurrent handshakes, read and written together.
//!
//! Every sign-in reads its user with the user's rooms and, for a new or
//! changed user, writes it. One at a time, each read is a hand-off to a
//! database thread and back, and each write a job of its own on the writer
//! (a savepoint, the statement, its release): in a storm of connects (a
//! restart, the morning rush) those hand-offs were most of what a connect
//! cost (docs/performance.md). So sign-ins queue here, and what queued
//! while the store was busy goes to it as one read
//! ([`Store::users_with_rooms`]) or one write ([`Store::put_users`]). A lone
//! sign-in goes at once: nothing waits to be batched; a batch is only what
//! the wait for the database gathered anyway.

use crate::store::{DynStore, StoreError, StoreResult, UserRecord, UserUpsert};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use tokio::sync::{Semaphore, mpsc, oneshot};

/// Most requests answered by one statement.
const MAX_BATCH: usize = 256;

/// Batches of one kind at the store at once: while they run, the next
/// requests gather.
const IN_FLIGHT: usize = 2;

/// Requests that may wait for a batch; more make their callers wait.
const QUEUE: usize = 1024;

/// A user with the ids of its rooms, as a sign-in reads it.
pub type UserWithRooms = (UserRecord, Vec<String>);

/// One request and where its answer goes.
type Request<I, O> = (I, oneshot::Sender<StoreResult<O>>);

/// Requests of one kind, run in batches by a task of their own.
struct Batcher<I, O> {
    queue: mpsc::Sender<Request<I, O>>,
}

impl<I: Send + 'static, O: Send + 'static> Batcher<I, O> {
    /// Starts the task that hands each batch to `run`, which answers every
    /// request in it. The task ends when the batcher is dropped.
    fn start<F, Fut>(run: F) -> Batcher<I, O>
    where
        F: Fn(Vec<Request<I, O>>) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let (queue, mut incoming) = mpsc::channel(QUEUE);
        tokio::spawn(async move {
            let slots = Arc::new(Semaphore::new(IN_FLIGHT));
            loop {
                // A free slot first, then whatever has queued by then.
                let Ok(slot) = slots.clone().acquire_owned().await else {
                    return;
                };
                let mut batch = Vec::new();
                if incoming.recv_many(&mut batch, MAX_BATCH).await == 0 {
                    return;
                }
                let work = run(batch);
                tokio::spawn(async move {
                    work.await;
                    drop(slot);
                });
            }
        });
        Batcher { queue }
    }

    /// Queues one request and waits for its answer.
    async fn call(&self, input: I) -> StoreResult<O> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send((input, reply))
            .await
            .map_err(|_| StoreError::Closed)?;
        // A batch that panicked drops its replies.
        answer.await.map_err(|_| StoreError::Closed)?
    }
}

/// The sign-in reads and writes of this node.
pub(super) struct SignIns {
    reads: Batcher<String, Option<UserWithRooms>>,
    writes: Batcher<UserUpsert, UserRecord>,
}

impl SignIns {
    /// Starts the two batchers on `store` (in the current Tokio runtime).
    pub(super) fn start(store: &DynStore) -> SignIns {
        let (reader, writer) = (store.clone(), store.clone());
        SignIns {
            reads: Batcher::start(move |batch| read(reader.clone(), batch)),
            writes: Batcher::start(move |batch| write(writer.clone(), batch)),
        }
    }

    /// [`crate::store::Store::user_with_rooms`], read with the concurrent ones.
    pub(super) async fn user_with_rooms(&self, id: &str) -> StoreResult<Option<UserWithRooms>> {
        self.reads.call(id.to_owned()).await
    }

    /// [`crate::store::Store::put_user`], written with the concurrent ones.
    pub(super) async fn put_user(&self, user: UserUpsert) -> StoreResult<UserRecord> {
        self.writes.call(user).await
    }
}

/// One read for every id asked (an id asked twice is read once).
async fn read(store: DynStore, batch: Vec<Request<String, Option<UserWithRooms>>>) {
    let ids: Vec<String> = batch
        .iter()
        .map(|(id, _)| id.clone())
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    match store.users_with_rooms(&ids).await {
        Ok(found) => {
            let found: HashMap<String, UserWithRooms> = found
                .into_iter()
                .map(|(user, rooms)| (user.id.clone(), (user, rooms)))
                .collect();
            for (id, reply) in batch {
                let _ = reply.send(Ok(found.get(&id).cloned()));
            }
        }
        Err(e) => {
            for (_, reply) in batch {
                let _ = reply.send(Err(e.for_each_caller()));
            }
        }
    }
}

/// One write per round of distinct users: a user asked twice (two tabs
/// signing in at once) is written again in the next round, in queue order,
/// so each caller gets the row as its own upsert left it.
async fn write(store: DynStore, batch: Vec<Request<UserUpsert, UserRecord>>) {
    let mut rest = batch;
    while !rest.is_empty() {
        let mut seen = HashSet::new();
        let (round, later): (Vec<_>, Vec<_>) = rest
            .into_iter()
            .partition(|(user, _)| seen.insert(user.id.clone()));
        rest = later;
        let users = round.iter().map(|(user, _)| user.clone()).collect();
        match store.put_users(users).await {
            Ok(stored) => {
                let mut stored: HashMap<String, UserRecord> = stored
                    .into_iter()
                    .map(|user| (user.id.clone(), user))
                    .collect();
                for (user, reply) in round {
                    let _ = reply.send(stored.remove(&user.id).ok_or(StoreError::NotFound));
                }
            }
            Err(e) => {
                for (_, reply) in round {
                    let _ = reply.send(Err(e.for_each_caller()));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::GlobalRole;
    use crate::store::sqlite::SqliteStore;
    use futures_util::future::join_all;

    async fn store() -> (tempfile::TempDir, Arc<SqliteStore>) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("confab.db").display());
        let store = SqliteStore::open(&url).await.unwrap();
        store.migrate().await.unwrap();
        (dir, Arc::new(store))
    }

    fn named(id: &str, name: &str) -> UserUpsert {
        UserUpsert {
            id: id.into(),
            name: Some(name.into()),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn concurrent_sign_ins_share_statements_and_each_gets_its_own_answer() {
        let (_dir, sqlite) = store().await;
        let store: DynStore = sqlite.clone();
        let sign_ins = SignIns::start(&store);
        // 200 writes at once, user 7 three times with different names (two
        // tabs and a renamed token): each caller sees its own upsert.
        let mut asked: Vec<UserUpsert> = (0..200)
            .map(|i| named(&format!("u{i}"), &format!("User {i}")))
            .collect();
        asked.insert(50, named("u7", "Seven"));
        asked.insert(120, named("u7", "Lucky"));
        let answers = join_all(asked.iter().cloned().map(|u| sign_ins.put_user(u))).await;
        for (user, answer) in asked.iter().zip(&answers) {
            let answer = answer.as_ref().unwrap();
            assert_eq!((&answer.id, &answer.name), (&user.id, &user.name));
            assert_eq!(answer.role, GlobalRole::Member);
        }
        // The last one queued is what stays.
        let u7 = store.get_user("u7").await.unwrap().unwrap();
        assert_eq!(u7.name.as_deref(), Some("Lucky"));
        // Written together: one job per round of distinct users, not one
        // per sign-in.
        let jobs = sqlite.write_stats().jobs;
        assert!(jobs < 20, "202 sign-ins took {jobs} write jobs");

        // Reads: every caller gets its user, or none for one never stored
        // (u200 to u204), however many ask at once and however often.
        let asked: Vec<usize> = (0..410).map(|i| i % 205).collect();
        let ids: Vec<String> = asked.iter().map(|i| format!("u{i}")).collect();
        let found = join_all(ids.iter().map(|id| sign_ins.user_with_rooms(id))).await;
        for ((i, id), found) in asked.iter().zip(&ids).zip(found) {
            match found.unwrap() {
                Some((user, rooms)) => {
                    assert!(*i < 200, "{id} was never stored");
                    assert_eq!(&user.id, id);
                    assert!(rooms.is_empty());
                }
                None => assert!(*i >= 200, "{id} is stored"),
            }
        }
        store.close().await;
    }
}
