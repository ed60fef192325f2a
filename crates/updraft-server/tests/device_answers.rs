//! The device answers of `/updates` and `/channel_self` stay byte for byte
//! what the `Value`-based path gave: for a corpus of plugin-like and
//! malformed requests, the router's answer (status, content type, body
//! bytes) is compared with the old path's, rebuilt here from the same steps
//! the handler used to take (`parse_json`, the legacy parser kept in
//! `updraft_core::request::legacy_oracle`, the decision, `axum::Json`).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is its failure report

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Request};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use std::sync::Arc;
use tower::ServiceExt;
use updraft_core::channel_self;
use updraft_core::decision::answer_update;
use updraft_core::model::{ManualClock, Role};
use updraft_core::request::{legacy_oracle, parse_json, ChannelSelfMethod};
use updraft_server::error::{json_with_status, DeviceResponse};
use updraft_server::limiter::Quota;
use updraft_server::state::{AppState, ServerConfig};
use updraft_server::{router, Server};
use updraft_store::{ApiKeyStore, AppStore, NewApiKey, SqliteStore};

const APP: &str = "com.example.app";

struct Node {
    app: axum::Router,
    server: Server,
    _dir: tempfile::TempDir,
}

async fn parts(response: Response) -> (u16, Option<String>, Bytes) {
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string());
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, content_type, body)
}

impl Node {
    async fn send(&self, request: Request<Body>) -> (u16, Option<String>, Bytes) {
        parts(self.app.clone().oneshot(request).await.unwrap()).await
    }

    async fn api(&self, admin: &str, method: &str, uri: &str, body: Value) {
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .header("authorization", format!("Bearer {admin}"))
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .unwrap();
        let (status, _, answer) = self.send(request).await;
        assert!(
            (200..300).contains(&status),
            "{method} {uri}: {status} {answer:?}"
        );
    }

    fn state(&self) -> &AppState {
        self.server.state()
    }
}

async fn node() -> Node {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).await.unwrap();
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
    let mut config = ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.path().to_path_buf(),
        registry_flush_interval_ms: 3_600_000,
        ..ServerConfig::default()
    };
    // The corpus sends thousands of requests from a few devices.
    let unlimited = Quota {
        burst: 1_000_000,
        per_minute: 1_000_000,
    };
    config.limits.device_rate = unlimited;
    config.limits.app_rate = unlimited;
    let now = updraft_core::model::Clock::now(&updraft_core::model::SystemClock);
    let server = Server::bind_with_clock(config, Arc::new(store), Arc::new(ManualClock::new(now)))
        .await
        .unwrap();
    let node = Node {
        app: router(server.state().clone()),
        server,
        _dir: dir,
    };
    for patch in 0..6 {
        let version = format!("1.0.{patch}");
        node.api(
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
        ("production", "1.0.3", true),
        ("beta", "1.0.5", false),
        ("staging", "1.0.4", false),
    ] {
        node.api(
            &admin,
            "POST",
            &format!("/api/v1/apps/{APP}/channels"),
            json!({"name": name, "public": public, "bundle": bundle}),
        )
        .await;
    }
    node.api(
        &admin,
        "PATCH",
        &format!("/api/v1/apps/{APP}/channels/beta"),
        json!({"allow_device_self_set": true}),
    )
    .await;
    node
}

fn device(k: usize) -> String {
    format!("{:08x}-0000-4000-8000-{:012x}", k, k * 7919)
}

fn base_body(k: usize) -> Value {
    let platforms = ["android", "ios", "electron"];
    let plugins = ["4.9.0", "5.10.2", "6.14.0", "7.35.1", "8.51.14", "v8.51.14"];
    let running = ["1.0.0", "1.0.3", "1.0.5", "builtin", "0.9.0", "1.0.3-rc.1"];
    let (builds, os) = (["1.0.0", "1.0", "2", "builtin"], ["14", "17.5", "10.15.7"]);
    let (sources, defaults) = (
        ["google_play", " TestFlight ", ""],
        ["", "beta", "staging", "nope", "   "],
    );
    let channels = ["beta", "staging", "production", ""];
    let (build, version_os, running_now) = (builds[k % 4], os[k % 3], running[k % running.len()]);
    let (source, default, channel) = (sources[k % 3], defaults[k % 5], channels[k % 4]);
    json!({
        "platform": platforms[k % 3],
        "device_id": if k % 5 == 4 { device(k).to_uppercase() } else { device(k) },
        "app_id": if k % 17 == 16 { "com.example.unknown" } else { APP },
        "custom_id": if k.is_multiple_of(4) { format!(" user-{k} ") } else { String::new() },
        "version_build": build,
        "version_code": "10",
        "version_os": version_os,
        "version_name": running_now,
        "plugin_version": plugins[k % plugins.len()],
        "is_emulator": k.is_multiple_of(11),
        "is_prod": !k.is_multiple_of(13),
        "install_source": source,
        "defaultChannel": default,
        "channel": channel,
    })
}

