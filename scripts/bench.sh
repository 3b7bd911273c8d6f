#!/usr/bin/env bash
# The standard benchmark runs of docs/performance.md in one go: fan-out,
# ingest and connections against confab on SQLite, confab on PostgreSQL and
# the zero-storage baseline, all started here on this machine, and one table
# with the figures and each confab's ratio to the baseline from the same run.
#
#   scripts/bench.sh                  # release build, 4 s per run
#   DURATION=8 CONNECTIONS=19000 scripts/bench.sh
#   NO_POSTGRES=1 scripts/bench.sh    # SQLite and the baseline only
#   SHAPE="--no-client-msg-id --no-metadata" scripts/bench.sh   # plain sends
#
# Sends carry a client_msg_id and metadata, as real clients' do, unless
# SHAPE says otherwise. Ratios are only meaningful within one run: the
# machine's speed drifts between runs (docs/performance.md).
set -euo pipefail
cd "$(dirname "$0")/.."

say() { echo "bench.sh: $*" >&2; }
die() { say "error: $*"; exit 1; }

DURATION="${DURATION:-4}"
CONNECTIONS="${CONNECTIONS:-5000}"
SHAPE="${SHAPE:-}"
PG_ADMIN_URL="${PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
BIN="${CONFAB_BIN:-${CARGO_TARGET_DIR:-target}/release/confab}"

if [ -z "${CONFAB_BIN:-}" ]; then
    say "building the release binary"
    cargo build --release --locked -p confab >&2
fi
[ -x "$BIN" ] || die "no binary at $BIN"
# confab reads every CONFAB_* variable as configuration: not this one.
unset CONFAB_BIN

# The environment the figures are taken in: every rate limit and cap lifted.
BIG=100000000
export CONFAB_API_KEY=bench-key CONFAB_JWT_SECRET=bench-secret RUST_LOG=warn \
    CONFAB_RATE_LIMIT__MESSAGES_PER_MINUTE=$BIG CONFAB_RATE_LIMIT__BURST=$BIG \
    CONFAB_RATE_LIMIT__HANDSHAKES_PER_MINUTE=$BIG CONFAB_RATE_LIMIT__HANDSHAKE_BURST=$BIG \
    CONFAB_LIMITS__MAX_CONNECTIONS_PER_USER=$BIG CONFAB_LIMITS__MAX_CONNECTIONS_PER_ADDRESS=$BIG
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

WORK="$(mktemp -d)"
PG_DB=""
declare -A URL PID
cleanup() {
    for pid in "${PID[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if [ -n "$PG_DB" ]; then
        psql "$PG_ADMIN_URL" -qc "DROP DATABASE IF EXISTS $PG_DB" >/dev/null 2>&1 || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

# Starts `$BIN $*` in the background as `name` (its pid in PID[name]) and
# waits for its "listening on" line; a port already taken stops the run.
start() {
    local name="$1"; shift
    "$BIN" "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" &
    PID[$name]=$!
    for _ in $(seq 1 100); do
        if grep -q "listening on" "$WORK/$name.out" 2>/dev/null; then
            return 0
        fi
        kill -0 "${PID[$name]}" 2>/dev/null || break
        sleep 0.1
    done
    die "$name did not start: $(cat "$WORK/$name.err")"
}

# The baseline reads with confab's 2 KiB WebSocket buffer: with its default
# 128 KiB it zeroes 64 times the memory per connection, which would flatter
# confab's connect rate and memory.
start baseline bench baseline-server --listen 127.0.0.1:18090 --buffer-bytes 2048
URL[baseline]=http://127.0.0.1:18090
start sqlite serve --data-dir "$WORK/sqlite" --listen 127.0.0.1:18080
URL[sqlite]=http://127.0.0.1:18080
TARGETS=(sqlite)
if [ -z "${NO_POSTGRES:-}" ]; then
    PG_DB="confab_bench_$$"
    psql "$PG_ADMIN_URL" -qc "CREATE DATABASE $PG_DB" >/dev/null \
        || die "cannot create a PostgreSQL database at $PG_ADMIN_URL (NO_POSTGRES=1 skips it)"
    CONFAB_DATABASE_URL="${PG_ADMIN_URL%/*}/$PG_DB" \
        start postgres serve --data-dir "$WORK/postgres" --listen 127.0.0.1:18081
    URL[postgres]=http://127.0.0.1:18081
    TARGETS+=(postgres)
fi
TARGETS+=(baseline)

# Runs one scenario against one target; its JSON report goes to a file.
run() {
    local target="$1" name="$2"; shift 2
    say "$name on $target"
    # shellcheck disable=SC2086 # SHAPE is a list of flags
    "$BIN" bench "$@" --url "${URL[$target]}" --json $SHAPE >"$WORK/$name.$target.json"
}

for target in "${TARGETS[@]}"; do
    run "$target" fanout fanout --rooms 50 --members 4 --senders 2 --window 8 --duration "$DURATION"
    run "$target" ingest ingest --senders 8 --window 8 --duration "$DURATION"
done
# Connections last: they leave thousands of users behind. SHAPE is about sends.
for target in "${TARGETS[@]}"; do
    say "connections on $target"
    "$BIN" bench connections --url "${URL[$target]}" --count "$CONNECTIONS" --concurrency 128 \
        --hold 2 --pid "${PID[$target]}" --json >"$WORK/connections.$target.json"
done

python3 - "$WORK" "${TARGETS[@]}" <<'EOF'
import json, sys
work, targets = sys.argv[1], sys.argv[2:]
rows = [
    ("fan-out 50×4, 2 senders × 8 in flight: delivered/s", "fanout", "delivered_per_s"),
    ("fan-out p99 latency, ms", "fanout", "latency.p99_ms"),
    ("ingest 8 senders × 8 in flight: stored/s", "ingest", "stored_per_s"),
    ("connections: opened/s", "connections", "connect_per_s"),
    ("connections: KiB per idle connection", "connections", "rss_per_connection_kib"),
]
def value(name, target, path):
    with open(f"{work}/{name}.{target}.json") as f:
        report = json.load(f)
    for key in path.split("."):
        report = report.get(key) if isinstance(report, dict) else None
    return report
confabs = [t for t in targets if t != "baseline"]
head = ["workload"] + targets + [f"{t}/baseline" for t in confabs]
print("| " + " | ".join(head) + " |")
print("|" + "---|" * len(head))
for label, name, path in rows:
    cells = [value(name, t, path) for t in targets]
    base = cells[targets.index("baseline")]
    out = [label] + [("-" if c is None else f"{c:,.1f}") for c in cells]
    for t in confabs:
        c = cells[targets.index(t)]
        out.append("-" if c is None or not base else f"{c / base:.2f}")
    print("| " + " | ".join(out) + " |")
shape = value("ingest", targets[0], "shape")
print(f"\nsends: {json.dumps(shape)}")
EOF
