#!/usr/bin/env python3
"""Writes the committed seed corpora under fuzz/corpus/ (run from anywhere).

Small and realistic: the request bodies of the plugin wire protocol (shared
protocol doc, sections 1-6) with a few hostile variants, tiny zips of each
layout the plugin accepts or refuses, delta files, and session keys sealed with
the fixed key in fuzz/keys (the private half is passed on the command line
once and not kept: `make-seeds.py PRIVATE.pem`; without it the session-key
seeds already committed are left as they are).
"""
import base64, io, json, os, subprocess, sys, zipfile

here = os.path.dirname(os.path.abspath(__file__))
corpus = os.path.join(here, "corpus")


def put(target, name, data):
    d = os.path.join(corpus, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


UPDATE = {
    "platform": "android",
    "device_id": "6e2c0c9a-3f5b-4c8e-9a43-1f0f4b2d7c11",
    "app_id": "com.example.app",
    "custom_id": "",
    "version_build": "1.4.0",
    "version_code": "14",
    "version_os": "14",
    "version_name": "1.4.2",
    "plugin_version": "8.51.14",
    "is_emulator": False,
    "is_prod": True,
    "install_source": "google_play",
    "defaultChannel": "beta",
    "key_id": "MIIBCgKCAQEAsdxadXKk",
}


def variant(base, **changes):
    body = dict(base)
    for key, value in changes.items():
        if value is None:
            body.pop(key, None)
        else:
            body[key] = value
    return json.dumps(body)


put("update_body", "android", json.dumps(UPDATE))
put("update_body", "ios-builtin", variant(UPDATE, platform="ios", version_name="builtin", version_build="2.1", defaultChannel=None, key_id=None, install_source=None))
put("update_body", "electron-upper-uuid", variant(UPDATE, platform="electron", device_id="6E2C0C9A-3F5B-4C8E-9A43-1F0F4B2D7C11"))
put("update_body", "missing-fields", variant(UPDATE, app_id=None, version_name=None))
put("update_body", "wrong-types", variant(UPDATE, is_emulator="false", version_build=14, plugin_version=None))
put("update_body", "not-object", "[1,\"a\",null]")
put("update_body", "long-name", variant(UPDATE, version_name="1." + "9" * 300))

STAT = {
    "platform": "ios", "device_id": "6e2c0c9a-3f5b-4c8e-9a43-1f0f4b2d7c11", "app_id": "com.example.app",
    "custom_id": "", "version_build": "1.4.0", "version_code": "14", "version_os": "17.5",
    "version_name": "1.4.3", "old_version_name": "1.4.2", "plugin_version": "8.51.14",
    "is_emulator": False, "is_prod": True, "install_source": "app_store", "defaultChannel": "",
    "action": "set", "timestamp": 1767225600000,
}
READY = dict(STAT, old_version_name="", action="app_launch_ready", timestamp=1767225600812,
             metadata={"duration_ms": "812", "launch_started_at": "1767225599188", "source": "notify_app_ready"})
READY.pop("install_source")
put("stats_body", "batch", json.dumps([STAT, READY]))
put("stats_body", "single", json.dumps(STAT))
put("stats_body", "empty-array", "[]")
put("stats_body", "download-fail", json.dumps(dict(STAT, action="download_fail", version_name="1.5.0")))
put("stats_body", "bad-items", json.dumps([dict(STAT, action="no_such_action"), dict(STAT, device_id="x"), 7]))
put("stats_body", "mixed-apps", json.dumps([STAT, dict(STAT, app_id="com.other.app")]))
put("stats_body", "old-and-future", json.dumps([dict(STAT, timestamp=0), dict(STAT, timestamp=9999999999999)]))

QUERY = "app_id=com.example.app&platform=ios&is_emulator=false&is_prod=true"
put("channel_self", "list", b"\x00" + QUERY.encode())
put("channel_self", "list-device", b"\x00" + (QUERY + "&device_id=6e2c0c9a-3f5b-4c8e-9a43-1f0f4b2d7c11").encode())
put("channel_self", "unset", b"\x01" + ("device_id=6e2c0c9a-3f5b-4c8e-9a43-1f0f4b2d7c11&app_id=com.example.app&platform=android&version_name=1.4.2&version_build=1.4.0&plugin_version=8.51.14&is_emulator=true").encode())
put("channel_self", "unset-escaped", b"\x01app_id=com.example.app&device_id=%36e2c&version_name=%E2%82%AC&is_prod=maybe&&=")
CH = {k: UPDATE[k] for k in ("platform", "device_id", "app_id", "custom_id", "version_build", "version_code", "version_os", "version_name", "plugin_version", "is_emulator", "is_prod", "defaultChannel")}
put("channel_self", "set", b"\x02" + json.dumps(dict(CH, channel="beta")).encode())
put("channel_self", "set-no-channel", b"\x02" + json.dumps(CH).encode())
put("channel_self", "get", b"\x03" + json.dumps(CH).encode())


def zip_of(entries, method=zipfile.ZIP_DEFLATED):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as z:
        for entry in entries:
            name, data = entry[0], entry[1]
            info = zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0))
            info.compress_type = method
            if len(entry) > 2:
                info.external_attr = entry[2] << 16
            z.writestr(info, data)
    return buf.getvalue()


