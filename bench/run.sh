#!/usr/bin/env bash
# Updraft's benchmark, from a fresh clone, in one command:
#
#   bench/run.sh                    # the full run (1,000,000 devices, 15 s per scenario)
#   BENCH_QUICK=1 bench/run.sh      # smoke run (10,000 devices, 3 s per scenario)
#
# It builds the release binary and the hello-world baseline
# (crates/updraft-server/examples/hello.rs: the same tokio + axum stack with
# nothing behind it), seeds a realistic installation through Updraft's own
# interfaces (CLI, management API, device API), restarts the server to
# measure start-up, then drives update checks, stats ingest and bundle
# downloads with wrk. Per scenario it prints requests (or events) per second,
# p50 / p99 / p99.9 latency, errors, the ratio to hello-world throughput at
# the same connection count, and the server's peak RSS; per connection count
# the p99 of update checks beside hello world's and their ratio; and the heap
# allocations per update check (examples/alloc_count.rs, counted by dhat's
# allocator in-process, not timed). See docs/benchmarks.md.
#
# Settings (environment):
#   BENCH_DURATION=15s          each measured wrk run
#   BENCH_WARMUP=2s             unmeasured run before each server's first scenario
#   BENCH_DEVICES=1000000       devices seeded into the registry
#   BENCH_UPDATE_DEVICES=100000 distinct devices sending update checks
#   BENCH_CONNECTIONS="64 256 1024"   update checks and hello world
#   BENCH_STATS_CONNECTIONS=64  stats batches of 20 and 200 events
#   BENCH_DL_CONNECTIONS="16 64"      downloads of the big bundle
#   BENCH_BUNDLE_MB=20          size of the uploaded bundle
#   BENCH_THREADS=2             wrk threads
#   BENCH_ALLOC_CHECKS=2000     update checks counted for allocations
#   BENCH_KEEP=1                keep the temporary data directory
# Not a test: it prints figures and checks only correctness (nothing
# acknowledged may be lost); it exits non-zero when a check fails.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BENCH_DIR="$ROOT/bench"
export BENCH_DIR
if [ "${BENCH_QUICK:-0}" = 1 ]; then
  DURATION="${BENCH_DURATION:-3s}"; DEVICES="${BENCH_DEVICES:-10000}"; WARMUP="${BENCH_WARMUP:-1s}"
else
  DURATION="${BENCH_DURATION:-15s}"; DEVICES="${BENCH_DEVICES:-1000000}"; WARMUP="${BENCH_WARMUP:-2s}"
fi
UPDATE_DEVICES="${BENCH_UPDATE_DEVICES:-100000}"
[ "$UPDATE_DEVICES" -gt "$DEVICES" ] && UPDATE_DEVICES="$DEVICES"
CONNECTIONS="${BENCH_CONNECTIONS:-64 256 1024}"
STATS_CONNECTIONS="${BENCH_STATS_CONNECTIONS:-64}"
DL_CONNECTIONS="${BENCH_DL_CONNECTIONS:-16 64}"
BUNDLE_MB="${BENCH_BUNDLE_MB:-20}"
THREADS="${BENCH_THREADS:-2}"
APPS=10
BUNDLES_PER_APP=30
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"

log() { echo "[$(date +%H:%M:%S)] $*" >&2; }
die() { echo "error: $*" >&2; exit 1; }

# --- tools -------------------------------------------------------------------
if ! command -v wrk >/dev/null; then
  log "installing wrk..."
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get install -y wrk >/dev/null 2>&1 || { $SUDO apt-get update >/dev/null && $SUDO apt-get install -y wrk >/dev/null; }
fi
for tool in wrk curl python3 cargo; do command -v "$tool" >/dev/null || die "$tool is needed"; done
# 1024 connections on each side of loopback, plus the server's files.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
[ "$(ulimit -n)" -ge 4096 ] || log "warning: only $(ulimit -n) file descriptors; 1024 connections may fail"

log "building the release binary and the hello-world baseline..."
(cd "$ROOT" && CARGO_TARGET_DIR="$TARGET_DIR" cargo build --release -p updraft >&2)
(cd "$ROOT" && CARGO_TARGET_DIR="$TARGET_DIR" cargo build --release -p updraft-server --example hello \
  --example alloc_count >&2)
