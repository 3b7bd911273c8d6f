//! `confab bench`: a load generator for any running confab, and a
//! zero-storage baseline server to compare it with in the same run.
//!
//! The generator speaks the wire protocol through `confab-protocol`'s frames
//! (decoding only the fields it needs on the hot path), signs its own user
//! tokens with the server's JWT secret and creates its rooms with the server
//! key, so it needs nothing from the server but its URL and those two secrets.
//! Results print as a table, or with `--json` as one JSON object per line.

pub mod baseline;
pub mod conn;
pub mod scenarios;
pub mod stats;

use clap::{Args, Subcommand};
use serde::Serialize;
use std::io::Write;
use std::time::Instant;

/// Why a bench run stopped.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// Setting the scenario up failed (rooms, subscriptions, bad options).
    #[error("set-up failed: {0}")]
    Setup(String),
    /// A connection could not be opened or authenticated.
    #[error("connection failed: {0}")]
    Connect(String),
}

/// `confab bench …`
#[derive(Args, Debug)]
pub struct BenchArgs {
    #[command(subcommand)]
    command: BenchCommand,
}

#[derive(Subcommand, Debug)]
enum BenchCommand {
    /// R rooms × M members; S senders per room at a rate or saturating.
    Fanout {
        #[command(flatten)]
        target: TargetArgs,
        #[command(flatten)]
        args: scenarios::FanoutArgs,
    },
    /// N senders storing messages as fast as their acks come back.
    Ingest {
        #[command(flatten)]
        target: TargetArgs,
        #[command(flatten)]
        args: scenarios::IngestArgs,
    },
    /// Open N authenticated connections and hold them idle.
    Connections {
        #[command(flatten)]
        target: TargetArgs,
        #[command(flatten)]
        args: scenarios::ConnectionsArgs,
    },
    /// Clients that drop and resume with `since_seq` under load.
    Resume {
        #[command(flatten)]
        target: TargetArgs,
        #[command(flatten)]
        args: scenarios::ResumeArgs,
    },
    /// History, room list and unread at a small and a large size of data,
    /// seeded through the API, each answer checked.
    Data {
        #[command(flatten)]
        target: TargetArgs,
        #[command(flatten)]
        args: scenarios::DataArgs,
    },
    /// A zero-storage broadcast server speaking the same frames.
    BaselineServer {
        /// `host:port` (port 0 picks one; the first stdout line says which).
        #[arg(long, default_value = "127.0.0.1:8090")]
        listen: String,
        /// WebSocket read/write buffer per connection in bytes (default: axum's 128 KiB, as confab).
        #[arg(long)]
        buffer_bytes: Option<usize>,
    },
}

/// Which server to load and how to act on it.
#[derive(Args, Debug)]
struct TargetArgs {
    /// The server's base URL.
    #[arg(
        long,
        env = "CONFAB_BENCH_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    url: String,
    /// The server key (creates the rooms).
    #[arg(
        long,
        env = "CONFAB_API_KEY",
        default_value = "bench",
        hide_env_values = true
    )]
    api_key: String,
    /// The JWT secret (signs a token per simulated user).
    #[arg(
        long,
        env = "CONFAB_JWT_SECRET",
        default_value = "bench",
        hide_env_values = true
    )]
    jwt_secret: String,
    /// One JSON object per scenario on stdout instead of a table; no progress line.
    #[arg(long)]
    json: bool,
}

impl TargetArgs {
    fn target(&self) -> Result<conn::Target, BenchError> {
        conn::Target::new(&self.url, &self.api_key, &self.jwt_secret)
    }
}

/// Runs one `confab bench` command to the end and prints its report.
pub async fn run(args: BenchArgs) -> Result<(), BenchError> {
    match args.command {
        BenchCommand::BaselineServer {
            listen,
            buffer_bytes,
        } => baseline::serve(&listen, buffer_bytes).await,
        BenchCommand::Fanout { target, args } => {
            let report = scenarios::fanout(&target.target()?, &args, !target.json).await?;
            emit(&report, target.json)
        }
        BenchCommand::Ingest { target, args } => {
            let report = scenarios::ingest(&target.target()?, &args, !target.json).await?;
            emit(&report, target.json)
        }
        BenchCommand::Connections { target, args } => {
            let report = scenarios::connections(&target.target()?, &args, !target.json).await?;
            emit(&report, target.json)
        }
        BenchCommand::Resume { target, args } => {
            let report = scenarios::resume(&target.target()?, &args, !target.json).await?;
            emit(&report, target.json)
        }
        BenchCommand::Data { target, args } => {
            let report = scenarios::data(&target.target()?, &args, !target.json).await?;
            emit(&report, target.json)
        }
    }
}

/// Prints a report: one JSON line, or a two-column table of its fields.
fn emit<T: Serialize>(report: &T, json: bool) -> Result<(), BenchError> {
    let value = serde_json::to_value(report).map_err(|e| BenchError::Setup(e.to_string()))?;
    let mut out = std::io::stdout().lock();
    let result = if json {
        writeln!(out, "{value}")
    } else {
        let mut lines = Vec::new();
        flatten("", &value, &mut lines);
        let width = lines.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        lines
            .iter()
            .try_for_each(|(k, v)| writeln!(out, "{k:<width$}  {v}"))
    };
    result.map_err(|e| BenchError::Setup(format!("stdout: {e}")))
}

/// `latency.p99_ms`-style rows, numbers rounded for people.
fn flatten(prefix: &str, value: &serde_json::Value, out: &mut Vec<(String, String)>) {
    match value {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out);
            }
        }
        serde_json::Value::Number(n) if n.is_f64() => {
            out.push((
                prefix.to_owned(),
                format!("{:.2}", n.as_f64().unwrap_or(0.0)),
            ));
        }
        serde_json::Value::Null => out.push((prefix.to_owned(), "-".into())),
        serde_json::Value::String(s) => out.push((prefix.to_owned(), s.clone())),
        other => out.push((prefix.to_owned(), other.to_string())),
    }
}

/// A progress line on stderr, rewritten every second while a run lasts.
pub struct Progress {
    task: tokio::task::JoinHandle<()>,
}

impl Progress {
    /// Starts printing `line(seconds since start)` every second.
    pub fn start(line: impl Fn(f64) -> String + Send + 'static) -> Self {
        let start = Instant::now();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
            tick.tick().await;
            loop {
                tick.tick().await;
                eprint!("\r{}   ", line(start.elapsed().as_secs_f64()));
            }
        });
        Progress { task }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.task.abort();
        eprintln!();
    }
}
