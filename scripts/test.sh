#!/usr/bin/env bash
# The test command of the README: makes sure the services the tests use are
# running, builds everything and runs every test:
#   1. the whole workspace on SQLite (unit tests beside the code, end-to-end
#      tests in each crate's tests/), which includes the store's conformance
#      tests on PostgreSQL and the CLI's PostgreSQL smoke test;
#   2. the end-to-end suites again with the server's tests on PostgreSQL
#      (CONFAB_TEST_DATABASE=postgres: a fresh database per test server);
#   3. the JavaScript client's tests (clients/js/test/, Node.js's own test
#      runner) against the binary step 1 built (CONFAB_BIN overrides it);
#   4. the browser client's end-to-end tests (tests/browser/): the page at
#      GET / in Debian's Chromium, driven by playwright-core from npm (no
#      browser is downloaded), against the same binary.
#
# PostgreSQL (127.0.0.1:5432), Redis (127.0.0.1:6379) and NATS with JetStream
# (127.0.0.1:4222) are normally running on this project's machines, and
# Node.js (for the examples) is installed. Whatever is not is started, and
# installed from the system's packages first if missing. A service that cannot be made available stops the run with an
# error: nothing is skipped silently. Extra arguments go to both cargo test
# runs (e.g. a test name filter).
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

say() { echo "test.sh: $*" >&2; }
die() { say "error: $*"; exit 1; }

# Whether something accepts TCP connections on 127.0.0.1:$1.
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Waits up to 30 s for port $1 ($2 names the service), else fails.
wait_for() {
    for _ in $(seq 1 60); do
        if listening "$1"; then return 0; fi
        sleep 0.5
    done
    die "$2 is still not listening on 127.0.0.1:$1"
}

APT_UPDATED=""
install_packages() {
    command -v apt-get >/dev/null || die "cannot install $* (no apt-get); install it by hand"
    if [ -z "$APT_UPDATED" ]; then
        $SUDO apt-get update -qq || die "apt-get update failed"
        APT_UPDATED=1
    fi
    say "installing $*"
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@" >/dev/null \
        || die "apt-get install $* failed"
}

ensure_postgres() {
    if listening 5432; then return 0; fi
    local installed_now=""
    if [ ! -d /etc/postgresql ] || [ -z "$(ls /etc/postgresql 2>/dev/null)" ]; then
        install_packages postgresql
        installed_now=1
    fi
    local version
    version="$(ls /etc/postgresql | sort -V | tail -n 1)"
    if [ -n "$installed_now" ]; then
        # A fresh cluster asks for passwords on TCP; the tests connect as
        # postgres without one, as on this project's machines.
        local hba="/etc/postgresql/$version/main/pg_hba.conf"
        $SUDO sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
    fi
    say "starting PostgreSQL $version"
    $SUDO pg_ctlcluster --skip-systemctl-redirect "$version" main start \
        || die "pg_ctlcluster could not start PostgreSQL $version"
    wait_for 5432 PostgreSQL
}

ensure_redis() {
    if listening 6379; then return 0; fi
    command -v redis-server >/dev/null || install_packages redis-server
    say "starting Redis"
    $SUDO mkdir -p /var/lib/redis /var/log/redis
    $SUDO redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" \
        --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log \
        || die "redis-server did not start"
    wait_for 6379 Redis
}

ensure_nats() {
    if listening 4222; then return 0; fi
    [ -x /usr/sbin/nats-server ] || install_packages nats-server
    say "starting NATS"
    $SUDO mkdir -p /var/lib/nats-server
    $SUDO start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server -- \
        -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log \
        || die "nats-server did not start"
    wait_for 4222 NATS
}

# The examples (examples/, run by crates/confab-server/tests/examples.rs)
# are browser code that the tests run under Node.js.
ensure_node() {
    if command -v node >/dev/null; then return 0; fi
    install_packages nodejs
    command -v node >/dev/null || die "node is still missing after installing nodejs"
}

# The browser tests: Debian's Chromium (never a browser of Playwright's
# own) and npm to install playwright-core from the lock file.
CHROMIUM_PATH="${CHROMIUM_PATH:-/usr/bin/chromium}"
export CHROMIUM_PATH
ensure_browser_tools() {
    if [ ! -x "$CHROMIUM_PATH" ]; then
        install_packages chromium
        [ -x "$CHROMIUM_PATH" ] || die "no Chromium at $CHROMIUM_PATH after installing chromium"
    fi
    if ! command -v npm >/dev/null; then
        install_packages npm
        command -v npm >/dev/null || die "npm is still missing after installing it"
    fi
}

# A CI build starts from nothing and is thrown away: incremental state would
# only double what the target directory holds on a small disk.
if [ "${CI:-}" = "true" ]; then export CARGO_INCREMENTAL=0; fi

ensure_postgres
ensure_redis
ensure_nats
ensure_node
ensure_browser_tools

say "1/4: the workspace on SQLite (and the store's PostgreSQL tests)"
cargo test --workspace --locked "$@"

say "2/4: the end-to-end suite on PostgreSQL"
# --workspace keeps the feature set of step 1, so nothing is rebuilt; the
# CLI's process tests come along (they do not read CONFAB_TEST_DATABASE).
CONFAB_TEST_DATABASE=postgres cargo test --workspace --locked --test '*' "$@"

say "3/4: the JavaScript client (clients/js) against the binary"
export CONFAB_BIN="${CONFAB_BIN:-$PWD/target/debug/confab}"
[ -x "$CONFAB_BIN" ] || die "no confab binary at $CONFAB_BIN (cargo test builds it)"
# Node.js 20 has the browser's WebSocket behind a flag; 22 and later by default.
NODE_WEBSOCKET=""
if [ "$(node -p 'process.versions.node.split(".")[0]')" -lt 22 ]; then
    NODE_WEBSOCKET="--experimental-websocket"
fi
node $NODE_WEBSOCKET --test clients/js/test/

say "4/4: the browser client (GET /) in Chromium (tests/browser)"
PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --prefix tests/browser --no-audit --no-fund --loglevel=error \
    || die "npm ci in tests/browser failed"
node --test tests/browser/