BIN="$TARGET_DIR/release/updraft"
HELLO_BIN="$TARGET_DIR/release/examples/hello"
ALLOC_BIN="$TARGET_DIR/release/examples/alloc_count"

# --- processes ---------------------------------------------------------------
WORK="$(mktemp -d "${TMPDIR:-/tmp}/updraft-bench.XXXXXX")"
SERVER_PID=""
HELLO_PID=""
stop_pid() {
  local pid="$1"
  [ -n "$pid" ] || return 0
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
cleanup() {
  stop_pid "$SERVER_PID"; stop_pid "$HELLO_PID"
  if [ "${BENCH_KEEP:-0}" = 1 ]; then log "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
now_ms() { python3 -c 'import time; print(int(time.time()*1000))'; }

export UPDRAFT_DATA_DIR="$WORK/data"
PORT="$(free_port)"
BASE="http://127.0.0.1:$PORT"
# A device that is seeded and sends a valid check (app 0, public channel).
PROBE_BODY='{"platform":"android","device_id":"00000000-0000-4000-8000-000000000000","app_id":"com.bench.app0","version_build":"1.0.0","version_name":"1.0.0","plugin_version":"8.51.14","is_emulator":false,"is_prod":true,"defaultChannel":""}'

start_server() { # defaults everywhere but the data dir and the port
  (cd "$WORK" && UPDRAFT_LISTEN="127.0.0.1:$PORT" exec "$BIN" serve >>"$WORK/server.log" 2>&1) &
  SERVER_PID=$!
}
# Milliseconds from now until POST /updates answers 200.
wait_first_update_answer() {
  local started status
  started=$(date +%s%N)
  for _ in $(seq 1 6000); do
    status="$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 -H 'Content-Type: application/json' \
      -d "$PROBE_BODY" "$BASE/updates" 2>/dev/null || true)"
    if [ "$status" = 200 ]; then echo $(( ($(date +%s%N) - started) / 1000000 )); return 0; fi
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/server.log" >&2; die "the server exited"; }
    sleep 0.005
  done
  die "no answer from the server within 30 s"
}
reset_peak_rss() { echo 5 > "/proc/$1/clear_refs" 2>/dev/null || true; }
peak_rss_mb() { awk '/^VmHWM/ {printf "%.0f", $2 / 1024}' "/proc/$1/status"; }
OVERALL_PEAK_MB=0
note_peak() { [ "$1" -gt "$OVERALL_PEAK_MB" ] && OVERALL_PEAK_MB="$1"; return 0; }

# --- seeding -----------------------------------------------------------------
log "seeding $WORK: $APPS apps, $((APPS * 3)) channels, $((APPS * BUNDLES_PER_APP)) bundles + one of $BUNDLE_MB MB, $DEVICES devices"
UPDRAFT_APIKEY="$("$BIN" apikey create --name bench --role admin --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])')"
[ -n "$UPDRAFT_APIKEY" ] || die "could not create an API key"
export UPDRAFT_APIKEY UPDRAFT_SERVER="$BASE"
KEY="$UPDRAFT_APIKEY"
start_server
wait_first_update_answer >/dev/null
cli() { (cd "$WORK" && "$BIN" "$@" >/dev/null) || die "updraft $* failed"; }

for a in $(seq 0 $((APPS - 1))); do
  cli app add "com.bench.app$a" --name "Bench app $a"
  cli channel add production "com.bench.app$a" --default
  cli channel add beta "com.bench.app$a"
  cli channel add staging "com.bench.app$a"
done
BUNDLES="$(python3 "$BENCH_DIR/seed.py" bundles "$BASE" "$KEY" "$APPS" "$BUNDLES_PER_APP")"
for a in $(seq 0 $((APPS - 1))); do
  app="com.bench.app$a"
  cli channel set production "$app" --bundle 1.0.20
  # Rollouts on most apps' public channel, some limited to one platform or
  # native range; targeting rules on the beta and staging channels.
  case $((a % 4)) in
    0) cli channel set production "$app" --rollout-bundle 1.0.29 --rollout-percentage $((10 + a * 5)) ;;
    1) cli channel set production "$app" --rollout-bundle 1.0.29 --rollout-percentage 25 --rollout-target-platform android ;;
    2) cli channel set production "$app" --rollout-bundle 1.0.28 --rollout-percentage 50 --rollout-target-native-version ">=1.0.0, <2" ;;
    3) ;;
  esac
  cli channel set beta "$app" --bundle 1.0.25 --self-assign
  [ $((a % 2)) = 1 ] && cli channel set beta "$app" --target-plugin-version ">=7.0.0"
  cli channel set staging "$app" --bundle 1.0.29 --self-assign --disable-auto-update none \
    --target-platform ios --target-os-version ">=15"
