//! systemd `Type=notify`: with `NOTIFY_SOCKET` set, the real binary sends
//! `READY=1` only once its own `/readyz` has answered, and `STOPPING=1` when
//! a signal starts the shutdown; `updraft healthcheck` (the container's
//! HEALTHCHECK) exits 0/1 on `/readyz`.

use crate::harness::{bin, Server};
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// The service manager's end: a datagram socket like systemd's notify socket.
struct NotifySocket {
    socket: UnixDatagram,
    _dir: tempfile::TempDir,
    path: String,
}

impl NotifySocket {
    fn bind() -> NotifySocket {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let socket = UnixDatagram::bind(&path).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        NotifySocket {
            socket,
            path: path.to_str().unwrap().to_string(),
            _dir: dir,
        }
    }

    /// Messages until one holds `wanted` (each message: newline-separated
    /// `KEY=VALUE` lines, as sd_notify(3) sends them).
    fn wait_for(&self, wanted: &str, within: Duration) -> Vec<String> {
        let deadline = Instant::now() + within;
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        while Instant::now() < deadline {
            if let Ok(n) = self.socket.recv(&mut buf) {
                let message = String::from_utf8_lossy(&buf[..n]).into_owned();
                let done = message.lines().any(|line| line == wanted);
                seen.push(message);
                if done {
                    return seen;
                }
            }
        }
        panic!("no {wanted} within {within:?}; received {seen:?}");
    }

    /// Everything that arrives within `window`.
    fn drain(&self, window: Duration) -> Vec<String> {
        let deadline = Instant::now() + window;
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        while Instant::now() < deadline {
            if let Ok(n) = self.socket.recv(&mut buf) {
                seen.push(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
        }
        seen
    }
}

/// `GET /readyz` requests the server has answered, by status.
async fn readyz_answers(s: &Server, status: u16) -> u64 {
    let prefix = format!(
        r#"updraft_http_requests_total{{route="/readyz",method="GET",status="{status}"}} "#
    );
    s.metrics_text()
        .await
        .lines()
        .find_map(|line| line.strip_prefix(&prefix)?.trim().parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

fn status_line(messages: &[String]) -> String {
    messages
        .iter()
        .flat_map(|m| m.lines())
        .filter_map(|line| line.strip_prefix("STATUS="))
        .next_back()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn ready_is_sent_after_readyz_answers_and_stopping_at_sigterm() {
    let notify = NotifySocket::bind();
    let mut s = Server::start_with(&[("NOTIFY_SOCKET", notify.path.as_str())]).await;
    let messages = notify.wait_for("READY=1", Duration::from_secs(30));
    // Before this test sends any request of its own, the server has already
    // answered a /readyz (its own probe): READY=1 followed that answer.
    assert_eq!(readyz_answers(&s, 200).await, 1, "{messages:?}");
    let status = status_line(&messages);
    assert!(status.contains("/readyz: ready"), "{status}");
    assert!(status.contains(&s.url["http://".len()..]), "{status}");
    // Nothing else is sent while the server runs.
    assert_eq!(
        notify.drain(Duration::from_millis(300)),
        Vec::<String>::new()
    );

    let exit = s.sigterm();
    assert!(exit.success(), "{exit:?}");
    let messages = notify.drain(Duration::from_millis(500));
    assert!(
        messages
            .iter()
            .any(|m| m.lines().any(|line| line == "STOPPING=1")),
        "{messages:?}"
    );
}

#[tokio::test]
async fn ready_carries_what_readyz_said_when_the_disk_is_low() {
    // Below min_free_disk_mb the server is up (update checks answer) but
    // /readyz says 503 low_disk_space: READY=1 is sent, STATUS= says why.
    let notify = NotifySocket::bind();
    let s = Server::start_with(&[
        ("NOTIFY_SOCKET", notify.path.as_str()),
        ("UPDRAFT_MIN_FREE_DISK_MB", "1000000000"),
    ])
    .await;
    let messages = notify.wait_for("READY=1", Duration::from_secs(30));
    let status = status_line(&messages);
    assert!(status.contains("low_disk_space"), "{status}");
    assert_eq!(readyz_answers(&s, 503).await, 1, "{messages:?}");
}

#[tokio::test]
async fn without_notify_socket_there_is_no_self_probe() {
    let s = Server::start_with(&[("NOTIFY_SOCKET", "")]).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(readyz_answers(&s, 200).await, 0);
}

fn healthcheck(args: &[&str], cwd: &Path, env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = Command::new(bin());
    cmd.arg("healthcheck")
        .args(args)
        .current_dir(cwd)
        .env_remove("UPDRAFT_LISTEN");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn healthcheck_exits_0_when_ready_and_1_otherwise() {
    let cwd = tempfile::tempdir().unwrap();
    let s = Server::start().await;
    let addr = &s.url["http://".len()..];
    // The listen address as the container sets it (every interface), probed on loopback.
    let port = addr.rsplit(':').next().unwrap();
    let wildcard = format!("0.0.0.0:{port}");
    let (code, out, err) = healthcheck(&[], cwd.path(), &[("UPDRAFT_LISTEN", &wildcard)]);
    assert_eq!(code, 0, "{out} {err}");
    assert!(out.contains(r#""status":"ok""#), "{out}");
    // The same from updraft.toml's `listen`.
    std::fs::write(
        cwd.path().join("updraft.toml"),
        format!("listen = \"{addr}\"\n"),
    )
    .unwrap();
    let (code, out, err) = healthcheck(&[], cwd.path(), &[]);
    assert_eq!(code, 0, "{out} {err}");

    // A server that says 503: exit 1 with the reason.
    let low = Server::start_with(&[("UPDRAFT_MIN_FREE_DISK_MB", "1000000000")]).await;
    let url = format!("{}/readyz", low.url);
    let (code, _, err) = healthcheck(&["--url", &url], cwd.path(), &[]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("low_disk_space"), "{err}");

    // Nothing listening: exit 1.
    drop(s);
    let (code, _, err) = healthcheck(&["--timeout-secs", "2"], cwd.path(), &[]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("cannot reach"), "{err}");
}
