//! `resume`: clients that drop and resume with `since_seq` while others send.

use super::*;

/// `resume` options.
#[derive(clap::Args, Debug, Clone)]
pub struct ResumeArgs {
    /// Rooms, each with one sender.
    #[arg(long, default_value_t = 4)]
    pub rooms: usize,
    /// Members per room that drop and resume.
    #[arg(long, default_value_t = 4)]
    pub resumers: usize,
    /// Total messages per second over all rooms' senders.
    #[arg(long, default_value_t = 400.0)]
    pub rate: f64,
    /// Drops (and resumes) per resumer.
    #[arg(long, default_value_t = 3)]
    pub cycles: usize,
    /// Milliseconds a resumer stays away before it resumes.
    #[arg(long, default_value_t = 200)]
    pub away_ms: u64,
    /// Seconds of sending.
    #[arg(long, default_value_t = 4.0)]
    pub duration: f64,
    /// What each send carries (by default a `client_msg_id` and metadata).
    #[command(flatten)]
    pub shape: crate::conn::SendShape,
}

/// `resume` results.
#[derive(Debug, Serialize)]
pub struct ResumeReport {
    /// Always `resume`.
    pub scenario: &'static str,
    /// Whether sends carried a `client_msg_id` and metadata.
    pub shape: crate::conn::SendShape,
    /// Rooms.
    pub rooms: usize,
    /// Resumers per room.
    pub resumers: usize,
    /// Messages acked.
    pub acked: u64,
    /// Resumes done (`subscribe_room` with `since_seq` after a drop).
    pub resumes: u64,
    /// From the resuming `subscribe_room` to the message at the
    /// `subscribed.last_seq` it announced.
    pub catch_up: Percentiles,
    /// Seqs a resumer skipped.
    pub gaps: u64,
    /// Seqs a resumer received twice (or out of order).
    pub duplicates: u64,
    /// Seqs a resumer had not received at the end (of the room's last acked).
    pub missing: u64,
    /// Errors (refusals, failed connects).
    pub errors: u64,
}

/// What one resumer saw.
#[derive(Default)]
struct ResumerOut {
    resumes: u64,
    catch_up: Samples,
    gaps: u64,
    duplicates: u64,
    last_seen: i64,
}

/// One resumer: follows the room, drops, resumes with `since_seq`, checks
/// every seq is the one after the last.
#[allow(clippy::too_many_arguments)] // one call site, every argument distinct
async fn resumer(
    target: Target,
    user: String,
    room: String,
    cycles: usize,
    period: Duration,
    away: Duration,
    sender_done: Arc<AtomicU64>,
    final_seq: Arc<AtomicI64>,
) -> Result<ResumerOut, BenchError> {
    let mut out = ResumerOut::default();
    let mut since: Option<i64> = None;
    for cycle in 0..=cycles {
        let mut ws = target.connect(&user).await?;
        let asked = Instant::now();
        let announced = subscribe(&mut ws, &room, since).await?;
        let mut caught_up = since.is_none() || announced <= out.last_seen;
        if since.is_some() {
            out.resumes += 1;
            if caught_up {
                out.catch_up.record(0);
            }
        }
        let last_cycle = cycle == cycles;
        let until = Instant::now() + period;
        let hard_stop = Instant::now() + period + DRAIN;
        loop {
            let now = Instant::now();
            let done = if last_cycle {
                sender_done.load(Relaxed) == 1 && out.last_seen >= final_seq.load(Relaxed)
                    || now >= hard_stop
            } else {
                now >= until
            };
            if done {
                break;
            }
            let wait = Duration::from_millis(20);
            let next = match tokio::time::timeout(wait, ws.next()).await {
                Ok(next) => next,
                Err(_) => continue,
            };
            let text = match next {
                Some(Ok(Message::Text(text))) => text,
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                    return Err(BenchError::Connect(format!("{user} lost its connection")));
                }
                Some(Ok(_)) => continue,
            };
            let Some(lite) = Lite::parse(&text) else {
                continue;
            };
            if lite.kind != "new_message" {
                continue;
            }
            let Some(seq) = lite.message.map(|m| m.seq) else {
                continue;
            };
            if seq <= out.last_seen {
                out.duplicates += 1;
                continue;
            }
            if seq > out.last_seen + 1 {
                out.gaps += (seq - out.last_seen - 1) as u64;
            }
            out.last_seen = seq;
            if !caught_up && seq >= announced {
                caught_up = true;
                out.catch_up
                    .record(u64::try_from(asked.elapsed().as_micros()).unwrap_or(u64::MAX));
            }
        }
        drop(ws);
        since = Some(out.last_seen);
        if !last_cycle {
            tokio::time::sleep(away).await;
        }
    }
    Ok(out)
}

