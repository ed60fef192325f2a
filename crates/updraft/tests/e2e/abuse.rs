//! Abuse limits (docs/reliability.md, "Abuse limits"): over-long device
//! fields change nothing, and the per-device and per-app rate limits answer
//! 429 + `Retry-After` to the one over its rate while the others are served.

use crate::harness::*;
use reqwest::Method;
use serde_json::{json, Value};

const OTHER_DEVICE: &str = "0b1f6a3e-9d4c-4f2a-8e7b-5c6d7e8f9a0b";

fn stats_event(device_id: &str, version_name: &str) -> Value {
    with(
        device_body(),
        json!({"device_id": device_id, "action": "app_moved_to_foreground",
               "version_name": version_name, "timestamp": 1767225600000i64}),
    )
}

/// (status, Retry-After, body)
async fn send(s: &Server, method: Method, path: &str, body: &Value) -> (u16, Option<u64>, Value) {
    let resp = s
        .http
        .request(method, format!("{}{}", s.url, path))
        .json(body)
        .send()
        .await
        .expect("request");
    let retry = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.parse::<u64>().expect("numeric Retry-After"));
    let (status, body) = Server::read(resp).await;
    (status, retry, body)
}

async fn exported_events(s: &Server) -> String {
    let resp = s
        .http
        .get(format!(
            "{}/api/v1/apps/{APP}/events/export?format=ndjson&since=2000-01-01",
            s.url
        ))
        .bearer_auth(&s.key)
        .send()
        .await
        .expect("export");
    assert_eq!(resp.status().as_u16(), 200);
    resp.text().await.expect("text")
}

#[tokio::test]
async fn over_long_fields_are_refused_and_nothing_is_stored() {
    let s = Server::start().await;
    s.seed("1.0.0").await;
    let huge = "9".repeat(1_000_000);

    let (st, b) = s.post("/stats", &stats_event(DEVICE, &huge)).await;
    assert_eq!(st, 400, "{b}");
    assert_eq!(b["error"], "invalid_json_body");
    assert_eq!(
        b["moreInfo"]["parseResult"]["error"]["issues"][0],
        json!({"message": "String must contain at most 1024 character(s)",
               "path": ["version_name"], "code": "custom"})
    );
    let long_custom = with(device_body(), json!({"custom_id": "c".repeat(37)}));
    let (st, b) = s.post("/updates", &long_custom).await;
    assert_eq!(st, 400, "{b}");
    assert_refusal(&b, "invalid_json_body", "failed");
    assert_eq!(
        b["moreInfo"]["parseResult"]["error"]["issues"][0]["path"],
        json!(["custom_id"])
    );
    let long_channel = with(device_body(), json!({"channel": "x".repeat(256)}));
    let (st, b) = s
        .request(Method::PUT, "/channel_self", Some(&long_channel))
        .await;
    assert_eq!(
        (st, b["error"].as_str()),
        (400, Some("invalid_json_body")),
        "{b}"
    );

    // A batch keeps its good events and refuses only the long one.
    let batch = json!([
        stats_event(DEVICE, "1.0.0"),
        stats_event(DEVICE, &"1".repeat(1025))
    ]);
    let (st, b) = s.post("/stats", &batch).await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["results"][1]["error"], "invalid_json_body");

    let events = exported_events(&s).await;
    assert_eq!(events.lines().count(), 1, "{events:.300}");
    // The refused update check registered no device data either.
    let (st, d) = s
        .api(
            Method::GET,
            &format!("/api/v1/apps/{APP}/devices/{DEVICE}"),
            None,
        )
        .await;
    assert_eq!(st, 200, "{d}");
    assert_eq!(d["custom_id"], Value::Null, "{d}");
}

