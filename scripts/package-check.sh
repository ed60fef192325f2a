#!/usr/bin/env bash
# Exercises the packages on this machine (issue 17 point 5): the container
# image built from ./Dockerfile and run, compose.yaml's Updraft settings
# against a real PostgreSQL and an S3-compatible server, and the systemd unit
# under a real systemd (systemd-nspawn), installed and backed up with
# docs/deploy.md's steps (the blocks between its systemd-install and
# systemd-backup markers, run as written); and the README's reverse-proxy
# snippets (Caddyfile parsed, nginx run in front of the server over HTTPS).
# About a minute on 2 cores.
#
# Run as root (CI does, in .ci/run). Installs what it needs from Debian's
# packages when missing: podman, runc, systemd-container (nspawn), curl,
# nginx, caddy, openssl,
# python3-yaml; PostgreSQL and moto through scripts/test-services.sh.
#
# What this machine cannot do, and what the check does instead:
# - No registry of base images is reachable: the image is built from the
#   project's Dockerfile with BINARY_SOURCE=prebuilt (the binary cargo built
#   here) and RUNTIME_IMAGE set to a base assembled FROM scratch out of the
#   files the binary needs (glibc, libgcc, CA certificates, /etc/passwd with
#   uid 65532) — the contents of the default distroless cc image. The
#   Dockerfile's build stage (rust:1-bookworm) is not run.
# - compose.yaml's postgres/s3/create-bucket images cannot be pulled: the
#   updraft service's environment from compose.yaml runs the image against a
#   throwaway PostgreSQL and moto (S3-compatible), host names replaced, and
#   the create-bucket service's command runs on the host against moto.
# - The container has no CAP_SYS_RESOURCE: podman's default ulimits (nofile
#   and nproc above this machine's hard limits) are refused, so the runs use
#   a containers.conf with default_ulimits at or below them, and runc (crun
#   refuses this kernel's hybrid cgroup layout).
# - No systemd as PID 1: the unit runs under systemd inside systemd-nspawn
#   (the host's own /usr, a private network namespace, state in tmpfs).
#
# PACKAGE_CHECK_PROFILE=release uses a release build instead of the debug one
# the test suite already built.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
started=$SECONDS
work="$root/target/package-check"
run_id="pc$$"
profile="${PACKAGE_CHECK_PROFILE:-debug}"

step() { printf '\n== [%3ds] %s\n' "$((SECONDS - started))" "$*"; }
fail() {
  echo "package-check: FAILED: $*" >&2
  exit 1
}

# --- cleanup: only what this script started -----------------------------
containers=()
volumes=()
images=()
pids=()
nspawn_pid=""
cleanup() {
  set +e
  for c in "${containers[@]}"; do podman rm -f -t 5 "$c" >/dev/null 2>&1; done
  for v in "${volumes[@]}"; do podman volume rm -f "$v" >/dev/null 2>&1; done
  for i in "${images[@]}"; do podman rmi -f "$i" >/dev/null 2>&1; done
  if [ -n "$nspawn_pid" ] && kill -0 "$nspawn_pid" 2>/dev/null; then
    kill "$nspawn_pid" 2>/dev/null
    for _ in $(seq 1 50); do kill -0 "$nspawn_pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$nspawn_pid" 2>/dev/null
  fi
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  if [ -n "${pg_dir:-}" ]; then
    # runuser may not pass the signal on: stop the postmaster itself.
    if [ -f "$pg_dir/data/postmaster.pid" ]; then
      pg_pid=$(head -1 "$pg_dir/data/postmaster.pid")
      kill -INT "$pg_pid" 2>/dev/null
      for _ in $(seq 1 50); do kill -0 "$pg_pid" 2>/dev/null || break; sleep 0.2; done
    fi
    rm -rf "$pg_dir"
  fi
}
trap cleanup EXIT
# A TERM (timeout in .ci/run) or INT still runs the cleanup.
trap "exit 143" TERM
trap "exit 130" INT

