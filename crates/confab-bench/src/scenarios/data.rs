//! `data`: reads that must stay flat as data grows, timed at a small and a
//! large size in the same run (alternating, one request at a time) with
//! every answer checked: history pages at the end and the start of a long
//! room, the room list of a user in many rooms, and unread counts of a
//! member far behind and of the member who sent it all.

use super::data_seed::{Seeded, seed};
use super::*;
use confab_protocol::{RoomSummary, ServerFrame};

/// History page size asked (the contract's default).
const HISTORY_PAGE: i64 = 50;
/// Room list page size of the first page (the contract's default).
const LIST_PAGE: usize = 50;
/// Room list page size of the full walks (the contract's maximum).
const WALK_PAGE: usize = 100;
/// How long one timed request may take before the run fails.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);
/// Wrong answers described in the report (all are counted).
const MAX_PROBLEMS: usize = 10;

/// `data` options.
#[derive(clap::Args, Debug, Clone)]
pub struct DataArgs {
    /// Messages in the long room (large size).
    #[arg(long, default_value_t = 1_000_000)]
    pub messages: u64,
    /// Rooms the listing user is a member of (large size).
    #[arg(long, default_value_t = 10_000)]
    pub rooms: u64,
    /// Unread messages of the member who never reads (large size).
    #[arg(long, default_value_t = 100_000)]
    pub unread: u64,
    /// Messages in the long room of the small size, timed alongside.
    #[arg(long, default_value_t = 1_000)]
    pub small_messages: u64,
    /// Rooms of the small size's listing user.
    #[arg(long, default_value_t = 100)]
    pub small_rooms: u64,
    /// Unread messages of the small size; all three 0 = no small size.
    #[arg(long, default_value_t = 1_000)]
    pub small_unread: u64,
    /// Timed requests per operation and size (after one untimed round).
    #[arg(long, default_value_t = 200)]
    pub repeats: usize,
    /// Walks through every page of each room list (100 rooms a page).
    #[arg(long, default_value_t = 3)]
    pub walks: usize,
    /// Connections storing the long room's messages, each its own user.
    #[arg(long, default_value_t = 4)]
    pub senders: usize,
    /// Sends in flight per seeding connection.
    #[arg(long, default_value_t = 64)]
    pub window: usize,
    /// Seconds the seeding of one size may take before the run fails.
    #[arg(long, default_value_t = 3600.0)]
    pub seed_timeout: f64,
    /// Name the run's rooms and users `RUN-small-…` and `RUN-large-…`
    /// instead of fresh ids.
    #[arg(long)]
    pub run: Option<String>,
    /// Seed nothing: time the data an earlier run seeded with the same
    /// `--run` and sizes (say, on the same database served by another
    /// build, so that two builds are compared on the very same rows).
    #[arg(long, requires = "run")]
    pub no_seed: bool,
}

/// One size of data.
#[derive(Debug, Clone, Serialize)]
pub struct Size {
    /// Messages in the long room.
    pub messages: u64,
    /// Rooms of the listing user.
    pub rooms: u64,
    /// Unread messages of the reader.
    pub unread: u64,
}

/// The timings of one size, in milliseconds from sending the request to
/// receiving its answer over the same `/ws` connection.
#[derive(Debug, Serialize)]
pub struct SizeReport {
    /// What was seeded.
    pub size: Size,
    /// Messages stored per second while seeding (room creation included).
    pub seeded_per_s: f64,
    /// `get_history` without bounds: the newest 50.
    pub history_latest: Percentiles,
    /// `get_history` `before_seq` = the oldest seq of the latest page: the
    /// next page a client scrolling up asks for.
    pub history_before: Percentiles,
    /// `get_history` `before_seq: 101`: the far end of the scroll-back.
    pub history_start: Percentiles,
    /// `get_room_list` first page (50 rooms).
    pub room_list: Percentiles,
    /// Every page of the walks through the whole list, 100 rooms each.
    pub room_list_page: Percentiles,
    /// Pages in one walk.
    pub room_list_pages: usize,
    /// `subscribe_room` → `subscribed.unread_count` of the member who has
    /// read nothing (`unread` messages behind).
    pub unread: Percentiles,
    /// The same for the member who sent them all (0 unread, every message
    /// above their marker their own).
    pub unread_own: Percentiles,
}

/// `data` results.
#[derive(Debug, Serialize)]
pub struct DataReport {
    /// Always `data`.
    pub scenario: &'static str,
    /// The prefix of the run's rooms and users (`--run`).
    pub run: String,
    /// Whether this run seeded the data (else an earlier run did).
    pub seeded: bool,
    /// Timed requests per operation and size.
    pub repeats: usize,
    /// Walks through each room list.
    pub walks: usize,
    /// Answers that were not what the seeding implies (must be 0: a timing
    /// of wrong answers means nothing).
    pub wrong: u64,
    /// The first few wrong answers.
    pub problems: Vec<String>,
    /// The small size, if any.
    pub small: Option<SizeReport>,
    /// The large size.
    pub large: SizeReport,
}

