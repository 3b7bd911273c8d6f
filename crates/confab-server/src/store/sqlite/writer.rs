//! The SQLite writer: one thread owning the only writing connection, the
//! settler thread that answers committed jobs, and the checkpointer. See the
//! parent module's docs for why it is shaped this way.

use super::batch_append::{self, AppendJob};
use crate::store::writer::{Counters, Hook, MAX_BATCH, run_caught};
use crate::store::{StoreError, StoreResult};
use futures_util::future::BoxFuture;
use sqlx::sqlite::SqliteConnection;
use sqlx::{Connection, Executor};
use std::collections::VecDeque;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Pause after each background checkpoint: one every this often at most,
/// so each copies many commits' pages at once.
pub(super) const CHECKPOINT_PAUSE: Duration = Duration::from_millis(100);

/// Whether a job may share a transaction with others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    /// Runs in the batch's transaction, in its own savepoint.
    Batched,
    /// Runs alone, outside any transaction (migrations manage their own).
    Alone,
}

/// One queued unit of work.
pub(super) enum Job {
    /// Runs in the batch's transaction.
    InBatch(BatchJob),
    /// Runs alone, outside any transaction (migrations manage their own).
    Alone(Box<dyn WriteJob>),
}

/// A job that shares the batch's transaction.
pub(super) enum BatchJob {
    /// Any write, in a savepoint of its own.
    Generic(Box<dyn WriteJob>),
    /// A message append: consecutive ones are written together by a few
    /// multi-row statements (see [`batch_append`]).
    Append(Box<AppendJob>),
}

/// A job with its type erased, so that jobs of every result type share a queue.
pub(super) trait WriteJob: Send {
    /// Runs the work; the result waits in the returned [`Settle`] for the commit.
    fn run<'c>(self: Box<Self>, conn: &'c mut SqliteConnection) -> BoxFuture<'c, Box<dyn Settle>>;

    /// Answers with `error` without running (the transaction could not start).
    fn fail(self: Box<Self>, error: StoreError);
}

/// A job that ran and whose answer waits for the batch's fate.
pub(super) trait Settle: Send {
    /// Whether the work succeeded (its savepoint is kept, not rolled back).
    fn succeeded(&self) -> bool;

    /// Sends the answer: the work's own result if the commit succeeded or the
    /// work failed anyway, else the commit's error.
    fn settle(self: Box<Self>, commit: Result<(), &sqlx::Error>);
}

/// A job before it runs.
struct PendingJob<T, F> {
    work: F,
    reply: oneshot::Sender<StoreResult<T>>,
    hook: Option<Hook<T>>,
}

/// Type-erases a job (the bound on `work` is what lets its closure borrow
/// the connection).
pub(super) fn boxed_job<T, F>(
    work: F,
    reply: oneshot::Sender<StoreResult<T>>,
    hook: Option<Hook<T>>,
) -> Box<dyn WriteJob>
where
    T: Send + 'static,
    F: for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, StoreResult<T>> + Send + 'static,
{
    Box::new(PendingJob { work, reply, hook })
}

/// A job after it ran.
pub(super) struct Finished<T> {
    /// What the work returned.
    pub(super) result: StoreResult<T>,
    /// Where the answer goes.
    pub(super) reply: oneshot::Sender<StoreResult<T>>,
    /// Runs once the result is durable.
    pub(super) hook: Option<Hook<T>>,
}

impl<T, F> WriteJob for PendingJob<T, F>
where
    T: Send + 'static,
    F: for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, StoreResult<T>> + Send + 'static,
{
    fn run<'c>(self: Box<Self>, conn: &'c mut SqliteConnection) -> BoxFuture<'c, Box<dyn Settle>> {
        let PendingJob { work, reply, hook } = *self;
        Box::pin(async move {
            let result = run_caught(work(conn), "SQLite").await;
            Box::new(Finished {
                result,
                reply,
                hook,
            }) as Box<dyn Settle>
        })
    }

    fn fail(self: Box<Self>, error: StoreError) {
        // The caller may have given up waiting; nothing to do then.
        let _ = self.reply.send(Err(error));
    }
}