/// Plugin-like bodies, and each field of one broken in every way.
fn corpus() -> Vec<Vec<u8>> {
    let mut bodies: Vec<Vec<u8>> = (0..240)
        .map(|k| base_body(k).to_string().into_bytes())
        .collect();
    let odd = [
        json!(null),
        json!(true),
        json!(7),
        json!(1.5),
        json!(""),
        json!("  "),
        json!([]),
        json!({}),
        json!("x".repeat(300)),
        json!("é".repeat(37)),
        json!("builtin"),
        json!("1.x"),
        json!("ANDROID"),
    ];
    let fields = [
        "platform",
        "device_id",
        "app_id",
        "custom_id",
        "version_build",
        "version_code",
        "version_os",
        "version_name",
        "plugin_version",
        "is_emulator",
        "is_prod",
        "install_source",
        "defaultChannel",
        "key_id",
        "channel",
    ];
    for (i, field) in fields.iter().enumerate() {
        for value in &odd {
            let mut body = base_body(i);
            body[*field] = value.clone();
            bodies.push(body.to_string().into_bytes());
        }
        let mut body = base_body(i);
        body.as_object_mut().unwrap().remove(*field);
        bodies.push(body.to_string().into_bytes());
    }
    let valid = base_body(1).to_string();
    for whole in [
        String::new(),
        "null".into(),
        "[]".into(),
        "{}".into(),
        format!("[{valid}]"),
        format!("{valid} trailing"),
        valid[..valid.len() / 2].to_string(),
        valid.replacen("\"android\"", "\"andr\\u006fid\"", 1),
        valid.replacen("\"app_id\"", "\"app_id\":\"x.y\",\"app_id\"", 1),
    ] {
        bodies.push(whole.into_bytes());
    }
    bodies
}

fn device_request(method: &str, uri: &str, body: Vec<u8>) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json")
        .header("host", "updraft.example.com")
        .body(Body::from(body))
        .unwrap()
}

/// The `/updates` handler as it was: a `Value`, the legacy parser, `axum::Json`.
fn old_update_answer(state: &AppState, bytes: &[u8]) -> Response {
    let mut headers = HeaderMap::new();
    headers.insert("host", "updraft.example.com".parse().unwrap());
    match parse_json(bytes).and_then(|body| legacy_oracle::parse_update_request(&body)) {
        Err(err) => DeviceResponse::update_check(err),
        Ok(req) => {
            let release = state.releases.get(&req.app_id);
            let base_url = state.base_url(&headers);
            let mut answer = answer_update(&req, &release, &base_url);
            state
                .downloads
                .finish_answer_links(&mut answer.body, &base_url);
            axum::Json(answer.body).into_response()
        }
    }
}

#[tokio::test]
async fn update_answers_are_byte_for_byte_the_old_paths() {
    let node = node().await;
    let mut offered = 0;
    for bytes in corpus() {
        let expected = parts(old_update_answer(node.state(), &bytes)).await;
        let got = node
            .send(device_request("POST", "/updates", bytes.clone()))
            .await;
        assert_eq!(got, expected, "{}", String::from_utf8_lossy(&bytes));
        offered += usize::from(expected.2.windows(6).any(|w| w == b"\"url\":"));
    }
    assert!(offered > 20, "the corpus offers bundles: {offered}");
}

/// The `/channel_self` handlers as they were, for a POST or PUT body: the
/// answer is computed on the release as it is before the request.
fn old_channel_answer(state: &AppState, bytes: &[u8], method: ChannelSelfMethod) -> Response {
    match parse_json(bytes)
        .and_then(|body| legacy_oracle::parse_channel_self_request(&body, method))
    {
        Err(err) => DeviceResponse(err).into_response(),
        Ok(req) => {
            let release = state.releases.get(&req.app_id);
            let answer = match method {
                ChannelSelfMethod::Set => channel_self::answer_channel_set(&req, &release),
                ChannelSelfMethod::Get => channel_self::answer_channel_get(&req, &release),
                ChannelSelfMethod::Unset => channel_self::answer_channel_unset(&req, &release),
            };
            json_with_status(answer.status, answer.body)
        }
    }
}

#[tokio::test]
async fn channel_self_answers_are_byte_for_byte_the_old_paths() {
    let node = node().await;
    let mut ok = 0;
    for bytes in corpus() {
        for (http_method, method) in [
            ("PUT", ChannelSelfMethod::Get),
            ("POST", ChannelSelfMethod::Set),
            ("PUT", ChannelSelfMethod::Get),
        ] {
            let expected = parts(old_channel_answer(node.state(), &bytes, method)).await;
            let got = node
                .send(device_request(http_method, "/channel_self", bytes.clone()))
                .await;
            assert_eq!(
                got,
                expected,
                "{http_method} {}",
                String::from_utf8_lossy(&bytes)
            );
            ok += usize::from(expected.0 == 200 && !expected.2.starts_with(b"{\"error\""));
        }
    }
    assert!(ok > 50, "the corpus sets and gets channels: {ok}");
}
