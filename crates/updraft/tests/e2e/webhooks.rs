//! Webhooks: every delivery is checked by a local receiver with its own
//! Standard Webhooks verification (HMAC-SHA256 of `id.timestamp.body`, a
//! 5-minute replay tolerance); retries, the delivery log, restarts.

use crate::harness::{Server, APP};
use crate::storage::{publish, put_blob};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use hmac::{Hmac, Mac};
use reqwest::Method;
use serde_json::{json, Value};
use sha2::Sha256;
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const TOLERANCE_SECS: i64 = 5 * 60;

/// One request the receiver got, and what its verification said.
#[derive(Clone, Debug)]
struct Received {
    message_id: String,
    timestamp: i64,
    signature: String,
    body: Vec<u8>,
    verified: Result<(), String>,
    /// The status the receiver answered.
    answered: u16,
}

impl Received {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("webhook bodies are JSON")
    }
}

#[derive(Default)]
struct ReceiverState {
    secret: Mutex<Option<String>>,
    received: Mutex<Vec<Received>>,
    /// Answer 503 to this many more verified requests.
    fail_next: AtomicUsize,
}

struct Receiver {
    url: String,
    state: Arc<ReceiverState>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Result<&'a str, String> {
    headers
        .get(name)
        .ok_or_else(|| format!("missing {name}"))?
        .to_str()
        .map_err(|_| format!("{name} is not text"))
}

/// Standard Webhooks verification, written from the specification (not with
/// the server's code): key = base64 after `whsec_`, signed content
/// `{webhook-id}.{webhook-timestamp}.{body}`, header `v1,<base64>` (several
/// may be given, space-separated), timestamp within the tolerance.
fn verify(secret: &str, headers: &HeaderMap, body: &[u8], now: i64) -> Result<(), String> {
    let id = header(headers, "webhook-id")?;
    let timestamp: i64 = header(headers, "webhook-timestamp")?
        .parse()
        .map_err(|_| "webhook-timestamp is not a number".to_string())?;
    if (now - timestamp).abs() > TOLERANCE_SECS {
        return Err(format!(
            "timestamp {timestamp} is outside the tolerance (now {now})"
        ));
    }
    let key = BASE64
        .decode(
            secret
                .strip_prefix("whsec_")
                .ok_or("secret without whsec_")?,
        )
        .map_err(|e| format!("secret is not base64: {e}"))?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).map_err(|e| e.to_string())?;
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let expected = BASE64.encode(mac.finalize().into_bytes());
    let signatures = header(headers, "webhook-signature")?;
    if signatures
        .split(' ')
        .filter_map(|s| s.strip_prefix("v1,"))
        .any(|s| s == expected)
    {
        Ok(())
    } else {
        Err(format!("no signature matches in {signatures:?}"))
    }
}

async fn receive(
    State(state): State<Arc<ReceiverState>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let secret = state.secret.lock().unwrap().clone();
    let verified = match secret {
        None => Err("the receiver has no secret yet".to_string()),
        Some(secret) => verify(&secret, &headers, &body, unix_now()),
    };
    let answered = if verified.is_err() {
        StatusCode::UNAUTHORIZED
    } else if state
        .fail_next
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
    {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::NO_CONTENT
    };
    let text = |name: &str| header(&headers, name).unwrap_or_default().to_string();
    state.received.lock().unwrap().push(Received {
        message_id: text("webhook-id"),
        timestamp: text("webhook-timestamp").parse().unwrap_or(0),
        signature: text("webhook-signature"),
        body: body.to_vec(),
        verified,
        answered: answered.as_u16(),
    });
    answered
}