# Without systemd as PID 1, podman logs an error for every health-check
# timer it cannot create (the checks here run `podman healthcheck run`
# themselves): those lines are dropped, everything else is shown.
podman() {
  if [ "${1:-}" = logs ]; then
    command podman "$@"
  else
    command podman "$@" 2> >(grep -v 'unable to get systemd connection' >&2)
  fi
}

# The server's log lines without colour codes.
plain_logs() { podman logs "$1" 2>&1 | sed 's/\x1b\[[0-9;]*m//g'; }

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_for() { # wait_for SECONDS DESCRIPTION COMMAND...
  local limit=$1 what=$2
  shift 2
  for _ in $(seq 1 $((limit * 5))); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.2
  done
  fail "$what: not within ${limit}s"
}

# --- tools ---------------------------------------------------------------
step "tools"
need=()
command -v podman >/dev/null || need+=(podman)
command -v runc >/dev/null || need+=(runc)
command -v systemd-nspawn >/dev/null || need+=(systemd-container)
command -v systemd-analyze >/dev/null || need+=(systemd)
command -v curl >/dev/null || need+=(curl)
command -v objcopy >/dev/null || need+=(binutils)
command -v nginx >/dev/null || need+=(nginx)
command -v caddy >/dev/null || need+=(caddy)
command -v openssl >/dev/null || need+=(openssl)
python3 -c 'import yaml' 2>/dev/null || need+=(python3-yaml)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing from Debian: ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
python3 -c 'import yaml' 2>/dev/null || fail "python3 cannot import yaml (python3-yaml)"
scripts/test-services.sh
podman --version
systemd-analyze --version | head -1

mkdir -p "$work"
cat >"$work/containers.conf" <<EOF
# Written by scripts/package-check.sh: podman's default ulimits exceed this
# machine's hard limits (no CAP_SYS_RESOURCE), and crun refuses the hybrid
# cgroup layout; runc does not.
[containers]
default_ulimits = ["nofile=$(ulimit -Hn):$(ulimit -Hn)", "nproc=4096:4096"]
[engine]
runtime = "runc"
EOF
export CONTAINERS_CONF="$work/containers.conf"

# --- the binary ----------------------------------------------------------
step "binary ($profile)"
if [ "$profile" = release ]; then
  cargo build --release --locked -p updraft --bin updraft
else
  cargo build --locked -p updraft --bin updraft
fi
target_dir="${CARGO_TARGET_DIR:-$root/target}"
binary="$target_dir/$profile/updraft"
rm -rf "$work/prebuilt" "$work/base"
mkdir -p "$work/prebuilt/data"
# Debug info off: the layout the Dockerfile's build stage produces (/out).
objcopy --strip-debug "$binary" "$work/prebuilt/updraft"
cli="$work/prebuilt/updraft"

# --- a base image FROM scratch with what the binary needs ----------------
step "runtime base image (FROM scratch: glibc, libgcc, CA certificates, uid 65532)"
base="$work/base"
mkdir -p "$base/etc/ssl/certs" "$base/tmp"
chmod 1777 "$base/tmp"
for lib in $(ldd "$cli" | grep -o '/[^ ]*'); do
  mkdir -p "$base$(dirname "$lib")"
  cp -L "$lib" "$base$lib"
done
cp -L /etc/ssl/certs/ca-certificates.crt "$base/etc/ssl/certs/"
printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$base/etc/passwd"
printf 'root:x:0:\nnonroot:x:65532:\n' >"$base/etc/group"
tar -C "$base" -cf "$work/base.tar" .
base_image="localhost/updraft-check-base:$run_id"
podman import -q "$work/base.tar" "$base_image" >/dev/null
images+=("$base_image")

# --- docker build ----------------------------------------------------------
step "podman build (Dockerfile, BINARY_SOURCE=prebuilt, RUNTIME_IMAGE=$base_image)"
image="localhost/updraft:$run_id"
podman build -q --format docker \
  --build-arg BINARY_SOURCE=prebuilt \
  --build-arg RUNTIME_IMAGE="$base_image" \
  -t "$image" . >/dev/null
