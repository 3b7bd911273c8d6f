//! The server's background tasks, owned.
//!
//! Broker loops, the cluster's fan-out and presence tasks, typing timers and
//! the assistant's answers all run beside the connections. Each is spawned
//! through [`Background`], so none is detached: on shutdown, once the
//! sessions are gone (their departures still travel through these tasks),
//! the server stops them all and waits for them, boundedly, before it closes
//! storage.

use std::future::Future;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Where background tasks are spawned; cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Background {
    tracker: TaskTracker,
    stop: CancellationToken,
}

impl Background {
    /// A set with no task yet.
    pub fn new() -> Self {
        Background::default()
    }

    /// Spawns `task`, which runs until it ends by itself or the set is
    /// stopped (then it is dropped at its next await).
    pub fn spawn<F>(&self, task: F) -> JoinHandle<()>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let stop = self.stop.clone();
        self.tracker.spawn(async move {
            tokio::select! {
                () = task => {}
                () = stop.cancelled() => {}
            }
        })
    }

    /// Cancelled when the set is stopped, for loops that end by themselves.
    pub fn stopping(&self) -> CancellationToken {
        self.stop.clone()
    }

    /// Stops every task and waits at most `grace` for them; false if some
    /// were still running then.
    pub async fn stop(&self, grace: Duration) -> bool {
        self.stop.cancel();
        self.tracker.close();
        tokio::time::timeout(grace, self.tracker.wait())
            .await
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn stopping_ends_tasks_that_would_run_forever() {
        let background = Background::new();
        let forever = background.spawn(std::future::pending());
        let done = background.spawn(async {});
        assert!(background.stop(Duration::from_secs(5)).await);
        assert!(forever.is_finished() && done.is_finished());
    }
}
