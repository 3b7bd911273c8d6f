//! `ingest`: senders storing as fast as the server acks, stored messages per second, no gaps.

use super::*;

/// `ingest` options.
#[derive(clap::Args, Debug, Clone)]
pub struct IngestArgs {
    /// Concurrent senders, each its own user and connection.
    #[arg(long, default_value_t = 8)]
    pub senders: usize,
    /// Rooms the senders share (sender i writes to room i mod rooms); 0 = one room per sender.
    #[arg(long, default_value_t = 0)]
    pub rooms: usize,
    /// Sends a sender may have awaiting their ack (1 = strictly one at a time).
    #[arg(long, default_value_t = 32)]
    pub window: usize,
    /// Seconds of sending.
    #[arg(long, default_value_t = 5.0)]
    pub duration: f64,
    /// What each send carries (by default a `client_msg_id` and metadata).
    #[command(flatten)]
    pub shape: crate::conn::SendShape,
}

/// `ingest` results.
#[derive(Debug, Serialize)]
pub struct IngestReport {
    /// Always `ingest`.
    pub scenario: &'static str,
    /// Whether sends carried a `client_msg_id` and metadata.
    pub shape: crate::conn::SendShape,
    /// Senders.
    pub senders: usize,
    /// Rooms.
    pub rooms: usize,
    /// Sends in flight per sender.
    pub window: usize,
    /// Messages sent.
    pub sent: u64,
    /// Messages acked (stored).
    pub stored: u64,
    /// Acks per second, first send to last ack.
    pub stored_per_s: f64,
    /// Send → ack.
    pub ack_latency: Percentiles,
    /// Error frames and failed sends.
    pub errors: u64,
    /// Rooms whose acked seqs are not exactly 1..=n, or whose stored `last_seq`
    /// differs from n.
    pub gaps: u64,
    /// Wall seconds from first send to last ack.
    pub elapsed_s: f64,
}

/// Runs `ingest`.
pub async fn ingest(
    target: &Target,
    args: &IngestArgs,
    show_progress: bool,
) -> Result<IngestReport, BenchError> {
    if args.senders == 0 {
        return Err(BenchError::Setup("need at least one sender".into()));
    }
    let rooms = if args.rooms == 0 {
        args.senders
    } else {
        args.rooms
    };
    let run = run_id("i");
    let users: Vec<String> = (0..args.senders).map(|s| format!("{run}-s{s}")).collect();
    let room_ids: Vec<String> = (0..rooms).map(|r| format!("{run}-r{r}")).collect();
    for (r, room) in room_ids.iter().enumerate() {
        let members: Vec<String> = users
            .iter()
            .enumerate()
            .filter(|(s, _)| s % rooms == r)
            .map(|(_, u)| u.clone())
            .collect();
        target.create_room(room, &members).await?;
    }
    let sockets = connect_all(target, &users).await?;
    let clock = Clock(Instant::now());
    let counters = Arc::new(Counters::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    let start = Instant::now();
    let until = start + Duration::from_secs_f64(args.duration);
    let _progress = progress("ingest", counters.clone(), show_progress);
    let mut readers = Vec::new();
    let mut senders = Vec::new();
    for (s, ws) in sockets.into_iter().enumerate() {
        let (sink, stream) = ws.split();
        let slots = Arc::new(Semaphore::new(args.window.max(1)));
        readers.push(tokio::spawn(read_loop(
            stream,
            clock,
            counters.clone(),
            Some(slots.clone()),
            stop_rx.clone(),
        )));
        senders.push(tokio::spawn(send_loop(
            sink,
            Sending {
                room: room_ids[s % rooms].clone(),
                shape: args.shape,
            },
            clock,
            counters.clone(),
            slots,
            None,
            until,
        )));
    }
    let mut sinks = Vec::new();
    for sender in senders {
        sinks.push(sender.await.map_err(|e| BenchError::Setup(e.to_string()))?);
    }
    drain(|| {
        counters.acked.load(Relaxed) + counters.errors.load(Relaxed) >= counters.sent.load(Relaxed)
    })
    .await;
    let last = Instant::now();
    let _ = stop_tx.send(true);
    let mut acks = Samples::default();
    let mut seqs: Vec<Vec<i64>> = vec![Vec::new(); rooms];
    for (s, reader) in readers.into_iter().enumerate() {
        let out = reader.await.map_err(|e| BenchError::Setup(e.to_string()))?;
        acks.merge(out.acks);
        seqs[s % rooms].extend(out.acked_seqs);
    }
    drop(sinks);
    let mut gaps = 0;
    for (r, mut room_seqs) in seqs.into_iter().enumerate() {
        room_seqs.sort_unstable();
        let consecutive = room_seqs
            .iter()
            .enumerate()
            .all(|(k, seq)| *seq == k as i64 + 1);
        let stored = target
            .last_seq(&room_ids[r], &users[r % args.senders])
            .await?;
        if !consecutive || stored != room_seqs.len() as i64 {
            gaps += 1;
        }
    }
    let elapsed = last.duration_since(start).as_secs_f64().max(1e-9);
    let stored = counters.acked.load(Relaxed);
    Ok(IngestReport {
        scenario: "ingest",
        shape: args.shape,
        senders: args.senders,
        rooms,
        window: args.window,
        sent: counters.sent.load(Relaxed),
        stored,
        stored_per_s: stored as f64 / elapsed,
        ack_latency: acks.summary(),
        errors: counters.errors.load(Relaxed),
        gaps,
        elapsed_s: elapsed,
    })
}