images+=("$image")
# The build leaves the prebuilt stage as an untagged image: remove it (only
# that one: new since the build began, and made from the PREBUILT argument).
for dangling in $(podman images -q --filter dangling=true --filter since="$base_image"); do
  if podman image inspect "$dangling" --format '{{range .History}}{{.CreatedBy}}{{"\n"}}{{end}}' 2>/dev/null |
    grep -q 'ARG PREBUILT'; then
    images+=("$dangling")
  fi
done
podman image inspect "$image" >"$work/image.json"
python3 - "$work/image.json" <<'EOF'
import json, sys
image = json.load(open(sys.argv[1]))
if isinstance(image, list):  # `podman image inspect` prints an array of images
    image = image[0]
config = image["Config"]
problems = []
def expect(what, got, want):
    if got != want:
        problems.append(f"{what}: {got!r}, expected {want!r}")
expect("User", config.get("User"), "65532:65532")
env = dict(e.split("=", 1) for e in config.get("Env", []))
expect("UPDRAFT_DATA_DIR", env.get("UPDRAFT_DATA_DIR"), "/data")
expect("UPDRAFT_LISTEN", env.get("UPDRAFT_LISTEN"), "0.0.0.0:8080")
expect("Volumes", sorted(config.get("Volumes") or {}), ["/data"])
expect("ExposedPorts", sorted(config.get("ExposedPorts") or {}), ["8080/tcp"])
expect("Entrypoint", config.get("Entrypoint"), ["/usr/local/bin/updraft"])
expect("Cmd", config.get("Cmd"), ["serve"])
health = config.get("Healthcheck") or image.get("Healthcheck") or image.get("HealthCheck") or {}
expect("Healthcheck", health.get("Test"), ["CMD", "/usr/local/bin/updraft", "healthcheck"])
if problems:
    sys.exit("image configuration:\n  " + "\n  ".join(problems))
print("image config: user 65532, /data volume, env, port, entrypoint, HEALTHCHECK as expected")
EOF
echo "image size: $(podman image inspect "$image" --format '{{.Size}}') bytes (debug-info-stripped $profile binary)"

# --- the image on its defaults: SQLite + the /data volume --------------------
step "run the image (defaults: SQLite in the /data volume)"
volume="updraft-data-$run_id"
podman volume create "$volume" >/dev/null
volumes+=("$volume")
name="updraft-$run_id"
podman run -d --name "$name" -p 127.0.0.1::8080 -v "$volume:/data" "$image" >/dev/null
containers+=("$name")
# The image's HEALTHCHECK command, as the engine runs it.
wait_for 60 "HEALTHCHECK (updraft healthcheck) healthy" podman healthcheck run "$name"
port=$(podman port "$name" 8080/tcp | head -1 | sed 's/.*://')
url="http://127.0.0.1:$port"
curl -sf "$url/readyz" | grep -q '"status":"ok"' || fail "GET /readyz through the published port"
pid=$(podman inspect "$name" --format '{{.State.Pid}}')
uid=$(awk '/^Uid:/ {print $2}' "/proc/$pid/status")
[ "$uid" = 65532 ] || fail "the server runs as uid $uid, not 65532"
echo "serving on $url as uid $uid; HEALTHCHECK healthy"
key=$(podman exec "$name" updraft apikey create --name check --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])')
"$cli" --server "$url" --apikey "$key" app add com.example.app --name Example >/dev/null
podman stop -t 30 "$name" >/dev/null
exit_code=$(podman inspect "$name" --format '{{.State.ExitCode}}')
[ "$exit_code" = 0 ] || fail "the server exited $exit_code on SIGTERM"
plain_logs "$name" | grep -q "shutdown complete" || fail "no 'shutdown complete' in the logs"
podman rm "$name" >/dev/null
# A new container on the same volume serves what the first one stored.
podman run -d --name "$name" -p 127.0.0.1::8080 -v "$volume:/data" "$image" >/dev/null
wait_for 60 "HEALTHCHECK after re-creating the container" podman healthcheck run "$name"
port=$(podman port "$name" 8080/tcp | head -1 | sed 's/.*://')
"$cli" --server "http://127.0.0.1:$port" --apikey "$key" app list --json | grep -q com.example.app ||
  fail "the app stored in the volume is gone after re-creating the container"