/// An authenticated `/ws` connection asking one question at a time.
struct Asker {
    ws: Ws,
    next: u64,
}

impl Asker {
    async fn open(target: &Target, user: &str) -> Result<Asker, BenchError> {
        Ok(Asker {
            ws: target.connect(user).await?,
            next: 0,
        })
    }

    /// Sends `frame` with a fresh `req_id` and waits for the frame that
    /// echoes it; the time between the two.
    async fn ask(
        &mut self,
        mut frame: serde_json::Value,
    ) -> Result<(ServerFrame, Duration), BenchError> {
        self.next += 1;
        let req_id = format!("q{}", self.next);
        frame["req_id"] = serde_json::Value::String(req_id.clone());
        let start = Instant::now();
        self.ws
            .send(Message::text(frame.to_string()))
            .await
            .map_err(|e| BenchError::Setup(format!("request: {e}")))?;
        let deadline = start + ANSWER_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let text = match tokio::time::timeout(left, self.ws.next()).await {
                Ok(Some(Ok(Message::Text(text)))) => text,
                Ok(Some(Ok(Message::Close(_)))) | Ok(None) => {
                    return Err(BenchError::Setup(
                        "closed while waiting for an answer".into(),
                    ));
                }
                Ok(Some(Ok(_))) => continue,
                Ok(Some(Err(e))) => return Err(BenchError::Setup(format!("answer: {e}"))),
                Err(_) => return Err(BenchError::Setup(format!("no answer to {frame}"))),
            };
            let elapsed = start.elapsed();
            let Ok(value) = serde_json::from_str::<serde_json::Value>(&text) else {
                continue;
            };
            if value.get("req_id").and_then(serde_json::Value::as_str) != Some(req_id.as_str()) {
                continue;
            }
            let frame = serde_json::from_value(value)
                .map_err(|e| BenchError::Setup(format!("unreadable answer {text}: {e}")))?;
            return Ok((frame, elapsed));
        }
    }
}

/// Wrong answers, counted and the first few kept.
#[derive(Default)]
struct Checks {
    wrong: u64,
    problems: Vec<String>,
}

impl Checks {
    fn expect(&mut self, ok: bool, what: impl FnOnce() -> String) {
        if !ok {
            self.wrong += 1;
            if self.problems.len() < MAX_PROBLEMS {
                self.problems.push(what());
            }
        }
    }
}

/// The seqs and `has_more` of the page `before_seq: before` of a room with
/// seqs 1..=last (`before` = last + 1 is the latest page).
fn expected_page(before: i64) -> (Vec<i64>, bool) {
    let first = (before - HISTORY_PAGE).max(1);
    ((first..before).collect(), first > 1)
}

/// The operations timed per round, in order.
#[derive(Clone, Copy)]
enum Op {
    HistoryLatest,
    HistoryBefore,
    HistoryStart,
    RoomList,
    Unread,
    UnreadOwn,
}

const OPS: [Op; 6] = [
    Op::HistoryLatest,
    Op::HistoryBefore,
    Op::HistoryStart,
    Op::RoomList,
    Op::Unread,
    Op::UnreadOwn,
];

/// One size's connections and samples.
struct Subject {
    size: Size,
    seeded: Seeded,
    history: Asker,
    lister: Asker,
    reader: Asker,
    writer: Asker,
    samples: [Samples; 6],
    pages: Samples,
    walk_pages: usize,
}