/// Runs `resume`.
pub async fn resume(
    target: &Target,
    args: &ResumeArgs,
    show_progress: bool,
) -> Result<ResumeReport, BenchError> {
    if args.rooms == 0 || args.rate <= 0.0 {
        return Err(BenchError::Setup("need rooms ≥ 1 and rate > 0".into()));
    }
    let run = run_id("r");
    let room_ids: Vec<String> = (0..args.rooms).map(|r| format!("{run}-r{r}")).collect();
    let mut sender_users = Vec::new();
    for (r, room) in room_ids.iter().enumerate() {
        let members: Vec<String> = (0..=args.resumers)
            .map(|m| format!("{run}-r{r}-m{m}"))
            .collect();
        target.create_room(room, &members).await?;
        sender_users.push(members[0].clone());
    }
    let clock = Clock(Instant::now());
    let counters = Arc::new(Counters::default());
    let _progress = progress("resume", counters.clone(), show_progress);
    let sender_sockets = connect_all(target, &sender_users).await?;
    let period = Duration::from_secs_f64(args.duration / (args.cycles as f64 + 1.0));
    let away = Duration::from_millis(args.away_ms);
    let senders_done = Arc::new(AtomicU64::new(0));
    let finals: Vec<Arc<AtomicI64>> = (0..args.rooms)
        .map(|_| Arc::new(AtomicI64::new(0)))
        .collect();
    let mut resumers = Vec::new();
    for (r, room) in room_ids.iter().enumerate() {
        for m in 1..=args.resumers {
            resumers.push(tokio::spawn(resumer(
                target.clone(),
                format!("{run}-r{r}-m{m}"),
                room.clone(),
                args.cycles,
                period,
                away,
                senders_done.clone(),
                finals[r].clone(),
            )));
        }
    }
    // Let the resumers subscribe before the load starts.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (stop_tx, stop_rx) = watch::channel(false);
    let interval = Duration::from_secs_f64(args.rooms as f64 / args.rate);
    let until = Instant::now() + Duration::from_secs_f64(args.duration);
    let mut readers = Vec::new();
    let mut senders = Vec::new();
    for (r, ws) in sender_sockets.into_iter().enumerate() {
        let (sink, stream) = ws.split();
        let slots = Arc::new(Semaphore::new(1024));
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
                room: room_ids[r].clone(),
                shape: args.shape,
            },
            clock,
            counters.clone(),
            slots,
            Some(interval),
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
    let _ = stop_tx.send(true);
    for (r, reader) in readers.into_iter().enumerate() {
        let out = reader.await.map_err(|e| BenchError::Setup(e.to_string()))?;
        let max = out.acked_seqs.iter().copied().max().unwrap_or(0);
        finals[r].store(max, Relaxed);
    }
    senders_done.store(1, Relaxed);
    let mut report = ResumeReport {
        scenario: "resume",
        shape: args.shape,
        rooms: args.rooms,
        resumers: args.resumers,
        acked: counters.acked.load(Relaxed),
        resumes: 0,
        catch_up: Percentiles::default(),
        gaps: 0,
        duplicates: 0,
        missing: 0,
        errors: counters.errors.load(Relaxed),
    };
    let mut catch_up = Samples::default();
    let mut per_room: HashMap<usize, usize> = HashMap::new();
    for (i, handle) in resumers.into_iter().enumerate() {
        let r = i / args.resumers.max(1);
        *per_room.entry(r).or_default() += 1;
        match handle.await {
            Ok(Ok(out)) => {
                report.resumes += out.resumes;
                report.gaps += out.gaps;
                report.duplicates += out.duplicates;
                report.missing +=
                    finals[r].load(Relaxed).saturating_sub(out.last_seen).max(0) as u64;
                catch_up.merge(out.catch_up);
            }
            _ => report.errors += 1,
        }
    }
    report.catch_up = catch_up.summary();
    drop(sinks);
    Ok(report)
}
