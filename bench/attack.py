#!/usr/bin/env python3
"""Updraft under attack, loopback only (issue 19, point 10). Driven by bench/attack.sh.

Each scenario starts its own server (a fresh data directory, a free
127.0.0.1 port, the soft file limit at 1,024 as on a default Linux box),
attacks it for a bounded count and time, and prints one block: what was held
(other clients still served, a probe client's p50/p99, errors) and what was
lost (acknowledged stats events missing from the database, RSS and database
growth). A scenario that fails prints FAIL with the reason; the script never
stops on a failing server. Standard library only.
"""
import asyncio
import json
import logging
import os
import resource
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid

BIN = os.environ["UPDRAFT_BIN"]
APP = "com.attack.app"
FILE_LIMIT = int(os.environ.get("ATTACK_FILE_LIMIT", "1024"))
HARD_FILE_LIMIT = int(os.environ.get("ATTACK_HARD_FILE_LIMIT", "0"))
RESULTS = []


def now_ms():
    return int(time.time() * 1000)


def device_body(device_id, version_name="1.0.0", **extra):
    body = {
        "platform": "android", "device_id": device_id, "app_id": APP, "custom_id": "",
        "version_build": "1.0.0", "version_code": "1", "version_os": "14",
        "version_name": version_name, "plugin_version": "8.51.14",
        "is_emulator": False, "is_prod": True, "defaultChannel": "",
    }
    body.update(extra)
    return body


def stat_event(device_id, version_name="1.0.0", action="app_launch_ready"):
    return device_body(device_id, version_name, action=action, old_version_name="", timestamp=now_ms())