impl Subject {
    /// Asks `op` once and checks the answer; the time it took.
    async fn run(&mut self, op: Op, checks: &mut Checks) -> Result<Duration, BenchError> {
        let last = self.size.messages as i64;
        let room = self.seeded.history_room.clone();
        let history = |before: Option<i64>| match before {
            Some(b) => {
                serde_json::json!({"type": "get_history", "room_id": room, "before_seq": b, "limit": HISTORY_PAGE})
            }
            None => {
                serde_json::json!({"type": "get_history", "room_id": room, "limit": HISTORY_PAGE})
            }
        };
        let (asked_before, asker, frame) = match op {
            Op::HistoryLatest => (last + 1, &mut self.history, history(None)),
            Op::HistoryBefore => {
                let b = (last + 1 - HISTORY_PAGE).max(1);
                (b, &mut self.history, history(Some(b)))
            }
            Op::HistoryStart => {
                let b = (2 * HISTORY_PAGE + 1).min(last + 1);
                (b, &mut self.history, history(Some(b)))
            }
            Op::RoomList => {
                let (frame, took) = self
                    .lister
                    .ask(serde_json::json!({"type": "get_room_list", "limit": LIST_PAGE}))
                    .await?;
                let rooms = self.size.rooms as usize;
                match frame {
                    ServerFrame::RoomList {
                        rooms: page,
                        next_cursor,
                        ..
                    } => {
                        check_list_page(&page, &self.seeded.lister, checks);
                        checks.expect(page.len() == rooms.min(LIST_PAGE), || {
                            format!(
                                "room list: {} rooms, expected {}",
                                page.len(),
                                rooms.min(LIST_PAGE)
                            )
                        });
                        checks.expect(next_cursor.is_some() == (rooms > LIST_PAGE), || {
                            format!("room list: next_cursor {next_cursor:?} with {rooms} rooms")
                        });
                    }
                    other => checks.expect(false, || format!("room list: {other:?}")),
                }
                return Ok(took);
            }
            Op::Unread | Op::UnreadOwn => {
                let (asker, expected) = match op {
                    Op::Unread => (&mut self.reader, self.size.unread as i64),
                    _ => (&mut self.writer, 0),
                };
                let room = &self.seeded.unread_room;
                let (frame, took) = asker
                    .ask(serde_json::json!({"type": "subscribe_room", "room_id": room}))
                    .await?;
                let backlog = self.size.unread as i64;
                match frame {
                    ServerFrame::Subscribed {
                        unread_count,
                        last_seq,
                        ..
                    } => checks.expect(unread_count == expected && last_seq == backlog, || {
                        format!(
                            "{room}: unread {unread_count} last_seq {last_seq}, expected {expected} and {backlog}"
                        )
                    }),
                    other => checks.expect(false, || format!("subscribe {room}: {other:?}")),
                }
                return Ok(took);
            }
        };
        let (frame, took) = asker.ask(frame).await?;
        let (seqs, more) = expected_page(asked_before);
        match frame {
            ServerFrame::History {
                messages, has_more, ..
            } => {
                let got: Vec<i64> = messages.iter().map(|m| m.seq).collect();
                checks.expect(got == seqs && has_more == more, || {
                    format!(
                        "history before {asked_before}: seqs {:?}..{:?} ({}) has_more {has_more}, expected {:?}..{:?} ({}) {more}",
                        got.first(), got.last(), got.len(), seqs.first(), seqs.last(), seqs.len()
                    )
                });
            }
            other => checks.expect(false, || format!("history: {other:?}")),
        }
        Ok(took)
    }

    /// Pages through the whole room list once, timing every page, and
    /// checks it lists each room exactly once, newest activity first.
    async fn walk(&mut self, checks: &mut Checks) -> Result<(), BenchError> {
        let mut seen = std::collections::HashSet::new();
        let mut cursor: Option<String> = None;
        let mut pages = 0;
        let mut previous = None;
        // Bounded: one page more than the rooms need.
        let most = self.size.rooms as usize / WALK_PAGE + 2;
        loop {
            let mut frame = serde_json::json!({"type": "get_room_list", "limit": WALK_PAGE});
            if let Some(cursor) = &cursor {
                frame["cursor"] = serde_json::Value::String(cursor.clone());
            }
            let (answer, took) = self.lister.ask(frame).await?;
            self.pages
                .record(u64::try_from(took.as_micros()).unwrap_or(u64::MAX));
            pages += 1;
            let ServerFrame::RoomList {
                rooms, next_cursor, ..
            } = answer
            else {
                checks.expect(false, || format!("room list walk: {answer:?}"));
                break;
            };
            check_list_page(&rooms, &self.seeded.lister, checks);
            for room in &rooms {
                checks.expect(previous.is_none_or(|p| room.last_message_time <= p), || {
                    format!("room list walk: {} out of order", room.id)
                });
                previous = Some(room.last_message_time);
                checks.expect(seen.insert(room.id.clone()), || {
                    format!("room list walk: {} listed twice", room.id)
                });
            }
            match next_cursor {
                Some(next) if pages < most => cursor = Some(next),
                Some(_) => {
                    checks.expect(false, || format!("room list walk: more than {most} pages"));
                    break;
                }
                None => break,
            }
        }
        checks.expect(seen.len() as u64 == self.size.rooms, || {
            format!(
                "room list walk: {} rooms, expected {}",
                seen.len(),
                self.size.rooms
            )
        });
        self.walk_pages = pages;
        Ok(())
    }

