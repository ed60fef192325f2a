//! Resumable uploads through several nodes: two in-process servers on one
//! PostgreSQL database and one S3-compatible bucket (moto), as behind a
//! round-robin load balancer. Any node takes any request of a session.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is its failure report

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use tower::ServiceExt;
use updraft_core::analytics::rfc3339;
use updraft_core::model::{Clock, ManualClock, Millis, Role, SystemClock};
use updraft_server::state::ServerConfig;
use updraft_server::{router, Server};
use updraft_store::blob::{BlobStore, ObjectBlobStore};
use updraft_store::cluster::PgCluster;
use updraft_store::{ApiKeyStore, AppStore, NewApiKey, PgStore, UploadStore};
use updraft_testkit::S3Bucket;

const APP: &str = "com.example.app";
const PUBLIC_URL: &str = "http://updraft.test";
const INDEX_HTML: &[u8] = b"<!doctype html><p>hi from any node</p>";

fn sha(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

struct Node {
    app: axum::Router,
    server: Server,
    _dir: tempfile::TempDir,
}

struct Reply {
    status: StatusCode,
    body: Value,
    raw: Vec<u8>,
    offset_header: Option<String>,
}

impl Node {
    async fn call(&self, request: Request<Body>) -> Reply {
        let response = self.app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let offset_header = response
            .headers()
            .get("upload-offset")
            .map(|v| v.to_str().unwrap().to_string());
        let raw = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap()
            .to_vec();
        Reply {
            status,
            body: serde_json::from_slice(&raw).unwrap_or(Value::Null),
            raw,
            offset_header,
        }
    }
}

struct Cluster {
    a: Node,
    b: Node,
    store: PgStore,
    admin: String,
    /// The bucket as the test sees it, independently of the servers.
    objects: ObjectBlobStore,
    _bucket: S3Bucket,
    _staging: tempfile::TempDir,
}

async fn node(url: &str, bucket: &S3Bucket, clock: Arc<dyn Clock>) -> Node {
    let dir = tempfile::tempdir().unwrap();
    let config = ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.path().to_path_buf(),
        public_url: Some(PUBLIC_URL.to_string()),
        storage_url: Some(bucket.url.clone()),
        storage_options: bucket.options(),
        ..ServerConfig::default()
    };
    let store = PgStore::connect(url, None).await.unwrap();
    let cluster = PgCluster::new(store.pool().clone());
    let server = Server::bind_in_cluster(config, Arc::new(store), Arc::new(cluster), clock)
        .await
        .unwrap();
    let app = router(server.state().clone());
    Node {
        app,
        server,
        _dir: dir,
    }
}

async fn start() -> Cluster {
    start_with_clock(Arc::new(SystemClock)).await
}

/// Two nodes reading the time from `clock`.
async fn start_with_clock(clock: Arc<dyn Clock>) -> Cluster {
    let bucket = updraft_testkit::s3_bucket().await;
    let url = updraft_testkit::postgres_database().await;
    let store = PgStore::connect(&url, None).await.unwrap();
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
    let a = node(&url, &bucket, Arc::clone(&clock)).await;
    let b = node(&url, &bucket, clock).await;
    let staging = tempfile::tempdir().unwrap();
    let objects =
        ObjectBlobStore::from_url(&bucket.url, &bucket.options(), staging.path()).unwrap();
    Cluster {
        a,
        b,
        store,
        admin,
        objects,
        _bucket: bucket,
        _staging: staging,
    }
}

impl Cluster {
    fn request(&self, method: &str, path: &str) -> axum::http::request::Builder {
        Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", format!("Bearer {}", self.admin))
    }

    async fn create_upload(&self, on: &Node, bytes: &[u8]) -> Reply {
        let body = json!({"size": bytes.len(), "sha256": sha(bytes)});
        on.call(
            self.request("POST", "/api/v1/uploads")
                .header("content-type", "application/json")
                .body(Body::from(body.to_string()))
                .unwrap(),
        )
        .await
    }

