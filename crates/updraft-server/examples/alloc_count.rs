//! Heap allocations per update check, counted (not timed) by `dhat`'s
//! counting global allocator: the real router (every middleware) and store
//! in-process on one thread, N update checks from distinct devices with the
//! benchmark's mix of answers. `bench/run.sh` prints its result.
//!
//!   cargo run --release -p updraft-server --example alloc_count -- [CHECKS]
//!
//! The devices are first seen once (their registry rows written), as in the
//! benchmark's steady state, then each check is counted alone: what the
//! server allocates from the request entering the router to the response
//! body read back. The same is counted for the hello-world baseline's route
//! through the same stack (`examples/hello.rs`), so the figure above it is
//! Updraft's own, and for the device routes without the router's middleware
//! (the handler's share). Prints one `ALLOCS ...` line; `by_answer` gives,
//! per kind of answer, how many checks and their allocations above hello.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a tool: a panic is its error report

use axum::body::{Body, Bytes};
use axum::http::Request;
use axum::routing::post;
use axum::Router;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;
use tower::ServiceExt;
use updraft_core::model::{ManualClock, Role};
use updraft_server::state::ServerConfig;
use updraft_server::{router, Server};
use updraft_store::{ApiKeyStore, AppStore, NewApiKey, SqliteStore};

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

const APP: &str = "com.bench.app0";

/// The benchmark's update-check body of device `k` (bench/updates.lua, one app).
fn check_body(k: usize) -> String {
    let plugins = [
        "5.10.2", "6.14.0", "7.35.1", "8.40.7", "8.51.14", "8.51.14", "8.51.14",
    ];
    let platform = match k % 20 {
        0..=11 => "android",
        12..=18 => "ios",
        _ => "electron",
    };
    let mix = k % 100;
    let channel = match mix {
        95.. => "staging",
        80.. => "beta",
        _ => "",
    };
    let current = if mix % 10 == 3 {
        "builtin".to_string()
    } else {
        format!("1.0.{}", 5 + k % 20)
    };
    let native = if mix % 25 == 7 { "2.0.0" } else { "1.0.0" };
    let custom = if k.is_multiple_of(7) {
        format!("user-{k}")
    } else {
        String::new()
    };
    format!(
        concat!(
            r#"{{"platform":"{}","device_id":"00000000-0000-4000-8000-{:012}","app_id":"{}","#,
            r#""custom_id":"{}","version_build":"{}","version_code":"10","version_os":"{}","version_name":"{}","#,
            r#""plugin_version":"{}","is_emulator":{},"is_prod":true,"install_source":"google_play","#,
            r#""defaultChannel":"{}"}}"#
        ),
        platform,
        k,
        APP,
        custom,
        native,
        13 + k % 5,
        current,
        plugins[k % plugins.len()],
        mix == 42,
        channel
    )
}

fn check_request(body: &str) -> Request<Body> {
    Request::builder()
        .method("POST")
        .uri("/updates")
        .header("content-type", "application/json")
        .header("host", "127.0.0.1:8080")
        .body(Body::from(Bytes::from(body.to_string())))
        .unwrap()
}

async fn call(app: &Router, request: Request<Body>) -> (u16, Bytes) {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status().as_u16();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, body)
}

async fn api(app: &Router, admin: &str, method: &str, uri: &str, body: Value) {
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .header("authorization", format!("Bearer {admin}"))
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    let (status, answer) = call(app, request).await;
    assert!(
        (200..300).contains(&status),
        "{method} {uri}: {status} {answer:?}"
    );
}

/// What the answer told the device, as bench/updates.lua classifies it.
fn kind(status: u16, body: &[u8]) -> &'static str {
    let text = String::from_utf8_lossy(body);
    if !(200..300).contains(&status) {
        "error"
    } else if text.contains("\"url\"") {
        "offered"
    } else if text.contains("\"up_to_date\"") {
        "up_to_date"
    } else if text.contains("\"blocked\"") {
        "blocked"
    } else {
        "failed"
    }
}

/// Allocations of each request, counted alone (one thread: nothing else runs).
async fn count(app: &Router, requests: Vec<Request<Body>>) -> Vec<(u64, &'static str)> {
    let mut counts = Vec::with_capacity(requests.len());
    for request in requests {
        let before = dhat::HeapStats::get().total_blocks;
        let (status, body) = call(app, request).await;
        let allocations = dhat::HeapStats::get().total_blocks - before;
        counts.push((allocations, kind(status, &body)));
    }
    counts
}

