#!/usr/bin/env bash
# Installs the servers the test suite starts as throwaway processes, when they
# are missing: PostgreSQL (Debian's package) and moto's S3-compatible server
# (PyPI, into target/test-tools/venv). The test kit (crates/updraft-testkit)
# runs this itself on first use, so `cargo test --workspace` works on a fresh
# machine; CI runs it up front. Safe to run concurrently and repeatedly.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
tools="${UPDRAFT_TEST_TOOLS_DIR:-$root/target/test-tools}"
mkdir -p "$tools"
exec 9>"$tools/install.lock"
flock 9

have_postgres() {
  ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || command -v postgres >/dev/null 2>&1
}

if ! have_postgres; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "PostgreSQL is not installed; run as root: apt-get install -y postgresql" >&2
    exit 1
  fi
  echo "installing PostgreSQL from Debian's packages" >&2
  apt-get update -qq
  # The package tries to start its own cluster as a service; in a container
  # without an init system that step may fail after the binaries are in
  # place. The tests start their own server, so only the binaries matter.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >/dev/null ||
    echo "apt-get reported a failure; checking for the PostgreSQL binaries anyway" >&2
  if ! have_postgres; then
    echo "PostgreSQL could not be installed" >&2
    exit 1
  fi
fi

# runuser comes with util-linux; PostgreSQL refuses to run as root, so as root
# the test kit starts it as the `postgres` user the package creates.
if [ "$(id -u)" -eq 0 ] && ! id postgres >/dev/null 2>&1; then
  useradd --system --no-create-home postgres
fi

moto_version="5.2.1"
if [ ! -x "$tools/venv/bin/moto_server" ] || ! grep -qs "$moto_version" "$tools/venv/moto-version"; then
  echo "installing moto[server] $moto_version from PyPI into $tools/venv" >&2
  python3 -m venv "$tools/venv"
  "$tools/venv/bin/pip" install -q --disable-pip-version-check "moto[server]==$moto_version"
  echo "$moto_version" >"$tools/venv/moto-version"
fi