echo "SIGTERM: exit 0, 'shutdown complete'; a new container on the volume serves the stored app and key"
# docs/deploy.md's container backup: into the volume, while serving.
podman exec "$name" updraft backup --out /data/backup.tar >/dev/null || fail "backup inside the container"
podman exec "$name" updraft backup --verify /data/backup.tar | grep -q "a complete Updraft backup" ||
  fail "backup --verify inside the container"
echo "updraft backup --out /data/backup.tar inside the running container; --verify accepts it"
podman rm -f -t 5 "$name" >/dev/null

# --- compose.yaml's settings: PostgreSQL + S3-compatible storage -------------
step "compose.yaml's updraft environment against PostgreSQL and S3 (moto)"
pg_bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
pg_port=$(free_port)
pg_dir=$(mktemp -d /tmp/updraft-package-check-pg.XXXXXX)
chown postgres:postgres "$pg_dir"
runuser -u postgres -- "$pg_bin/initdb" -D "$pg_dir/data" -U postgres -A trust -E UTF8 --no-sync --locale=C >/dev/null
runuser -u postgres -- "$pg_bin/postgres" -D "$pg_dir/data" -p "$pg_port" -k "$pg_dir" \
  -c listen_addresses=127.0.0.1 -c fsync=off >"$pg_dir/postgres.log" 2>&1 &
pids+=($!)
wait_for 60 "PostgreSQL" "$pg_bin/pg_isready" -q -h 127.0.0.1 -p "$pg_port"
moto_port=$(free_port)
target/test-tools/venv/bin/moto_server -H 127.0.0.1 -p "$moto_port" >"$work/moto.log" 2>&1 &
pids+=($!)
wait_for 60 "moto" curl -s -o /dev/null "http://127.0.0.1:$moto_port/"

# compose.yaml: the updraft service's environment, the postgres service's
# user/database, and the create-bucket command, with secrets and host names
# filled in for this machine.
export POSTGRES_PASSWORD="pc-$(openssl rand -hex 8)" S3_SECRET_KEY="pc-$(openssl rand -hex 8)"
python3 - compose.yaml "$work" "$pg_port" "$moto_port" <<'EOF'
import os, re, sys, yaml
compose_file, work, pg_port, moto_port = sys.argv[1:]
compose = yaml.safe_load(open(compose_file))
services = compose["services"]

def interpolate(text):
    # ${VAR:?message} / ${VAR:-default} / ${VAR} as compose reads them; $$ is a literal $.
    def value(m):
        name, op, arg = m.group(1), m.group(2), m.group(3)
        got = os.environ.get(name, "")
        if op == ":?" and not got:
            sys.exit(f"compose.yaml needs {name}: {arg}")
        return got or (arg if op == ":-" else "")
    text = re.sub(r"\$\{(\w+)(?:(:\?|:-)([^}]*))?\}", value, str(text))
    return text.replace("$$", "$")

hosts = {"postgres:5432": f"127.0.0.1:{pg_port}", "http://s3:7070": f"http://127.0.0.1:{moto_port}"}
def local(text):
    for compose_host, here in hosts.items():
        text = text.replace(compose_host, here)
    return text

env = {k: local(interpolate(v)) for k, v in services["updraft"]["environment"].items()}
for needed in ("UPDRAFT_DATABASE_URL", "UPDRAFT_STORAGE_URL", "AWS_ENDPOINT_URL"):
    if needed not in env:
        sys.exit(f"compose.yaml's updraft service sets no {needed}")
with open(f"{work}/compose-updraft.env", "w") as f:
    for k, v in env.items():
        f.write(f"{k}={v}\n")
pg = {k: interpolate(v) for k, v in services["postgres"]["environment"].items()}
with open(f"{work}/compose-postgres.sh", "w") as f:
    f.write(f"pg_user={pg['POSTGRES_USER']}\npg_db={pg['POSTGRES_DB']}\npg_password={pg['POSTGRES_PASSWORD']}\n")
