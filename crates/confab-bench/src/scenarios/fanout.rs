//! `fanout`: rooms of members, every member sending, delivered messages per second and latency.

use super::*;

/// `fanout` options.
#[derive(clap::Args, Debug, Clone)]
pub struct FanoutArgs {
    /// Rooms.
    #[arg(long, default_value_t = 50)]
    pub rooms: usize,
    /// Members per room, each its own user and connection, all subscribed.
    #[arg(long, default_value_t = 4)]
    pub members: usize,
    /// Members per room that also send.
    #[arg(long, default_value_t = 1)]
    pub senders: usize,
    /// Total messages per second over all senders; absent = saturate.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Sends a sender may have awaiting their ack (saturating mode). At 8
    /// neither confab nor the baseline is saturated on 2 cores (both
    /// deliver more with more in flight); confab peaks near 32.
    #[arg(long, default_value_t = 32)]
    pub window: usize,
    /// Seconds of sending.
    #[arg(long, default_value_t = 5.0)]
    pub duration: f64,
    /// Extra members per room that subscribe and then never read (protocol.md §5.3).
    #[arg(long, default_value_t = 0)]
    pub stalled_readers: usize,
    /// The endpoint members that only read connect to: `unified` (`/ws`,
    /// subscribed), or a room-scoped dialect, `chat` (`/ws/chat/{id}/`) or
    /// `sessions` (`/ws/sessions/{id}/`). Senders always use `/ws` (they
    /// need acks to keep their window).
    #[arg(long, value_enum, default_value_t = ReadersOn::Unified)]
    pub readers_on: ReadersOn,
    /// What each send carries (by default a `client_msg_id` and metadata).
    #[command(flatten)]
    pub shape: crate::conn::SendShape,
}

/// Where the reading members of `fanout` connect.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReadersOn {
    /// `/ws`, subscribed to the room.
    Unified,
    /// `/ws/chat/{room_id}/`.
    Chat,
    /// `/ws/sessions/{room_id}/`.
    Sessions,
}

/// `fanout` results.
#[derive(Debug, Serialize)]
pub struct FanoutReport {
    /// Always `fanout`.
    pub scenario: &'static str,
    /// Whether sends carried a `client_msg_id` and metadata.
    pub shape: crate::conn::SendShape,
    /// Rooms.
    pub rooms: usize,
    /// Reading members per room.
    pub members: usize,
    /// Senders per room.
    pub senders: usize,
    /// Stalled members per room.
    pub stalled_readers: usize,
    /// Where the reading members connected.
    pub readers_on: ReadersOn,
    /// Asked rate (msgs/s over all senders), `null` = saturating.
    pub rate: Option<f64>,
    /// Sends in flight per sender when saturating.
    pub window: usize,
    /// Messages sent.
    pub sent: u64,
    /// Messages acked (stored).
    pub acked: u64,
    /// `new_message` frames received by reading members.
    pub delivered: u64,
    /// `acked × members`: what every reading member should get.
    pub expected: u64,
    /// Deliveries per second, first send to last delivery.
    pub delivered_per_s: f64,
    /// Sender timestamp → receipt.
    pub latency: Percentiles,
    /// Error frames, failed sends and broken connections of reading members.
    pub errors: u64,
    /// Wall seconds from first send to last delivery.
    pub elapsed_s: f64,
}