HTML = b"<!doctype html><script src=app.js></script>"
JS = b"window.Capacitor.Plugins.CapacitorUpdater.notifyAppReady();"
put("zip_inspect", "root", zip_of([("index.html", HTML), ("app.js", JS)]))
put("zip_inspect", "folder", zip_of([("dist/", b""), ("dist/index.html", HTML), ("dist/assets/app.js", JS)]))
put("zip_inspect", "stored", zip_of([("index.html", HTML)], zipfile.ZIP_STORED))
put("zip_inspect", "traversal", zip_of([("index.html", HTML), ("../evil.js", JS)]))
put("zip_inspect", "absolute", zip_of([("index.html", HTML), ("/etc/x", JS)]))
put("zip_inspect", "symlink", zip_of([("index.html", HTML), ("link", b"/etc/passwd", 0o120777)]))
put("zip_inspect", "no-index", zip_of([("app.js", JS)]))
put("zip_inspect", "two-folders", zip_of([("a/index.html", HTML), ("b/index.html", HTML)]))
put("zip_inspect", "repeated", zip_of([("index.html", b"A" * 4096)]))

put("delta_manifest", "plain", b"\x00index.html\x00" + HTML)
put("delta_manifest", "nested", b"\x00assets/./js/../app.js\x00" + JS)
put("delta_manifest", "climbs", b"\x00a/../../x.js\x001")
# Found by the fuzzer: `./` put a drive form (`x:/t`) at the front of the canonical name.
put("delta_manifest", "drive-after-dot", b"\x00./x:/t\x00\x00")
# Brotli: one uncompressed meta-block holding "hello" (RFC 7932 section 9.2).
put("delta_manifest", "brotli", b"\x00assets/hello.txt.br\x00" + bytes([0x0b, 0x02, 0x80]) + b"hello" + bytes([0x03]))
enc = subprocess.run(["openssl", "enc", "-aes-128-cbc", "-K", "07" * 16, "-iv", "09" * 16],
                     input=HTML, capture_output=True, check=True).stdout
put("delta_manifest", "encrypted", b"\x01index.html\x00" + enc)

if len(sys.argv) > 1:
    private = sys.argv[1]
    aes_key, iv = bytes(range(16)), bytes(range(16, 32))

    def rsa_sign_raw(data):
        return subprocess.run(["openssl", "pkeyutl", "-sign", "-inkey", private, "-pkeyopt", "rsa_padding_mode:pkcs1"],
                              input=data, capture_output=True, check=True).stdout

    sealed = base64.b64encode(iv).decode() + ":" + base64.b64encode(rsa_sign_raw(aes_key)).decode()
    put("session_key", "sealed", sealed)
    put("session_key", "checksum-hex", rsa_sign_raw(bytes(32)).hex())
    put("session_key", "checksum-base64", base64.b64encode(rsa_sign_raw(bytes(32))))
    put("session_key", "short-iv", "AAAA:" + base64.b64encode(rsa_sign_raw(aes_key)).decode())
    put("session_key", "no-colon", base64.b64encode(iv))
    with open(os.path.join(here, "keys", "session-public.pem"), "rb") as f:
        put("session_key", "public-pem", f.read())