class Server:
    """One updraft process on its own data directory and port."""

    def __init__(self, data_dir=None, env=None):
        self.tmp = tempfile.mkdtemp(prefix="updraft-attack-")
        self.data_dir = data_dir or os.path.join(self.tmp, "data")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.env = dict(os.environ, UPDRAFT_DATA_DIR=self.data_dir, UPDRAFT_LISTEN=f"127.0.0.1:{self.port}",
                        UPDRAFT_PUBLIC_URL=f"http://127.0.0.1:{self.port}", RUST_LOG="warn", **(env or {}))
        self.key = subprocess.run([BIN, "apikey", "create", "--name", "attack", "--role", "admin"], env=self.env,
                                  capture_output=True, text=True, check=True).stdout.strip()
        self.log = open(os.path.join(self.tmp, "server.log"), "wb")

        def limit_files():
            # The soft limit of a default Linux box; the server raises it to
            # the hard limit at start. ATTACK_HARD_FILE_LIMIT lowers that too.
            hard = HARD_FILE_LIMIT or resource.getrlimit(resource.RLIMIT_NOFILE)[1]
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(FILE_LIMIT, hard), hard))

        self.proc = subprocess.Popen([BIN, "serve"], env=self.env, stdout=self.log, stderr=self.log,
                                     preexec_fn=limit_files)
        for _ in range(200):
            if self.request("GET", "/readyz", timeout=1)[0] == 200:
                break
            time.sleep(0.05)
        else:
            raise RuntimeError("the server did not become ready")
        self.api("POST", "/api/v1/apps", {"app_id": APP, "name": "Attack"})
        self.api("POST", f"/api/v1/apps/{APP}/channels", {"name": "production", "public": True})

    def request(self, method, path, body=None, headers=None, timeout=5):
        data = json.dumps(body).encode() if body is not None and not isinstance(body, bytes) else body
        head = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{self.port}", "Connection: close"]
        for k, v in (headers or {}).items():
            head.append(f"{k}: {v}")
        if data is not None:
            head += ["Content-Type: application/json", f"Content-Length: {len(data)}"]
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as s:
                s.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + (data or b""))
                chunks = []
                while True:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    chunks.append(chunk)
        except OSError as err:
            return 0, {}, str(err).encode()
        raw = b"".join(chunks)
        head, _, rest = raw.partition(b"\r\n\r\n")
        try:
            status = int(head.split(b" ")[1])
        except (IndexError, ValueError):
            return 0, {}, raw
        headers = {}
        for line in head.split(b"\r\n")[1:]:
            k, _, v = line.partition(b":")
            headers[k.strip().lower().decode()] = v.strip().decode()
        return status, headers, rest

    def api(self, method, path, body=None):
        return self.request(method, path, body, {"Authorization": f"Bearer {self.key}"})

    def metric(self, name):
        """The value of an unlabelled series on /metrics, or None."""
        status, _, body = self.request("GET", "/metrics")
        if status != 200:
            return None
        for line in body.decode(errors="replace").splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        return None

    def rss_kb(self):
        try:
            with open(f"/proc/{self.proc.pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1])
        except OSError:
            pass
        return 0

    def db_bytes(self):
        total = 0
        for name in os.listdir(self.data_dir):
            if name.startswith("updraft.db"):
                total += os.path.getsize(os.path.join(self.data_dir, name))
        return total

    def db(self, sql):
        with sqlite3.connect(f"file:{os.path.join(self.data_dir, 'updraft.db')}?mode=ro", uri=True, timeout=10) as c:
            return c.execute(sql).fetchall()

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        if self.alive():
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()

    def cleanup(self):
        shutil.rmtree(self.tmp, ignore_errors=True)


# ---------- asyncio HTTP client (keep-alive, Content-Length bodies) ----------

async def read_response(reader):
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ")[1])
    length, headers = 0, {}
    for line in lines[1:]:
        k, _, v = line.partition(b":")
        headers[k.strip().lower()] = v.strip()
    if b"content-length" in headers:
        length = int(headers[b"content-length"])
        body = await reader.readexactly(length)
    elif headers.get(b"transfer-encoding", b"").lower() == b"chunked":
        body = b""
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            body += await reader.readexactly(size + 2)
            if size == 0:
                break
    else:
        body = b""
    return status, headers, body


def encode(port, method, path, body):
    data = json.dumps(body).encode()
    return (f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\n\r\n").encode() + data


async def flood(port, make_request, total, seconds, connections, on_response=None):
    """Sends up to `total` requests in at most `seconds` over `connections` keep-alive sockets."""
    statuses, sent = {}, [0]
    deadline = time.monotonic() + seconds

    async def worker():
        reader = writer = None
        while sent[0] < total and time.monotonic() < deadline:
            i = sent[0]
            sent[0] += 1
            request, context = make_request(i)
            try:
                if writer is None:
                    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 5)
                writer.write(request)
                status, headers, body = await asyncio.wait_for(read_response(reader), 10)
            except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError, IndexError):
                status, headers, body = 0, {}, b""
                if writer is not None:
                    writer.close()
                reader = writer = None
            statuses[status] = statuses.get(status, 0) + 1
            if on_response:
                on_response(status, body, context)
            if headers.get(b"connection", b"").lower() == b"close" and writer is not None:
                writer.close()
                reader = writer = None
        if writer is not None:
            writer.close()

    started = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(connections)))
    return statuses, sent[0], time.monotonic() - started


async def probe(port, seconds, interval=0.05):
    """Well-behaved devices checking for updates, each on a fresh connection.

    Every check comes from another device: one phone checks a few times an
    hour, and the per-device limit (120 a minute) would refuse a single
    device polling every 50 ms, which is not what the probe measures."""
    latencies, errors = [], 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        body = device_body(str(uuid.uuid4()))
        started = time.monotonic()
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 3)
            writer.write(encode(port, "POST", "/updates", body))
            status, _, _ = await asyncio.wait_for(read_response(reader), 3)
            writer.close()
            if status != 200:
                errors += 1
            else:
                latencies.append((time.monotonic() - started) * 1000)
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError, IndexError):
            errors += 1
        await asyncio.sleep(interval)
    return latencies, errors


def pct(values, p):
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p / 100))]


def probe_text(latencies, errors):
    return (f"probe {len(latencies)} ok / {errors} failed, p50 {pct(latencies, 50):.1f} ms, "
            f"p99 {pct(latencies, 99):.1f} ms")


def report(name, ok, held, lost, note=""):
    RESULTS.append((name, ok))
    print(f"\n## {name}: {'PASS' if ok else 'FAIL'}{(' — ' + note) if note else ''}")
    print(f"   held: {held}")
    print(f"   lost: {lost}")
    sys.stdout.flush()