done

BUNDLE_SRC="$WORK/big-bundle"
mkdir -p "$BUNDLE_SRC/assets"
cat > "$BUNDLE_SRC/index.html" <<'HTML'
<!doctype html><html><body><script>window.Capacitor?.Plugins?.CapacitorUpdater?.notifyAppReady();</script></body></html>
HTML
# Random bytes: the zip stays as large as asked.
head -c "$((BUNDLE_MB * 1024 * 1024))" /dev/urandom > "$BUNDLE_SRC/assets/payload.bin"
cli bundle upload com.bench.app0 --path "$BUNDLE_SRC" --bundle 2.0.0 --no-key --no-progress --ignore-metadata-check
DL_PATH="$(python3 "$BENCH_DIR/seed.py" dl-path "$BASE" "$KEY" com.bench.app0 2.0.0)"
DL_SIZE="$(curl -sfI "$BASE$DL_PATH" | tr -d '\r' | awk 'tolower($1) == "content-length:" {print $2}')"
[ -n "$DL_SIZE" ] || die "the uploaded bundle is not downloadable at $DL_PATH"

log "seeding $DEVICES devices through POST /stats (batches of 200 events, one per device)..."
SEED_JSON="$(python3 "$BENCH_DIR/seed.py" devices "$BASE" "$KEY" "$APPS" "$DEVICES")"
seed_field() { python3 -c "import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])" "$SEED_JSON" "$1"; }
SEED_INGEST_S="$(seed_field ingest_s)"; SEED_VISIBLE_S="$(seed_field visible_s)"
SEED_DEVICES="$(seed_field devices_in_registry)"
[ "$SEED_DEVICES" -ge "$DEVICES" ] || die "only $SEED_DEVICES of $DEVICES devices reached the registry"
SEED_PEAK_MB="$(peak_rss_mb "$SERVER_PID")"; note_peak "$SEED_PEAK_MB"
DB_MB="$(du -sm "$UPDRAFT_DATA_DIR" | cut -f1)"

# --- start-up ----------------------------------------------------------------
log "restarting the server..."
stop_pid "$SERVER_PID"
start_server
STARTUP_MS="$(wait_first_update_answer)"
IDLE_PEAK_MB="$(peak_rss_mb "$SERVER_PID")"; note_peak "$IDLE_PEAK_MB"

HELLO_PORT="$(free_port)"
HELLO_BASE="http://127.0.0.1:$HELLO_PORT"
"$HELLO_BIN" "127.0.0.1:$HELLO_PORT" > "$WORK/hello.log" 2>&1 &
HELLO_PID=$!
for _ in $(seq 1 200); do curl -sf "$HELLO_BASE/" >/dev/null 2>&1 && break; sleep 0.05; done

# --- scenarios ---------------------------------------------------------------
CPU_MODEL="$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)"
MEM_GB="$(awk '/^MemTotal/ {printf "%.1f", $2 / 1048576}' /proc/meminfo)"
echo "machine: $(nproc) cores ($CPU_MODEL), ${MEM_GB} GB RAM, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "seeded: $APPS apps, $((APPS * 3)) channels, $((BUNDLES + 1)) bundles, $SEED_DEVICES devices in ${SEED_INGEST_S} s" \
  "($(python3 -c "print(round($DEVICES / $SEED_INGEST_S))") events/s; visible in the registry after ${SEED_VISIBLE_S} s); data dir ${DB_MB} MB"
echo "start-up to the first answered /updates: ${STARTUP_MS} ms"
echo "wrk: $THREADS threads, $DURATION per run; update checks from $UPDATE_DEVICES devices"

RESULTS="$WORK/results.tsv"
: > "$RESULTS"
STATUS=0
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$2"; }

