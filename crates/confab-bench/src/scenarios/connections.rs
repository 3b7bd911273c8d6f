//! `connections`: how fast connections are accepted and what an idle one costs.

use super::*;

/// `connections` options.
#[derive(clap::Args, Debug, Clone)]
pub struct ConnectionsArgs {
    /// Connections to open.
    #[arg(long, default_value_t = 1000)]
    pub count: usize,
    /// Handshakes in flight at once.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Distinct users (connection i is user i mod users); 0 = one per connection.
    #[arg(long, default_value_t = 0)]
    pub users: usize,
    /// Seconds to hold every connection open and idle after the last one opened.
    #[arg(long, default_value_t = 2.0)]
    pub hold: f64,
    /// Name the users `PREFIX-u0`, `PREFIX-u1`… instead of fresh ids, so a
    /// later run with the same prefix (say, after restarting the server on
    /// the same data) is a reconnect storm of users that already exist.
    #[arg(long)]
    pub user_prefix: Option<String>,
    /// The server's process id: its VmRSS is read before and after.
    #[arg(long)]
    pub pid: Option<u32>,
}

/// `connections` results.
#[derive(Debug, Serialize)]
pub struct ConnectionsReport {
    /// Always `connections`.
    pub scenario: &'static str,
    /// Asked.
    pub count: usize,
    /// Handshakes in flight at once.
    pub concurrency: usize,
    /// Authenticated (got `connection_established`).
    pub opened: u64,
    /// Refused or failed.
    pub failures: u64,
    /// The first failure, to say why.
    pub first_failure: Option<String>,
    /// Opened per second.
    pub connect_per_s: f64,
    /// Still open at the end of the hold.
    pub still_open: u64,
    /// Server VmRSS before, KiB (with `--pid`).
    pub rss_before_kib: Option<u64>,
    /// Server VmRSS with every connection open, KiB.
    pub rss_after_kib: Option<u64>,
    /// (after − before) / opened, KiB.
    pub rss_per_connection_kib: Option<f64>,
}

/// VmRSS of a process in KiB, from /proc.
fn vm_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Runs `connections`.
pub async fn connections(
    target: &Target,
    args: &ConnectionsArgs,
    show_progress: bool,
) -> Result<ConnectionsReport, BenchError> {
    let run = args.user_prefix.clone().unwrap_or_else(|| run_id("c"));
    let users = if args.users == 0 {
        args.count
    } else {
        args.users
    };
    let rss_before = args.pid.and_then(vm_rss_kib);
    let counters = Arc::new(Counters::default());
    let open = Arc::new(AtomicU64::new(0));
    let first_failure = Arc::new(std::sync::Mutex::new(None::<String>));
    let (stop_tx, stop_rx) = watch::channel(false);
    let gate = Arc::new(Semaphore::new(args.concurrency.max(1)));
    let _progress = show_progress.then(|| {
        let (counters, open) = (counters.clone(), open.clone());
        Progress::start(move |elapsed| {
            format!(
                "connections {elapsed:>5.1}s  open {}  failures {}",
                open.load(Relaxed),
                counters.errors.load(Relaxed)
            )
        })
    });
    let start = Instant::now();
    let mut handles = Vec::with_capacity(args.count);
    for i in 0..args.count {
        let permit = gate
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| BenchError::Setup(e.to_string()))?;
        let (target, counters, open, first_failure) = (
            target.clone(),
            counters.clone(),
            open.clone(),
            first_failure.clone(),
        );
        let mut stop = stop_rx.clone();
        let user = format!("{run}-u{}", i % users);
        handles.push(tokio::spawn(async move {
            let result = target.connect(&user).await;
            drop(permit);
            let mut ws = match result {
                Ok(ws) => ws,
                Err(e) => {
                    counters.errors.fetch_add(1, Relaxed);
                    if let Ok(mut first) = first_failure.lock() {
                        first.get_or_insert(e.to_string());
                    }
                    return None;
                }
            };
            let connected = Instant::now();
            open.fetch_add(1, Relaxed);
            // Idle, but answering the server's pings (the read loop does).
            let alive = loop {
                tokio::select! {
                    next = ws.next() => match next {
                        Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break false,
                        Some(Ok(_)) => {}
                    },
                    _ = stop.changed() => break true,
                }
            };
            open.fetch_sub(1, Relaxed);
            Some((connected, alive))
        }));
    }
    // Wait for the last handshakes.
    let _ = gate.acquire_many(args.concurrency.max(1) as u32).await;
    let opened_at = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(args.hold)).await;
    let rss_after = args.pid.and_then(vm_rss_kib);
    let still_open = open.load(Relaxed);
    let _ = stop_tx.send(true);
    let mut opened = 0u64;
    let mut last_connect = start;
    for handle in handles {
        if let Ok(Some((connected, _))) = handle.await {
            opened += 1;
            last_connect = last_connect.max(connected);
        }
    }
    let _ = opened_at;
    let elapsed = last_connect.duration_since(start).as_secs_f64().max(1e-9);
    let failure = first_failure.lock().ok().and_then(|f| f.clone());
    Ok(ConnectionsReport {
        scenario: "connections",
        count: args.count,
        concurrency: args.concurrency,
        opened,
        failures: counters.errors.load(Relaxed),
        first_failure: failure,
        connect_per_s: opened as f64 / elapsed,
        still_open,
        rss_before_kib: rss_before,
        rss_after_kib: rss_after,
        rss_per_connection_kib: match (rss_before, rss_after) {
            (Some(before), Some(after)) if opened > 0 => {
                Some(after.saturating_sub(before) as f64 / opened as f64)
            }
            _ => None,
        },
    })
}