impl Receiver {
    async fn start() -> Receiver {
        let state = Arc::new(ReceiverState::default());
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(receive))
            .with_state(Arc::clone(&state));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Receiver { url, state, task }
    }

    fn set_secret(&self, secret: &str) {
        *self.state.secret.lock().unwrap() = Some(secret.to_string());
    }

    fn received(&self) -> Vec<Received> {
        self.state.received.lock().unwrap().clone()
    }

    /// Waits for a verified, accepted delivery of `event_type`.
    async fn wait_for(&self, event_type: &str) -> Received {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(hit) = self
                .received()
                .into_iter()
                .find(|r| r.answered == 204 && r.json()["type"] == event_type)
            {
                return hit;
            }
            assert!(
                Instant::now() < deadline,
                "no {event_type} delivery arrived; got {:?}",
                self.received()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Every request so far verified with the secret.
    fn assert_all_verified(&self) {
        let received = self.received();
        assert!(!received.is_empty());
        for r in &received {
            assert_eq!(r.verified, Ok(()), "{r:?}");
            assert!(r.message_id.starts_with("msg_"), "{r:?}");
            assert!(r.signature.starts_with("v1,"), "{r:?}");
            assert!((unix_now() - r.timestamp).abs() <= TOLERANCE_SECS);
        }
    }
}

/// A small valid zip.
fn zip_bytes(marker: &str) -> Vec<u8> {
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    writer.start_file("index.html", options).unwrap();
    writer
        .write_all(format!("<!doctype html><p>{marker}</p>").as_bytes())
        .unwrap();
    writer.finish().unwrap().into_inner()
}

async fn create_app(s: &Server) {
    let (st, b) = s
        .api(Method::POST, "/api/v1/apps", Some(&json!({"app_id": APP})))
        .await;
    assert_eq!(st, 201, "{b}");
}

/// `updraft webhook add` → (id, secret).
fn add_webhook(s: &Server, args: &[&str]) -> (i64, String) {
    let mut argv = vec!["webhook", "add"];
    argv.extend_from_slice(args);
    argv.push("--json");
    let out = s.cli_ok(&argv);
    let created: Value = serde_json::from_str(&out).unwrap();
    let secret = created["secret"].as_str().unwrap().to_string();
    assert!(secret.starts_with("whsec_"), "{created}");
    (created["id"].as_i64().unwrap(), secret)
}

fn deliveries(s: &Server, id: i64) -> Vec<Value> {
    let out = s.cli_ok(&["webhook", "deliveries", &id.to_string(), "--json"]);
    let list: Value = serde_json::from_str(&out).unwrap();
    list["deliveries"].as_array().unwrap().clone()
}

/// Waits until every delivery of the webhook is finished.
async fn wait_finished(s: &Server, id: i64, count: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let list = deliveries(s, id);
        if list.len() == count && list.iter().all(|d| d["status"] != "pending") {
            return list;
        }
        assert!(
            Instant::now() < deadline,
            "deliveries still pending: {list:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn uploads_channel_changes_and_tests_arrive_signed() {
    let s = Server::start().await;
    let receiver = Receiver::start().await;
    create_app(&s).await;
    let (id, secret) = add_webhook(&s, &[&receiver.url, "--app", APP]);
    receiver.set_secret(&secret);

    // Lists mask the secret.
    let out = s.cli_ok(&["webhook", "list", "--json"]);
    let list: Value = serde_json::from_str(&out).unwrap();
    let masked = format!("whsec_…{}", &secret[secret.len() - 4..]);
    assert_eq!(list["webhooks"][0]["secret"], masked.as_str());
    assert!(!out.contains(&secret));
    let table = s.cli_ok(&["webhook", "list"]);
    assert!(
        table.contains(&receiver.url) && table.contains(&masked),
        "{table}"
    );

    // Publishing an uploaded zip: bundle.uploaded.
    let zip = zip_bytes("1.0.0");
    let digest = put_blob(&s, &zip).await;
    let (st, bundle) = publish(
        &s,
        json!({"version": "1.0.0", "zip_sha256": digest, "checksum": digest}),
    )
    .await;
    assert_eq!(st, 201, "{bundle}");
    let uploaded = receiver.wait_for("bundle.uploaded").await.json();
    assert_eq!(uploaded["data"]["app_id"], APP);
    assert_eq!(uploaded["data"]["version"], "1.0.0");
    assert_eq!(uploaded["data"]["bundle"]["zip_sha256"], digest.as_str());
    assert!(uploaded["timestamp"].as_str().unwrap().ends_with('Z'));

    // A channel's stable bundle changes: channel.changed.
    let (st, b) = s
        .api(
            Method::POST,
            &format!("/api/v1/apps/{APP}/channels"),
            Some(&json!({"name": "production", "public": true})),
        )
        .await;
    assert_eq!(st, 201, "{b}");
    let (st, b) = s.patch_production(json!({"bundle": "1.0.0"})).await;
    assert_eq!(st, 200, "{b}");
    let changed = receiver.wait_for("channel.changed").await.json();
    assert_eq!(changed["data"]["app_id"], APP);
    assert_eq!(changed["data"]["channel"], "production");
    assert_eq!(changed["data"]["bundle"], "1.0.0");
    assert_eq!(changed["data"]["previous_bundle"], "builtin");

    // A settings change is a channel change too.
    let (st, b) = s.patch_production(json!({"allow_emulator": false})).await;
    assert_eq!(st, 200, "{b}");
    let deadline = Instant::now() + Duration::from_secs(20);
    let settings_change = loop {
        let changes: Vec<Value> = receiver
            .received()
            .into_iter()
            .filter(|r| r.answered == 204 && r.json()["type"] == "channel.changed")
            .map(|r| r.json())
            .collect();
        if changes.len() >= 2 {
            break changes[1].clone();
        }
        assert!(Instant::now() < deadline, "no second channel.changed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(settings_change["data"]["bundle"], "1.0.0");
    assert_eq!(settings_change["data"]["previous_bundle"], "1.0.0");

    // `updraft webhook test`.
    let out = s.cli_ok(&["webhook", "test", &id.to_string()]);
    assert!(out.contains("Queued a webhook.test event"), "{out}");
    let test = receiver.wait_for("webhook.test").await.json();
    assert_eq!(test["data"]["webhook_id"], id);

    receiver.assert_all_verified();
    let log = wait_finished(&s, id, receiver.received().len()).await;
    for delivery in &log {
        assert_eq!(delivery["status"], "succeeded", "{delivery}");
        assert_eq!(delivery["attempts"], 1);
        assert_eq!(delivery["last_status_code"], 204);
    }
    // Newest first, and the log's message ids are the ones received.
    let mut logged: Vec<String> = log
        .iter()
        .map(|d| d["message_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(log[0]["event_type"], "webhook.test");
    let mut got: Vec<String> = receiver
        .received()
        .iter()
        .map(|r| r.message_id.clone())
        .collect();
    logged.sort();
    got.sort();
    assert_eq!(logged, got);

    // The verification is not vacuous: a tampered body, another secret, or a
    // replay outside the tolerance fail it.
    let genuine = receiver.received()[0].clone();
    let mut headers = HeaderMap::new();
    headers.insert("webhook-id", genuine.message_id.parse().unwrap());
    headers.insert(
        "webhook-timestamp",
        genuine.timestamp.to_string().parse().unwrap(),
    );
    headers.insert("webhook-signature", genuine.signature.parse().unwrap());
    let now = unix_now();
    assert_eq!(verify(&secret, &headers, &genuine.body, now), Ok(()));
    let mut tampered = genuine.body.clone();
    tampered.push(b' ');
    assert!(verify(&secret, &headers, &tampered, now).is_err());
    let other_secret = format!("whsec_{}", BASE64.encode([9u8; 32]));
    assert!(verify(&other_secret, &headers, &genuine.body, now).is_err());
    assert!(verify(&secret, &headers, &genuine.body, now + TOLERANCE_SECS + 1).is_err());
    // Replayed to the receiver ten minutes later: refused.
    let replay = reqwest::Client::new()
        .post(&receiver.url)
        .header("webhook-id", &genuine.message_id)
        .header("webhook-timestamp", (genuine.timestamp - 600).to_string())
        .header("webhook-signature", &genuine.signature)
        .body(genuine.body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), 401);
}

#[tokio::test]
async fn a_failing_receiver_gets_the_third_attempt() {
    let s = Server::start_with(&[("UPDRAFT_WEBHOOK_RETRY_BASE_MS", "100")]).await;
    let receiver = Receiver::start().await;
    receiver.state.fail_next.store(2, Ordering::SeqCst);
    let (id, secret) = add_webhook(&s, &[&receiver.url]);
    receiver.set_secret(&secret);
    s.cli_ok(&["webhook", "test", &id.to_string()]);

    let log = wait_finished(&s, id, 1).await;
    let delivery = &log[0];
    assert_eq!(delivery["status"], "succeeded", "{delivery}");
    assert_eq!(delivery["attempts"], 3);
    assert_eq!(delivery["last_status_code"], 204);
    assert_eq!(delivery["last_error"], Value::Null);
    let received = receiver.received();
    assert_eq!(
        received.iter().map(|r| r.answered).collect::<Vec<_>>(),
        vec![503, 503, 204]
    );
    let (_, samples) = crate::metrics::scrape(&s).await;
    let attempts = |outcome| {
        crate::metrics::value_of(
            &samples,
            "updraft_webhook_delivery_attempts_total",
            &[("outcome", outcome)],
        )
    };
    assert_eq!(
        (attempts("failed"), attempts("succeeded")),
        (Some(2.0), Some(1.0))
    );
    // The same message on every attempt, each signed afresh.
    for r in &received {
        assert_eq!(r.message_id, delivery["message_id"].as_str().unwrap());
        assert_eq!(r.body, received[0].body);
    }
    receiver.assert_all_verified();
    let table = s.cli_ok(&["webhook", "deliveries", &id.to_string()]);
    let row = table.lines().nth(1).unwrap();
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(
        cells[1..5],
        ["webhook.test", "succeeded", "3", "204"],
        "{table}"
    );
}

#[tokio::test]
async fn a_delivery_that_gives_up_is_marked_failed() {
    let s = Server::start_with(&[
        ("UPDRAFT_WEBHOOK_RETRY_BASE_MS", "50"),
        ("UPDRAFT_WEBHOOK_MAX_ATTEMPTS", "2"),
    ])
    .await;
    let receiver = Receiver::start().await;
    receiver.state.fail_next.store(100, Ordering::SeqCst);
    let (id, secret) = add_webhook(&s, &[&receiver.url]);
    receiver.set_secret(&secret);
    s.cli_ok(&["webhook", "test", &id.to_string()]);
    let log = wait_finished(&s, id, 1).await;
    assert_eq!(log[0]["status"], "failed");
    assert_eq!(log[0]["attempts"], 2);
    assert_eq!(log[0]["last_status_code"], 503);
    assert_eq!(log[0]["last_error"], "receiver answered HTTP 503");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.received().len(), 2);
}

#[tokio::test]
async fn a_pending_delivery_survives_a_restart() {
    let env = [
        ("UPDRAFT_WEBHOOK_RETRY_BASE_MS", "300"),
        ("UPDRAFT_WEBHOOK_MAX_ATTEMPTS", "20"),
    ];
    let mut s = Server::start_with(&env).await;
    let receiver = Receiver::start().await;
    receiver.state.fail_next.store(usize::MAX, Ordering::SeqCst);
    let (id, secret) = add_webhook(&s, &[&receiver.url]);
    receiver.set_secret(&secret);
    s.cli_ok(&["webhook", "test", &id.to_string()]);
    // At least one failed attempt, still pending.
    let deadline = Instant::now() + Duration::from_secs(20);
    while receiver.received().is_empty() {
        assert!(Instant::now() < deadline, "no attempt arrived");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    s.sigkill();
    let before = deliveries_via(&s.data_dir, &s.url, &s.key, id);
    assert!(before.is_none(), "the server is down");

    // The receiver recovers while the server is down; a new server process
    // on the same data directory resumes the delivery.
    receiver.state.fail_next.store(0, Ordering::SeqCst);
    let mut next = Server::spawn(&s.data_dir, &env);
    next.key = s.key.clone();
    let delivered = receiver.wait_for("webhook.test").await;
    let log = wait_finished(&next, id, 1).await;
    assert_eq!(log[0]["status"], "succeeded");
    assert_eq!(log[0]["message_id"], delivered.message_id.as_str());
    assert!(log[0]["attempts"].as_u64().unwrap() >= 2, "{}", log[0]);
    receiver.assert_all_verified();
    next.sigkill();
}

/// The delivery log through the CLI, or `None` when the server does not answer.
fn deliveries_via(data_dir: &std::path::Path, url: &str, key: &str, id: i64) -> Option<Vec<Value>> {
    let (code, out, _) = crate::harness::cli(
        data_dir,
        Some(url),
        Some(key),
        &["webhook", "deliveries", &id.to_string(), "--json"],
    );
    (code == 0).then(|| {
        serde_json::from_str::<Value>(&out).unwrap()["deliveries"]
            .as_array()
            .unwrap()
            .clone()
    })
}

#[tokio::test]
async fn the_webhook_api_validates_and_keeps_apps_apart() {
    let s = Server::start().await;
    create_app(&s).await;
    for (body, code) in [
        (json!({"url": "ftp://hooks.example.com/x"}), "invalid_url"),
        (json!({"url": "not a url"}), "invalid_url"),
        (
            json!({"url": "https://hooks.example.com/x", "events": ["bundle.exploded"]}),
            "invalid_event",
        ),
        (
            json!({"url": "https://hooks.example.com/x", "secret": "hunter2"}),
            "invalid_secret",
        ),
    ] {
        let (st, b) = s.api(Method::POST, "/api/v1/webhooks", Some(&body)).await;
        assert_eq!((st, b["error"].as_str()), (400, Some(code)), "{body}: {b}");
    }
    let (st, b) = s
        .api(
            Method::POST,
            "/api/v1/webhooks",
            Some(&json!({"url": "https://hooks.example.com/x", "app_id": "com.example.none"})),
        )
        .await;
    assert_eq!((st, b["error"].as_str()), (404, Some("app_not_found")));

    // A chosen secret is kept; a global webhook and an app one.
    let chosen = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let (st, global) = s
        .api(
            Method::POST,
            "/api/v1/webhooks",
            Some(
                &json!({"url": "https://hooks.example.com/all", "secret": chosen,
                         "events": ["bundle.uploaded", "bundle.uploaded"]}),
            ),
        )
        .await;
    assert_eq!(st, 201, "{global}");
    assert_eq!(global["secret"], chosen);
    assert_eq!(global["events"], json!(["bundle.uploaded"]));
    assert_eq!(global["app_id"], Value::Null);
    let (st, own) = s
        .api(
            Method::POST,
            "/api/v1/webhooks",
            Some(&json!({"url": "https://hooks.example.com/app", "app_id": APP})),
        )
        .await;
    assert_eq!(st, 201, "{own}");
    let (global_id, own_id) = (global["id"].as_i64().unwrap(), own["id"].as_i64().unwrap());
    let (st, shown) = s
        .api(Method::GET, &format!("/api/v1/webhooks/{global_id}"), None)
        .await;
    assert_eq!(st, 200);
    assert_eq!(shown["secret"], "whsec_…LaSw");

    // An app-scoped admin key sees and manages only its app's webhooks.
    let scoped = crate::harness::create_key(&s.data_dir, "app-admin", "admin", &["--app", APP]);
    let (st, list) = s
        .api_as(&scoped, Method::GET, "/api/v1/webhooks", None)
        .await;
    assert_eq!(st, 200);
    let ids: Vec<i64> = list["webhooks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, vec![own_id]);
    let (st, _) = s
        .api_as(
            &scoped,
            Method::GET,
            &format!("/api/v1/webhooks/{global_id}"),
            None,
        )
        .await;
    assert_eq!(st, 404);
    let (st, _) = s
        .api_as(
            &scoped,
            Method::POST,
            "/api/v1/webhooks",
            Some(&json!({"url": "https://hooks.example.com/mine"})),
        )
        .await;
    assert_eq!(st, 403);
    // Viewers and publishers cannot manage webhooks.
    let viewer = crate::harness::create_key(&s.data_dir, "viewer", "viewer", &[]);
    let (st, _) = s
        .api_as(&viewer, Method::GET, "/api/v1/webhooks", None)
        .await;
    assert_eq!(st, 403);

    // Unknown ids are 404; delete removes it.
    for path in ["/api/v1/webhooks/999", "/api/v1/webhooks/abc"] {
        let (st, b) = s.api(Method::GET, path, None).await;
        assert_eq!((st, b["error"].as_str()), (404, Some("webhook_not_found")));
    }
    let (st, _) = s
        .api_as(
            &scoped,
            Method::DELETE,
            &format!("/api/v1/webhooks/{own_id}"),
            None,
        )
        .await;
    assert_eq!(st, 204);
    let (st, _) = s
        .api(Method::GET, &format!("/api/v1/webhooks/{own_id}"), None)
        .await;
    assert_eq!(st, 404);

    // Deleting an app removes its webhooks.
    let (st, own2) = s
        .api(
            Method::POST,
            "/api/v1/webhooks",
            Some(&json!({"url": "https://hooks.example.com/app2", "app_id": APP})),
        )
        .await;
    assert_eq!(st, 201);
    let (st, _) = s
        .api(Method::DELETE, &format!("/api/v1/apps/{APP}"), None)
        .await;
    assert_eq!(st, 204);
    let (st, _) = s
        .api(
            Method::GET,
            &format!("/api/v1/webhooks/{}", own2["id"]),
            None,
        )
        .await;
    assert_eq!(st, 404);
    let (st, list) = s.api(Method::GET, "/api/v1/webhooks", None).await;
    assert_eq!(st, 200);
    assert_eq!(list["webhooks"].as_array().unwrap().len(), 1);
}

/// The stored secret of every webhook and the stored key setting, read
/// straight from the database of a stopped server.
async fn raw_secrets(data_dir: &std::path::Path) -> (Vec<String>, Option<String>) {
    let store = updraft_store::SqliteStore::open(data_dir).await.unwrap();
    let secrets = sqlx::query_scalar("SELECT secret FROM webhooks ORDER BY id")
        .fetch_all(store.pool())
        .await
        .unwrap();
    let key = sqlx::query_scalar("SELECT value FROM settings WHERE name = 'webhook_secret_key'")
        .fetch_optional(store.pool())
        .await
        .unwrap();
    store.close().await;
    (secrets, key)
}

async fn set_raw_secret(data_dir: &std::path::Path, id: i64, secret: &str) {
    let store = updraft_store::SqliteStore::open(data_dir).await.unwrap();
    sqlx::query("UPDATE webhooks SET secret = $1 WHERE id = $2")
        .bind(secret)
        .bind(id)
        .execute(store.pool())
        .await
        .unwrap();
    store.close().await;
}

#[tokio::test]
async fn secrets_are_encrypted_at_rest_and_deliveries_still_verify() {
    let mut s = Server::start().await;
    let receiver = Receiver::start().await;
    let (id, secret) = add_webhook(&s, &[&receiver.url]);
    receiver.set_secret(&secret);
    s.cli_ok(&["webhook", "test", &id.to_string()]);
    receiver.wait_for("webhook.test").await;
    receiver.assert_all_verified();
    // Lists still show the plaintext's last 4 characters.
    let (status, shown) = s
        .api(Method::GET, &format!("/api/v1/webhooks/{id}"), None)
        .await;
    assert_eq!(status, 200, "{shown}");
    assert_eq!(
        shown["secret"],
        format!("whsec_…{}", &secret[secret.len() - 4..])
    );
    assert!(s.sigterm().success());

    let key_part = secret.strip_prefix("whsec_").unwrap();
    let (stored, key) = raw_secrets(&s.data_dir).await;
    assert_eq!(stored.len(), 1);
    assert!(stored[0].starts_with("enc:v1:"), "{stored:?}");
    assert!(!stored[0].contains(key_part), "{stored:?}");
    // No key configured: one was generated and kept in the database.
    assert_eq!(key.map(|k| k.len()), Some(64));

    // A row an older version stored as plaintext keeps working and is
    // encrypted at the next start.
    set_raw_secret(&s.data_dir, id, &secret).await;
    let mut next = Server::spawn(&s.data_dir, &[]);
    next.key = s.key.clone();
    next.cli_ok(&["webhook", "test", &id.to_string()]);
    wait_finished(&next, id, 2).await;
    assert_eq!(receiver.received().len(), 2);
    receiver.assert_all_verified();
    assert!(next.sigterm().success());
    let (stored, _) = raw_secrets(&s.data_dir).await;
    assert!(stored[0].starts_with("enc:v1:"), "{stored:?}");
    assert!(!stored[0].contains(key_part), "{stored:?}");
}

#[tokio::test]
async fn a_secret_that_does_not_decrypt_fails_the_delivery_readably() {
    let key = "11".repeat(32);
    let mut s = Server::start_with(&[("UPDRAFT_WEBHOOK_SECRET_KEY", &key)]).await;
    let receiver = Receiver::start().await;
    let (id, _) = add_webhook(&s, &[&receiver.url]);
    assert!(s.sigterm().success());
    // A configured key is not written to the database.
    let (_, stored_key) = raw_secrets(&s.data_dir).await;
    assert_eq!(stored_key, None);

    // A malformed key refuses the start and says what is wrong.
    let (code, stderr) =
        crate::startup::serve_refused(&s.data_dir, &[("UPDRAFT_WEBHOOK_SECRET_KEY", "abc")]);
    assert_ne!(code, 0);
    assert!(
        stderr.contains("UPDRAFT_WEBHOOK_SECRET_KEY") && stderr.contains("32 bytes"),
        "{stderr}"
    );

    // Another key: the secret does not open, the attempt fails, nothing is sent.
    let other = "22".repeat(32);
    let env = [
        ("UPDRAFT_WEBHOOK_SECRET_KEY", other.as_str()),
        ("UPDRAFT_WEBHOOK_MAX_ATTEMPTS", "1"),
    ];
    let mut next = Server::spawn(&s.data_dir, &env);
    next.key = s.key.clone();
    let (status, shown) = next
        .api(Method::GET, &format!("/api/v1/webhooks/{id}"), None)
        .await;
    assert_eq!(
        (status, shown["secret"].as_str()),
        (200, Some("whsec_…????"))
    );
    next.cli_ok(&["webhook", "test", &id.to_string()]);
    let log = wait_finished(&next, id, 1).await;
    assert_eq!(log[0]["status"], "failed", "{}", log[0]);
    assert!(
        log[0]["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("cannot be decrypted")),
        "{}",
        log[0]
    );
    assert!(receiver.received().is_empty());
    next.sigkill();
}