# run_wrk LABEL PID BASE CONNECTIONS SCRIPT [ENV...] -> the RESULT line; also records it.
run_wrk() {
  local label="$1" pid="$2" base="$3" conns="$4" script="$5"; shift 5
  reset_peak_rss "$pid"
  local line
  line="$(env "$@" DEVICES="$UPDATE_DEVICES" APPS="$APPS" wrk -t"$THREADS" -c"$conns" -d"$DURATION" \
    --timeout 30s -s "$BENCH_DIR/$script" "$base" | grep '^RESULT' || true)"
  [ -n "$line" ] || die "wrk printed no result for $label"
  local rss; rss="$(peak_rss_mb "$pid")"
  [ "$pid" = "$SERVER_PID" ] && note_peak "$rss"
  echo "$label conns=$conns rss_mb=$rss ${line#RESULT }" >&2
  printf '%s\t%s\t%s\t%s\n' "$label" "$conns" "$rss" "$line" >> "$RESULTS"
  LAST_RESULT="$line"
}
warm_up() {
  DEVICES="$UPDATE_DEVICES" APPS="$APPS" wrk -t"$THREADS" -c64 -d"$WARMUP" --timeout 30s \
    -s "$BENCH_DIR/updates.lua" "$1" >/dev/null 2>&1 || true
}
LAST_RESULT=""

log "update checks against Updraft and hello world..."
warm_up "$HELLO_BASE"; warm_up "$BASE"
for conns in $CONNECTIONS; do
  run_wrk hello "$HELLO_PID" "$HELLO_BASE" "$conns" updates.lua
  run_wrk updates "$SERVER_PID" "$BASE" "$conns" updates.lua
  served="$(field offered "$LAST_RESULT")"
  [ "${served:-0}" -gt 0 ] || { echo "CHECK update checks at $conns connections offered no update: FAILED"; STATUS=1; }
done

log "stats ingest..."
for batch in 20 200; do
  rolled_before="$(python3 "$BENCH_DIR/seed.py" rolled-events "$BASE" "$KEY" "$APPS")"
  start="$(now_ms)"
  run_wrk "stats$batch" "$SERVER_PID" "$BASE" "$STATS_CONNECTIONS" stats.lua BATCH="$batch" START_MS="$start" \
    BODIES_PER_THREAD=$(( batch == 200 ? 100 : 400 ))
  acked="$(field events_acked "$LAST_RESULT")"
  raw="$(python3 "$BENCH_DIR/seed.py" raw-events "$BASE" "$KEY" "$APPS" "$start")"
  rolled="$(( $(python3 "$BENCH_DIR/seed.py" rolled-events "$BASE" "$KEY" "$APPS") - rolled_before ))"
  # wrk stops with up to one request in flight per connection: the server may
  # have committed those without wrk counting the answer. So nothing
  # acknowledged may be missing, and at most one batch per connection be extra.
  max_extra=$((STATS_CONNECTIONS * batch))
  if [ "$raw" = "$rolled" ] && [ "$raw" -ge "$acked" ] && [ $((raw - acked)) -le "$max_extra" ]; then
    echo "CHECK stats batch=$batch acknowledged=$acked stored_raw=$raw rolled_up=$rolled in_flight_at_stop=$((raw - acked)) OK"
  else
    echo "CHECK stats batch=$batch acknowledged=$acked stored_raw=$raw rolled_up=$rolled FAILED"
    STATUS=1
  fi
done

log "downloads of the $((DL_SIZE / 1048576)) MB bundle..."
for conns in $DL_CONNECTIONS; do
  run_wrk "download" "$SERVER_PID" "$BASE" "$conns" download.lua DL_PATH="$DL_PATH"
done

FINAL_DEVICES="$(python3 "$BENCH_DIR/seed.py" device-total "$BASE" "$KEY" "$APPS")"

log "counting heap allocations per update check..."
ALLOC_CHECKS="${BENCH_ALLOC_CHECKS:-2000}"
ALLOC_LINE="$("$ALLOC_BIN" "$ALLOC_CHECKS" 2>>"$WORK/alloc.log" | grep '^ALLOCS' || true)"
[ -n "$ALLOC_LINE" ] || { cat "$WORK/alloc.log" >&2; die "alloc_count printed no result"; }
ALLOC_LINE="${ALLOC_LINE#ALLOCS }"

# --- summary -----------------------------------------------------------------
echo
echo "Updraft benchmark: $(nproc) cores ($CPU_MODEL), ${MEM_GB} GB; $DURATION per run, $THREADS wrk threads"
printf '%-10s %6s %11s %11s %9s %9s %9s %8s %9s %8s\n' \
  scenario conns "req/s" "events/s" "p50 ms" "p99 ms" "p99.9 ms" errors "x hello" "RSS MB"
