#!/usr/bin/env bash
# A repeatable attack on a local Updraft (issue 19, point 10), loopback only,
# bounded (about 3 minutes in all; every scenario stops by itself):
#
#   bench/attack.sh [SCENARIO...]     updates stats slow versions long disk (default: all)
#
# floods of /updates and /stats, 2,000 slow and idle clients under a 1,024 file
# limit, a flood of new version names, over-long fields, and a full disk (a
# 20 MiB tmpfs: needs root; always unmounted). Per scenario it prints what was
# held and what was lost; the output is Markdown-friendly for docs/reliability.md.
# Exits non-zero when a scenario fails (the script itself goes on).
#
# The binary: $UPDRAFT_BIN, else target/release/updraft (built when missing).
# ATTACK_FILE_LIMIT (default 1024): the server's soft file limit (it raises it to
# the hard one at start); ATTACK_HARD_FILE_LIMIT also lowers the hard limit.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
if [ -z "${UPDRAFT_BIN:-}" ]; then
  target="${CARGO_TARGET_DIR:-$root/target}"
  if [ ! -x "$target/release/updraft" ]; then
    (cd "$root" && cargo build -q --release -p updraft)
  fi
  export UPDRAFT_BIN="$target/release/updraft"
fi
exec timeout --kill-after=10 300 python3 "$root/bench/attack.py" "$@"