fn median(values: &mut [u64]) -> u64 {
    values.sort_unstable();
    values.get(values.len() / 2).copied().unwrap_or(0)
}

fn main() {
    let checks: usize = std::env::args()
        .nth(1)
        .map(|n| n.parse().expect("CHECKS is a number"))
        .unwrap_or(2000);
    let _profiler = dhat::Profiler::builder().testing().build();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).await.unwrap();
        store.create_app(APP, "Bench app 0", 1).await.unwrap();
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
        let now = updraft_core::model::Clock::now(&updraft_core::model::SystemClock);
        let clock = Arc::new(ManualClock::new(now));
        let config = ServerConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            data_dir: dir.path().to_path_buf(),
            registry_flush_interval_ms: 3_600_000,
            ..ServerConfig::default()
        };
        let server = Server::bind_with_clock(config, Arc::new(store), clock)
            .await
            .unwrap();
        let app = router(server.state().clone());
        for patch in 5..30 {
            let version = format!("1.0.{patch}");
            api(
                &app,
                &admin,
                "POST",
                &format!("/api/v1/apps/{APP}/bundles"),
                json!({
                    "version": version,
                    "external_url": format!("https://cdn.example.com/{version}.zip"),
                    "checksum": "9f2c5e1d7a3b4c6d8e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d",
                }),
            )
            .await;
        }
        for (name, bundle, public) in [
            ("production", "1.0.20", true),
            ("beta", "1.0.25", false),
            ("staging", "1.0.29", false),
        ] {
            api(
                &app,
                &admin,
                "POST",
                &format!("/api/v1/apps/{APP}/channels"),
                json!({"name": name, "public": public, "bundle": bundle, "allow_device_self_set": true}),
            )
            .await;
        }
        let bodies: Vec<String> = (0..checks).map(check_body).collect();
        // First sightings, written: the benchmark's devices are all known.
        for body in &bodies {
            call(&app, check_request(body)).await;
        }
        server.state().registry.flush().await.unwrap();

        let requests = bodies.iter().map(|b| check_request(b)).collect();
        let counted = count(&app, requests).await;
        // The device routes alone, without the router's middleware (metrics,
        // access log, tracing, CORS, client address): the handler's share.
        let handler = updraft_server::device::routes().with_state(server.state().clone());
        let requests = bodies.iter().map(|b| check_request(b)).collect();
        let handler_counts: Vec<u64> = count(&handler, requests).await.into_iter().map(|(n, _)| n).collect();

        let hello = Router::new().route(
            "/updates",
            post(|_body: Bytes| async {
                (
                    [(axum::http::header::CONTENT_TYPE, "application/json")],
                    r#"{"error":"no_new_version_available","message":"No new version available","kind":"up_to_date"}"#,
                )
            }),
        );
        let requests = bodies.iter().map(|b| check_request(b)).collect();
        let mut hello_counts: Vec<u64> = count(&hello, requests).await.into_iter().map(|(n, _)| n).collect();

        let mut by_kind: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
        for (allocations, kind) in &counted {
            by_kind.entry(kind).or_default().push(*allocations);
        }
        let total: u64 = counted.iter().map(|(n, _)| n).sum();
        let handler_mean = handler_counts.iter().sum::<u64>() as f64 / checks as f64;
        let hello_total: u64 = hello_counts.iter().sum();
        let mean = total as f64 / checks as f64;
        let hello_mean = hello_total as f64 / checks as f64;
        let mut all: Vec<u64> = counted.iter().map(|(n, _)| *n).collect();
        let kinds: Vec<String> = by_kind
            .iter_mut()
            .map(|(kind, counts)| {
                let sum: u64 = counts.iter().sum();
                format!(
                    "{kind}={}:{:.1}",
                    counts.len(),
                    sum as f64 / counts.len() as f64 - hello_mean
                )
            })
            .collect();
        println!(
            "ALLOCS checks={checks} updraft_per_check={mean:.1} updraft_median={} hello_per_check={hello_mean:.1} hello_median={} above_hello={:.1} device_routes_only={handler_mean:.1} device_routes_above_hello={:.1} by_answer={}",
            median(&mut all),
            median(&mut hello_counts),
            mean - hello_mean,
            handler_mean - hello_mean,
            kinds.join(",")
        );
    });
}