while IFS=$'\t' read -r label conns rss line; do
  rps="$(field requests_per_s "$line")"
  eps="$(field events_per_s "$line")"; [ -n "$eps" ] || eps="-"
  if [ "$label" = download ]; then eps="$(field mbytes_per_s "$line") MB/s"; fi
  errors=$(( $(field socket_errors "$line") + $(field non2xx "$line") ))
  ratio="-"
  if [ "$label" != hello ] && [ "$label" != download ]; then
    hello_rps="$(awk -F'\t' -v c="$conns" '$1 == "hello" && $2 == c {print $4}' "$RESULTS" \
      | sed -n 's/.* requests_per_s=\([^ ]*\).*/\1/p')"
    [ -n "$hello_rps" ] && ratio="$(python3 -c "print(f'{$rps / $hello_rps:.2f}')")"
  fi
  p50="$(field p50_ms "$line")"; p99="$(field p99_ms "$line")"; p999="$(field p999_ms "$line")"
  # No request finished (long downloads in a short run): no latency to show.
  [ "$(field requests "$line")" = 0 ] && { p50="-"; p99="-"; p999="-"; }
  printf '%-10s %6s %11.1f %11s %9s %9s %9s %8s %9s %8s\n' "$label" "$conns" "$rps" "$eps" \
    "$p50" "$p99" "$p999" "$errors" "$ratio" "$rss"
done < "$RESULTS"
echo
echo "update checks beside hello world, same run (ratios only mean something within one run):"
printf '  %6s %11s %11s %8s %10s %10s %9s\n' conns "req/s" "hello req/s" "x hello" "p99 ms" "hello p99" "p99 ratio"
while IFS=$'\t' read -r label conns rss line; do
  [ "$label" = updates ] || continue
  hello_line="$(awk -F'\t' -v c="$conns" '$1 == "hello" && $2 == c {print $4}' "$RESULTS")"
  rps="$(field requests_per_s "$line")"; p99="$(field p99_ms "$line")"
  hello_rps="$(field requests_per_s "$hello_line")"; hello_p99="$(field p99_ms "$hello_line")"
  python3 -c "print('  %6s %11.1f %11.1f %8.2f %10s %10s %9.2f' % ('$conns', $rps, $hello_rps, $rps / $hello_rps, '$p99', '$hello_p99', $p99 / $hello_p99))"
done < "$RESULTS"
echo
echo "heap allocations per update check (dhat, in-process, $ALLOC_CHECKS checks of the same mix; not timed):"
echo "  $ALLOC_LINE"
echo
echo "update-check answers (Updraft): what the devices were told"
while IFS=$'\t' read -r label conns rss line; do
  [ "$label" = updates ] || continue
  echo "  $conns connections: $(field offered "$line") offered an update, $(field up_to_date "$line") up to date," \
    "$(field blocked "$line") blocked, $(field failed "$line") failed, of $(field requests "$line")"
done < "$RESULTS"
echo
echo "start-up to first answered /updates: ${STARTUP_MS} ms (${SEED_DEVICES} devices in the registry; RSS after start ${IDLE_PEAK_MB} MB)"
echo "seeding: ${SEED_DEVICES} devices in ${SEED_INGEST_S} s (registry complete after ${SEED_VISIBLE_S} s; peak RSS ${SEED_PEAK_MB} MB)"
echo "peak RSS of Updraft over the whole run: ${OVERALL_PEAK_MB} MB; devices in the registry at the end: $FINAL_DEVICES"
echo "x hello = requests/s divided by hello world's at the same connection count (the figure to quote)."
problems="$(sed 's/\x1b\[[0-9;]*m//g' "$WORK/server.log" | grep -E '\b(WARN|ERROR)\b' || true)"
if [ -n "$problems" ]; then
  echo "server log: $(wc -l <<<"$problems") warning/error lines; the last ones:"
  tail -n 5 <<<"$problems" | cut -c1-300 | sed 's/^/  /'
else
  echo "server log: no warnings or errors"
fi
[ "$STATUS" = 0 ] && echo "checks: all passed" || echo "checks: FAILED (see CHECK lines above)"
exit "$STATUS"
