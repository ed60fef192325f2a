#!/usr/bin/env bash
# Checks the management API against its own OpenAPI document with schemathesis
# (issue 19, point 8): starts the server on a throwaway data directory and a
# free loopback port with a fresh admin key, runs every schemathesis check over
# /api/v1/openapi.json with a bounded number of examples per operation, and
# exits non-zero on any failure.
#
#   scripts/schemathesis.sh [MAX_EXAMPLES]      (default 40)
#
# The binary: $UPDRAFT_BIN, else target/release/updraft, else target/debug/updraft
# (built when missing). schemathesis is installed from PyPI into
# target/test-tools/schemathesis-venv on first use. Extra arguments for
# `st run` can be passed in $SCHEMATHESIS_ARGS (e.g. "--seed 1 --report junit").
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
max_examples="${1:-40}"
tools="${UPDRAFT_TEST_TOOLS_DIR:-$root/target/test-tools}"
venv="$tools/schemathesis-venv"
st_version="4.32.5"

mkdir -p "$tools"
(
  flock 9
  if [ ! -x "$venv/bin/st" ] || ! grep -qs "$st_version" "$venv/st-version"; then
    echo "installing schemathesis $st_version from PyPI into $venv" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check "schemathesis==$st_version"
    echo "$st_version" >"$venv/st-version"
  fi
) 9>"$tools/install.lock"

bin="${UPDRAFT_BIN:-}"
if [ -z "$bin" ]; then
  target="${CARGO_TARGET_DIR:-$root/target}"
  if [ -x "$target/release/updraft" ]; then
    bin="$target/release/updraft"
  else
    (cd "$root" && cargo build -q -p updraft)
    bin="$target/debug/updraft"
  fi
fi

work="$(mktemp -d)"
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
export UPDRAFT_DATA_DIR="$work/data"
export UPDRAFT_LISTEN="127.0.0.1:$port"
export UPDRAFT_PUBLIC_URL="http://127.0.0.1:$port"
# Schemathesis sends requests without and with wrong keys on purpose, all from
# 127.0.0.1: the per-address failed-authentication throttle would then refuse
# its valid requests too (429). The throttle has its own e2e test.
export UPDRAFT_AUTH_FAILURE_LIMIT_BURST=0
# Its request rate would trip the per-app device limits as well.
export UPDRAFT_DEVICE_RATE_LIMIT_BURST=0
key="$("$bin" apikey create --name schemathesis --role admin)"
"$bin" serve >"$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 100); do
  if curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1; then break; fi
  if ! kill -0 "$server_pid" 2>/dev/null; then
    echo "the server did not start:" >&2
    cat "$work/server.log" >&2
    exit 1
  fi
  sleep 0.1
done

# Webhook creation is left out: a created webhook makes the server POST to the
# generated URL (any host), and this run must stay on loopback. Without a
# webhook the server has nowhere to deliver to; that is checked after the run.
# Every check runs (schemathesis' default; `--checks all` on the command line
# would override the per-operation exceptions). The exceptions per operation (rules no schema can state) and their reasons
# are in scripts/schemathesis.toml.
# One worker: with two threads, hypothesis' lambda descriptions call ast.parse
# concurrently, which CPython 3.11 can fail ("AST constructor recursion depth
# mismatch"), a runtime error of the tool rather than a finding.
# From the scratch directory, so schemathesis' cache stays out of the tree.
cd "$work"
status=0
# shellcheck disable=SC2086
"$venv/bin/st" --config-file "$root/scripts/schemathesis.toml" \
  run "http://127.0.0.1:$port/api/v1/openapi.json" \
  --header "Authorization: Bearer $key" \
  --max-examples "$max_examples" \
  --workers 1 \
  --request-timeout 10 \
  --warnings off \
  --exclude-operation-id create_webhooks \
  ${SCHEMATHESIS_ARGS:-} || status=$?
# The loopback guarantee: no webhook exists, and the server logged no delivery.
hooks="$(curl -fsS -H "Authorization: Bearer $key" "http://127.0.0.1:$port/api/v1/webhooks")"
if [ "$hooks" != '{"webhooks":[]}' ] || grep -q "webhook delivery" "$work/server.log"; then
  echo "a webhook was created or a delivery attempted: $hooks" >&2
  status=1
fi
if [ "$status" -ne 0 ]; then
  echo "schemathesis reported failures (exit $status); server log: the last lines" >&2
  tail -n 20 "$work/server.log" >&2
fi
exit "$status"
