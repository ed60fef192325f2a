//! The device registry shows what devices run: the plugin's update check
//! (reporting the bundle it runs, offered the next one) and the `set` stat
//! that follows it within the second reach the registry by two paths — the
//! buffered registry flush and the stats commit — in either order, on one
//! node or on two sharing one PostgreSQL. In-process: the real router and
//! store, a manual clock, registry flushes run by the test.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is its failure report

use axum::body::Body;
use axum::http::Request;
use futures_util::future::join_all;
use serde_json::{json, Value};
use std::sync::Arc;
use tower::ServiceExt;
use updraft_core::model::{Clock, ManualClock, Role};
use updraft_server::state::ServerConfig;
use updraft_server::{router, Server};
use updraft_store::cluster::PgCluster;
use updraft_store::{DeviceQuery, NewApiKey, PgStore, SqliteStore, Store};

const APP: &str = "com.example.app";
const OLD: &str = "1.0.0";
const NEW: &str = "1.0.1";
const DEVICES: usize = 200;

fn device_id(i: usize) -> String {
    format!("{:08x}-0000-4000-8000-{:012x}", i, i * 7919)
}

/// The info object of device `i`, running `running`.
fn device_body(i: usize, running: &str) -> Value {
    json!({
        "platform": "android",
        "device_id": device_id(i),
        "app_id": APP,
        "custom_id": "",
        "version_build": "1.0.0",
        "version_code": "10",
        "version_os": "14",
        "version_name": running,
        "plugin_version": "8.51.14",
        "is_emulator": false,
        "is_prod": true,
        "install_source": "google_play",
        "defaultChannel": ""
    })
}

/// How far device `i`'s clock is off the server's: some behind by minutes,
/// some ahead, some right.
fn device_skew(i: usize) -> i64 {
    match i % 4 {
        0 => 0,
        1 => -5 * 60_000,
        2 => 2 * 60_000,
        _ => -1_500,
    }
}

struct Node {
    app: axum::Router,
    server: Server,
    _dir: tempfile::TempDir,
}

impl Node {
    async fn send(&self, request: Request<Body>) -> (u16, Value) {
        let response = self.app.clone().oneshot(request).await.unwrap();
        let status = response.status().as_u16();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    async fn api(&self, admin: &str, method: &str, uri: &str, body: Option<Value>) -> Value {
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .header("authorization", format!("Bearer {admin}"))
            .header("content-type", "application/json")
            .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
            .unwrap();
        let (status, body) = self.send(request).await;
        assert!(
            (200..300).contains(&status),
            "{method} {uri}: {status} {body}"
        );
        body
    }

    async fn device_post(&self, path: &str, body: Value) -> (u16, Value) {
        let request = Request::builder()
            .method("POST")
            .uri(path)
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .unwrap();
        self.send(request).await
    }

    async fn flush_registry(&self) {
        self.server.state().registry.flush().await.unwrap();
    }
}

/// Flushes only when the test says so.
fn config(dir: &tempfile::TempDir) -> ServerConfig {
    ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.path().to_path_buf(),
        registry_flush_interval_ms: 3_600_000,
        ..ServerConfig::default()
    }
}

/// The app, an admin key, and a clock near real time (day rollups and the
/// default analytics range look at the wall clock).
async fn prepare(store: &dyn Store) -> (String, Arc<ManualClock>) {
    store.create_app(APP, "Example", 1).await.unwrap();
    let (_, admin) = store
        .create_api_key(
            NewApiKey {
                name: "admin".into(),
                role: Role::Admin,
                app_id: None,
                expires_at: None,
            },
            1,
        )
        .await
        .unwrap();
    let start =
        (updraft_core::model::Clock::now(&updraft_core::model::SystemClock) / 1_000) * 1_000;
    (admin, Arc::new(ManualClock::new(start)))
}

/// Both bundles, and the public channel serving `NEW`.
async fn release_new(node: &Node, admin: &str) {
    for version in [OLD, NEW] {
        node.api(
            admin,
            "POST",
            &format!("/api/v1/apps/{APP}/bundles"),
            Some(json!({
                "version": version,
                "external_url": format!("https://cdn.example.com/{version}.zip"),
                "checksum": "9f2c5e1d7a3b4c6d8e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d",
            })),
        )
        .await;
    }
    node.api(
        admin,
        "POST",
        &format!("/api/v1/apps/{APP}/channels"),
        Some(json!({"name": "production", "public": true, "bundle": NEW})),
    )
    .await;
}

async fn sqlite_node(clock: Arc<ManualClock>) -> (Node, String) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).await.unwrap();
    let (admin, start) = prepare(&store).await;
    clock.set(start.now());
    let server = Server::bind_with_clock(config(&dir), Arc::new(store), clock)
        .await
        .unwrap();
    let node = Node {
        app: router(server.state().clone()),
        server,
        _dir: dir,
    };
    release_new(&node, &admin).await;
    (node, admin)
}

async fn postgres_node(url: &str, clock: Arc<ManualClock>) -> Node {
    let dir = tempfile::tempdir().unwrap();
    let store = PgStore::connect(url, None).await.unwrap();
    let cluster = PgCluster::new(store.pool().clone());
    let server = Server::bind_in_cluster(config(&dir), Arc::new(store), Arc::new(cluster), clock)
        .await
        .unwrap();
    Node {
        app: router(server.state().clone()),
        server,
        _dir: dir,
    }
}