#[tokio::test]
async fn a_device_over_its_rate_gets_429_while_another_device_is_served() {
    let s = Server::start_with(&[
        ("UPDRAFT_DEVICE_RATE_LIMIT_BURST", "5"),
        ("UPDRAFT_DEVICE_RATE_LIMIT_PER_MINUTE", "1"),
    ])
    .await;
    s.seed("1.0.0").await;
    for i in 0..5 {
        let (st, _, b) = send(&s, Method::POST, "/updates", &device_body()).await;
        assert_eq!(st, 200, "request {i}: {b}");
    }
    // Over its rate on every device route: the plugin blocks for Retry-After.
    let (st, retry, b) = send(&s, Method::POST, "/updates", &device_body()).await;
    assert_eq!(st, 429, "{b}");
    let retry = retry.expect("Retry-After on /updates");
    assert!((1..=60).contains(&retry), "{retry}");
    assert_refusal(&b, "too_many_requests", "blocked");
    assert_eq!(b["moreInfo"]["reason"], "device_rate_limit_exceeded");
    assert_eq!(b["moreInfo"]["retryAfterSeconds"], retry);
    assert_eq!(b["moreInfo"]["device_id"], DEVICE);
    assert!(b["moreInfo"]["rateLimitResetAt"].as_i64().is_some(), "{b}");

    let (st, retry, b) = send(&s, Method::POST, "/stats", &stats_event(DEVICE, "1.0.0")).await;
    assert_eq!(
        (st, b["error"].as_str()),
        (429, Some("too_many_requests")),
        "{b}"
    );
    assert!(retry.is_some());
    let (st, retry, b) = send(&s, Method::PUT, "/channel_self", &device_body()).await;
    assert_eq!(
        (st, b["error"].as_str()),
        (429, Some("too_many_requests")),
        "{b}"
    );
    assert!(retry.is_some());

    // Another device of the same app, from the same address, is served.
    let other = with(device_body(), json!({"device_id": OTHER_DEVICE}));
    let (st, _, b) = send(&s, Method::POST, "/updates", &other).await;
    assert_eq!(st, 200, "{b}");
    assert_refusal(&b, "no_new_version_available", "up_to_date");
    let (st, _, b) = send(
        &s,
        Method::POST,
        "/stats",
        &stats_event(OTHER_DEVICE, "1.0.0"),
    )
    .await;
    assert_eq!((st, b), (200, json!({"status": "ok"})));

    // The refused stats event was not stored (the device keeps and resends it).
    let events = exported_events(&s).await;
    assert_eq!(events.lines().count(), 1, "{events}");
    assert!(events.contains(OTHER_DEVICE));

    let metrics = s.metrics_text().await;
    assert!(
        metrics.contains("updraft_rate_limited_total{scope=\"device\"} 3"),
        "{metrics}"
    );
}

#[tokio::test]
async fn an_app_over_its_rate_gets_429_for_every_device() {
    let s = Server::start_with(&[
        ("UPDRAFT_APP_RATE_LIMIT_BURST", "3"),
        ("UPDRAFT_APP_RATE_LIMIT_PER_MINUTE", "1"),
    ])
    .await;
    s.seed("1.0.0").await;
    let device = |n: u32| format!("0b1f6a3e-9d4c-4f2a-8e7b-{n:012}");
    for n in 0..3 {
        let body = with(device_body(), json!({"device_id": device(n)}));
        let (st, _, b) = send(&s, Method::POST, "/updates", &body).await;
        assert_eq!(st, 200, "{b}");
    }
    let body = with(device_body(), json!({"device_id": device(3)}));
    let (st, retry, b) = send(&s, Method::POST, "/updates", &body).await;
    assert_eq!(st, 429, "{b}");
    assert!(retry.is_some());
    assert_eq!(b["moreInfo"]["reason"], "app_rate_limit_exceeded");
}

/// Blobs are shared by every app; a key scoped to one app must not learn
/// whether another app holds a file.
#[tokio::test]
async fn blob_existence_answers_only_for_the_callers_app() {
    use crate::storage::{put_blob, sha};
    const OTHER_APP: &str = "com.example.other";
    let s = Server::start().await;
    for app in [APP, OTHER_APP] {
        let (st, b) = s
            .api(Method::POST, "/api/v1/apps", Some(&json!({"app_id": app})))
            .await;
        assert_eq!(st, 201, "{b}");
    }
    let index = b"<html>secret of app A</html>".to_vec();
    let index_sha = put_blob(&s, &index).await;
    let manifest =
        json!([{"file_name": "index.html", "file_hash": index_sha, "blob_sha256": index_sha}]);
    let (st, b) = s
        .api(
            Method::POST,
            &format!("/api/v1/apps/{APP}/bundles"),
            Some(&json!({"version": "1.0.0", "manifest": manifest})),
        )
        .await;
    assert_eq!(st, 201, "{b}");
    let unknown = sha(b"nobody has this");
    let ask = json!({"sha256": [index_sha, unknown]});

    let scoped_other = create_key(&s.data_dir, "other", "publisher", &["--app", OTHER_APP]);
    let (st, b) = s
        .api_as(
            &scoped_other,
            Method::POST,
            "/api/v1/blobs/missing",
            Some(&ask),
        )
        .await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(
        b["missing"],
        json!([index_sha, unknown]),
        "app B must not see A's blob"
    );

    let scoped_app = create_key(&s.data_dir, "own", "publisher", &["--app", APP]);
    let (st, b) = s
        .api_as(
            &scoped_app,
            Method::POST,
            "/api/v1/blobs/missing",
            Some(&ask),
        )
        .await;
    assert_eq!((st, b["missing"].clone()), (200, json!([unknown])), "{b}");
    // A server-wide key sees every app's blobs.
    let (st, b) = s
        .api(Method::POST, "/api/v1/blobs/missing", Some(&ask))
        .await;
    assert_eq!((st, b["missing"].clone()), (200, json!([unknown])), "{b}");
}

