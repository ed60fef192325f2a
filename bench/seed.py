#!/usr/bin/env python3
"""Bulk parts of bench/run.sh, through Updraft's own HTTP interfaces.

  seed.py bundles        BASE KEY APPS PER_APP      register external bundles (management API)
  seed.py devices        BASE KEY APPS DEVICES      POST /stats batches of 200 events, one per device
  seed.py device-total   BASE KEY APPS              registry size, summed over the apps
  seed.py rolled-events  BASE KEY APPS              rolled-up event count of the last 2 days, summed
  seed.py raw-events     BASE KEY APPS SINCE_MS     raw events with timestamp >= SINCE_MS, summed
  seed.py dl-path        BASE KEY APP VERSION       the /dl/... path of a stored bundle

Device k (0 <= k < DEVICES) belongs to app k % APPS and has the id
device_id(k); the wrk scripts derive the same ids, so the load hits devices
that are in the registry. Standard library only.
"""

import hashlib
import http.client
import json
import multiprocessing
import sys
import time
import urllib.parse

BATCH = 200
ACTIONS_RUNNING = ("set", "app_moved_to_foreground", "app_launch_ready", "ping")
PLUGINS = ("5.10.2", "6.14.0", "7.35.1", "8.40.7", "8.51.14")


def app_id(index):
    return f"com.bench.app{index}"


def device_id(k):
    return f"00000000-0000-4000-8000-{k:012d}"


def platform_of(k):
    slot = k % 20
    return "android" if slot < 12 else ("ios" if slot < 19 else "electron")


class Api:
    """One keep-alive connection to the server."""

    def __init__(self, base, key):
        parsed = urllib.parse.urlparse(base)
        self.host, self.port = parsed.hostname, parsed.port
        self.key = key
        self.conn = None

    def call(self, method, path, body=None, auth=True):
        headers = {"Content-Type": "application/json"}
        if auth:
            headers["Authorization"] = f"Bearer {self.key}"
        data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
        for attempt in range(5):
            try:
                if self.conn is None:
                    self.conn = http.client.HTTPConnection(self.host, self.port, timeout=120)
                self.conn.request(method, path, body=data, headers=headers)
                response = self.conn.getresponse()
                payload = response.read()
                return response.status, response.getheader("Retry-After"), payload
            except (ConnectionError, http.client.HTTPException, OSError):
                self.conn = None
                if attempt == 4:
                    raise
                time.sleep(0.2)
        raise RuntimeError("unreachable")

    def json(self, path):
        status, _, payload = self.call("GET", path)
        if status != 200:
            raise SystemExit(f"GET {path}: HTTP {status}: {payload[:300]!r}")
        return json.loads(payload)


def seed_bundles(base, key, apps, per_app):
    api = Api(base, key)
    created = 0
    for a in range(apps):
        for v in range(per_app):
            version = f"1.0.{v}"
            body = {
                "version": version,
                "external_url": f"https://cdn.example.com/{app_id(a)}/{version}.zip",
                "checksum": hashlib.sha256(f"{app_id(a)}/{version}".encode()).hexdigest(),
                "comment": f"bench bundle {version}",
            }
            status, _, payload = api.call("POST", f"/api/v1/apps/{app_id(a)}/bundles", body)
            if status != 201:
                raise SystemExit(f"bundle {app_id(a)} {version}: HTTP {status}: {payload[:300]!r}")
            created += 1
    print(created)


