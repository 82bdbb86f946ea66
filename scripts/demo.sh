#!/usr/bin/env bash
# `funnelwatch demo` from a clone: builds into the same cache outside the
# clone as scripts/test.sh (CARGO_TARGET_DIR), so the two share one build.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/funnelwatch/target}"
exec cargo run --release -- demo "$@"
