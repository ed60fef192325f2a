//! Bundles stored in a real S3-compatible server (moto, started by the test
//! kit): publishing, what a device gets in each download mode, and gc.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is its failure report

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use tower::ServiceExt;
use updraft_core::model::Role;
use updraft_server::state::{DownloadMode, ServerConfig};
use updraft_server::{router, Server};
use updraft_store::blob::{BlobStore, ObjectBlobStore};
use updraft_store::{ApiKeyStore, AppStore, NewApiKey, SqliteStore};
use updraft_testkit::S3Bucket;

const APP: &str = "com.example.app";
const PUBLIC_URL: &str = "http://updraft.test";
const INDEX_HTML: &[u8] = b"<!doctype html><p>hi from s3</p>";

fn sha(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

struct Harness {
    app: axum::Router,
    server: Server,
    store: SqliteStore,
    admin: String,
    bucket: S3Bucket,
    /// The bucket as the test sees it, independently of the server's handle.
    objects: ObjectBlobStore,
    _dir: tempfile::TempDir,
}

async fn start(configure: impl FnOnce(&mut ServerConfig, &S3Bucket)) -> Harness {
    let bucket = updraft_testkit::s3_bucket().await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.path().to_path_buf(),
        public_url: Some(PUBLIC_URL.to_string()),
        storage_url: Some(bucket.url.clone()),
        storage_options: bucket.options(),
        ..ServerConfig::default()
    };
    configure(&mut config, &bucket);
    let store = SqliteStore::open(dir.path()).await.unwrap();
    store.create_app(APP, "Example", 1).await.unwrap();
    let (_, admin) = store
        .create_api_key(
            NewApiKey {
                name: "admin".to_string(),
                role: Role::Admin,
                app_id: None,
                expires_at: None,
            },
            1,
        )
        .await
        .unwrap();
    let server = Server::bind(config, Arc::new(store.clone())).await.unwrap();
    let app = router(server.state().clone());
    let staging = tempfile::tempdir().unwrap();
    let objects =
        ObjectBlobStore::from_url(&bucket.url, &bucket.options(), staging.path()).unwrap();
    Harness {
        app,
        server,
        store,
        admin,
        bucket,
        objects,
        _dir: dir,
    }
}

struct Reply {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Vec<u8>,
}

impl Harness {
    async fn call(&self, request: Request<Body>) -> Reply {
        let response = self.app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap()
            .to_vec();
        Reply {
            status,
            headers,
            body,
        }
    }

