//! API-key expiry, upload-session expiry, bundle creation times, signed
//! download URLs, stats stamping (arrival time and which devices count as
//! active) and retention follow the server's injected clock, not the wall
//! clock: the clock here starts years away from today and moves only when
//! the test says so.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is its failure report

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use tower::ServiceExt;
use updraft_core::analytics::rfc3339;
use updraft_core::model::{ManualClock, Millis, Role};
use updraft_server::state::ServerConfig;
use updraft_server::{router, Server};
use updraft_store::{ApiKeyStore, AppStore, NewApiKey, SqliteStore};

/// 2033-05-18: far from any wall clock this test runs under.
const T0: Millis = 2_000_000_000_000;
const DAY: Millis = 24 * 60 * 60 * 1000;
/// The default upload expiry (`upload_expiry_secs`), in milliseconds.
const UPLOAD_EXPIRY: Millis = 86_400 * 1000;
const APP: &str = "com.example.clock";

struct Harness {
    app: axum::Router,
    server: Option<Server>,
    store: SqliteStore,
    clock: Arc<ManualClock>,
    admin: String,
    _dir: tempfile::TempDir,
}

async fn start() -> Harness {
    start_at(T0, ServerConfig::default()).await
}

/// A server at `T0` with the defaults changed by `configure`.
async fn start_with(configure: impl FnOnce(&mut ServerConfig)) -> Harness {
    let mut config = ServerConfig::default();
    configure(&mut config);
    start_at(T0, config).await
}

/// A server whose clock reads `t0`, with `config` but its own address and
/// data directory.
async fn start_at(t0: Millis, config: ServerConfig) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let config = ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.path().to_path_buf(),
        ..config
    };
    let store = SqliteStore::open(dir.path()).await.unwrap();
    let (_, admin) = store
        .create_api_key(
            NewApiKey {
                name: "admin".into(),
                role: Role::Admin,
                app_id: None,
                expires_at: None,
            },
            t0,
        )
        .await
        .unwrap();
    let clock = Arc::new(ManualClock::new(t0));
    let server = Server::bind_with_clock(config, Arc::new(store.clone()), clock.clone())
        .await
        .unwrap();
    let app = router(server.state().clone());
    Harness {
        app,
        server: Some(server),
        store,
        clock,
        admin,
        _dir: dir,
    }
}

impl Harness {
    /// A device's `/stats` report of `action` while running `version`.
    async fn device_stat(&self, device_id: &str, action: &str, version: &str) {
        let body = json!({
            "platform": "android",
            "device_id": device_id,
            "app_id": APP,
            "custom_id": "",
            "version_build": "1.0.0",
            "version_code": "10",
            "version_os": "14",
            "version_name": version,
            "plugin_version": "8.51.14",
            "is_emulator": false,
            "is_prod": true,
            "action": action,
        });
        let request = Request::builder()
            .method("POST")
            .uri("/stats")
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .unwrap();
        let response = self.app.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }

    /// The app's raw events as exported (NDJSON), oldest first.
    async fn exported_events(&self) -> Vec<Value> {
        let request = Request::builder()
            .uri(format!("/api/v1/apps/{APP}/events/export?format=ndjson"))
            .header("authorization", format!("Bearer {}", self.admin))
            .body(Body::empty())
            .unwrap();
        let response = self.app.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        String::from_utf8(bytes.to_vec())
            .unwrap()
            .lines()
            .filter(|line| !line.trim().is_empty())
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    }

