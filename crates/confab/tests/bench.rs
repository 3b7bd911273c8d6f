//! `confab bench` so that it never rots: a short run of every scenario
//! against a real `confab serve` (and fanout against the baseline server),
//! asserting correctness counts only, never speed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// Fresh PostgreSQL databases: the same helper the server's tests use.
#[path = "../../confab-server/tests/common/postgres.rs"]
mod postgres;

const KEY: &str = "bench-key";
const SECRET: &str = "bench-secret-for-the-smoke-test";

/// A server child process (`confab serve` or `confab bench baseline-server`),
/// killed on drop.
struct Server {
    child: Child,
    base: String,
    _dir: tempfile::TempDir,
}

impl Server {
    fn start(args: &[&str], env: &[(&str, &str)]) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_confab"));
        command
            .args(args)
            .current_dir(dir.path())
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command.spawn().unwrap();
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        let base = first
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
            .to_owned();
        Server {
            child,
            base,
            _dir: dir,
        }
    }

    /// `confab serve` with every rate limit and connection cap lifted, as
    /// docs/performance.md runs it.
    fn confab() -> Server {
        Self::confab_on("")
    }

    /// [`Server::confab`] on this database (empty: SQLite in its temp dir).
    fn confab_on(database_url: &str) -> Server {
        let big = "100000000";
        Server::start(
            &["serve"],
            &[
                ("CONFAB_DATABASE_URL", database_url),
                ("CONFAB_LISTEN", "127.0.0.1:0"),
                ("CONFAB_API_KEY", KEY),
                ("CONFAB_JWT_SECRET", SECRET),
                ("CONFAB_RATE_LIMIT__MESSAGES_PER_MINUTE", big),
                ("CONFAB_RATE_LIMIT__BURST", big),
                ("CONFAB_RATE_LIMIT__HANDSHAKES_PER_MINUTE", big),
                ("CONFAB_RATE_LIMIT__HANDSHAKE_BURST", big),
                ("CONFAB_LIMITS__MAX_CONNECTIONS_PER_USER", big),
                ("CONFAB_LIMITS__MAX_CONNECTIONS_PER_ADDRESS", big),
            ],
        )
    }

    fn baseline() -> Server {
        Server::start(
            &["bench", "baseline-server", "--listen", "127.0.0.1:0"],
            &[],
        )
    }

    fn pid(&self) -> String {
        self.child.id().to_string()
    }

    /// Runs `confab bench SCENARIO --json ARGS` against this server and
    /// returns its one JSON report.
    fn bench(&self, scenario: &str, args: &[&str]) -> Value {
        let out = Command::new(env!("CARGO_BIN_EXE_confab"))
            .args(["bench", scenario, "--json", "--url", &self.base])
            .args(["--api-key", KEY, "--jwt-secret", SECRET])
            .args(args)
            .env_remove("CONFAB_API_KEY")
            .env_remove("CONFAB_JWT_SECRET")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "bench {scenario} failed: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let lines: Vec<&str> = stdout.lines().collect();
        assert_eq!(lines.len(), 1, "one JSON object per scenario: {stdout}");
        let report: Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(report["scenario"], scenario);
        report
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn int(report: &Value, key: &str) -> u64 {
    report[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} in {report}"))
}

/// Every acked message reached every reading member, nothing failed.
fn assert_fanout_complete(report: &Value) {
    assert!(int(report, "acked") > 0, "{report}");
    assert_eq!(int(report, "acked"), int(report, "sent"), "{report}");
    assert_eq!(int(report, "errors"), 0, "{report}");
    assert_eq!(
        int(report, "delivered"),
        int(report, "acked") * int(report, "members"),
        "{report}"
    );
    assert_eq!(
        int(report, "delivered"),
        int(report, "expected"),
        "{report}"
    );
}

/// A fan-out small enough for a test: 3 rooms × 3 members, 2 senders, half a second.
const SMALL_FANOUT: [&str; 8] = [
    "--rooms",
    "3",
    "--members",
    "3",
    "--senders",
    "2",
    "--duration",
    "0.5",
];

#[test]
fn fanout_on_confab_and_on_the_baseline_delivers_everything() {
    let confab = Server::confab();
    assert_fanout_complete(&confab.bench("fanout", &SMALL_FANOUT));
    let baseline = Server::baseline();
    assert_fanout_complete(&baseline.bench("fanout", &SMALL_FANOUT));
}

#[test]
fn fanout_with_a_stalled_reader_still_delivers_to_the_others() {
    let confab = Server::confab();
    let report = confab.bench(
        "fanout",
        &[
            "--rooms",
            "2",
            "--members",
            "3",
            "--stalled-readers",
            "1",
            "--duration",
            "0.5",
        ],
    );
    assert_eq!(int(&report, "stalled_readers"), 1);
    assert_fanout_complete(&report);
}

#[test]
fn fanout_at_a_given_rate_delivers_everything() {
    let confab = Server::confab();
    let report = confab.bench(
        "fanout",
        &[
            "--rooms",
            "2",
            "--members",
            "2",
            "--rate",
            "200",
            "--duration",
            "0.5",
        ],
    );
    assert_fanout_complete(&report);
}

/// Every send of a run was stored once: acks for all, no repeated or
/// missing seq (a send stored twice, or a `client_msg_id` taken for a
/// repeat, would show as a gap).
fn assert_ingest_complete(report: &Value) {
    assert!(int(report, "stored") > 0, "{report}");
    assert_eq!(int(report, "stored"), int(report, "sent"), "{report}");
    assert_eq!(int(report, "errors"), 0, "{report}");
    assert_eq!(int(report, "gaps"), 0, "{report}");
}

#[test]
fn sends_carry_a_client_msg_id_and_metadata_unless_told_not_to() {
    let confab = Server::confab();
    let args = ["--senders", "2", "--duration", "0.3"];
    let keyed = confab.bench("ingest", &args);
    assert_eq!(
        keyed["shape"],
        serde_json::json!({"no_client_msg_id": false, "no_metadata": false})
    );
    assert_ingest_complete(&keyed);
    let plain = confab.bench(
        "ingest",
        &[&args[..], &["--no-client-msg-id", "--no-metadata"]].concat(),
    );
    assert_eq!(
        plain["shape"],
        serde_json::json!({"no_client_msg_id": true, "no_metadata": true})
    );
    assert_ingest_complete(&plain);
}

#[test]
fn keyed_sends_on_postgres_are_stored_once_and_fanned_out_to_all() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let database = runtime.block_on(postgres::TestDatabase::create());
    let confab = Server::confab_on(database.url());
    assert_ingest_complete(&confab.bench(
        "ingest",
        &["--senders", "4", "--rooms", "2", "--duration", "0.5"],
    ));
    assert_fanout_complete(&confab.bench("fanout", &SMALL_FANOUT));
    drop(confab);
    drop(database);
}