impl<T: Send> Settle for Finished<T> {
    fn succeeded(&self) -> bool {
        self.result.is_ok()
    }

    fn settle(self: Box<Self>, commit: Result<(), &sqlx::Error>) {
        let answer = match (self.result, commit) {
            (Ok(value), Ok(())) => {
                if let Some(hook) = self.hook {
                    hook(&value);
                }
                Ok(value)
            }
            (Ok(_), Err(e)) => Err(batch_error(e)),
            (Err(e), _) => Err(e),
        };
        let _ = self.reply.send(answer);
    }
}

/// The writer: owns the only writing connection until the queue closes.
pub(super) async fn run_writer(
    mut conn: SqliteConnection,
    mut receiver: mpsc::Receiver<Job>,
    stats: std::sync::Arc<Counters>,
    settled: std::sync::mpsc::Sender<Committed>,
    commits: mpsc::Sender<()>,
) {
    let mut incoming = Vec::with_capacity(MAX_BATCH);
    let mut batch = Vec::with_capacity(MAX_BATCH);
    // Returns 0 only once every sender is gone and the queue is empty.
    while receiver.recv_many(&mut incoming, MAX_BATCH).await > 0 {
        for job in incoming.drain(..) {
            match job {
                Job::InBatch(job) => batch.push(job),
                Job::Alone(job) => {
                    // Keep the queue's order: what came before runs first.
                    if !batch.is_empty() {
                        run_batch(&mut conn, std::mem::take(&mut batch), &stats, &settled).await;
                    }
                    let finished = job.run(&mut conn).await;
                    answer_committed(&settled, vec![finished]);
                }
            }
        }
        if !batch.is_empty() {
            run_batch(&mut conn, std::mem::take(&mut batch), &stats, &settled).await;
        }
        // Full means a wake-up is already pending.
        let _ = commits.try_send(());
    }
    if let Err(e) = conn.close().await {
        tracing::warn!(error = %e, "closing the SQLite writer connection failed");
    }
}

/// The checkpointer: after commits, copies the WAL's pages back into the
/// database file (`PRAGMA wal_checkpoint(PASSIVE)`: it never blocks the
/// writer or the readers) on a connection of its own, so that this copy
/// and the file's sync are off the writer's path. Ends when the writer does.
pub(super) async fn run_checkpointer(mut conn: SqliteConnection, mut commits: mpsc::Receiver<()>) {
    while commits.recv().await.is_some() {
        if let Err(e) = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").await {
            tracing::warn!(error = %e, "SQLite background checkpoint failed");
        }
        tokio::time::sleep(CHECKPOINT_PAUSE).await;
    }
    if let Err(e) = conn.close().await {
        tracing::warn!(error = %e, "closing the SQLite checkpointer connection failed");
    }
}

/// Jobs whose transaction committed, to be answered (and their hooks run)
/// in this order.
pub(super) type Committed = Vec<Box<dyn Settle>>;

/// Hands committed jobs to the settler thread, or answers them here if it
/// is gone.
fn answer_committed(settled: &std::sync::mpsc::Sender<Committed>, committed: Committed) {
    if let Err(std::sync::mpsc::SendError(committed)) = settled.send(committed) {
        for finished in committed {
            finished.settle(Ok(()));
        }
    }
}

/// The settler: answers committed jobs and runs their hooks (the fan-out),
/// batch after batch in commit order, while the writer already runs the
/// next batch — SQLite's work and the fan-out overlap on two cores.
pub(super) fn run_settler(committed: std::sync::mpsc::Receiver<Committed>) {
    while let Ok(batch) = committed.recv() {
        for finished in batch {
            finished.settle(Ok(()));
        }
    }
}