    async fn api(&self, method: &str, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", format!("Bearer {}", self.admin))
            .header("content-type", "application/json")
            .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
            .unwrap();
        let reply = self.call(request).await;
        (
            reply.status,
            serde_json::from_slice(&reply.body).unwrap_or(Value::Null),
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
        let reply = self.call(request).await;
        assert_eq!(
            reply.status,
            StatusCode::CREATED,
            "{}",
            String::from_utf8_lossy(&reply.body)
        );
        digest
    }

    /// Publishes `version` (zip + a one-file manifest) on a public channel.
    async fn publish(&self, version: &str, zip_sha: &str, index_sha: &str) {
        let (st, b) = self
            .api(
                "POST",
                &format!("/api/v1/apps/{APP}/bundles"),
                Some(json!({
                    "version": version, "zip_sha256": zip_sha, "checksum": zip_sha,
                    "manifest": [{"file_name": "index.html", "file_hash": index_sha, "blob_sha256": index_sha}]
                })),
            )
            .await;
        assert_eq!(st, StatusCode::CREATED, "{b}");
        let (st, b) = self
            .api(
                "POST",
                &format!("/api/v1/apps/{APP}/channels"),
                Some(json!({"name": "production", "public": true, "bundle": version})),
            )
            .await;
        assert_eq!(st, StatusCode::CREATED, "{b}");
    }

    async fn check_for_update(&self) -> Value {
        let device = json!({
            "platform": "android", "device_id": "6e2c0c9a-3f5b-4c8e-9a43-1f0f4b2d7c11", "app_id": APP,
            "version_build": "1.0.0", "version_code": "10", "version_os": "14", "version_name": "1.0.0",
            "plugin_version": "8.51.14", "is_emulator": false, "is_prod": true, "defaultChannel": ""
        });
        let reply = self
            .call(
                Request::post("/updates")
                    .header("content-type", "application/json")
                    .body(Body::from(device.to_string()))
                    .unwrap(),
            )
            .await;
        let answer: Value = serde_json::from_slice(&reply.body).unwrap();
        assert_eq!(reply.status, StatusCode::OK, "{answer}");
        answer
    }

    async fn device_get(&self, uri: &str, range: Option<&str>) -> Reply {
        let mut request = Request::get(uri);
        if let Some(range) = range {
            request = request.header("range", range);
        }
        self.call(request.body(Body::empty()).unwrap()).await
    }

    /// Publishes 1.0.1 and returns (zip, zip sha, index.html sha).
    async fn publish_bundle(&self) -> (Vec<u8>, String, String) {
        let zip = bundle_zip();
        let zip_sha = self.put_blob(&zip).await;
        let index_sha = self.put_blob(INDEX_HTML).await;
        self.publish("1.0.1", &zip_sha, &index_sha).await;
        (zip, zip_sha, index_sha)
    }

    async fn flushed_downloads(&self) -> Vec<(i64, i64)> {
        let state = self.server.state();
        state.downloads.flush().await;
        sqlx::query_as("SELECT requests, bytes FROM bundle_downloads")
            .fetch_all(self.store.pool())
            .await
            .unwrap()
    }

    fn staging_files(&self) -> usize {
        std::fs::read_dir(self.server.state().publish.blobs().staging_dir())
            .unwrap()
            .count()
    }
}

/// A zip with enough incompressible content to make ranges meaningful.
fn bundle_zip() -> Vec<u8> {
    common::bundle_zip(INDEX_HTML, 200_000, 7)
}

#[tokio::test]
async fn stream_mode_publishes_on_s3_and_serves_bytes_and_ranges() {
    let h = start(|_, _| {}).await;
    let (zip, zip_sha, index_sha) = h.publish_bundle().await;
    assert_eq!(
        h.objects.stat(&zip_sha).await.unwrap(),
        Some(zip.len() as u64),
        "the zip lives in the bucket"
    );
    assert_eq!(h.staging_files(), 0, "the validation copy is removed");
    // Publishing validated the zip from the bucket: a non-zip is refused.
    let junk_sha = h.put_blob(b"not a zip at all").await;
    let (st, b) = h
        .api(
            "POST",
            &format!("/api/v1/apps/{APP}/bundles"),
            Some(json!({"version": "1.0.9", "zip_sha256": junk_sha, "checksum": junk_sha})),
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    assert_eq!(h.staging_files(), 0);

    let answer = h.check_for_update().await;
    let url = answer["url"].as_str().unwrap();
    assert_eq!(url, format!("{PUBLIC_URL}/dl/{APP}/1.0.1/{zip_sha}.zip"));
    let path = url.strip_prefix(PUBLIC_URL).unwrap();
    let whole = h.device_get(path, None).await;
    assert_eq!(whole.status, StatusCode::OK);
    assert_eq!(sha(&whole.body), zip_sha);
    assert!(whole.headers.get("content-encoding").is_none());
    let part = h.device_get(path, Some("bytes=1000-1999")).await;
    assert_eq!(part.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(part.body, zip[1000..2000].to_vec());
    assert_eq!(
        part.headers["content-range"],
        format!("bytes 1000-1999/{}", zip.len())
    );
    let tail = h.device_get(path, Some("bytes=-10")).await;
    assert_eq!(tail.body, zip[zip.len() - 10..].to_vec());

    let file_url = answer["manifest"][0]["download_url"].as_str().unwrap();
    assert_eq!(file_url, format!("{PUBLIC_URL}/dl/{APP}/1.0.1/{index_sha}"));
    let file = h
        .device_get(file_url.strip_prefix(PUBLIC_URL).unwrap(), None)
        .await;
    assert_eq!(
        (file.status, file.body.as_slice()),
        (StatusCode::OK, INDEX_HTML)
    );
    assert_eq!(h.flushed_downloads().await.len(), 1);
}

#[tokio::test]
async fn redirect_mode_checks_counts_and_answers_302_to_a_presigned_url() {
    let h = start(|config, _| {
        config.download_mode = DownloadMode::Redirect;
        config.presigned_url_ttl_secs = 600;
        config.signed_url_ttl_secs = Some(3600);
    })
    .await;
    let (zip, zip_sha, _) = h.publish_bundle().await;
    let answer = h.check_for_update().await;
    let signed = answer["url"]
        .as_str()
        .unwrap()
        .strip_prefix(PUBLIC_URL)
        .unwrap()
        .to_string();
    assert!(
        signed.starts_with(&format!("/dl/{APP}/1.0.1/{zip_sha}.zip?expires=")),
        "{signed}"
    );

    let reply = h.device_get(&signed, None).await;
    assert_eq!(reply.status, StatusCode::FOUND);
    assert_eq!(reply.headers["cache-control"], "no-store");
    let location = reply.headers["location"].to_str().unwrap().to_string();
    assert!(
        location.starts_with(&format!(
            "{}/{}/{}/blobs/{zip_sha}?",
            h.bucket.endpoint, h.bucket.bucket, h.bucket.prefix
        )),
        "{location}"
    );
    assert!(location.contains("X-Amz-Expires=600"), "{location}");
    let fetched = reqwest::get(&location).await.unwrap();
    assert_eq!(fetched.status().as_u16(), 200);
    assert!(fetched.headers().get("content-encoding").is_none());
    assert_eq!(sha(&fetched.bytes().await.unwrap()), zip_sha);

    let head = h
        .call(Request::head(&signed).body(Body::empty()).unwrap())
        .await;
    assert_eq!(head.status, StatusCode::FOUND);
    assert!(head.headers["location"]
        .to_str()
        .unwrap()
        .contains(&format!("/blobs/{zip_sha}?")));

    // The same checks as streaming: a signature, and only live bundles.
    let unsigned = signed.split_once('?').unwrap().0;
    assert_eq!(
        h.device_get(unsigned, None).await.status,
        StatusCode::FORBIDDEN
    );
    let signer = h.server.state().downloads.signer().unwrap();
    let unknown = format!("/dl/{APP}/9.9.9/{zip_sha}.zip");
    let unknown_signed = format!(
        "{unknown}?{}",
        signer.query_at(&unknown, 4_000_000_000).unwrap()
    );
    assert_eq!(
        h.device_get(&unknown_signed, None).await.status,
        StatusCode::NOT_FOUND
    );
    // One GET counted (HEAD is not), with the zip's recorded size.
    assert_eq!(h.flushed_downloads().await, vec![(1, zip.len() as i64)]);
}

#[tokio::test]
async fn cdn_mode_links_answers_to_the_cdn_under_the_object_key() {
    // The "CDN" is the bucket itself made publicly readable: what a CDN in
    // front of it would fetch, a device can fetch here with a plain GET.
    let h = start(|config, bucket| {
        config.download_mode = DownloadMode::Cdn;
        config.cdn_base_url = Some(format!("{}/{}/", bucket.endpoint, bucket.bucket));
    })
    .await;
    let policy = json!({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
                       "Resource": format!("arn:aws:s3:::{}/*", h.bucket.bucket)}]
    });
    let set = reqwest::Client::new()
        .put(format!("{}/{}?policy", h.bucket.endpoint, h.bucket.bucket))
        .body(policy.to_string())
        .send()
        .await
        .unwrap();
    assert!(set.status().is_success(), "{}", set.status());
    let (zip, zip_sha, index_sha) = h.publish_bundle().await;
    let cdn = format!("{}/{}", h.bucket.endpoint, h.bucket.bucket);

    let answer = h.check_for_update().await;
    let url = answer["url"].as_str().unwrap();
    assert_eq!(url, format!("{cdn}/{}/blobs/{zip_sha}", h.bucket.prefix));
    assert_eq!(url, format!("{cdn}/{}", h.objects.object_key(&zip_sha)));
    let fetched = reqwest::get(url).await.unwrap();
    assert_eq!(fetched.status().as_u16(), 200);
    assert_eq!(fetched.bytes().await.unwrap().to_vec(), zip);

    let file_url = answer["manifest"][0]["download_url"].as_str().unwrap();
    assert_eq!(
        file_url,
        format!("{cdn}/{}/blobs/{index_sha}", h.bucket.prefix)
    );
    let file = reqwest::get(file_url).await.unwrap();
    assert_eq!(file.bytes().await.unwrap().as_ref(), INDEX_HTML);

    // A /dl/ link still in use is sent to the CDN too.
    let old = h
        .device_get(&format!("/dl/{APP}/1.0.1/{zip_sha}.zip"), None)
        .await;
    assert_eq!(old.status, StatusCode::FOUND);
    assert_eq!(old.headers["location"], url);
}

#[tokio::test]
async fn cdn_mode_leaves_external_urls_alone() {
    let h = start(|config, _| {
        config.download_mode = DownloadMode::Cdn;
        config.cdn_base_url = Some("https://cdn.example.com".to_string());
    })
    .await;
    let (st, b) = h
        .api(
            "POST",
            &format!("/api/v1/apps/{APP}/bundles"),
            Some(
                json!({"version": "1.2.0", "external_url": "https://files.example.com/b.zip",
                        "checksum": sha(b"external")}),
            ),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{b}");
    let (st, b) = h
        .api(
            "POST",
            &format!("/api/v1/apps/{APP}/channels"),
            Some(json!({"name": "production", "public": true, "bundle": "1.2.0"})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{b}");
    let answer = h.check_for_update().await;
    assert_eq!(answer["url"], "https://files.example.com/b.zip", "{answer}");
}

#[tokio::test]
async fn gc_on_s3_deletes_unreferenced_blobs_past_the_grace_only() {
    let h = start(|config, _| config.upload_expiry_secs = 0).await;
    let (zip, zip_sha, index_sha) = h.publish_bundle().await;
    let stray = b"uploaded but never published".to_vec();
    let stray_sha = h.put_blob(&stray).await;
    let (st, report) = h.api("POST", "/api/v1/gc", None).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(report["deleted_blobs"], 1, "{report}");
    assert_eq!(report["freed_bytes"], stray.len() as u64);
    assert_eq!(report["kept_blobs"], 2);
    assert_eq!(h.objects.stat(&stray_sha).await.unwrap(), None);
    assert_eq!(
        h.objects.stat(&zip_sha).await.unwrap(),
        Some(zip.len() as u64)
    );
    assert_eq!(
        h.objects.stat(&index_sha).await.unwrap(),
        Some(INDEX_HTML.len() as u64)
    );
    let listed: Vec<String> = h
        .objects
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.sha256)
        .collect();
    let mut expected = vec![zip_sha, index_sha];
    expected.sort();
    assert_eq!(listed, expected);
}

#[tokio::test]
async fn gc_on_s3_keeps_unreferenced_blobs_within_the_grace() {
    let h = start(|_, _| {}).await;
    let fresh = h.put_blob(b"fresh upload").await;
    let (_, report) = h.api("POST", "/api/v1/gc", None).await;
    assert_eq!(
        (
            report["deleted_blobs"].as_u64(),
            report["kept_blobs"].as_u64()
        ),
        (Some(0), Some(1))
    );
    assert_eq!(h.objects.stat(&fresh).await.unwrap(), Some(12));
}
