//! Hostile connections: idle, slow and stalled sockets under a small file
//! limit, bodies declared too large, and the HTTP layer's own refusals, all
//! answered with the JSON error body. Nothing here is timed: every wait is a
//! generous deadline for something that must happen.

use crate::harness::{assert_plugin_success, device_body, Server, APP};
use crate::storage::{create_app, noise, publish, put_blob, sha};
use reqwest::Method;
use serde_json::{json, Value};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::{sleep, timeout, Instant};

/// Short timeouts so that the test sees them act.
const SHORT: [(&str, &str); 4] = [
    ("UPDRAFT_HEADER_READ_TIMEOUT_SECS", "2"),
    ("UPDRAFT_IDLE_TIMEOUT_SECS", "2"),
    ("UPDRAFT_MIN_TRANSFER_RATE", "16384"),
    ("UPDRAFT_TRANSFER_WINDOW_SECS", "2"),
];

const DOWNLOAD_SIZE: usize = 512 * 1024;

fn addr(s: &Server) -> String {
    s.url.trim_start_matches("http://").to_string()
}

/// A published bundle whose one file is `DOWNLOAD_SIZE` bytes; its URL.
async fn downloadable(s: &Server) -> String {
    create_app(s).await;
    let file = noise(DOWNLOAD_SIZE, 11);
    let blob = put_blob(s, &file).await;
    let index = b"<!doctype html><script src=app.js></script>".to_vec();
    let index_blob = put_blob(s, &index).await;
    let manifest = json!([
        {"file_name": "index.html", "file_hash": index_blob, "blob_sha256": index_blob},
        {"file_name": "app.js", "file_hash": sha(&file), "blob_sha256": blob},
    ]);
    let (st, b) = publish(s, json!({"version": "1.0.1", "manifest": manifest})).await;
    assert_eq!(st, 201, "{b}");
    let (st, b) = s
        .api(
            Method::POST,
            &format!("/api/v1/apps/{APP}/channels"),
            Some(&json!({"name": "production", "public": true, "bundle": "1.0.1"})),
        )
        .await;
    assert_eq!(st, 201, "{b}");
    format!("/dl/{APP}/1.0.1/{blob}")
}

/// A connection whose receive buffer is small, so that a client that stops
/// reading stalls the server's writes quickly.
async fn small_window_connect(addr: &str) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.set_recv_buffer_size(4096)?;
    socket.connect(addr.parse().expect("address")).await
}

/// Waits until the server closes `stream` (EOF or reset), reading and
/// dropping anything it sent; false when it stayed open past `deadline`.
async fn closed_by_server(stream: &mut TcpStream, deadline: Duration) -> bool {
    let mut buf = [0u8; 4096];
    let until = Instant::now() + deadline;
    loop {
        match timeout(
            until.saturating_duration_since(Instant::now()),
            stream.read(&mut buf),
        )
        .await
        {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
        }
    }
}