    fn report(self) -> SizeReport {
        let [latest, before, start, list, unread, own] = self.samples;
        SizeReport {
            size: self.size,
            seeded_per_s: self.seeded.stored_per_s,
            history_latest: latest.summary(),
            history_before: before.summary(),
            history_start: start.summary(),
            room_list: list.summary(),
            room_list_page: self.pages.summary(),
            room_list_pages: self.walk_pages,
            unread: unread.summary(),
            unread_own: own.summary(),
        }
    }
}

/// What every listed room must show: one message from the peer, unread 1,
/// the listing user and the peer as participants.
fn check_list_page(page: &[RoomSummary], lister: &str, checks: &mut Checks) {
    for room in page {
        checks.expect(
            room.last_seq == 1
                && room.unread_count == 1
                && room.participants.len() == 2
                && room.participants.iter().any(|p| p.id == lister)
                && room.last_message_content.is_some(),
            || {
                format!(
                    "room list: {} last_seq {} unread {} participants {}",
                    room.id,
                    room.last_seq,
                    room.unread_count,
                    room.participants.len()
                )
            },
        );
    }
}

/// Runs `data`.
pub async fn data(
    target: &Target,
    args: &DataArgs,
    show_progress: bool,
) -> Result<DataReport, BenchError> {
    let large = Size {
        messages: args.messages,
        rooms: args.rooms,
        unread: args.unread,
    };
    let small = Size {
        messages: args.small_messages,
        rooms: args.small_rooms,
        unread: args.small_unread,
    };
    let with_small = small.messages + small.rooms + small.unread > 0;
    let mut sizes = vec![("large", large)];
    if with_small {
        sizes.insert(0, ("small", small));
    }
    for (label, size) in &sizes {
        if size.messages == 0 || size.rooms == 0 || size.unread == 0 {
            return Err(BenchError::Setup(format!(
                "every count of the {label} size must be at least 1: {size:?}"
            )));
        }
    }
    let run = args.run.clone().unwrap_or_else(|| run_id("d"));
    let stored = Arc::new(AtomicU64::new(0));
    let phase = Arc::new(std::sync::Mutex::new(String::from("seeding")));
    let _progress = show_progress.then(|| {
        let (stored, phase) = (stored.clone(), phase.clone());
        Progress::start(move |elapsed| {
            let phase = phase.lock().map(|p| p.clone()).unwrap_or_default();
            format!(
                "data {elapsed:>6.1}s  {phase}  stored {}",
                stored.load(Relaxed)
            )
        })
    });
    let set_phase = |text: String| {
        if let Ok(mut p) = phase.lock() {
            *p = text;
        }
    };
    let mut seeded = Vec::with_capacity(sizes.len());
    for (label, size) in sizes {
        let prefix = format!("{run}-{label}");
        let made = match args.no_seed {
            true => Seeded::named(&prefix),
            false => {
                set_phase(format!("seeding {label}"));
                seed(target, &prefix, &size, args, &stored).await?
            }
        };
        seeded.push((size, made));
    }
    // Connected only now: a connection that sat unread through a long
    // seeding would have missed the server's pings and been closed.
    let mut subjects = Vec::with_capacity(seeded.len());
    for (size, seeded) in seeded {
        subjects.push(Subject {
            history: Asker::open(target, &seeded.history_user).await?,
            lister: Asker::open(target, &seeded.lister).await?,
            reader: Asker::open(target, &seeded.reader).await?,
            writer: Asker::open(target, &seeded.writer).await?,
            size,
            seeded,
            samples: Default::default(),
            pages: Samples::default(),
            walk_pages: 0,
        });
    }
    let mut checks = Checks::default();
    // Round 0 warms caches and is not recorded; sizes alternate within
    // every round so that a drift of the machine touches both alike.
    for round in 0..=args.repeats {
        set_phase(format!("round {round}/{}", args.repeats));
        for subject in &mut subjects {
            for (i, op) in OPS.iter().enumerate() {
                let took = subject.run(*op, &mut checks).await?;
                if round > 0 {
                    subject.samples[i].record(u64::try_from(took.as_micros()).unwrap_or(u64::MAX));
                }
            }
        }
    }
    for walk in 0..args.walks {
        set_phase(format!("walk {}/{}", walk + 1, args.walks));
        for subject in &mut subjects {
            subject.walk(&mut checks).await?;
        }
    }
    let mut reports = subjects.into_iter().map(Subject::report);
    let first = reports
        .next()
        .ok_or_else(|| BenchError::Setup("no size".into()))?;
    let (small, large) = match reports.next() {
        Some(large) => (Some(first), large),
        None => (None, first),
    };
    Ok(DataReport {
        scenario: "data",
        run,
        seeded: !args.no_seed,
        repeats: args.repeats,
        walks: args.walks,
        wrong: checks.wrong,
        problems: checks.problems,
        small,
        large,
    })
}
