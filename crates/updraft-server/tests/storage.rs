//! Stored bundles in-process, with configurations the e2e defaults do not
//! cover: gc with no grace period, and signed download URLs.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is its failure report

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use tower::ServiceExt;
use updraft_core::model::Role;
use updraft_server::state::ServerConfig;
use updraft_server::storage::signing::UrlSigner;
use updraft_server::{router, Server};
use updraft_store::{ApiKeyStore, AppStore, NewApiKey, SqliteStore};

const APP: &str = "com.example.app";

fn sha(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

struct Harness {
    app: axum::Router,
    server: Server,
    store: SqliteStore,
    admin: String,
    publisher: String,
    dir: tempfile::TempDir,
}

async fn start(configure: impl FnOnce(&mut ServerConfig)) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let mut config = ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.path().to_path_buf(),
        ..ServerConfig::default()
    };
    configure(&mut config);
    let store = SqliteStore::open(dir.path()).await.unwrap();
    store.create_app(APP, "Example", 1).await.unwrap();
    let key = |name: &str, role| NewApiKey {
        name: name.to_string(),
        role,
        app_id: None,
        expires_at: None,
    };
    let (_, admin) = store
        .create_api_key(key("admin", Role::Admin), 1)
        .await
        .unwrap();
    let (_, publisher) = store
        .create_api_key(key("ci", Role::Publisher), 1)
        .await
        .unwrap();
    let server = Server::bind(config, Arc::new(store.clone())).await.unwrap();
    let app = router(server.state().clone());
    Harness {
        app,
        server,
        store,
        admin,
        publisher,
        dir,
    }
}

impl Harness {
    async fn call(&self, request: Request<Body>) -> (StatusCode, Vec<u8>) {
        let response = self.app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, bytes.to_vec())
    }

    async fn api(
        &self,
        key: &str,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", format!("Bearer {key}"))
            .header("content-type", "application/json")
            .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
            .unwrap();
        let (status, bytes) = self.call(request).await;
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    async fn put_blob(&self, bytes: &[u8]) -> String {
        let digest = sha(bytes);
        let request = Request::builder()
            .method("PUT")
            .uri(format!("/api/v1/blobs/{digest}"))
            .header("authorization", format!("Bearer {}", self.admin))
            .body(Body::from(bytes.to_vec()))
            .unwrap();
        let (status, body) = self.call(request).await;
        assert_eq!(
            status,
            StatusCode::CREATED,
            "{}",
            String::from_utf8_lossy(&body)
        );
        digest
    }

    async fn get(&self, uri: &str) -> (StatusCode, Vec<u8>) {
        self.call(Request::get(uri).body(Body::empty()).unwrap())
            .await
    }

    fn blob_files(&self) -> usize {
        let mut count = 0;
        let mut stack = vec![self.dir.path().join("blobs")];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(dir).unwrap() {
                let entry = entry.unwrap();
                if entry.file_type().unwrap().is_dir() {
                    stack.push(entry.path());
                } else {
                    count += 1;
                }
            }
        }
        count
    }
}

fn bundle_zip() -> Vec<u8> {
    let src = tempfile::tempdir().unwrap();
    std::fs::write(src.path().join("index.html"), "<!doctype html><p>hi</p>").unwrap();
    std::fs::write(src.path().join("app.js"), "console.log('hi')").unwrap();
    let out = tempfile::tempdir().unwrap();
    let zip = out.path().join("bundle.zip");
    updraft_bundle::pack_dir(src.path(), &zip).unwrap();
    std::fs::read(zip).unwrap()
}