bucket = services["create-bucket"]
with open(f"{work}/compose-create-bucket.env", "w") as f:
    for k, v in bucket["environment"].items():
        f.write(f"export {k}={local(interpolate(v))!r}\n")
with open(f"{work}/compose-create-bucket.sh", "w") as f:
    f.write(interpolate(bucket["command"][0]))
print("compose.yaml: updraft environment:", ", ".join(sorted(env)))
EOF
# shellcheck disable=SC1091
. "$work/compose-postgres.sh"
runuser -u postgres -- "$pg_bin/psql" -q -h 127.0.0.1 -p "$pg_port" -U postgres -v ON_ERROR_STOP=1 \
  -c "CREATE ROLE \"$pg_user\" LOGIN PASSWORD '$pg_password'" -c "CREATE DATABASE \"$pg_db\" OWNER \"$pg_user\"" >/dev/null
# The create-bucket service's command, as compose would run it (twice: the
# second run finds the bucket and must succeed too).
(. "$work/compose-create-bucket.env" && sh "$work/compose-create-bucket.sh" && sh "$work/compose-create-bucket.sh")
app_port=$(free_port)
name="updraft-cluster-$run_id"
podman run -d --name "$name" --network host --env-file "$work/compose-updraft.env" \
  -e UPDRAFT_LISTEN="127.0.0.1:$app_port" "$image" >/dev/null
containers+=("$name")
wait_for 60 "HEALTHCHECK on PostgreSQL + S3" podman healthcheck run "$name"
plain_logs "$name" | grep -q "database=postgres://$pg_user:\*\*\*@127.0.0.1:$pg_port" ||
  fail "the server did not open compose.yaml's PostgreSQL (logs: $(plain_logs "$name" | tail -5))"
url="http://127.0.0.1:$app_port"
key=$(podman exec "$name" updraft apikey create --name check --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])')
bundle="$work/bundle"
rm -rf "$bundle" && mkdir -p "$bundle"
printf '<!doctype html><script>CapacitorUpdater.notifyAppReady()</script>\n' >"$bundle/index.html"
"$cli" --server "$url" --apikey "$key" app add com.example.app --name Example >/dev/null
"$cli" --server "$url" --apikey "$key" channel add production com.example.app --default >/dev/null
"$cli" --server "$url" --apikey "$key" bundle upload com.example.app --path "$bundle" --bundle 1.0.1 \
  --channel production --no-key --no-progress >/dev/null
answer=$(curl -sf "$url/updates" -H 'content-type: application/json' -d '{
  "platform": "android", "device_id": "6e2c0c9a-3f5b-4c8e-9a43-1f0f4b2d7c11",
  "app_id": "com.example.app", "version_build": "1.0.0", "version_name": "1.0.0",
  "plugin_version": "8.51.14", "is_emulator": false, "is_prod": true, "defaultChannel": ""}')
download=$(echo "$answer" | python3 -c 'import json,sys; print(json.load(sys.stdin)["url"])')
checksum=$(echo "$answer" | python3 -c 'import json,sys; print(json.load(sys.stdin)["checksum"])')
got=$(curl -sf "$download" | sha256sum | cut -d' ' -f1)
[ "$got" = "$checksum" ] || fail "downloaded bundle $got does not match the update answer's checksum $checksum"
curl -sf "http://127.0.0.1:$moto_port/updraft?list-type=2" | grep -q "<Key>bundles/blobs/$checksum</Key>" ||
  fail "the bundle is not in the bucket under bundles/blobs/"
echo "on compose.yaml's settings: key in PostgreSQL, bundle uploaded into the bucket, /updates answered, download matches $checksum"
podman rm -f -t 5 "$name" >/dev/null

# --- the README's reverse-proxy snippets ----------------------------------------
step "README's Caddy and nginx snippets: caddy adapt; HTTPS through nginx to the server"
readme_block() { # readme_block LANG: the README's first ```LANG block
  sed -n "/^\`\`\`$1\$/,/^\`\`\`\$/p" README.md | sed '1d;$d'
}
proxy="$work/proxy"
rm -rf "$proxy" && mkdir -p "$proxy/tmp"
readme_block caddy >"$proxy/Caddyfile"
[ -s "$proxy/Caddyfile" ] || fail "no caddy block in README.md"
# Parsed and turned into Caddy's JSON configuration (no certificate is asked for).
caddy adapt --config "$proxy/Caddyfile" --adapter caddyfile >"$proxy/caddy.json" 2>"$proxy/caddy.err" ||
  { cat "$proxy/caddy.err"; fail "caddy adapt of the README's Caddyfile"; }