    async fn create_app(&self) {
        let (status, body) = self
            .call(
                "POST",
                "/api/v1/apps",
                &self.admin,
                Some(json!({"app_id": APP, "name": "Clock"})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        key: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", format!("Bearer {key}"));
        let request = match body {
            Some(body) => request
                .header("content-type", "application/json")
                .body(Body::from(body.to_string())),
            None => request.body(Body::empty()),
        }
        .unwrap();
        self.send(request).await
    }

    /// `PATCH /api/v1/uploads/{upload_id}` with `bytes` at `offset`.
    async fn append(&self, upload_id: &str, offset: usize, bytes: &[u8]) -> (StatusCode, Value) {
        let request = Request::builder()
            .method("PATCH")
            .uri(format!("/api/v1/uploads/{upload_id}"))
            .header("authorization", format!("Bearer {}", self.admin))
            .header("content-type", "application/offset+octet-stream")
            .header("upload-offset", offset.to_string())
            .body(Body::from(bytes.to_vec()))
            .unwrap();
        self.send(request).await
    }

    async fn send(&self, request: Request<Body>) -> (StatusCode, Value) {
        let response = self.app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }
}

#[tokio::test]
async fn api_keys_expire_by_the_injected_clock() {
    let h = start().await;
    // A key stored with an expiry a minute after the clock's now.
    let (_, stored) = h
        .store
        .create_api_key(
            NewApiKey {
                name: "short".into(),
                role: Role::Viewer,
                app_id: None,
                expires_at: Some(T0 + 60_000),
            },
            T0,
        )
        .await
        .unwrap();
    // A key made through the API, valid for one day from the clock's now.
    let (status, created) = h
        .call(
            "POST",
            "/api/v1/apikeys",
            &h.admin,
            Some(json!({"name": "day", "role": "viewer", "expires_in_days": 1})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["expires_at"], rfc3339(T0 + DAY));
    let day = created["key"].as_str().unwrap().to_string();

    for key in [&stored, &day] {
        let (status, body) = h.call("GET", "/api/v1/apps", key, None).await;
        assert_eq!(status, StatusCode::OK, "usable before its expiry: {body}");
    }
    h.clock.advance(60_000);
    let (status, _) = h.call("GET", "/api/v1/apps", &stored, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "expired on the clock");
    let (status, _) = h.call("GET", "/api/v1/apps", &day, None).await;
    assert_eq!(status, StatusCode::OK);
    h.clock.advance(DAY - 60_000 - 1);
    let (status, _) = h.call("GET", "/api/v1/apps", &day, None).await;
    assert_eq!(status, StatusCode::OK, "one millisecond before its expiry");
    h.clock.advance(1);
    let (status, body) = h.call("GET", "/api/v1/apps", &day, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    // The key without an expiry is unaffected.
    let (status, _) = h.call("GET", "/api/v1/apps", &h.admin, None).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn upload_sessions_expire_by_the_injected_clock() {
    let h = start().await;
    let file = b"0123456789abcdef".repeat(64);
    let sha256 = hex::encode(Sha256::digest(&file));
    let create = json!({"size": file.len(), "sha256": sha256});
    let (status, upload) = h
        .call("POST", "/api/v1/uploads", &h.admin, Some(create.clone()))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{upload}");
    assert_eq!(upload["expires_at"], rfc3339(T0 + UPLOAD_EXPIRY));
    let id = upload["upload_id"].as_str().unwrap().to_string();
    let status_path = format!("/api/v1/uploads/{id}");

    // Alive one millisecond before its expiry; a write then restarts it.
    h.clock.advance(UPLOAD_EXPIRY - 1);
    let (status, body) = h.call("GET", &status_path, &h.admin, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = h.append(&id, 0, &file[..100]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["offset"], 100);
    let written_at = T0 + UPLOAD_EXPIRY - 1;
    assert_eq!(body["expires_at"], rfc3339(written_at + UPLOAD_EXPIRY));

    // The clock passing the first expiry changes nothing: the write counts.
    h.clock.advance(UPLOAD_EXPIRY - 1);
    let (status, body) = h.call("GET", &status_path, &h.admin, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, gc) = h.call("POST", "/api/v1/gc", &h.admin, None).await;
    assert_eq!(status, StatusCode::OK, "{gc}");
    assert_eq!(gc["expired_uploads"], 0, "{gc}");

    // One millisecond later it is gone, and gc sweeps it.
    h.clock.advance(1);
    let (status, body) = h.call("GET", &status_path, &h.admin, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["error"], "upload_not_found");
    let (status, body) = h.append(&id, 100, &file[100..]).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, gc) = h.call("POST", "/api/v1/gc", &h.admin, None).await;
    assert_eq!(status, StatusCode::OK, "{gc}");
    assert_eq!(gc["expired_uploads"], 1, "{gc}");

    // Asking again starts a new session, its expiry counted from the clock.
    let (status, again) = h
        .call("POST", "/api/v1/uploads", &h.admin, Some(create))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{again}");
    assert_ne!(again["upload_id"], upload["upload_id"]);
    assert_eq!(again["offset"], 0);
    assert_eq!(again["expires_at"], rfc3339(written_at + 2 * UPLOAD_EXPIRY));
}

#[tokio::test]
async fn published_bundles_and_signed_download_urls_follow_the_injected_clock() {
    const APP: &str = "com.example.clock";
    const TTL: u64 = 3600;
    let h = start_with(|c| {
        c.signed_url_ttl_secs = Some(TTL);
        c.public_url = Some("http://updraft.test".to_string());
    })
    .await;
    h.store.create_app(APP, "Clock", T0).await.unwrap();
    let src = tempfile::tempdir().unwrap();
    std::fs::write(src.path().join("index.html"), "<!doctype html><p>hi</p>").unwrap();
    let out = tempfile::tempdir().unwrap();
    let zip_path = out.path().join("bundle.zip");
    updraft_bundle::pack_dir(src.path(), &zip_path).unwrap();
    let zip = std::fs::read(zip_path).unwrap();
    let zip_sha = hex::encode(Sha256::digest(&zip));
    let request = Request::builder()
        .method("PUT")
        .uri(format!("/api/v1/blobs/{zip_sha}"))
        .header("authorization", format!("Bearer {}", h.admin))
        .body(Body::from(zip.clone()))
        .unwrap();
    let (status, body) = h.send(request).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    h.clock.advance(5_000);
    let (status, bundle) = h
        .call(
            "POST",
            &format!("/api/v1/apps/{APP}/bundles"),
            &h.admin,
            Some(json!({"version": "1.0.1", "zip_sha256": zip_sha, "checksum": zip_sha})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{bundle}");
    assert_eq!(
        bundle["created_at"],
        rfc3339(T0 + 5_000),
        "stamped by the clock"
    );
    let (status, body) = h
        .call(
            "POST",
            &format!("/api/v1/apps/{APP}/channels"),
            &h.admin,
            Some(json!({"name": "production", "public": true, "bundle": "1.0.1"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    let device = json!({
        "platform": "android", "device_id": "6e2c0c9a-3f5b-4c8e-9a43-1f0f4b2d7c11", "app_id": APP,
        "version_build": "1.0.0", "version_code": "10", "version_os": "14", "version_name": "1.0.0",
        "plugin_version": "8.51.14", "is_emulator": false, "is_prod": true, "defaultChannel": ""
    });
    let request = Request::post("/updates")
        .header("content-type", "application/json")
        .body(Body::from(device.to_string()))
        .unwrap();
    let (status, answer) = h.send(request).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let url = answer["url"].as_str().unwrap();
    let signed = url.strip_prefix("http://updraft.test").unwrap().to_string();
    let expires: u64 = signed
        .split_once("expires=")
        .and_then(|(_, rest)| rest.split('&').next())
        .and_then(|e| e.parse().ok())
        .unwrap_or_else(|| panic!("no expires in {url}"));
    // At least the TTL from the clock's now, rounded up to half the TTL.
    let signed_at = u64::try_from((T0 + 5_000) / 1000).unwrap();
    assert!(
        (signed_at + TTL..=signed_at + TTL + TTL / 2).contains(&expires),
        "expires {expires} for a URL signed at {signed_at}"
    );

    let download = |uri: String| Request::get(uri).body(Body::empty()).unwrap();
    let at = |secs: u64| Millis::try_from(secs * 1000).unwrap();
    h.clock.set(at(expires));
    let (status, body) = h.send(download(signed.clone())).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "valid through its expiry second: {body}"
    );
    h.clock.set(at(expires + 1));
    let (status, body) = h.send(download(signed)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"], "invalid_signature");
}

/// Stats arriving while the clock reads 2001 are stamped with the clock's
/// time, and their device counts as active that day: which devices are
/// "active" is measured from the clock too, not from today.
#[tokio::test]
async fn stats_are_stamped_and_counted_by_the_injected_clock() {
    // 2001-09-09: years before any wall clock this runs under, so a
    // wall-clock bound on active devices would leave the device out.
    let t_past: Millis = 1_000_000_000_000;
    let h = start_at(t_past, ServerConfig::default()).await;
    h.create_app().await;
    h.device_stat("a1b2c3d4-0000-4000-8000-000000000001", "set", "1.0.0")
        .await;
    let events = h.exported_events().await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["received_at"], t_past);
    assert_eq!(events[0]["timestamp"], t_past);
    let (status, report) = h
        .call("GET", &format!("/api/v1/apps/{APP}/stats"), &h.admin, None)
        .await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["totals"]["installs"], 1, "{report}");
    assert_eq!(report["totals"]["active_devices_latest"], 1, "{report}");
}

/// The retention task of a running server deletes raw events once the
/// clock, not the wall clock, is past their retention.
#[tokio::test]
async fn retention_deletes_by_the_injected_clock() {
    let config = ServerConfig {
        event_retention_days: 2,
        retention_interval_secs: 1,
        ..ServerConfig::default()
    };
    let mut h = start_at(T0, config).await;
    h.create_app().await;
    h.device_stat("a1b2c3d4-0000-4000-8000-000000000002", "set", "1.0.0")
        .await;
    assert_eq!(h.exported_events().await.len(), 1);
    let server = h.server.take().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(server.run(async {
        let _ = stopped.await;
    }));
    // Passes run at start and every second: within its retention the event stays.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert_eq!(h.exported_events().await.len(), 1, "deleted too early");
    h.clock.advance(2 * DAY + 1);
    let mut left = usize::MAX;
    for _ in 0..50 {
        left = h.exported_events().await.len();
        if left == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(left, 0, "the event outlived its retention on the clock");
    // The router holds the stats writer's queue: dropped, the server drains at once.
    drop(h);
    let _ = stop.send(());
    running.await.unwrap().unwrap();
}