    async fn patch(&self, on: &Node, upload_id: &str, offset: usize, chunk: &[u8]) -> Reply {
        on.call(
            self.request("PATCH", &format!("/api/v1/uploads/{upload_id}"))
                .header("upload-offset", offset.to_string())
                .header("content-type", "application/offset+octet-stream")
                .body(Body::from(chunk.to_vec()))
                .unwrap(),
        )
        .await
    }

    async fn status(&self, on: &Node, upload_id: &str) -> Reply {
        on.call(
            self.request("GET", &format!("/api/v1/uploads/{upload_id}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
    }

    async fn api(&self, on: &Node, method: &str, path: &str, body: Value) -> Reply {
        on.call(
            self.request(method, path)
                .header("content-type", "application/json")
                .body(Body::from(body.to_string()))
                .unwrap(),
        )
        .await
    }

    /// Part objects left in the bucket.
    async fn parts_in_bucket(&self) -> Vec<String> {
        self.objects
            .list_scratch()
            .await
            .unwrap()
            .into_iter()
            .map(|entry| entry.name)
            .collect()
    }
}

/// A zip with enough incompressible content to need several chunks.
fn bundle_zip() -> Vec<u8> {
    common::bundle_zip(INDEX_HTML, 300_000, 11)
}

fn noise(len: usize, seed: u64) -> Vec<u8> {
    use rand::{RngCore, SeedableRng};
    let mut bytes = vec![0u8; len];
    rand::rngs::StdRng::seed_from_u64(seed).fill_bytes(&mut bytes);
    bytes
}

#[tokio::test]
async fn an_upload_goes_through_both_nodes_and_the_bundle_is_served_by_either() {
    let c = start().await;
    let zip = bundle_zip();
    let zip_sha = sha(&zip);
    let third = zip.len() / 3;
    let (one, rest) = zip.split_at(third);
    let (two, three) = rest.split_at(third);

    let created = c.create_upload(&c.a, &zip).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let id = created.body["upload_id"].as_str().unwrap().to_string();
    assert_eq!(created.body["offset"], 0);
    assert_eq!(created.offset_header.as_deref(), Some("0"));

    // The same file asked for on the other node: the same session.
    let again = c.create_upload(&c.b, &zip).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.body);
    assert_eq!(again.body["upload_id"], id.as_str());

    let first = c.patch(&c.b, &id, 0, one).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    assert_eq!(first.body["offset"], one.len());
    assert_eq!(first.offset_header, Some(one.len().to_string()));
    assert_eq!(first.body["complete"], false);

    // A stale offset on the other node: 409 with the real offset, nothing changes.
    let stale = c.patch(&c.a, &id, 0, one).await;
    assert_eq!(stale.status, StatusCode::CONFLICT, "{}", stale.body);
    assert_eq!(stale.body["error"], "upload_offset_mismatch");
    assert_eq!(stale.body["offset"], one.len());
    let ahead = c.patch(&c.a, &id, one.len() + 5, two).await;
    assert_eq!(ahead.status, StatusCode::CONFLICT);
    assert_eq!(ahead.body["offset"], one.len());
    assert_eq!(
        c.parts_in_bucket().await.len(),
        1,
        "the losers' parts are gone"
    );

    // Both nodes report the same status.
    let on_a = c.status(&c.a, &id).await;
    let on_b = c.status(&c.b, &id).await;
    assert_eq!(on_a.status, StatusCode::OK);
    assert_eq!(on_a.body, on_b.body);
    assert_eq!(on_a.body["offset"], one.len());
    assert_eq!(on_a.body["size"], zip.len());
    assert_eq!(on_a.body["sha256"], zip_sha.as_str());

    let second = c.patch(&c.a, &id, one.len(), two).await;
    assert_eq!(second.status, StatusCode::OK, "{}", second.body);
    assert_eq!(second.body["offset"], one.len() + two.len());
    assert_eq!(c.objects.stat(&zip_sha).await.unwrap(), None, "not yet");

    let last = c.patch(&c.b, &id, one.len() + two.len(), three).await;
    assert_eq!(last.status, StatusCode::OK, "{}", last.body);
    assert_eq!(last.body["offset"], zip.len());
    assert_eq!(last.body["complete"], true);
    assert_eq!(
        c.objects.stat(&zip_sha).await.unwrap(),
        Some(zip.len() as u64)
    );
    assert!(c.parts_in_bucket().await.is_empty(), "parts are deleted");
    let done_a = c.status(&c.a, &id).await;
    assert_eq!(done_a.body["complete"], true);
    assert_eq!(done_a.body, c.status(&c.b, &id).await.body);

    // A PATCH after completion at the final offset is a no-op answer.
    let after = c.patch(&c.a, &id, zip.len(), b"").await;
    assert_eq!(after.status, StatusCode::OK, "{}", after.body);
    assert_eq!(after.body["complete"], true);

    // Published through A, downloaded through B.
    let index_sha = sha(INDEX_HTML);
    let put =
        c.a.call(
            c.request("PUT", &format!("/api/v1/blobs/{index_sha}"))
                .body(Body::from(INDEX_HTML.to_vec()))
                .unwrap(),
        )
        .await;
    assert_eq!(put.status, StatusCode::CREATED, "{}", put.body);
    let published = c
        .api(
            &c.a,
            "POST",
            &format!("/api/v1/apps/{APP}/bundles"),
            json!({
                "version": "1.0.1", "zip_sha256": zip_sha, "checksum": zip_sha,
                "manifest": [{"file_name": "index.html", "file_hash": index_sha, "blob_sha256": index_sha}]
            }),
        )
        .await;
    assert_eq!(published.status, StatusCode::CREATED, "{}", published.body);
    let download =
        c.b.call(
            Request::get(format!("/dl/{APP}/1.0.1/{zip_sha}.zip"))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(download.status, StatusCode::OK);
    assert_eq!(sha(&download.raw), zip_sha);
    assert_eq!(download.raw.len(), zip.len());
}

#[tokio::test]
async fn a_wrong_hash_is_refused_and_leaves_no_parts() {
    let c = start().await;
    let bytes = noise(50_000, 1);
    let claimed = sha(b"something else entirely");
    let body = json!({"size": bytes.len(), "sha256": claimed});
    let created = c.api(&c.a, "POST", "/api/v1/uploads", body).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let id = created.body["upload_id"].as_str().unwrap().to_string();
    let first = c.patch(&c.a, &id, 0, &bytes[..20_000]).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    assert_eq!(c.parts_in_bucket().await.len(), 1);

    let last = c.patch(&c.b, &id, 20_000, &bytes[20_000..]).await;
    assert_eq!(
        last.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        last.body
    );
    assert_eq!(last.body["error"], "checksum_mismatch");
    assert_eq!(last.body["expected"], claimed.as_str());
    assert_eq!(last.body["actual"], sha(&bytes).as_str());
    assert!(c.parts_in_bucket().await.is_empty());
    assert_eq!(c.objects.stat(&sha(&bytes)).await.unwrap(), None);
    assert_eq!(c.objects.stat(&claimed).await.unwrap(), None);
    // The session is discarded on every node.
    for node in [&c.a, &c.b] {
        let gone = c.status(node, &id).await;
        assert_eq!(gone.status, StatusCode::NOT_FOUND, "{}", gone.body);
        assert_eq!(gone.body["error"], "upload_not_found");
    }
    assert_eq!(c.store.get_upload(&id).await.unwrap(), None);
}

#[tokio::test]
async fn concurrent_patches_of_one_offset_have_exactly_one_winner() {
    let c = start().await;
    let bytes = noise(90_000, 2);
    let created = c.create_upload(&c.b, &bytes).await;
    assert_eq!(created.status, StatusCode::CREATED);
    let id = created.body["upload_id"].as_str().unwrap().to_string();
    let chunk = 30_000;
    for round in 0..3 {
        let offset = round * chunk;
        let piece = &bytes[offset..offset + chunk];
        let (on_a, on_b) = tokio::join!(
            c.patch(&c.a, &id, offset, piece),
            c.patch(&c.b, &id, offset, piece)
        );
        let mut statuses = [on_a.status, on_b.status];
        statuses.sort();
        assert_eq!(
            statuses,
            [StatusCode::OK, StatusCode::CONFLICT],
            "round {round}: {} / {}",
            on_a.body,
            on_b.body
        );
        let loser = if on_a.status == StatusCode::CONFLICT {
            &on_a
        } else {
            &on_b
        };
        assert_eq!(loser.body["error"], "upload_offset_mismatch");
        assert_eq!(loser.body["offset"], offset + chunk);
        let state = c.status(&c.a, &id).await;
        assert_eq!(state.body["offset"], offset + chunk);
    }
    let done = c.status(&c.b, &id).await;
    assert_eq!(done.body["complete"], true, "{}", done.body);
    assert_eq!(
        c.objects.stat(&sha(&bytes)).await.unwrap(),
        Some(bytes.len() as u64)
    );
    let mut stored = Vec::new();
    let reader = c.objects.open(&sha(&bytes)).await.unwrap().unwrap();
    let mut source = reader.range(0, bytes.len() as u64).await.unwrap();
    tokio::io::AsyncReadExt::read_to_end(&mut source, &mut stored)
        .await
        .unwrap();
    assert_eq!(stored, bytes);
    assert!(c.parts_in_bucket().await.is_empty());
}

#[tokio::test]
async fn expired_sessions_and_their_parts_are_swept_by_gc() {
    let c = start().await;
    let bytes = noise(10_000, 3);
    let created = c.create_upload(&c.a, &bytes).await;
    let id = created.body["upload_id"].as_str().unwrap().to_string();
    let first = c.patch(&c.b, &id, 0, &bytes[..4_000]).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    assert_eq!(c.parts_in_bucket().await.len(), 1);

    // Nothing expired yet: gc keeps the session and its part.
    let state = c.a.server.state();
    let kept = state.gc.collect().await.unwrap();
    assert_eq!(kept.expired_uploads, 0);
    assert_eq!(c.parts_in_bucket().await.len(), 1);

    // Age the session past the expiry (a day by default).
    sqlx::query("UPDATE upload_sessions SET last_activity = last_activity - 86400001")
        .execute(c.store.pool())
        .await
        .unwrap();
    let gone = c.status(&c.b, &id).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND, "expired: {}", gone.body);
    let report = state.gc.collect().await.unwrap();
    assert_eq!(report.expired_uploads, 1);
    assert!(c.parts_in_bucket().await.is_empty());
    assert_eq!(c.store.get_upload(&id).await.unwrap(), None);
    let stale = c.patch(&c.a, &id, 4_000, &bytes[4_000..]).await;
    assert_eq!(stale.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn shared_sessions_expire_by_the_injected_clock_on_every_node() {
    /// 2033-05-18: far from any wall clock this test runs under.
    const T0: Millis = 2_000_000_000_000;
    /// The default upload expiry (`upload_expiry_secs`), in milliseconds.
    const EXPIRY: Millis = 86_400 * 1000;
    let clock = Arc::new(ManualClock::new(T0));
    let c = start_with_clock(clock.clone()).await;
    let bytes = noise(10_000, 5);
    let created = c.create_upload(&c.a, &bytes).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(created.body["expires_at"], rfc3339(T0 + EXPIRY));
    let id = created.body["upload_id"].as_str().unwrap().to_string();

    // One millisecond before its expiry a write on the other node restarts it.
    clock.advance(EXPIRY - 1);
    let first = c.patch(&c.b, &id, 0, &bytes[..4_000]).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    let written_at = T0 + EXPIRY - 1;
    assert_eq!(first.body["expires_at"], rfc3339(written_at + EXPIRY));

    clock.advance(EXPIRY - 1);
    let alive = c.status(&c.a, &id).await;
    assert_eq!(alive.status, StatusCode::OK, "{}", alive.body);
    let state = c.b.server.state();
    assert_eq!(state.gc.collect().await.unwrap().expired_uploads, 0);
    assert_eq!(c.parts_in_bucket().await.len(), 1);

    // At its expiry it is gone on both nodes and gc sweeps it and its part.
    clock.advance(1);
    for node in [&c.a, &c.b] {
        let gone = c.status(node, &id).await;
        assert_eq!(gone.status, StatusCode::NOT_FOUND, "{}", gone.body);
    }
    assert_eq!(state.gc.collect().await.unwrap().expired_uploads, 1);
    assert!(c.parts_in_bucket().await.is_empty());
    assert_eq!(c.store.get_upload(&id).await.unwrap(), None);
}