python3 - "$proxy/caddy.json" <<'EOF_PY'
import json, sys
routes = json.load(open(sys.argv[1]))["apps"]["http"]["servers"]["srv0"]["routes"]
text = json.dumps(routes)
assert '"handler": "reverse_proxy"' in text and '127.0.0.1:8080' in text, text
assert '"encode"' not in text, "the Caddyfile compresses"
print("Caddyfile: one site, reverse_proxy to 127.0.0.1:8080, no encode")
EOF_PY
readme_block nginx >"$proxy/site.conf"
[ -s "$proxy/site.conf" ] || fail "no nginx block in README.md"
proxy_port=$(free_port)
app_port=$(free_port)
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=updates.example.com \
  -keyout "$proxy/key.pem" -out "$proxy/cert.pem" >/dev/null 2>&1
nginx_version=$(nginx -v 2>&1 | sed 's#.*/##')
# This machine's copy of the snippet: its port, certificate and upstream;
# `http2 on;` needs nginx 1.25.1, older ones take `listen … ssl http2`.
if printf '1.25.1\n%s\n' "$nginx_version" | sort -V -C; then http2_listen=""; else http2_listen=" http2"; fi
sed -e "s#listen 443 ssl;#listen 127.0.0.1:$proxy_port ssl$http2_listen;#" \
  -e "s#/etc/letsencrypt/live/updates.example.com/fullchain.pem#$proxy/cert.pem#" \
  -e "s#/etc/letsencrypt/live/updates.example.com/privkey.pem#$proxy/key.pem#" \
  -e "s#http://127.0.0.1:8080#http://127.0.0.1:$app_port#" \
  "$proxy/site.conf" >"$proxy/site.local.conf"
[ -z "$http2_listen" ] || sed -i '/^ *http2 on;/d' "$proxy/site.local.conf"
cat >"$proxy/nginx.conf" <<EOF_NGINX
pid $proxy/nginx.pid;
error_log $proxy/error.log;
events {}
http {
    access_log off;
    client_body_temp_path $proxy/tmp/body;
    proxy_temp_path $proxy/tmp/proxy;
    fastcgi_temp_path $proxy/tmp/fastcgi;
    uwsgi_temp_path $proxy/tmp/uwsgi;
    scgi_temp_path $proxy/tmp/scgi;
    gzip on;                     # as distributions ship it: the snippet must turn it off for /dl/
    gzip_types *;
    include $proxy/site.local.conf;
}
EOF_NGINX
nginx -t -q -c "$proxy/nginx.conf" || fail "nginx -t of the README's nginx server block (nginx $nginx_version)"
nginx -c "$proxy/nginx.conf" -g 'daemon off;' &
pids+=($!)
# The server on its defaults behind it: no public_url, so the links come from
# the Host and X-Forwarded-Proto the proxy sets.
UPDRAFT_DATA_DIR="$proxy/data" "$cli" apikey create --name proxy >"$proxy/key.txt"
key=$(cat "$proxy/key.txt")
env -u UPDRAFT_PUBLIC_URL UPDRAFT_DATA_DIR="$proxy/data" UPDRAFT_LISTEN="127.0.0.1:$app_port" NO_COLOR=1 \
  "$cli" serve >"$proxy/updraft.log" 2>&1 &
pids+=($!)
wait_for 60 "updraft behind nginx" curl -sf "http://127.0.0.1:$app_port/readyz"
url="http://127.0.0.1:$app_port"
"$cli" --server "$url" --apikey "$key" app add com.example.app --name Example >/dev/null
"$cli" --server "$url" --apikey "$key" channel add production com.example.app --default >/dev/null
"$cli" --server "$url" --apikey "$key" bundle upload com.example.app --path "$bundle" --bundle 1.0.1 \
  --channel production --no-key --no-progress >/dev/null 2>&1
