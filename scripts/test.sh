#!/usr/bin/env bash
# The test command of the README: builds everything and runs every test
# (unit tests beside the code, end-to-end tests in each crate's tests/).
# Works on a fresh machine with only the Rust toolchain: storage is SQLite,
# embedded; nothing else needs to run yet.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --workspace --locked "$@"