#[tokio::test]
async fn failed_authentication_gets_one_answer_and_is_throttled_per_address() {
    let s = Server::start_with(&[
        ("UPDRAFT_AUTH_FAILURE_LIMIT_BURST", "5"),
        ("UPDRAFT_AUTH_FAILURE_LIMIT_PER_MINUTE", "1"),
    ])
    .await;
    // Key creation carries a secret: no cache may keep it.
    let resp = s
        .http
        .post(format!("{}/api/v1/apikeys", s.url))
        .bearer_auth(&s.key)
        .json(&json!({"name": "ci", "role": "publisher"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.headers()
            .get("cache-control")
            .map(|v| v.to_str().unwrap()),
        Some("no-store")
    );
    let (st, created) = Server::read(resp).await;
    assert_eq!(st, 201, "{created}");
    let secret = created["key"].as_str().unwrap().to_string();
    let id = created["id"].as_i64().unwrap();
    let (st, _) = s
        .api(Method::DELETE, &format!("/api/v1/apikeys/{id}"), None)
        .await;
    assert_eq!(st, 204);

    // Unknown and revoked keys: the same status, code and sentence.
    let (st, unknown) = s
        .api_as("upd_notakeyatall", Method::GET, "/api/v1/apps", None)
        .await;
    assert_eq!(st, 401);
    let (st, revoked) = s.api_as(&secret, Method::GET, "/api/v1/apps", None).await;
    assert_eq!(st, 401);
    assert_eq!(unknown, revoked);
    assert_eq!(unknown["error"], "unauthorized");

    // Five failures in all; then this address is refused, even with a good key.
    for _ in 0..3 {
        let (st, _) = s.request(Method::GET, "/api/v1/apps", None).await;
        assert_eq!(st, 401);
    }
    let resp = s
        .http
        .get(format!("{}/api/v1/apps", s.url))
        .bearer_auth(&s.key)
        .send()
        .await
        .unwrap();
    let retry = resp
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().parse::<u64>().unwrap());
    let (st, b) = Server::read(resp).await;
    assert_eq!(
        (st, b["error"].as_str()),
        (429, Some("too_many_auth_failures")),
        "{b}"
    );
    assert!(retry.is_some_and(|r| (1..=60).contains(&r)), "{retry:?}");
    // Device traffic from the same address is not affected.
    let (st, _) = s.post("/updates", &device_body()).await;
    assert_eq!(st, 200);
}

/// `app_storage_quota_bytes`: the distinct files of an app's live bundles.
#[tokio::test]
async fn a_bundle_over_the_apps_storage_quota_is_refused_before_it_is_recorded() {
    use crate::storage::{create_app, publish, put_blob};
    let s = Server::start_with(&[("UPDRAFT_APP_STORAGE_QUOTA_BYTES", "3000")]).await;
    create_app(&s).await;
    let index = b"<html>1</html>".to_vec();
    let index_sha = put_blob(&s, &index).await;
    let big = vec![7u8; 2000];
    let big_sha = put_blob(&s, &big).await;
    let entry =
        |name: &str, sha: &str| json!({"file_name": name, "file_hash": sha, "blob_sha256": sha});
    let (st, b) = publish(
        &s,
        json!({"version": "1.0.0", "manifest": [entry("index.html", &index_sha), entry("a.bin", &big_sha)]}),
    )
    .await;
    assert_eq!(st, 201, "{b}");
    // The same files again cost nothing more.
    let (st, b) = publish(
        &s,
        json!({"version": "1.0.1", "manifest": [entry("index.html", &index_sha), entry("b.bin", &big_sha)]}),
    )
    .await;
    assert_eq!(st, 201, "{b}");
    // Another 2000 bytes would pass the quota.
    let other = vec![8u8; 2000];
    let other_sha = put_blob(&s, &other).await;
    let (st, b) = publish(
        &s,
        json!({"version": "1.0.2", "manifest": [entry("index.html", &index_sha), entry("c.bin", &other_sha)]}),
    )
    .await;
    assert_eq!(
        (st, b["error"].as_str()),
        (413, Some("storage_quota_exceeded")),
        "{b}"
    );
    assert_eq!(b["quota_bytes"], 3000);
    let (st, _) = s
        .api(
            Method::GET,
            &format!("/api/v1/apps/{APP}/bundles/1.0.2"),
            None,
        )
        .await;
    assert_eq!(st, 404, "nothing recorded");
    // Deleting the bundles that hold the big file frees its bytes.
    let (st, _) = s
        .api(
            Method::DELETE,
            &format!("/api/v1/apps/{APP}/bundles/1.0.0"),
            None,
        )
        .await;
    assert_eq!(st, 204);
    let (st, _) = s
        .api(
            Method::DELETE,
            &format!("/api/v1/apps/{APP}/bundles/1.0.1"),
            None,
        )
        .await;
    assert_eq!(st, 204);
    let (st, b) = publish(
        &s,
        json!({"version": "1.0.2", "manifest": [entry("index.html", &index_sha), entry("c.bin", &other_sha)]}),
    )
    .await;
    assert_eq!(st, 201, "{b}");
}
