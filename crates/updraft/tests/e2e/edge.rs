//! The server's edge without TLS: which forwarding headers are believed
//! (download links, client addresses in logs and limits), the request log,
//! and `/metrics` on its own listener.

use crate::harness::{device_body, Server, APP, DEVICE};
use crate::tls::stored_bundle;
use reqwest::Method;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// `GET /api/v1/apps` with a wrong key, sent as from `forwarded_for`.
async fn bad_auth(s: &Server, forwarded_for: &str) -> u16 {
    s.http
        .get(format!("{}/api/v1/apps", s.url))
        .bearer_auth("upd_notakeyatall")
        .header("x-forwarded-for", forwarded_for)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn update_url(s: &Server, headers: &[(&str, &str)]) -> String {
    let mut req = s
        .http
        .post(format!("{}/updates", s.url))
        .json(&device_body());
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let (st, answer) = Server::read(req.send().await.unwrap()).await;
    assert_eq!(st, 200, "{answer}");
    answer["url"].as_str().expect("a download URL").to_string()
}

const SPOOFED: [(&str, &str); 4] = [
    ("x-forwarded-proto", "https"),
    ("x-forwarded-host", "evil.example"),
    ("x-forwarded-for", "198.51.100.1"),
    (
        "forwarded",
        "for=198.51.100.1;proto=https;host=evil.example",
    ),
];

/// The JSON access-log lines the server wrote so far.
fn access_lines(s: &Server) -> Vec<Value> {
    s.output
        .stderr_lines()
        .iter()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line["target"] == "updraft::access")
        .collect()
}

/// Waits for the access-log line of `request_id` (written once the body is sent).
async fn access_line(s: &Server, request_id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(line) = access_lines(s)
            .into_iter()
            .find(|line| line["request_id"] == request_id)
        {
            return line;
        }
        assert!(
            Instant::now() < deadline,
            "no access line for {request_id}: {:?}",
            s.output.stderr_lines()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn forwarded_headers_from_an_untrusted_peer_are_ignored() {
    let s = Server::start_capturing(&[
        ("UPDRAFT_TRUSTED_PROXIES", "10.0.0.0/8"),
        ("UPDRAFT_LOG_FORMAT", "json"),
        ("UPDRAFT_AUTH_FAILURE_LIMIT_BURST", "2"),
        ("UPDRAFT_AUTH_FAILURE_LIMIT_PER_MINUTE", "1"),
    ])
    .await;
    let (digest, _) = stored_bundle(&s).await;
    let url = update_url(&s, &SPOOFED).await;
    assert_eq!(url, format!("{}/dl/{APP}/1.0.1/{digest}.zip", s.url));
    // The failed-authentication throttle counts the peer, whatever it claims.
    assert_eq!(bad_auth(&s, "198.51.100.1").await, 401);
    assert_eq!(bad_auth(&s, "198.51.100.2").await, 401);
    assert_eq!(bad_auth(&s, "198.51.100.3").await, 429);
    let resp = s
        .http
        .get(format!("{}/healthz", s.url))
        .header("x-forwarded-for", "198.51.100.1")
        .header("x-request-id", "untrusted-1")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-request-id"], "untrusted-1");
    let line = access_line(&s, "untrusted-1").await;
    assert_eq!(line["client"], "127.0.0.1", "{line}");
}

#[tokio::test]
async fn forwarded_headers_from_a_trusted_proxy_name_the_client() {
    // The default trusts loopback, where these requests come from.
    let s = Server::start_capturing(&[
        ("UPDRAFT_LOG_FORMAT", "json"),
        ("UPDRAFT_AUTH_FAILURE_LIMIT_BURST", "2"),
        ("UPDRAFT_AUTH_FAILURE_LIMIT_PER_MINUTE", "1"),
    ])
    .await;
    let (digest, _) = stored_bundle(&s).await;
    let path = format!("/dl/{APP}/1.0.1/{digest}.zip");
    let url = update_url(
        &s,
        &[
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "updates.example.com"),
            ("x-forwarded-for", "198.51.100.1"),
        ],
    )
    .await;
    assert_eq!(url, format!("https://updates.example.com{path}"));
    let url = update_url(
        &s,
        &[(
            "forwarded",
            "for=198.51.100.1;proto=https;host=\"fw.example:8443\"",
        )],
    )
    .await;
    assert_eq!(url, format!("https://fw.example:8443{path}"));
    // A host that would bend the link is not believed.
    let url = update_url(&s, &[("x-forwarded-host", "evil.example/x?")]).await;
    assert_eq!(url, format!("{}{path}", s.url));
    // Limits count the client the proxy names.
    assert_eq!(bad_auth(&s, "198.51.100.1").await, 401);
    assert_eq!(bad_auth(&s, "198.51.100.1").await, 401);
    assert_eq!(bad_auth(&s, "198.51.100.1").await, 429);
    assert_eq!(bad_auth(&s, "203.0.113.7, 198.51.100.2").await, 401);
    let resp = s
        .http
        .get(format!("{}/healthz", s.url))
        .header("x-forwarded-for", "198.51.100.9")
        .header("x-request-id", "trusted-1")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let line = access_line(&s, "trusted-1").await;
    assert_eq!(line["client"], "198.51.100.9", "{line}");
}

#[tokio::test]
async fn every_request_is_logged_once_without_secrets() {
    let s = Server::start_capturing(&[("UPDRAFT_LOG_FORMAT", "json")]).await;
    let (digest, zip) = stored_bundle(&s).await;
    let resp = s
        .http
        .post(format!("{}/updates", s.url))
        .header("x-request-id", "check-1")
        .header("cookie", "session=cookie-secret-value")
        .json(&device_body())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-request-id"], "check-1");
    let (st, _) = Server::read(resp).await;
    assert_eq!(st, 200);
    let resp = s
        .http
        .get(format!("{}/api/v1/apps/{APP}", s.url))
        .bearer_auth(&s.key)
        .header("x-request-id", "api-1")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let resp = s
        .http
        .get(format!("{}/dl/{APP}/1.0.1/{digest}.zip", s.url))
        .header("x-request-id", "dl-1")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.bytes().await.unwrap().len(), zip.len());
    // An id that is not sane is replaced by a generated one.
    let resp = s
        .http
        .get(format!("{}/healthz", s.url))
        .header("x-request-id", "has spaces; and=more")
        .send()
        .await
        .unwrap();
    let generated = resp.headers()["x-request-id"].to_str().unwrap().to_string();
    assert_eq!(generated.len(), 32, "{generated}");
    assert!(generated.bytes().all(|b| b.is_ascii_hexdigit()));

    let check = access_line(&s, "check-1").await;
    assert_eq!(check["level"], "INFO", "{check}");
    assert_eq!(
        (&check["method"], &check["route"], &check["status"]),
        (&json!("POST"), &json!("/updates"), &json!(200)),
        "{check}"
    );
    assert!(check["bytes"].as_u64().is_some_and(|b| b > 0), "{check}");
    assert!(check["duration_ms"].as_f64().is_some(), "{check}");
    let api = access_line(&s, "api-1").await;
    assert_eq!(api["route"], "/api/v1/apps/{app_id}", "{api}");
    assert_eq!(api["status"], 200, "{api}");
    let dl = access_line(&s, "dl-1").await;
    assert_eq!(dl["bytes"], zip.len() as u64, "{dl}");
    assert_eq!(dl["complete"], true, "{dl}");
    access_line(&s, &generated).await;
    // One line per request.
    let lines = access_lines(&s);
    assert_eq!(
        lines
            .iter()
            .filter(|l| l["request_id"] == "check-1")
            .count(),
        1
    );
    let all = s.output.stderr_lines().join("\n");
    for secret in [s.key.as_str(), "cookie-secret-value", DEVICE] {
        assert!(!all.contains(secret), "{secret} reached the log:\n{all}");
    }
}