def stats_batch(apps, devices, batch_number, now_ms):
    """The batch_number-th batch: BATCH distinct devices of one app, one event each."""
    per_app = devices // apps
    app = batch_number % apps
    first_slot = (batch_number // apps) * BATCH
    events = []
    for slot in range(first_slot, min(first_slot + BATCH, per_app)):
        k = slot * apps + app
        events.append(
            '{"platform":"%s","device_id":"%s","app_id":"%s","custom_id":"","version_build":"1.0.0",'
            '"version_code":"10","version_os":"%d","version_name":"1.0.%d","old_version_name":"1.0.0",'
            '"plugin_version":"%s","is_emulator":false,"is_prod":true,"install_source":"%s",'
            '"defaultChannel":"","action":"%s","timestamp":%d}'
            % (platform_of(k), device_id(k), app_id(app), 13 + k % 5, 10 + k % 11,
               PLUGINS[k % len(PLUGINS)], "google_play" if platform_of(k) == "android" else "app_store",
               ACTIONS_RUNNING[k % len(ACTIONS_RUNNING)], now_ms - (k % 3600) * 1000))
    return ("[" + ",".join(events) + "]").encode(), len(events)


def send_batches(args):
    base, key, apps, devices, worker, workers, now_ms = args
    api = Api(base, key)
    per_app = devices // apps
    batches = apps * -(-per_app // BATCH)
    acked = refused = 0
    for number in range(worker, batches, workers):
        body, count = stats_batch(apps, devices, number, now_ms)
        if count == 0:
            continue
        while True:
            status, retry_after, payload = api.call("POST", "/stats", body, auth=False)
            if status == 200:
                acked += count
                break
            if status == 429:
                refused += 1
                time.sleep(min(float(retry_after or 0.05), 1.0) / 10)
                continue
            raise SystemExit(f"POST /stats: HTTP {status}: {payload[:300]!r}")
    return acked, refused


def seed_devices(base, key, apps, devices, workers=4):
    now_ms = int(time.time() * 1000)
    started = time.monotonic()
    with multiprocessing.Pool(workers) as pool:
        results = pool.map(send_batches, [(base, key, apps, devices, w, workers, now_ms) for w in range(workers)])
    ingest_s = time.monotonic() - started
    acked = sum(r[0] for r in results)
    refused = sum(r[1] for r in results)
    api = Api(base, key)
    total = 0
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        total = device_total(api, apps)
        if total >= acked:
            break
        time.sleep(0.5)
    visible_s = time.monotonic() - started
    print(json.dumps({"events_acked": acked, "refused_429": refused, "ingest_s": round(ingest_s, 2),
                      "visible_s": round(visible_s, 2), "devices_in_registry": total}))


def device_total(api, apps):
    return sum(api.json(f"/api/v1/apps/{app_id(a)}/devices?limit=1")["total"] for a in range(apps))


def rolled_events(api, apps):
    return sum(api.json(f"/api/v1/apps/{app_id(a)}/stats?since=2d")["totals"]["events"] for a in range(apps))


def raw_events(api, apps, since_ms):
    """Streamed: a long stats run exports hundreds of megabytes."""
    parsed = urllib.parse.urlparse(api_base(api))
    count = 0
    for a in range(apps):
        conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=600)
        conn.request("GET", f"/api/v1/apps/{app_id(a)}/events/export?format=ndjson&since={since_ms}",
                     headers={"Authorization": f"Bearer {api.key}"})
        response = conn.getresponse()
        if response.status != 200:
            raise SystemExit(f"export {app_id(a)}: HTTP {response.status}")
        while chunk := response.read(1 << 20):
            count += chunk.count(b"\n")
        conn.close()
    return count


def api_base(api):
    return f"http://{api.host}:{api.port}"


def dl_path(api, app, version):
    bundle = api.json(f"/api/v1/apps/{app}/bundles/{version}")
    return urllib.parse.urlparse(bundle["url"]).path


def main(argv):
    if len(argv) < 4:
        raise SystemExit(__doc__)
    command, base, key = argv[1], argv[2], argv[3]
    rest = argv[4:]
    if command == "bundles":
        seed_bundles(base, key, int(rest[0]), int(rest[1]))
    elif command == "devices":
        seed_devices(base, key, int(rest[0]), int(rest[1]))
    elif command == "device-total":
        print(device_total(Api(base, key), int(rest[0])))
    elif command == "rolled-events":
        print(rolled_events(Api(base, key), int(rest[0])))
    elif command == "raw-events":
        print(raw_events(Api(base, key), int(rest[0]), int(rest[1])))
    elif command == "dl-path":
        print(dl_path(Api(base, key), rest[0], rest[1]))
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