#[tokio::test]
async fn gc_deletes_only_unreferenced_blobs_and_needs_admin() {
    let h = start(|c| c.upload_expiry_secs = 0).await;
    let zip = bundle_zip();
    let zip_sha = h.put_blob(&zip).await;
    let stray = b"uploaded but never published".to_vec();
    h.put_blob(&stray).await;
    let (st, b) = h
        .api(
            &h.admin,
            "POST",
            &format!("/api/v1/apps/{APP}/bundles"),
            Some(json!({"version": "1.0.0", "zip_sha256": zip_sha, "checksum": zip_sha})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{b}");
    assert_eq!(h.blob_files(), 2);

    let (st, b) = h.api(&h.publisher, "POST", "/api/v1/gc", None).await;
    assert_eq!(
        (st, b["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("forbidden"))
    );

    let (st, report) = h.api(&h.admin, "POST", "/api/v1/gc", None).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(report["deleted_blobs"], 1, "{report}");
    assert_eq!(report["freed_bytes"], stray.len() as u64);
    assert_eq!(report["kept_blobs"], 1);
    assert_eq!(h.blob_files(), 1);

    let (st, _) = h
        .api(
            &h.admin,
            "DELETE",
            &format!("/api/v1/apps/{APP}/bundles/1.0.0"),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (_, report) = h.api(&h.admin, "POST", "/api/v1/gc", None).await;
    assert_eq!(report["deleted_blobs"], 1, "{report}");
    assert_eq!(report["freed_bytes"], zip.len() as u64);
    assert_eq!(report["kept_blobs"], 0);
    assert_eq!(h.blob_files(), 0);
}

#[tokio::test]
async fn gc_keeps_unreferenced_blobs_within_the_grace_period() {
    let h = start(|_| {}).await;
    h.put_blob(b"fresh upload").await;
    let (_, report) = h.api(&h.admin, "POST", "/api/v1/gc", None).await;
    assert_eq!(
        (
            report["deleted_blobs"].as_u64(),
            report["kept_blobs"].as_u64()
        ),
        (Some(0), Some(1))
    );
    assert_eq!(h.blob_files(), 1);
}

#[tokio::test]
async fn signed_download_urls_are_required_and_checked() {
    let h = start(|c| {
        c.signed_url_ttl_secs = Some(3600);
        c.public_url = Some("http://updraft.test".to_string());
    })
    .await;
    let zip = bundle_zip();
    let zip_sha = h.put_blob(&zip).await;
    let (st, b) = h
        .api(
            &h.admin,
            "POST",
            &format!("/api/v1/apps/{APP}/bundles"),
            Some(json!({"version": "1.0.1", "zip_sha256": zip_sha, "checksum": zip_sha})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{b}");
    let (st, b) = h
        .api(
            &h.admin,
            "POST",
            &format!("/api/v1/apps/{APP}/channels"),
            Some(json!({"name": "production", "public": true, "bundle": "1.0.1"})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{b}");

    let device = json!({
        "platform": "android", "device_id": "6e2c0c9a-3f5b-4c8e-9a43-1f0f4b2d7c11", "app_id": APP,
        "version_build": "1.0.0", "version_code": "10", "version_os": "14", "version_name": "1.0.0",
        "plugin_version": "8.51.14", "is_emulator": false, "is_prod": true, "defaultChannel": ""
    });
    let request = Request::post("/updates")
        .header("content-type", "application/json")
        .body(Body::from(device.to_string()))
        .unwrap();
    let (st, body) = h.call(request).await;
    let answer: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(st, StatusCode::OK, "{answer}");
    let url = answer["url"].as_str().unwrap();
    let path = format!("/dl/{APP}/1.0.1/{zip_sha}.zip");
    let signed = url.strip_prefix("http://updraft.test").unwrap().to_string();
    assert!(signed.starts_with(&format!("{path}?expires=")), "{url}");
    // The same check within the window gets the identical (cacheable) URL.
    let (_, again) = h
        .call(
            Request::post("/updates")
                .header("content-type", "application/json")
                .body(Body::from(device.to_string()))
                .unwrap(),
        )
        .await;
    let again: Value = serde_json::from_slice(&again).unwrap();
    assert_eq!(again["url"], answer["url"]);

    let (st, bytes) = h.get(&signed).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(bytes, zip);

    let (st, body) = h.get(&path).await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    assert_eq!(
        serde_json::from_slice::<Value>(&body).unwrap()["error"],
        "invalid_signature"
    );
    let last = signed.chars().last().unwrap();
    let flipped = if last == '0' { '1' } else { '0' };
    let tampered = format!("{}{flipped}", &signed[..signed.len() - 1]);
    assert_eq!(h.get(&tampered).await.0, StatusCode::FORBIDDEN);
    let other_path = signed.replace("1.0.1", "1.0.2");
    assert_eq!(h.get(&other_path).await.0, StatusCode::FORBIDDEN);
    let signer = UrlSigner::from_store(&h.store, h.dir.path(), 3600, 0)
        .await
        .unwrap();
    let expired = format!("{path}?{}", signer.query_at(&path, 0).unwrap());
    assert_eq!(h.get(&expired).await.0, StatusCode::FORBIDDEN);

    // The one successful download is counted once flushed.
    let state = h.server.state();
    state.downloads.flush().await;
    let (requests, bytes): (i64, i64) =
        sqlx::query_as("SELECT requests, bytes FROM bundle_downloads")
            .fetch_one(h.store.pool())
            .await
            .unwrap();
    assert_eq!((requests, bytes), (1, zip.len() as i64));
}