/// One update check on a fresh connection; the status and body, or `None`.
async fn update_check(url: &str) -> Option<(u16, Value)> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .ok()?;
    let resp = client
        .post(format!("{url}/updates"))
        .json(&device_body())
        .send()
        .await
        .ok()?;
    let status = resp.status().as_u16();
    Some((status, resp.json().await.ok()?))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_idle_and_slow_sockets_under_a_1024_file_limit_do_not_stop_other_clients() {
    // The test's own 2,000 sockets need more than the usual 1,024.
    rlimit::increase_nofile_limit(8192).expect("raise the test's file limit");
    // Soft and hard 1,024: the server cannot raise its way out of it.
    let s = Server::start_wrapped(&["prlimit", "--nofile=1024:1024", "--"], &SHORT).await;
    let path = downloadable(&s).await;
    let addr = addr(&s);
    let metrics = s.metrics_text().await;
    assert!(
        metrics.contains("updraft_http_connection_limit 448"),
        "the cap is derived from the 1,024 limit: {}",
        metrics
            .lines()
            .filter(|l| l.contains("connection"))
            .collect::<Vec<_>>()
            .join("\n")
    );

    let mut hostile = tokio::task::JoinSet::new();
    // 1,200 that send nothing.
    for _ in 0..1200 {
        let addr = addr.clone();
        hostile.spawn(async move {
            let Ok(Ok(mut stream)) =
                timeout(Duration::from_secs(30), TcpStream::connect(&addr)).await
            else {
                return ("silent", None);
            };
            (
                "silent",
                Some(closed_by_server(&mut stream, Duration::from_secs(180)).await),
            )
        });
    }
    // 700 that send a header byte a second.
    for _ in 0..700 {
        let addr = addr.clone();
        hostile.spawn(async move {
            let Ok(Ok(mut stream)) =
                timeout(Duration::from_secs(30), TcpStream::connect(&addr)).await
            else {
                return ("dribble", None);
            };
            let head = b"POST /updates HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n";
            let until = Instant::now() + Duration::from_secs(180);
            let mut buf = [0u8; 1024];
            for byte in head.iter().cycle() {
                if Instant::now() > until {
                    return ("dribble", Some(false));
                }
                if stream.write_all(&[*byte]).await.is_err() {
                    return ("dribble", Some(true));
                }
                match timeout(Duration::from_secs(1), stream.read(&mut buf)).await {
                    Ok(Ok(0)) | Ok(Err(_)) => return ("dribble", Some(true)),
                    Ok(Ok(_)) | Err(_) => {}
                }
            }
            ("dribble", Some(false))
        });
    }
    // 100 that read a download slowly, then stop reading.
    for _ in 0..100 {
        let addr = addr.clone();
        let path = path.clone();
        hostile.spawn(async move {
            let Ok(Ok(mut stream)) =
                timeout(Duration::from_secs(30), small_window_connect(&addr)).await
            else {
                return ("stalled", None);
            };
            let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n");
            if stream.write_all(request.as_bytes()).await.is_err() {
                return ("stalled", Some(true));
            }
            let mut buf = [0u8; 1024];
            let mut got = 0usize;
            while got < 16 * 1024 {
                match timeout(Duration::from_secs(120), stream.read(&mut buf)).await {
                    Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
                    Ok(Ok(n)) => got += n,
                }
                sleep(Duration::from_millis(20)).await;
            }
            // Stop reading for several transfer windows.
            sleep(Duration::from_secs(10)).await;
            let mut total = got;
            let closed = loop {
                match timeout(Duration::from_secs(60), stream.read(&mut buf)).await {
                    Err(_) => break false,
                    Ok(Ok(0)) | Ok(Err(_)) => break true,
                    Ok(Ok(n)) => total += n,
                }
            };
            // Closed before the whole file (plus its head) was sent.
            ("stalled", Some(closed && total < DOWNLOAD_SIZE))
        });
    }

    // Meanwhile, a device still gets its answer.
    let until = Instant::now() + Duration::from_secs(150);
    let answer = loop {
        if let Some(answer) = update_check(&s.url).await {
            break answer;
        }
        assert!(
            Instant::now() < until,
            "no update check answered while under attack"
        );
        sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(answer.0, 200, "{}", answer.1);
    assert_plugin_success(&answer.1);

    let mut opened = 0;
    let mut stayed_open = Vec::new();
    while let Some(result) = hostile.join_next().await {
        let (kind, closed) = result.expect("hostile client task");
        match closed {
            None => {}
            Some(true) => opened += 1,
            Some(false) => {
                opened += 1;
                stayed_open.push(kind);
            }
        }
    }
    assert!(
        opened > 1024,
        "only {opened} hostile sockets connected: the test must hold more than the file limit"
    );
    assert!(
        stayed_open.is_empty(),
        "{} hostile sockets were never closed: {stayed_open:?}",
        stayed_open.len()
    );

    // Afterwards: every check answered, the server still up.
    for _ in 0..20 {
        let (st, body) = update_check(&s.url)
            .await
            .expect("an answer after the attack");
        assert_eq!(st, 200, "{body}");
    }
}

#[tokio::test]
async fn a_slow_but_progressing_download_finishes() {
    let s = Server::start_with(&SHORT).await;
    let path = downloadable(&s).await;
    let mut stream = small_window_connect(&addr(&s)).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    // About 80 KB/s against a minimum of 16 KB/s: many windows, never a stop.
    let mut received = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match timeout(Duration::from_secs(60), stream.read(&mut buf)).await {
            Ok(Ok(0)) => break,
            Ok(Ok(n)) => received.extend_from_slice(&buf[..n]),
            Ok(Err(err)) => panic!(
                "the download broke off after {} bytes: {err}",
                received.len()
            ),
            Err(_) => panic!("the download stalled"),
        }
        sleep(Duration::from_millis(100)).await;
    }
    let head_end = received
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response head")
        + 4;
    assert!(received.starts_with(b"HTTP/1.1 200"));
    assert_eq!(received.len() - head_end, DOWNLOAD_SIZE);
}

/// Sends `head` (no body) and reads the answer.
async fn raw(s: &Server, head: &str) -> (u16, Option<Value>, String) {
    let mut stream = TcpStream::connect(addr(s)).await.unwrap();
    // A refusal may close the connection before all of a huge head is written.
    let _ = stream.write_all(head.as_bytes()).await;
    let mut received = Vec::new();
    let mut buf = [0u8; 8192];
    // The answer comes without the body ever being sent: a read error after
    // it (the server closing on an unread body) is fine.
    while let Ok(Ok(n)) = timeout(Duration::from_secs(30), stream.read(&mut buf)).await {
        if n == 0 {
            break;
        }
        received.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&received);
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse::<usize>().unwrap())
                })
                .unwrap_or(0);
            if received.len() >= end + 4 + length {
                break;
            }
        }
    }
    let text = String::from_utf8_lossy(&received).to_string();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no answer: {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string());
    let json = body.as_deref().and_then(|b| serde_json::from_str(b).ok());
    (status, json, text)
}

