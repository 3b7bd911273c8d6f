//! `confab`: the chat server binary. Thin on purpose: it parses the command
//! line, builds the configuration, and hands over to `confab-server`.

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use confab_server::App;
use confab_server::auth::{Authenticator, TokenRequest};
use confab_server::config::{Config, Overrides};
use confab_server::store::{GlobalRole, ROLE_NAME_RULE};
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

/// mimalloc instead of the system allocator: the hot paths allocate small,
/// short-lived buffers on several threads (frames, rows, fan-out), where
/// glibc's arenas cost measurably more (docs/performance.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A real-time chat server: rooms, persisted messages, one WebSocket per user.
#[derive(Parser)]
#[command(name = "confab", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve(ConfigArgs),
    /// Print a JWT for a user, signed with the configured secret.
    Token(TokenArgs),
    /// Apply database migrations and exit.
    Migrate(ConfigArgs),
    /// Load-test a running confab, or run the zero-storage baseline server.
    Bench(confab_bench::BenchArgs),
}

/// Where the configuration comes from; flags override file and environment.
#[derive(Args)]
struct ConfigArgs {
    /// TOML configuration file (default: ./confab.toml if present).
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// `host:port` to listen on.
    #[arg(long)]
    listen: Option<String>,
    /// Folder for the SQLite file, uploads and the generated secret.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// `sqlite://PATH` or `postgres://USER:PASSWORD@HOST:PORT/DB` (default: the data dir's confab.db).
    #[arg(long)]
    database_url: Option<String>,
    /// Log as JSON lines instead of text.
    #[arg(long)]
    log_json: bool,
}

#[derive(Args)]
struct TokenArgs {
    /// The user id (`sub`).
    #[arg(long)]
    user: String,
    /// Display name.
    #[arg(long)]
    name: Option<String>,
    /// Global role: admin, member, viewer, or an app's own name (analyst).
    #[arg(long)]
    role: Option<String>,
    /// Lifetime, e.g. 30m, 1h, 7d.
    #[arg(long, default_value = "1h")]
    ttl: humantime::Duration,
    #[command(flatten)]
    config: ConfigArgs,
}

impl ConfigArgs {
    fn load(&self) -> anyhow::Result<Config> {
        let overrides = Overrides {
            listen: self.listen.clone(),
            data_dir: self.data_dir.clone(),
            database_url: self.database_url.clone(),
        };
        Ok(Config::load(self.config.as_deref(), &overrides)?)
    }
}

fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => {
            init_logging(args.log_json);
            serve(args.load()?).await
        }
        Command::Token(args) => {
            let config = args.config.load()?;
            let role = match args.role.as_deref() {
                None => None,
                Some(name) => Some(
                    GlobalRole::parse(name)
                        .with_context(|| format!("bad role {name:?}: {ROLE_NAME_RULE}"))?,
                ),
            };
            let secret = config.resolve_jwt_secret()?;
            let auth = Authenticator::new(&secret, "", config.auth.leeway_s);
            let token = auth.mint(&TokenRequest {
                user_id: args.user,
                name: args.name,
                role,
                ttl: Duration::from(args.ttl),
            })?;
            println!("{token}");
            Ok(())
        }
        Command::Bench(args) => Ok(confab_bench::run(args).await?),
        Command::Migrate(args) => {
            init_logging(args.log_json);
            let config = args.load()?;
            confab_server::app::migrate(&config).await?;
            eprintln!("migrations applied to {}", config.database_url_redacted());
            Ok(())
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let listen = config.listen.clone();
    let app = App::build(config).await?;
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let addr = listener.local_addr()?;
    // The contract's first stdout line; scripts and tests wait for it.
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "listening on http://{addr}")?;
    stdout.flush()?;
    drop(stdout);
    tracing::info!(%addr, "confab serving");
    app.serve(listener, shutdown_signal()).await?;
    tracing::info!("confab stopped");
    Ok(())
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C).
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
    tracing::info!("shutdown signal received");
}
