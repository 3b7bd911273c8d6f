//! Fresh PostgreSQL databases for tests: one per store or server, created on
//! the server named by `CONFAB_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`), dropped when their guard is.
//!
//! Shared by the end-to-end tests (as `common::postgres`) and the store's unit
//! tests (included with `#[path]`), so it uses only what both have: sqlx and
//! tokio. Databases are named `confab_test_<pid>_<n>`; the first database a
//! test process creates is preceded by a sweep that drops those left behind
//! by test processes that no longer run (a killed run cannot drop its own).
//! An unreachable server fails the test loudly: nothing is skipped.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sqlx::{Connection, Executor, PgConnection};
use std::sync::atomic::{AtomicU64, Ordering};

/// Where the tests' PostgreSQL server is, unless `CONFAB_TEST_POSTGRES_URL` says otherwise.
pub const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// The prefix of every test database's name.
const PREFIX: &str = "confab_test_";

/// A database that exists until this guard is dropped.
#[derive(Debug)]
pub struct TestDatabase {
    name: String,
    url: String,
    admin_url: String,
}

/// The URL of the maintenance database tests connect to to create theirs.
pub fn admin_url() -> String {
    std::env::var("CONFAB_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_ADMIN_URL.to_owned())
}

impl TestDatabase {
    /// Creates an empty database (no schema: the store migrates it).
    pub async fn create() -> TestDatabase {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        static SWEPT: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();

        let admin_url = admin_url();
        let mut admin = connect(&admin_url).await;
        SWEPT
            .get_or_init(|| async { sweep(&admin_url).await })
            .await;
        let name = format!(
            "{PREFIX}{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        admin
            .execute(&*format!("CREATE DATABASE {name}"))
            .await
            .unwrap_or_else(|e| panic!("CREATE DATABASE {name} on {admin_url}: {e}"));
        let _ = admin.close().await;
        TestDatabase {
            url: with_database(&admin_url, &name),
            name,
            admin_url,
        }
    }

    /// `postgres://…/confab_test_…`: what `database_url` is set to.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // Drop may run inside a runtime, which must not block on itself: a
        // plain thread with its own small runtime can.
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(drop_database(&admin_url, &name));
        })
        .join();
        if dropped.is_err() {
            eprintln!("could not drop test database {}", self.name);
        }
    }
}

/// Connects to the admin database, failing the test with a hint if it cannot.
async fn connect(admin_url: &str) -> PgConnection {
    PgConnection::connect(admin_url).await.unwrap_or_else(|e| {
        panic!(
            "PostgreSQL is not reachable at {admin_url} ({e}): start it (scripts/test.sh does) \
             or point CONFAB_TEST_POSTGRES_URL at one"
        )
    })
}

/// Drops a database even if connections to it remain (a server the test aborted).
async fn drop_database(admin_url: &str, name: &str) {
    let mut admin = connect(admin_url).await;
    if let Err(e) = admin
        .execute(&*format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await
    {
        eprintln!("DROP DATABASE {name}: {e}");
    }
    let _ = admin.close().await;
}

/// Drops the test databases whose creating process is gone.
async fn sweep(admin_url: &str) {
    let mut admin = connect(admin_url).await;
    let names: Vec<String> =
        sqlx::query_scalar("SELECT datname FROM pg_database WHERE starts_with(datname, $1)")
            .bind(PREFIX)
            .fetch_all(&mut admin)
            .await
            .unwrap();
    let _ = admin.close().await;
    for name in names {
        let pid = name[PREFIX.len()..].split('_').next().unwrap_or("");
        let alive = !pid.is_empty() && std::path::Path::new(&format!("/proc/{pid}")).exists();
        if !alive {
            drop_database(admin_url, &name).await;
        }
    }
}

/// `admin_url` with its database replaced by `name` (query parameters kept).
fn with_database(admin_url: &str, name: &str) -> String {
    let (base, query) = match admin_url.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (admin_url, String::new()),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let host_end = base[authority_start..]
        .find('/')
        .map_or(base.len(), |i| authority_start + i);
    format!("{}/{name}{query}", &base[..host_end])
}
