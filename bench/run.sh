#!/usr/bin/env bash
# authd's side-by-side benchmark (issue 7): authd against an empty-200 server
# built from the same stack, and against Express + express-session +
# connect-redis, all on loopback. See bench/README.md.
#
#   bench/run.sh            full run (5 alternating runs of 10 s per side; ~20 min)
#   bench/run.sh --quick    a few seconds per scenario (what CI runs)
#   bench/run.sh --help     every option
#
# It installs what it needs if missing (wrk, h2load, redis-server with apt;
# the peer's npm packages with `npm ci`), builds authd and the two bench
# examples in release mode, and stops everything it started when it ends.
set -euo pipefail
cd "$(dirname "$0")/.."

case " $* " in
*" --help "* | *" -h "*) exec python3 bench/bench.py --help ;;
esac

have() { command -v "$1" >/dev/null 2>&1; }
sudo_() { if [ "$(id -u)" = 0 ]; then "$@"; elif have sudo; then sudo "$@"; else "$@"; fi; }

missing=()
have wrk || missing+=(wrk)
have h2load || missing+=(nghttp2-client)
have redis-server || missing+=(redis-server)
have node || missing+=(nodejs)
have npm || missing+=(npm)
have taskset || missing+=(util-linux)
if [ ${#missing[@]} -gt 0 ]; then
    echo "bench: installing ${missing[*]}" >&2
    sudo_ apt-get update -qq
    sudo_ env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# BENCH_PROFILE=dev reuses the test build's artifacts (CI checks only that
# the run goes end to end); its figures say nothing about authd's speed.
profile="${BENCH_PROFILE:-release}"
case "$profile" in
release) bin_dir=target/release ;;
dev) bin_dir=target/debug ;;
*) echo "bench: BENCH_PROFILE must be release or dev, not '$profile'" >&2; exit 2 ;;
esac
echo "bench: building authd and the bench examples ($profile)" >&2
cargo build --profile "$profile" --quiet --bin authd --example baseline --example benchtool
export BENCH_BIN_DIR="$PWD/$bin_dir" BENCH_PROFILE="$profile"

peer=bench/peer
if [ ! -f "$peer/node_modules/.package-lock.json" ] || [ "$peer/package-lock.json" -nt "$peer/node_modules/.package-lock.json" ]; then
    echo "bench: installing the peer's npm packages" >&2
    (cd "$peer" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
fi

# The orchestrator pins the servers to one core and itself and the load tools
# to another, and stops every process it started on exit, Ctrl-C or SIGTERM.
exec python3 bench/bench.py "$@"