# ---------- scenarios ----------

async def scenario_updates_flood():
    srv = Server()
    try:
        rss0 = srv.rss_kb()
        port = srv.port
        probe_task = asyncio.create_task(probe(port, 12))
        statuses, sent, took = await flood(
            port, lambda i: (encode(port, "POST", "/updates", device_body(str(uuid.UUID(int=i)))), None),
            total=60_000, seconds=12, connections=64)
        lat, err = await probe_task
        errors_5xx = sum(n for s, n in statuses.items() if s >= 500 or s == 0)
        ok = srv.alive() and err == 0 and errors_5xx == 0
        report("updates flood", ok,
               f"{sent} requests in {took:.1f} s ({sent / took:.0f}/s), statuses {dict(sorted(statuses.items()))}; "
               + probe_text(lat, err),
               f"RSS {rss0 // 1024} -> {srv.rss_kb() // 1024} MiB")
    finally:
        srv.stop()
        srv.cleanup()


async def scenario_stats_flood():
    srv = Server()
    try:
        rss0, db0 = srv.rss_kb(), srv.db_bytes()
        port = srv.port
        acked = [0]

        def make(i):
            events = [stat_event(str(uuid.UUID(int=i * 20 + j))) for j in range(20)]
            return encode(port, "POST", "/stats", events), len(events)

        def on_response(status, body, n):
            if status == 200:
                acked[0] += n

        probe_task = asyncio.create_task(probe(port, 12))
        statuses, sent, took = await flood(port, make, total=5_000, seconds=12, connections=32,
                                           on_response=on_response)
        lat, err = await probe_task
        time.sleep(2)  # stats are written behind the answer: give the writer its flush
        stored = srv.db(f"SELECT count(*) FROM stats_events WHERE app_id = '{APP}'")[0][0]
        missing = max(0, acked[0] - stored)
        ok = srv.alive() and err == 0 and missing == 0
        report("stats flood (batches of 20)", ok,
               f"{sent} batches in {took:.1f} s, statuses {dict(sorted(statuses.items()))}, "
               f"{acked[0]} events acknowledged; " + probe_text(lat, err),
               f"{missing} acknowledged events missing ({stored} stored); RSS {rss0 // 1024} -> "
               f"{srv.rss_kb() // 1024} MiB; database {db0 // 1024} -> {srv.db_bytes() // 1024} KiB")
    finally:
        srv.stop()
        srv.cleanup()


