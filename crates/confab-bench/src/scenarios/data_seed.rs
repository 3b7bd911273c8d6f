//! Seeding for `data`: rooms created and messages stored through the
//! server's own API (REST with the server key, `send_message` over `/ws`),
//! never behind its back, so what is read later is what real clients wrote.

use super::*;
use futures_util::stream;

/// Rooms created at once while seeding.
const CREATE_CONCURRENCY: usize = 32;

/// What the seeding of one size made (or, with `--no-seed`, what an earlier
/// seeding under the same name made): where each measured read looks.
pub(super) struct Seeded {
    /// The long room.
    pub history_room: String,
    /// A member of it (its first sender).
    pub history_user: String,
    /// The room with the unread backlog.
    pub unread_room: String,
    /// Its only sender (everything it sent is its own, so unread 0).
    pub writer: String,
    /// Its other member, who never reads.
    pub reader: String,
    /// The user who is a member of every room of the list.
    pub lister: String,
    /// Messages stored per second while seeding this size (0 when the data
    /// was seeded by an earlier run).
    pub stored_per_s: f64,
}

impl Seeded {
    /// The rooms and users of one size seeded under `prefix`.
    pub(super) fn named(prefix: &str) -> Seeded {
        Seeded {
            history_room: format!("{prefix}-history"),
            history_user: format!("{prefix}-s0"),
            unread_room: format!("{prefix}-unread"),
            writer: format!("{prefix}-writer"),
            reader: format!("{prefix}-reader"),
            lister: format!("{prefix}-lister"),
            stored_per_s: 0.0,
        }
    }
}

/// One `send_message` of seeding; the content has the length of a short
/// chat line.
fn seed_frame(room: &str, n: u64) -> String {
    let room = serde_json::Value::String(room.to_owned());
    format!(
        r#"{{"type":"send_message","room_id":{room},"content":"seeded message {n} of the data scenario"}}"#
    )
}

/// Sends `frames` on one connection, keeping up to `window` unacknowledged,
/// until every one is acked; an `error` frame, a closed socket or the
/// deadline fails the seeding.
async fn send_all(
    mut ws: Ws,
    frames: Vec<String>,
    window: usize,
    deadline: Instant,
    stored: Arc<AtomicU64>,
) -> Result<(), BenchError> {
    let total = frames.len();
    let mut frames = frames.into_iter();
    let (mut sent, mut acked) = (0_usize, 0_usize);
    while acked < total {
        let mut fed = false;
        while sent < total && sent - acked < window.max(1) {
            let Some(frame) = frames.next() else { break };
            ws.feed(Message::text(frame))
                .await
                .map_err(|e| BenchError::Setup(format!("seeding send: {e}")))?;
            sent += 1;
            fed = true;
        }
        if fed {
            ws.flush()
                .await
                .map_err(|e| BenchError::Setup(format!("seeding send: {e}")))?;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let text = match tokio::time::timeout(left, ws.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => text,
            Ok(Some(Ok(Message::Close(frame)))) => {
                return Err(BenchError::Setup(format!("seeding: closed {frame:?}")));
            }
            Ok(Some(Ok(_))) => continue,
            Ok(Some(Err(e))) => return Err(BenchError::Setup(format!("seeding: {e}"))),
            Ok(None) => return Err(BenchError::Setup("seeding: closed".into())),
            Err(_) => return Err(BenchError::Setup("seeding: --seed-timeout passed".into())),
        };
        match Lite::parse(&text).map(|lite| lite.kind) {
            Some(kind) if kind == "message_ack" => {
                acked += 1;
                stored.fetch_add(1, Relaxed);
            }
            Some(kind) if kind == "error" => {
                return Err(BenchError::Setup(format!("seeding: {text}")));
            }
            _ => {}
        }
    }
    Ok(())
}

/// Stores `count` messages in `room`, shared out over `senders` (each its
/// own connection), and checks the room's `last_seq` is `count` after.
async fn fill_room(
    target: &Target,
    room: &str,
    senders: &[String],
    count: u64,
    window: usize,
    deadline: Instant,
    stored: &Arc<AtomicU64>,
) -> Result<(), BenchError> {
    let sockets = connect_all(target, senders).await?;
    let n = senders.len() as u64;
    let mut tasks = Vec::with_capacity(sockets.len());
    for (i, ws) in sockets.into_iter().enumerate() {
        let i = i as u64;
        let share = count / n + u64::from(i < count % n);
        let frames = (0..share).map(|k| seed_frame(room, k * n + i)).collect();
        tasks.push(tokio::spawn(send_all(
            ws,
            frames,
            window,
            deadline,
            stored.clone(),
        )));
    }
    for task in tasks {
        task.await.map_err(|e| BenchError::Setup(e.to_string()))??;
    }
    let last_seq = target.last_seq(room, &senders[0]).await?;
    if last_seq != count as i64 {
        return Err(BenchError::Setup(format!(
            "{room}: last_seq {last_seq} after seeding {count} messages"
        )));
    }
    Ok(())
}

/// Seeds one size: the long room, the unread backlog, and the rooms of the
/// list, each of those with one message from a second member (so each
/// listed room has a last message and one unread).
pub(super) async fn seed(
    target: &Target,
    prefix: &str,
    size: &Size,
    args: &DataArgs,
    stored: &Arc<AtomicU64>,
) -> Result<Seeded, BenchError> {
    let deadline = Instant::now() + Duration::from_secs_f64(args.seed_timeout);
    let start = Instant::now();
    let before = stored.load(Relaxed);

    let mut seeded = Seeded::named(prefix);
    let history_room = seeded.history_room.clone();
    let senders: Vec<String> = (0..args.senders.max(1))
        .map(|s| format!("{prefix}-s{s}"))
        .collect();
    target.create_room(&history_room, &senders).await?;
    fill_room(
        target,
        &history_room,
        &senders,
        size.messages,
        args.window,
        deadline,
        stored,
    )
    .await?;

    let unread_room = seeded.unread_room.clone();
    let (writer, reader) = (seeded.writer.clone(), seeded.reader.clone());
    target
        .create_room(&unread_room, &[writer.clone(), reader.clone()])
        .await?;
    let writers = [writer.clone()];
    fill_room(
        target,
        &unread_room,
        &writers,
        size.unread,
        args.window,
        deadline,
        stored,
    )
    .await?;

    let (lister, peer) = (seeded.lister.clone(), format!("{prefix}-peer"));
    let rooms: Vec<String> = (0..size.rooms).map(|r| format!("{prefix}-l{r}")).collect();
    let members = [lister.clone(), peer.clone()];
    let created: Vec<Result<(), BenchError>> = stream::iter(rooms.iter())
        .map(|room| target.create_room(room, &members))
        .buffer_unordered(CREATE_CONCURRENCY)
        .collect()
        .await;
    created.into_iter().collect::<Result<Vec<()>, _>>()?;
    let ws = target.connect(&peer).await?;
    let frames = rooms
        .iter()
        .enumerate()
        .map(|(n, room)| seed_frame(room, n as u64))
        .collect();
    send_all(ws, frames, args.window, deadline, stored.clone()).await?;

    let count = stored.load(Relaxed) - before;
    seeded.stored_per_s = count as f64 / start.elapsed().as_secs_f64().max(1e-9);
    Ok(seeded)
}
