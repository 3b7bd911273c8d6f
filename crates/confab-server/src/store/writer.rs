//! The plumbing both backends' writers share: the job queue, commit hooks,
//! a panicking job's containment and the counters. How a batch runs (SQLite's
//! writer thread with `BEGIN IMMEDIATE`, PostgreSQL's room locks and retries)
//! stays in each backend's `writer.rs`.

use crate::store::{StoreError, StoreResult};
use futures_util::FutureExt;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use tokio::sync::mpsc;

/// Most jobs run in one transaction; more wait for the next one.
pub(crate) const MAX_BATCH: usize = 256;

/// Jobs that may wait for the writer; a full queue makes callers wait (backpressure).
pub(crate) const QUEUE_CAPACITY: usize = 1024;

/// Work to run after a job's commit, in commit order (where core acks and
/// fans out).
pub(crate) type Hook<T> = Box<dyn FnOnce(&T) + Send>;

/// Counters of a writer, from `SqliteStore::write_stats` or
/// `PgStore::write_stats`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WriteStats {
    /// Transactions committed since the store opened.
    pub commits: u64,
    /// Write jobs (successful or rolled back to their savepoint) in those
    /// transactions.
    pub jobs: u64,
    /// Batches tried again after a deadlock, serialization failure or lost
    /// connection (PostgreSQL; SQLite's single writer never retries).
    pub retries: u64,
}

/// Counters the writer keeps.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// Batch latency and size, exported by `/metrics`.
    pub(crate) histograms: crate::metrics::StoreHistograms,
    /// Transactions committed.
    commits: AtomicU64,
    /// Batched jobs that were part of a committed transaction.
    committed_jobs: AtomicU64,
    /// Batches tried again.
    retries: AtomicU64,
}

impl Counters {
    /// Counts one committed transaction of `jobs` jobs begun at `started`.
    pub(crate) fn committed(&self, jobs: usize, started: std::time::Instant) {
        self.histograms.observe(jobs, started.elapsed());
        self.commits.fetch_add(1, Ordering::Relaxed);
        self.committed_jobs
            .fetch_add(jobs as u64, Ordering::Relaxed);
    }

    /// Counts one batch tried again.
    pub(crate) fn retried(&self) {
        self.retries.fetch_add(1, Ordering::Relaxed);
    }

    /// What the writer has done so far.
    pub(crate) fn stats(&self) -> WriteStats {
        WriteStats {
            commits: self.commits.load(Ordering::Relaxed),
            jobs: self.committed_jobs.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
        }
    }
}

/// The sending side of a writer's queue, which [`JobQueue::close`] drops so
/// that the writer finishes what is queued and stops.
#[derive(Debug)]
pub(crate) struct JobQueue<J> {
    /// `None` once [`JobQueue::close`] ran.
    sender: Mutex<Option<mpsc::Sender<J>>>,
}

impl<J> JobQueue<J> {
    /// A queue of [`QUEUE_CAPACITY`] jobs and the writer's end of it.
    pub(crate) fn new() -> (JobQueue<J>, mpsc::Receiver<J>) {
        let (sender, receiver) = mpsc::channel(QUEUE_CAPACITY);
        let queue = JobQueue {
            sender: Mutex::new(Some(sender)),
        };
        (queue, receiver)
    }

    /// The sender, unless closed; cloned so that no lock is held while a
    /// full queue makes the caller wait.
    fn sender(&self) -> Option<mpsc::Sender<J>> {
        self.sender
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Puts a job on the queue, waiting for room when it is full.
    pub(crate) async fn send(&self, job: J) -> StoreResult<()> {
        let sender = self.sender().ok_or(StoreError::Closed)?;
        sender.send(job).await.map_err(|_| StoreError::Closed)
    }

    /// Whether the writer still takes jobs.
    pub(crate) fn is_open(&self) -> bool {
        self.sender
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .is_some_and(|sender| !sender.is_closed())
    }

    /// Whether [`JobQueue::close`] ran (tests watch close start).
    #[cfg(test)]
    pub(crate) fn is_closed(&self) -> bool {
        self.sender
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_none()
    }

    /// Jobs waiting in the queue (tests use it to form batches).
    #[cfg(test)]
    pub(crate) fn queued(&self) -> usize {
        self.sender()
            .map_or(0, |sender| QUEUE_CAPACITY - sender.capacity())
    }

    /// Refuses new jobs; the writer stops once the queued ones ran and the
    /// last in-flight sender is dropped.
    pub(crate) fn close(&self) {
        drop(
            self.sender
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take(),
        );
    }
}

/// Runs a job's work so that a panic fails that job alone (its savepoint is
/// rolled back) instead of taking the writer, and every later write, with it.
pub(crate) async fn run_caught<T>(
    work: impl Future<Output = StoreResult<T>>,
    backend: &str,
) -> StoreResult<T> {
    match AssertUnwindSafe(work).catch_unwind().await {
        Ok(result) => result,
        Err(_) => {
            tracing::error!("a {backend} write job panicked");
            Err(StoreError::Database(sqlx::Error::Protocol(
                "the write job panicked".to_owned(),
            )))
        }
    }
}