public="https://updates.example.com:$proxy_port"
via_proxy=(curl -sf --cacert "$proxy/cert.pem" --resolve "updates.example.com:$proxy_port:127.0.0.1")
wait_for 10 "nginx" "${via_proxy[@]}" "$public/readyz"
answer=$("${via_proxy[@]}" "$public/updates" -H 'content-type: application/json' -d '{
  "platform": "ios", "device_id": "6e2c0c9a-3f5b-4c8e-9a43-1f0f4b2d7c11",
  "app_id": "com.example.app", "version_build": "1.0.0", "version_name": "1.0.0",
  "plugin_version": "8.51.14", "is_emulator": false, "is_prod": true, "defaultChannel": ""}')
download=$(echo "$answer" | python3 -c 'import json,sys; print(json.load(sys.stdin)["url"])')
checksum=$(echo "$answer" | python3 -c 'import json,sys; print(json.load(sys.stdin)["checksum"])')
# nginx's $host carries no port: on 443 the link is exactly the public address.
[[ "$download" == "https://updates.example.com/dl/"* ]] || fail "download link through nginx: $download"
path="${download#https://updates.example.com}"
"${via_proxy[@]}" -H 'accept-encoding: gzip, br' -D "$proxy/headers" -o "$proxy/bundle.zip" "$public$path" ||
  fail "download through nginx"
! grep -qi '^content-encoding:' "$proxy/headers" || fail "nginx compressed a bundle download: $(cat "$proxy/headers")"
got=$(sha256sum "$proxy/bundle.zip" | cut -d' ' -f1)
[ "$got" = "$checksum" ] || fail "bundle through nginx hashes to $got, not $checksum"
"${via_proxy[@]}" -o /dev/null -w '%{http_code}' -r 0-9 "$public$path" | grep -q 206 || fail "Range through nginx"
[ "$("${via_proxy[@]}" -s -o /dev/null -w '%{http_code}' "$public/metrics" || true)" = 404 ] ||
  fail "/metrics is reachable through nginx"
echo "nginx $nginx_version: HTTPS /updates links https://updates.example.com/dl/…, download byte-identical (no Content-Encoding, gzip on elsewhere), Range 206, /metrics 404"

# --- the systemd unit ----------------------------------------------------------
step "systemd-analyze verify + security (the unit, ExecStart pointed at the built binary)"
mkdir -p "$work/systemd"
sed "s#^ExecStart=/usr/local/bin/updraft#ExecStart=$cli#" packaging/systemd/updraft.service >"$work/systemd/updraft.service"
systemd-analyze verify "$work/systemd/updraft.service"
systemd-analyze security --offline=yes "$work/systemd/updraft.service" | tail -1

step "the unit under a real systemd (systemd-nspawn), installed and backed up with docs/deploy.md's steps"
# The install block of docs/deploy.md, between its markers, run as written
# (the release binary's path replaced by the one built here).
doc_block() { # doc_block NAME: the sh block of docs/deploy.md between <!-- NAME:begin/end -->
  sed -n "/<!-- $1:begin -->/,/<!-- $1:end -->/p" docs/deploy.md | sed '1,/^```sh$/d; /^```$/,$d'
}
install_steps=$(doc_block systemd-install)
[ -n "$install_steps" ] || fail "no systemd install block in docs/deploy.md"
backup_steps=$(doc_block systemd-backup)
[ -n "$backup_steps" ] || fail "no systemd backup block in docs/deploy.md"
rel_binary="${cli#"$root"/}"
install_steps="${install_steps//target\/release\/updraft/$rel_binary}"
rm -rf "$work/systemd/usr-local-bin" && mkdir -p "$work/systemd/usr-local-bin"
# The host's /usr read-only, / and /etc in tmpfs (PAM's configuration, which
# runuser needs, bound from the host), no network but loopback;
# /usr/local/bin writable (the install step's target), the repository at /src.
systemd-nspawn --quiet -D / --volatile=yes --register=no --keep-unit --private-network \
  --machine="updraft-$run_id" --bind="$work/systemd/usr-local-bin:/usr/local/bin" \
  --bind-ro="$root:/src" --bind-ro=/etc/pam.d --bind-ro=/etc/security --boot --console=pipe \
  </dev/null >"$work/systemd/nspawn.log" 2>&1 &