/// Every device asks `/updates` on `OLD` and is offered `NEW`.
async fn check_all(node: &Node) {
    let checks = (0..DEVICES).map(|i| node.device_post("/updates", device_body(i, OLD)));
    for (status, answer) in join_all(checks).await {
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["version"], NEW, "{answer}");
    }
}

/// Every device reports, as the plugin batches it, `set` to `NEW` and the
/// launch that follows, stamped by its own (skewed) clock.
async fn report_set_all(node: &Node, now: i64) {
    let reports = (0..DEVICES).map(|i| {
        let device_now = now + device_skew(i);
        let mut set = device_body(i, NEW);
        set["action"] = json!("set");
        set["old_version_name"] = json!(OLD);
        set["timestamp"] = json!(device_now - 150);
        let mut ready = device_body(i, NEW);
        ready["action"] = json!("app_launch_ready");
        ready["old_version_name"] = json!("");
        ready["timestamp"] = json!(device_now - 20);
        node.device_post("/stats", json!([set, ready]))
    });
    for (status, body) in join_all(reports).await {
        assert_eq!(status, 200, "{body}");
    }
}

/// Every device is on `NEW` by the registry's queries (`device list
/// --bundle`, `device show`) and by the adoption figures.
async fn assert_all_on_new(node: &Node, admin: &str) {
    let store = &node.server.state().store;
    let on = |bundle: &str| DeviceQuery {
        version_name: Some(bundle.to_string()),
        ..DeviceQuery::default()
    };
    assert_eq!(
        store.count_devices(APP, &on(OLD)).await.unwrap(),
        0,
        "devices listed on the old bundle"
    );
    assert_eq!(
        store.count_devices(APP, &on(NEW)).await.unwrap(),
        DEVICES as i64
    );
    for i in 0..DEVICES {
        let device = store.get_device(APP, &device_id(i)).await.unwrap().unwrap();
        assert_eq!(device.version_name.as_deref(), Some(NEW), "device {i}");
        assert_eq!(
            device.last_offered_version.as_deref(),
            Some(NEW),
            "device {i}"
        );
        assert_eq!(device.last_update_outcome.as_deref(), Some("get"));
    }
    let listed = node
        .api(
            admin,
            "GET",
            &format!("/api/v1/apps/{APP}/devices?bundle={NEW}&limit=1"),
            None,
        )
        .await;
    assert_eq!(listed["total"], DEVICES, "{listed}");
    let stats = node
        .api(admin, "GET", &format!("/api/v1/apps/{APP}/stats"), None)
        .await;
    let adoption = stats["adoption"].as_array().unwrap();
    let on_new: i64 = adoption
        .iter()
        .filter(|curve| curve["bundle"] == NEW)
        .flat_map(|curve| curve["days"].as_array().unwrap().iter())
        .map(|day| day["devices"].as_i64().unwrap())
        .max()
        .unwrap_or(0);
    assert_eq!(on_new, DEVICES as i64, "{adoption:?}");
}

#[tokio::test]
async fn devices_are_listed_on_the_bundle_they_set_after_the_check_in_the_same_second() {
    let clock = Arc::new(ManualClock::new(0));
    let (node, admin) = sqlite_node(clock.clone()).await;
    check_all(&node).await;
    clock.advance(400);
    report_set_all(&node, clock.now()).await;
    // The registry flush comes after the stats commit.
    node.flush_registry().await;
    assert_all_on_new(&node, &admin).await;
}

#[tokio::test]
async fn devices_are_listed_on_the_bundle_they_set_with_the_flush_between() {
    let clock = Arc::new(ManualClock::new(0));
    let (node, admin) = sqlite_node(clock.clone()).await;
    check_all(&node).await;
    node.flush_registry().await;
    clock.advance(400);
    report_set_all(&node, clock.now()).await;
    node.flush_registry().await;
    assert_all_on_new(&node, &admin).await;
}

#[tokio::test]
async fn a_check_in_the_millisecond_of_the_set_stat_does_not_undo_it() {
    let clock = Arc::new(ManualClock::new(0));
    let (node, admin) = sqlite_node(clock.clone()).await;
    // The stat arrives first; the check of the same server millisecond is
    // buffered and written last.
    report_set_all(&node, clock.now()).await;
    check_all(&node).await;
    node.flush_registry().await;
    assert_all_on_new(&node, &admin).await;
}

#[tokio::test]
async fn two_nodes_on_one_postgres_list_devices_on_the_bundle_they_set() {
    let url = updraft_testkit::postgres_database().await;
    let setup = PgStore::connect(&url, None).await.unwrap();
    let (admin, clock) = prepare(&setup).await;
    let a = postgres_node(&url, clock.clone()).await;
    let b = postgres_node(&url, clock.clone()).await;
    release_new(&a, &admin).await;

    // Checks on A, the `set` stats on B, A's flush last.
    check_all(&a).await;
    clock.advance(400);
    report_set_all(&b, clock.now()).await;
    b.flush_registry().await;
    a.flush_registry().await;
    assert_all_on_new(&a, &admin).await;
    assert_all_on_new(&b, &admin).await;
    setup.close().await;
}