/// Runs jobs in as few transactions as possible (one unless something breaks
/// the transaction itself), each in a savepoint, and answers after commit.
async fn run_batch(
    conn: &mut SqliteConnection,
    jobs: Vec<BatchJob>,
    stats: &Counters,
    settled: &std::sync::mpsc::Sender<Committed>,
) {
    // Under load most batches are nothing but appends: they take two round
    // trips instead of a transaction of steps.
    let jobs = if jobs.iter().all(|job| matches!(job, BatchJob::Append(_))) {
        let started = std::time::Instant::now();
        let run = jobs
            .into_iter()
            .filter_map(|job| match job {
                BatchJob::Append(job) => Some(*job),
                BatchJob::Generic(_) => None,
            })
            .collect();
        match batch_append::append_transaction(conn, run).await {
            Ok(finished) => {
                stats.committed(finished.len(), started);
                answer_committed(settled, finished);
                return;
            }
            Err(run) => run
                .into_iter()
                .map(|job| BatchJob::Append(Box::new(job)))
                .collect(),
        }
    } else {
        jobs
    };
    let mut queue: VecDeque<BatchJob> = jobs.into();
    while !queue.is_empty() {
        let started = std::time::Instant::now();
        if let Err(e) = conn.execute("BEGIN IMMEDIATE").await {
            tracing::error!(error = %e, jobs = queue.len(), "SQLite writer could not begin a transaction");
            for job in queue.drain(..) {
                match job {
                    BatchJob::Generic(job) => job.fail(batch_error(&e)),
                    BatchJob::Append(job) => job.fail(batch_error(&e)),
                }
            }
            return;
        }

        let mut ran: Vec<Box<dyn Settle>> = Vec::with_capacity(queue.len());
        let mut broken = None;
        while let Some(job) = queue.pop_front() {
            let job = match job {
                BatchJob::Generic(job) => job,
                BatchJob::Append(first) => {
                    let mut run = vec![*first];
                    while let Some(BatchJob::Append(_)) = queue.front() {
                        if let Some(BatchJob::Append(next)) = queue.pop_front() {
                            run.push(*next);
                        }
                    }
                    match batch_append::append_run(conn, run).await {
                        Ok(finished) => {
                            ran.extend(finished);
                            continue;
                        }
                        // The transaction is lost: like a job that broke
                        // it, the run fails with what ran before it.
                        Err(batch_append::Broken {
                            error,
                            ran: run_ran,
                            unrun,
                        }) => {
                            ran.extend(run_ran);
                            for job in unrun {
                                job.fail(batch_error(&error));
                            }
                            broken = Some(error);
                            break;
                        }
                    }
                }
            };
            if let Err(e) = conn.execute("SAVEPOINT job").await {
                job.fail(batch_error(&e));
                broken = Some(e);
                break;
            }
            let finished = job.run(conn).await;
            let closed = if finished.succeeded() {
                conn.execute("RELEASE SAVEPOINT job").await.map(|_| ())
            } else {
                match conn.execute("ROLLBACK TO SAVEPOINT job").await {
                    Ok(_) => conn.execute("RELEASE SAVEPOINT job").await.map(|_| ()),
                    Err(e) => Err(e),
                }
            };
            ran.push(finished);
            if let Err(e) = closed {
                // SQLite rolled the whole transaction back (disk full, I/O
                // error…): what ran in it is lost; the rest gets a new one.
                broken = Some(e);
                break;
            }
        }

        if let Some(e) = broken {
            tracing::error!(error = %e, "SQLite writer lost a transaction");
            let _ = conn.execute("ROLLBACK").await;
            for finished in ran {
                finished.settle(Err(&e));
            }
            continue;
        }

        match conn.execute("COMMIT").await {
            Ok(_) => {
                stats.committed(ran.len(), started);
                answer_committed(settled, ran);
            }
            Err(e) => {
                tracing::error!(error = %e, jobs = ran.len(), "SQLite writer could not commit");
                let _ = conn.execute("ROLLBACK").await;
                for finished in ran {
                    finished.settle(Err(&e));
                }
            }
        }
    }
}

/// The error each job of a failed transaction gets (`sqlx::Error` is not `Clone`).
pub(super) fn batch_error(e: &sqlx::Error) -> StoreError {
    StoreError::Database(match e {
        sqlx::Error::Io(io) => sqlx::Error::Io(std::io::Error::new(io.kind(), io.to_string())),
        other => sqlx::Error::Protocol(format!("the write transaction failed: {other}")),
    })
}
