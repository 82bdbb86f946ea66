#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs what the tests need
# (promtool from Debian's `prometheus` package, Debian's Chromium with CJK
# fonts, the playwright-core npm package that drives it), then runs every test.
# The Rust build is cached outside the clone (CARGO_TARGET_DIR), so a second
# run only rebuilds funnelwatch itself.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/funnelwatch/target}"
mkdir -p "$CARGO_TARGET_DIR"

need_apt=()
command -v promtool >/dev/null || need_apt+=(prometheus)
command -v python3 >/dev/null || need_apt+=(python3)
command -v chromium >/dev/null || need_apt+=(chromium)
command -v node >/dev/null || need_apt+=(nodejs npm)
dpkg -s fonts-noto-cjk >/dev/null 2>&1 || need_apt+=(fonts-noto-cjk)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing ${need_apt[*]} (Debian packages)"
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${need_apt[@]}"
fi

echo "== browser test driver (npm: playwright-core, no browser download)"
(cd tests/browser && npm ci --prefer-offline --no-audit --no-fund --loglevel=error)

echo "== oracle self-test (python)"
python3 -m unittest discover -s tests/oracle -q

echo "== cargo test (release: DataFusion is slow unoptimised)"
log="$(mktemp)"
set +e
cargo test --release --tests 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
awk '/^test result:/ { p += $4; f += $6 } END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
rm -f "$log"
exit "$status"