#[tokio::test]
async fn a_declared_length_over_the_route_limit_is_refused_before_the_body_is_sent() {
    let s = Server::start_with(&SHORT).await;
    create_app(&s).await;
    // Device route: 1 MiB, the device envelope.
    let (status, body, text) = raw(
        &s,
        "POST /updates HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 10000000\r\n\r\n",
    )
    .await;
    assert_eq!(status, 413, "{text}");
    let body = body.expect("a JSON body");
    assert_eq!(
        (body["error"].as_str(), body["kind"].as_str()),
        (Some("body_too_large"), Some("failed"))
    );
    let (status, body, text) = raw(
        &s,
        "POST /stats HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000\r\n\r\n",
    )
    .await;
    assert_eq!(
        (status, body.map(|b| b["error"].clone())),
        (413, Some(json!("body_too_large"))),
        "{text}"
    );
    // Management API: 16 MiB, with the limit in the body.
    let sha = "0".repeat(64);
    let (status, body, text) = raw(
        &s,
        &format!(
            "PUT /api/v1/blobs/{sha} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Length: 100000000\r\n\r\n",
            s.key
        ),
    )
    .await;
    assert_eq!(status, 413, "{text}");
    let body = body.expect("a JSON body");
    assert_eq!(body["error"], "body_too_large");
    assert_eq!(body["limit"], 16 * 1024 * 1024);
    // Upload chunks: limited by the upload size (2 GiB), not the API body limit.
    let (status, body, text) = raw(
        &s,
        &format!(
            "PATCH /api/v1/uploads/{} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nUpload-Offset: 0\r\nContent-Length: 3000000000\r\n\r\n",
            "a".repeat(32),
            s.key
        ),
    )
    .await;
    assert_eq!(status, 413, "{text}");
    assert_eq!(
        body.expect("a JSON body")["limit"],
        2u64 * 1024 * 1024 * 1024
    );
}

#[tokio::test]
async fn the_http_layer_refusals_carry_the_json_error_body() {
    let s = Server::start_with(&SHORT).await;
    create_app(&s).await;
    let long = "a".repeat(9000);
    let (status, body, text) = raw(
        &s,
        &format!("GET /updates?{long} HTTP/1.1\r\nHost: x\r\n\r\n"),
    )
    .await;
    assert_eq!(status, 414, "{text}");
    assert_eq!(body.expect("JSON")["error"], "uri_too_long");
    let big = "b".repeat(17_000);
    let (status, body, text) = raw(
        &s,
        &format!("GET /updates HTTP/1.1\r\nHost: x\r\nX-Filler: {big}\r\n\r\n"),
    )
    .await;
    assert_eq!(status, 431, "{text}");
    assert_eq!(body.expect("JSON")["error"], "headers_too_large");
    // Path parameters that decode to no UTF-8.
    let (status, body, text) = raw(
        &s,
        &format!(
            "GET /api/v1/apps/%ff HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\r\n",
            s.key
        ),
    )
    .await;
    assert_eq!(status, 400, "{text}");
    assert_eq!(body.expect("JSON")["error"], "invalid_path");
    let (status, body, text) = raw(&s, "GET /dl/%ff/1.0.0/x.zip HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(status, 400, "{text}");
    assert_eq!(body.expect("JSON")["error"], "invalid_path");
    // A body that stops coming: 408 with the JSON body, not a hung request.
    let (status, body, text) = raw(
        &s,
        &format!(
            "POST /api/v1/apps HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"app_id\"",
            s.key
        ),
    )
    .await;
    assert_eq!(status, 408, "{text}");
    assert_eq!(body.expect("JSON")["error"], "body_timeout");
    let (status, body, text) = raw(
        &s,
        "POST /updates HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{",
    )
    .await;
    assert_eq!(status, 408, "{text}");
    assert_eq!(body.expect("JSON")["error"], "body_timeout");
    // Beyond hyper's own buffer, hyper answers before any handler: 431, no body.
    let huge = "c".repeat(200_000);
    let (status, body, text) = raw(
        &s,
        &format!("GET /updates HTTP/1.1\r\nHost: x\r\nX-Filler: {huge}\r\n\r\n"),
    )
    .await;
    assert_eq!(status, 431, "{text}");
    assert!(body.is_none(), "{text}");
}