nspawn_pid=$!
container_init() { pgrep -P "$nspawn_pid" -x systemd; }
wait_for 60 "systemd in the nspawn container" container_init
init_pid=$(container_init)
inside() { nsenter -t "$init_pid" -a "$@"; }
# systemd answers systemctl once its private socket is up (a few seconds
# after it starts); "starting" or "degraded" is fine: some of the host's own
# units cannot run in a container.
wait_for 60 "systemctl in the nspawn container" inside systemctl show -p SystemState --value
state=$(timeout 20 nsenter -t "$init_pid" -a systemctl is-system-running --wait || true)
echo "systemd in the container: $(inside systemctl --version | head -1), $state"
# network-online.target (the unit's After=) would wait up to 2 minutes for
# a network this private one never gets: not what is being checked here.
inside systemctl mask --now systemd-networkd-wait-online.service >/dev/null 2>&1 || true
echo "$install_steps" | sed 's/^/    # /'
inside sh -euc "cd /src && $install_steps" >"$work/systemd/install.out" 2>&1 ||
  { cat "$work/systemd/install.out"; fail "the install steps of docs/deploy.md"; }
key=$(grep -o 'upd_[A-Za-z0-9_]*' "$work/systemd/install.out" | head -1)
[ -n "$key" ] || { cat "$work/systemd/install.out"; fail "apikey create printed no key"; }
show() { inside systemctl show updraft -p "$1" --value; }
[ "$(show ActiveState)" = active ] || fail "updraft.service is $(show ActiveState)"
[ "$(show Type)" = notify ] || fail "Type is $(show Type)"
status_text=$(show StatusText)
[[ "$status_text" == *"/readyz: ready"* ]] || fail "status text: $status_text"
main_pid=$(show MainPID)
user=$(inside ps -o user= -p "$main_pid")
[ "$user" = updraft ] || fail "the service runs as $user"
echo "active, Type=notify, Status: \"$status_text\", MainPID $main_pid as user $user"
inside systemd-analyze verify /etc/systemd/system/updraft.service
inside systemd-analyze security updraft | tail -1
inside curl -sf -H "authorization: Bearer $key" -H 'content-type: application/json' \
  -d '{"app_id":"com.example.app","name":"Example"}' http://127.0.0.1:8080/api/v1/apps >/dev/null ||
  fail "creating an app through the service"
inside systemctl restart updraft
inside curl -sf -H "authorization: Bearer $key" http://127.0.0.1:8080/api/v1/apps | grep -q com.example.app ||
  fail "the app is gone after systemctl restart"
# docs/deploy.md's backup lines, against the running service.
inside sh -euc "$backup_steps" >"$work/systemd/backup.out" 2>&1 ||
  { cat "$work/systemd/backup.out"; fail "the backup steps of docs/deploy.md"; }
grep -q "a complete Updraft backup" "$work/systemd/backup.out" ||
  { cat "$work/systemd/backup.out"; fail "backup --verify did not accept the backup"; }
echo "docs/deploy.md's backup steps: backup as user updraft while serving, --verify accepts it"
inside systemctl stop updraft
[ "$(show ActiveState)" = inactive ] && [ "$(show ExecMainStatus)" = 0 ] ||
  fail "stop: $(show ActiveState), exit status $(show ExecMainStatus)"
inside journalctl -u updraft -o cat --no-pager | grep -q "shutdown complete" || fail "no 'shutdown complete' in the journal"
inside ls -ld /var/lib/updraft | grep -q " updraft updraft " || fail "/var/lib/updraft is not owned by updraft"
echo "API through the service, restart keeps the data, stop: exit 0 after 'shutdown complete'"

step "package check passed in $((SECONDS - started)) s"