#[test]
fn ingest_stores_every_send_with_gap_free_seqs() {
    let confab = Server::confab();
    let report = confab.bench(
        "ingest",
        &["--senders", "4", "--rooms", "2", "--duration", "0.5"],
    );
    assert_ingest_complete(&report);
}

#[test]
fn connections_open_and_hold_with_rss_measured() {
    let confab = Server::confab();
    let report = confab.bench(
        "connections",
        &[
            "--count",
            "100",
            "--concurrency",
            "16",
            "--hold",
            "0.2",
            "--pid",
            &confab.pid(),
        ],
    );
    assert_eq!(int(&report, "opened"), 100, "{report}");
    assert_eq!(int(&report, "still_open"), 100, "{report}");
    assert_eq!(int(&report, "failures"), 0, "{report}");
    assert!(int(&report, "rss_after_kib") > 0, "{report}");
}

#[test]
fn resume_loses_and_repeats_nothing() {
    let confab = Server::confab();
    let report = confab.bench(
        "resume",
        &[
            "--rooms",
            "2",
            "--resumers",
            "2",
            "--rate",
            "200",
            "--cycles",
            "2",
            "--away-ms",
            "100",
            "--duration",
            "1.5",
        ],
    );
    assert!(int(&report, "acked") > 0, "{report}");
    assert_eq!(int(&report, "resumes"), 2 * 2 * 2, "{report}");
    for key in ["gaps", "duplicates", "missing", "errors"] {
        assert_eq!(int(&report, key), 0, "{key}: {report}");
    }
}

/// Every timed answer of `data` was right, at both sizes, and each
/// operation was timed the number of times asked.
fn assert_data_right(report: &Value, repeats: u64) {
    assert_eq!(int(report, "wrong"), 0, "{report}");
    assert_eq!(report["problems"], serde_json::json!([]), "{report}");
    for size in ["small", "large"] {
        let size = &report[size];
        for op in [
            "history_latest",
            "history_before",
            "history_start",
            "room_list",
            "unread",
            "unread_own",
        ] {
            assert!(size[op]["max_ms"].as_f64().unwrap() > 0.0, "{op}: {report}");
        }
        assert!(size["room_list_page"]["max_ms"].as_f64().unwrap() > 0.0);
    }
    // 130 rooms at 100 a page; 20 at 100 a page.
    assert_eq!(int(&report["large"], "room_list_pages"), 2, "{report}");
    assert_eq!(int(&report["small"], "room_list_pages"), 1, "{report}");
    assert_eq!(int(report, "repeats"), repeats, "{report}");
}

const DATA_ARGS: [&str; 18] = [
    "--messages",
    "260",
    "--rooms",
    "130",
    "--unread",
    "70",
    "--small-messages",
    "30",
    "--small-rooms",
    "20",
    "--small-unread",
    "5",
    "--repeats",
    "3",
    "--walks",
    "1",
    "--senders",
    "3",
];

#[test]
fn data_reads_are_right_at_both_sizes() {
    let confab = Server::confab();
    let report = confab.bench("data", &DATA_ARGS);
    assert_data_right(&report, 3);
    assert_eq!(int(&report["large"]["size"], "messages"), 260, "{report}");
    assert_eq!(report["seeded"], true, "{report}");
    // Seeded once under a name, timed again without seeding.
    let named = [&DATA_ARGS[..], &["--run", "smoke"]].concat();
    assert_data_right(&confab.bench("data", &named), 3);
    let again = confab.bench("data", &[&named[..], &["--no-seed"]].concat());
    assert_data_right(&again, 3);
    assert_eq!(again["seeded"], false, "{again}");
    assert_eq!(again["run"], "smoke", "{again}");
}

#[test]
fn data_reads_are_right_at_both_sizes_on_postgres() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let database = runtime.block_on(postgres::TestDatabase::create());
    let confab = Server::confab_on(database.url());
    assert_data_right(&confab.bench("data", &DATA_ARGS), 3);
    drop(confab);
    drop(database);
}