#[tokio::test]
async fn text_logs_have_no_colours_off_a_terminal() {
    let s = Server::start_capturing(&[]).await;
    let (st, _) = s.request(Method::GET, "/healthz", None).await;
    assert_eq!(st, 200);
    let deadline = Instant::now() + Duration::from_secs(10);
    let line = loop {
        let lines = s.output.stderr_lines();
        if let Some(line) = lines
            .iter()
            .find(|l| l.contains("updraft::access") && l.contains("route=/healthz"))
        {
            break line.clone();
        }
        assert!(Instant::now() < deadline, "no access line: {lines:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        line.contains("status=200") && line.contains("request_id="),
        "{line}"
    );
    let all = s.output.stderr_lines().join("\n");
    assert!(
        !all.contains('\u{1b}'),
        "ANSI escapes in piped logs:\n{all}"
    );
}

#[tokio::test]
async fn metrics_are_served_only_on_the_metrics_listener() {
    let s = Server::start_with(&[
        ("UPDRAFT_METRICS_LISTEN", "127.0.0.1:0"),
        ("UPDRAFT_METRICS_PER_APP", "true"),
    ])
    .await;
    let metrics_url = s
        .output
        .stdout_lines()
        .iter()
        .find_map(|line| line.strip_prefix("updraft metrics on ").map(str::to_string))
        .expect("the metrics listener's address on stdout");
    s.seed("1.0.1").await;
    let (st, _) = s.post("/updates", &device_body()).await;
    assert_eq!(st, 200);
    let resp = s
        .http
        .get(format!("{}/metrics", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 404);
    let resp = s.http.get(&metrics_url).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let text = resp.text().await.unwrap();
    assert!(text.contains("updraft_http_requests_total"), "{text}");
    assert!(
        text.contains(&format!(
            "updraft_app_update_checks_total{{app=\"{APP}\",kind=\"none\"}} 1"
        )),
        "{text}"
    );
    // Nothing else is served there.
    let other = metrics_url.replace("/metrics", "/api/v1/apps");
    assert_eq!(
        s.http.get(other).send().await.unwrap().status().as_u16(),
        404
    );
}
