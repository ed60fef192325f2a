#!/usr/bin/env bash
# Stats ingest alone: a fresh server (no seeded registry), POST /stats batches
# of 20 and 200 events from many devices (bench/stats.lua, as bench/run.sh
# sends them), then a check that the stored events (raw and rolled up) equal
# what was acknowledged.
#
#   bench/stats-ingest.sh                        # 20 s per batch size
#   DURATION=60s CONNECTIONS=64 bench/stats-ingest.sh
#   UPDRAFT_DATABASE_URL=postgres://... bench/stats-ingest.sh   # on PostgreSQL
#
# Not a test: it prints figures. Needs curl, python3 and wrk (installed with
# apt-get when missing).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BENCH_DIR="$ROOT/bench"
export BENCH_DIR
DURATION="${DURATION:-20s}"
CONNECTIONS="${CONNECTIONS:-64}"
THREADS="${THREADS:-2}"
APPS=10
DEVICES=100000
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"

if ! command -v wrk >/dev/null; then
  echo "installing wrk..." >&2
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get install -y wrk >/dev/null 2>&1 || { $SUDO apt-get update >/dev/null && $SUDO apt-get install -y wrk >/dev/null; }
fi

echo "building the release binary..." >&2
(cd "$ROOT" && CARGO_TARGET_DIR="$TARGET_DIR" cargo build --release -p updraft >&2)
BIN="$TARGET_DIR/release/updraft"

WORK="$(mktemp -d)"
SERVER_PID=""
cleanup() {
  if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

export UPDRAFT_DATA_DIR="$WORK/data"
KEY="$("$BIN" apikey create --name bench --role admin --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])')"
[ -n "$KEY" ] || { echo "could not create an API key" >&2; exit 1; }
printf 'stats_queue_capacity = 4096\nlog = "warn"\n' > "$WORK/updraft.toml"
# Port 0: the server picks a free port and prints it.
UPDRAFT_LISTEN="127.0.0.1:0" "$BIN" serve --config "$WORK/updraft.toml" > "$WORK/server.log" 2>&1 &
SERVER_PID=$!
BASE=""
for _ in $(seq 1 100); do
  BASE="$(sed -n 's/^updraft listening on //p' "$WORK/server.log" | head -1)"
  [ -n "$BASE" ] && break
  sleep 0.1
done
[ -n "$BASE" ] || { echo "the server did not start:" >&2; cat "$WORK/server.log" >&2; exit 1; }
api() { curl -fsS -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' "$@"; }
for a in $(seq 0 $((APPS - 1))); do
  api -X POST "$BASE/api/v1/apps" -d "{\"app_id\":\"com.bench.app$a\"}" >/dev/null
  api -X POST "$BASE/api/v1/apps/com.bench.app$a/channels" -d '{"name":"production","public":true}' >/dev/null
done
now_ms() { python3 -c 'import time; print(int(time.time()*1000))'; }

echo "cpu: $(nproc) cores; duration $DURATION per run; $CONNECTIONS connections, $THREADS wrk threads"
STATUS=0
for BATCH in 20 200; do
  ROLLED_BEFORE="$(python3 "$BENCH_DIR/seed.py" rolled-events "$BASE" "$KEY" "$APPS")"
  START="$(now_ms)"
  RESULT="$(BATCH=$BATCH START_MS=$START DEVICES=$DEVICES APPS=$APPS wrk -t"$THREADS" -c"$CONNECTIONS" \
    -d"$DURATION" --timeout 60s -s "$BENCH_DIR/stats.lua" "$BASE" | grep '^RESULT')"
  echo "$RESULT"
  ACKED="$(sed -n 's/.*events_acked=\([0-9]*\).*/\1/p' <<<"$RESULT")"
  RAW="$(python3 "$BENCH_DIR/seed.py" raw-events "$BASE" "$KEY" "$APPS" "$START")"
  ROLLED="$(( $(python3 "$BENCH_DIR/seed.py" rolled-events "$BASE" "$KEY" "$APPS") - ROLLED_BEFORE ))"
  # wrk stops with up to one request in flight per connection: the server may
  # have committed those without wrk counting the answer. So: nothing
  # acknowledged may be missing, and at most CONNECTIONS batches may be extra.
  MAX_EXTRA=$((CONNECTIONS * BATCH))
  if [ "$RAW" = "$ROLLED" ] && [ "$RAW" -ge "$ACKED" ] && [ $((RAW - ACKED)) -le "$MAX_EXTRA" ]; then
    echo "VERIFY batch=$BATCH acknowledged=$ACKED stored_raw=$RAW rolled_up=$ROLLED in_flight_at_stop=$((RAW - ACKED)) OK"
  else
    echo "VERIFY batch=$BATCH acknowledged=$ACKED stored_raw=$RAW rolled_up=$ROLLED FAILED"
    STATUS=1
  fi
done
echo "peak RSS: $(awk '/^VmHWM/ {printf "%.0f", $2 / 1024}' "/proc/$SERVER_PID/status") MB"
exit $STATUS