/// Runs `fanout`.
pub async fn fanout(
    target: &Target,
    args: &FanoutArgs,
    show_progress: bool,
) -> Result<FanoutReport, BenchError> {
    if args.senders > args.members || args.members == 0 || args.rooms == 0 {
        return Err(BenchError::Setup(
            "need rooms ≥ 1 and 1 ≤ members, senders ≤ members".into(),
        ));
    }
    let run = run_id("f");
    let per_room = args.members + args.stalled_readers;
    let room_ids: Vec<String> = (0..args.rooms).map(|r| format!("{run}-r{r}")).collect();
    let mut users = Vec::new();
    for (r, room) in room_ids.iter().enumerate() {
        let members: Vec<String> = (0..per_room).map(|m| format!("{run}-r{r}-m{m}")).collect();
        target.create_room(room, &members).await?;
        users.extend(members);
    }
    let mut sockets = connect_all(target, &users).await?;
    for (i, ws) in sockets.iter_mut().enumerate() {
        let (room, m) = (&room_ids[i / per_room], i % per_room);
        match args.readers_on {
            ReadersOn::Chat | ReadersOn::Sessions if m >= args.senders && m < args.members => {
                // A reader of a room-scoped dialect: this socket only made
                // the user; the reader joins by URL instead.
                let dialect = if args.readers_on == ReadersOn::Chat {
                    "chat"
                } else {
                    "sessions"
                };
                *ws = target.connect_scoped(&users[i], dialect, room).await?;
            }
            _ => {
                subscribe(ws, room, None).await?;
            }
        }
    }

    let clock = Clock(Instant::now());
    let counters = Arc::new(Counters::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    let interval = args
        .rate
        .filter(|rate| *rate > 0.0)
        .map(|rate| Duration::from_secs_f64((args.rooms * args.senders) as f64 / rate));
    let window = if interval.is_some() {
        // Paced: the window only guards against an unanswering server.
        args.window.max(1024)
    } else {
        args.window.max(1)
    };
    let start = Instant::now();
    let until = start + Duration::from_secs_f64(args.duration);
    let _progress = progress("fanout", counters.clone(), show_progress);
    let mut readers = Vec::new();
    let mut senders = Vec::new();
    let mut stalled = Vec::new();
    let mut idle_sinks = Vec::new();
    for (i, ws) in sockets.into_iter().enumerate() {
        let m = i % per_room;
        if m >= args.members {
            // Connected and subscribed, never read again.
            stalled.push(ws);
            continue;
        }
        let (sink, stream) = ws.split();
        let slots = (m < args.senders).then(|| Arc::new(Semaphore::new(window)));
        readers.push(tokio::spawn(read_loop(
            stream,
            clock,
            counters.clone(),
            slots.clone(),
            stop_rx.clone(),
        )));
        match slots {
            Some(slots) => senders.push(tokio::spawn(send_loop(
                sink,
                Sending {
                    room: room_ids[i / per_room].clone(),
                    shape: args.shape,
                },
                clock,
                counters.clone(),
                slots,
                interval,
                until,
            ))),
            None => idle_sinks.push(sink),
        }
    }
    let mut sinks = Vec::new();
    for sender in senders {
        sinks.push(sender.await.map_err(|e| BenchError::Setup(e.to_string()))?);
    }
    let members = args.members as u64;
    drain(|| {
        let acked = counters.acked.load(Relaxed);
        acked + counters.errors.load(Relaxed) >= counters.sent.load(Relaxed)
            && counters.delivered.load(Relaxed) >= acked * members
    })
    .await;
    let _ = stop_tx.send(true);
    let mut latencies = Samples::default();
    let mut last = start;
    for reader in readers {
        let out = reader.await.map_err(|e| BenchError::Setup(e.to_string()))?;
        latencies.merge(out.latencies);
        if let Some(t) = out.last_delivery {
            last = last.max(t);
        }
    }
    drop((stalled, sinks, idle_sinks));
    let elapsed = last.duration_since(start).as_secs_f64().max(1e-9);
    let acked = counters.acked.load(Relaxed);
    let delivered = counters.delivered.load(Relaxed);
    Ok(FanoutReport {
        scenario: "fanout",
        shape: args.shape,
        rooms: args.rooms,
        members: args.members,
        senders: args.senders,
        stalled_readers: args.stalled_readers,
        readers_on: args.readers_on,
        rate: args.rate,
        window,
        sent: counters.sent.load(Relaxed),
        acked,
        delivered,
        expected: acked * members,
        delivered_per_s: delivered as f64 / elapsed,
        latency: latencies.summary(),
        errors: counters.errors.load(Relaxed),
        elapsed_s: elapsed,
    })
}