async def scenario_slow_clients(count=2000, hold=30):
    """`count` sockets that never finish: a third send headers a byte at a time,
    a third announce a body and send it slowly, a third ask for a large answer
    and stop reading. Meanwhile a probe device must still be answered."""
    srv = Server()
    opened, refused = [], [0]
    try:
        rss0 = srv.rss_kb()
        port = srv.port
        big = "/api/v1/openapi.json"

        async def slow_client(i):
            try:
                reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 5)
            except (OSError, asyncio.TimeoutError):
                refused[0] += 1
                return
            sock = writer.get_extra_info("socket")
            opened.append(writer)
            try:
                kind = i % 3
                if kind == 0:
                    partial = f"POST /updates HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nX-Slow: "
                    for byte in partial.encode():
                        if writer.is_closing():
                            break
                        writer.write(bytes([byte]))
                        await asyncio.sleep(hold / len(partial))
                elif kind == 1:
                    writer.write(f"POST /stats HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                                 f"Content-Length: 100000\r\n\r\n[".encode())
                    for _ in range(hold):
                        await asyncio.sleep(1)
                        if writer.is_closing():
                            break
                        writer.write(b" ")
                else:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                    writer.write(f"GET {big} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {srv.key}\r\n\r\n".encode())
                    try:
                        await asyncio.wait_for(reader.read(1024), hold)
                    except asyncio.TimeoutError:
                        pass
                    await asyncio.sleep(hold)
                await writer.drain()
            except (OSError, ConnectionError):
                pass

        tasks = [asyncio.create_task(slow_client(i)) for i in range(count)]
        await asyncio.sleep(5)  # let them all connect
        peak_open = srv.metric("updraft_http_connections")
        limit = srv.metric("updraft_http_connection_limit")
        lat, err = await probe(port, hold - 8, interval=0.1)
        # The server's own count: a socket it closed is gone here even while
        # the attacker has not noticed (it never reads).
        still_open = srv.metric("updraft_http_connections")
        await asyncio.wait(tasks, timeout=hold + 10)
        for task in tasks:
            task.cancel()
        for w in opened:
            w.close()
        await asyncio.sleep(1)
        after_ok = srv.request("POST", "/updates", device_body(str(uuid.uuid4())))[0] == 200
        ok = srv.alive() and err == 0 and after_ok
        report(f"{count} slow and idle clients (file limit {FILE_LIMIT})", ok,
               f"{len(opened)} connected, {refused[0]} refused at connect; " + probe_text(lat, err)
               + f"; served after they left: {after_ok}",
               f"RSS {rss0 // 1024} -> {srv.rss_kb() // 1024} MiB while held; connections open at the "
               f"server {peak_open} at 5 s (limit {limit}), {still_open} after {hold - 3} s")
    finally:
        srv.stop()
        srv.cleanup()


async def scenario_version_flood(count=3000, cap=1000):
    """Every event from another device with a new version name: what the
    per-device limit cannot stop, the rollups' per-day cap must."""
    srv = Server(env={"UPDRAFT_ROLLUP_MAX_DISTINCT_PER_DAY": str(cap)})
    try:
        db0 = srv.db_bytes()
        port = srv.port
        statuses, sent, took = await flood(
            port, lambda i: (encode(port, "POST", "/stats", [stat_event(str(uuid.UUID(int=i)), f"9.{i}.{i}")]),
                             None),
            total=count, seconds=20, connections=16)
        time.sleep(2)
        rows = srv.db(f"SELECT count(*) FROM stats_daily WHERE app_id = '{APP}'")[0][0]
        # One action in this flood: at most `cap` names plus the `other` row.
        ok = srv.alive() and rows <= cap + 1
        report(f"{count} new version names from {count} devices", ok,
               f"{sent} events in {took:.1f} s, statuses {dict(sorted(statuses.items()))}",
               f"daily rollup rows {rows} (cap {cap} + other); folded into other: "
               f"{srv.metric('updraft_rollup_folded_events_total')}; database {db0 // 1024} -> "
               f"{srv.db_bytes() // 1024} KiB",
               note="" if ok else "rollup cardinality is unbounded")
    finally:
        srv.stop()
        srv.cleanup()


async def scenario_long_fields():
    srv = Server()
    try:
        db0 = srv.db_bytes()
        results = []
        for field, size in [("version_name", 1_000_000), ("custom_id", 1_000_000), ("version_os", 100_000)]:
            event = stat_event(str(uuid.uuid4()))
            event[field] = "9" * size if field == "version_name" else "x" * size
            status = srv.request("POST", "/stats", [event], timeout=20)[0]
            update_status = srv.request("POST", "/updates", device_body(str(uuid.uuid4()), **{field: "x" * size}),
                                        timeout=20)[0]
            results.append(f"{field}×{size}: /stats {status}, /updates {update_status}")
        time.sleep(2)
        longest = srv.db(f"SELECT coalesce(max(length(version_name)), 0) FROM stats_events")[0][0]
        growth = srv.db_bytes() - db0
        ok = srv.alive() and longest <= 1024 and growth < 1_000_000
        report("over-long fields", ok, "; ".join(results),
               f"longest stored version_name {longest} characters; database grew {growth // 1024} KiB")
    finally:
        srv.stop()
        srv.cleanup()


async def scenario_full_disk(size_mb=20):
    mount = tempfile.mkdtemp(prefix="updraft-attack-disk-")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", mount],
                             capture_output=True).returncode == 0
    if not mounted:
        report(f"full disk ({size_mb} MiB tmpfs)", False, "-", "-", note="could not mount a tmpfs (root needed)")
        os.rmdir(mount)
        return
    srv = None
    try:
        # The default watermark (64 MiB) is larger than this whole disk: 1 MiB
        # here, so both the watermark and SQLite's own "disk full" are hit.
        srv = Server(data_dir=os.path.join(mount, "data"),
                     env={"UPDRAFT_MIN_FREE_DISK_MB": "1", "UPDRAFT_WRITE_CHECK_INTERVAL_MS": "500"})
        port = srv.port
        acked, statuses = [0], {}
        # Fill the disk but leave a little, then let the stats fill the rest.
        filler = os.path.join(mount, "filler")
        free = shutil.disk_usage(mount).free
        with open(filler, "wb") as f:
            f.write(b"\0" * max(0, free - 3 * 1024 * 1024))

        def make(i):
            events = [stat_event(str(uuid.UUID(int=i * 50 + j)), "1.0.0") for j in range(50)]
            return encode(port, "POST", "/stats", events), len(events)

        def on_response(status, body, n):
            if status == 200:
                acked[0] += n

        st, sent, _ = await flood(port, make, total=3000, seconds=20, connections=8, on_response=on_response)
        statuses.update(st)
        ready_full = srv.request("GET", "/readyz")[0]
        probe_full = srv.request("POST", "/updates", device_body(str(uuid.uuid4())))[0]
        os.remove(filler)  # space returns
        recovered_after = None
        started = time.monotonic()
        while time.monotonic() - started < 15:
            status = srv.request("POST", "/stats", [stat_event(str(uuid.uuid4()))])[0]
            if status == 200:
                acked[0] += 1
                recovered_after = time.monotonic() - started
                break
            time.sleep(0.5)
        ready_after = srv.request("GET", "/readyz")[0]
        app_write = srv.api("PATCH", f"/api/v1/apps/{APP}", {"name": "Attack 2"})[0]
        time.sleep(2)
        srv.stop()
        stored = srv.db(f"SELECT count(*) FROM stats_events WHERE app_id = '{APP}'")[0][0]
        integrity = srv.db("PRAGMA integrity_check")[0][0]
        missing = max(0, acked[0] - stored)
        refused = {s: n for s, n in statuses.items() if s != 200}
        ok = recovered_after is not None and missing == 0 and integrity == "ok" and app_write == 200
        report(f"full disk ({size_mb} MiB tmpfs)", ok,
               f"stats while filling: {dict(sorted(statuses.items()))} ({sum(refused.values())} refused); "
               f"/readyz when full {ready_full}, after {ready_after}; /updates when full {probe_full}; "
               f"writes back {'after %.1f s' % recovered_after if recovered_after is not None else 'NOT within 15 s'}"
               f" of space returning; management write after: {app_write}",
               f"{missing} acknowledged events missing ({acked[0]} acknowledged, {stored} stored); "
               f"integrity_check: {integrity}")
    except Exception as err:  # the scenario reports, the script goes on
        report(f"full disk ({size_mb} MiB tmpfs)", False, "-", "-", note=f"scenario error: {err!r}")
    finally:
        if srv is not None:
            srv.stop()
        subprocess.run(["umount", "-l", mount], capture_output=True)
        os.rmdir(mount)
        if srv is not None:
            srv.cleanup()


SCENARIOS = {
    "updates": scenario_updates_flood,
    "stats": scenario_stats_flood,
    "slow": scenario_slow_clients,
    "versions": scenario_version_flood,
    "long": scenario_long_fields,
    "disk": scenario_full_disk,
}


async def main(names):
    # A server closing a slow socket makes asyncio log every later write: noise here.
    logging.getLogger("asyncio").setLevel(logging.CRITICAL)
    # The attacker needs more sockets than the server is allowed.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))
    print(f"# Updraft attack script — {time.strftime('%Y-%m-%d %H:%M:%S')}, binary {BIN}")
    for name in names:
        started = time.monotonic()
        try:
            await asyncio.wait_for(SCENARIOS[name](), 90)
        except Exception as err:
            report(name, False, "-", "-", note=f"scenario error: {err!r}")
        print(f"   ({time.monotonic() - started:.0f} s)")
    passed = sum(1 for _, ok in RESULTS if ok)
    print(f"\nattack: {passed} passed, {len(RESULTS) - passed} failed")
    return 0 if passed == len(RESULTS) else 1


if __name__ == "__main__":
    names = sys.argv[1:] or list(SCENARIOS)
    sys.exit(asyncio.run(main(names)))
