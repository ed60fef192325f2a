//! The CLI's contract with scripts and people (issue 18, points 4, 5 and 7):
//! exit codes CI can branch on, tables that fit an 80-column terminal (a real
//! pseudo-terminal, through util-linux `script`), colour only there, a closed
//! pipe that is not an error, resumed uploads that say so, CSV times,
//! completions, man pages and `--version`.

use crate::harness::*;
use crate::storage::{noise, sha};
use reqwest::Method;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use unicode_width::UnicodeWidthStr;

const LONG_CHANNEL: &str = "production-europe-west-1-canary-渠道-für-Zoë-long-name";
const LONG_URL: &str = "https://cdn.example.com/releases/com.example.app/production/2026/12/07/\
bundle-1.0.1-beta.12-build.20261207-with-a-very-long-file-name.zip";
const LONG_VERSION: &str = "1.0.1-beta.12+build.20261207.abcdef";
const CUSTOM_ID: &str = "Zoë-用户-42-long-custom-identifier";

fn quote(arg: &str) -> String {
    format!("'{}'", arg.replace('\'', r"'\''"))
}

/// Runs the CLI on a pseudo-terminal of `cols` columns, as a person at such a
/// terminal would (stdout and stderr both on it). Returns the exit code and
/// what the terminal showed, without carriage returns.
fn on_terminal(s: &Server, cols: u16, args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let mut line = format!("stty cols {cols} rows 60; exec {}", quote(bin()));
    for arg in args {
        line.push(' ');
        line.push_str(&quote(arg));
    }
    let mut command = Command::new("script");
    command
        .args(["-q", "-e", "-c", &line, "/dev/null"])
        .env("UPDRAFT_SERVER", &s.url)
        .env("UPDRAFT_APIKEY", &s.key)
        .env("UPDRAFT_DATA_DIR", &s.data_dir)
        .env_remove("NO_COLOR")
        .env_remove("COLUMNS")
        .stdin(Stdio::null());
    for (key, value) in env {
        command.env(key, value);
    }
    let out = command.output().expect("run script(1) (util-linux)");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).replace('\r', ""),
    )
}

/// The CLI's stdout through a pipe, with `COLUMNS` exported.
fn piped_with_columns(s: &Server, cols: u16, args: &[&str]) -> String {
    let out = Command::new(bin())
        .args(args)
        .env("UPDRAFT_SERVER", &s.url)
        .env("UPDRAFT_APIKEY", &s.key)
        .env("UPDRAFT_DATA_DIR", &s.data_dir)
        .env("COLUMNS", cols.to_string())
        .stdin(Stdio::null())
        .output()
        .expect("run updraft");
    assert!(out.status.success(), "{args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `text` without ANSI escape sequences (`ESC [ … final`).
fn strip_ansi(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            chars.next();
            for c in chars.by_ref() {
                if ('@'..='~').contains(&c) {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn widest(text: &str) -> usize {
    strip_ansi(text)
        .lines()
        .map(UnicodeWidthStr::width)
        .max()
        .unwrap_or(0)
}

/// An app with long channel names, long versions and URLs, devices with long
/// unicode custom ids, and a webhook whose delivery failed.
async fn realistic(s: &Server) {
    s.cli_ok(&["app", "add", APP, "--name", "Example App — Production (EU)"]);
    for (version, url) in [
        (LONG_VERSION, LONG_URL.to_string()),
        ("2.0.0", format!("{LONG_URL}?second=1")),
    ] {
        s.cli_ok(&[
            "bundle",
            "upload",
            APP,
            "--bundle",
            version,
            "--external",
            &url,
            "--checksum",
            CHECKSUM,
            "--channel",
            LONG_CHANNEL,
            "--create-channel",
        ]);
    }
    for name in ["beta", "staging-for-the-qa-team-in-berlin-and-paris-офис"] {
        s.cli_ok(&["channel", "add", name, APP]);
    }
    s.cli_ok(&["channel", "set", LONG_CHANNEL, APP, "--state", "default"]);
    for n in 0..3 {
        let device = format!("6e2c0c9a-3f5b-4c8e-9a43-1f0f4b2d7c1{n}");
        let body = with(
            device_body(),
            json!({"device_id": device, "custom_id": format!("{CUSTOM_ID}-{n}")}),
        );
        let (status, answer) = s.post("/updates", &body).await;
        assert_eq!(status, 200, "{answer}");
    }
    wait_for(|| {
        let out = s.cli_ok(&["device", "list", APP, "--json"]);
        serde_json::from_str::<Value>(&out).unwrap()["devices"]
            .as_array()
            .is_some_and(|d| d.len() == 3)
    });
    let hook = format!(
        "http://127.0.0.1:9/hooks/updraft/{}",
        "a-long-path/".repeat(5)
    );
    let created: Value =
        serde_json::from_str(&s.cli_ok(&["webhook", "add", &hook, "--app", APP, "--json"]))
            .unwrap();
    let id = created["id"].as_i64().unwrap().to_string();
    s.cli_ok(&["webhook", "test", &id]);
    wait_for(|| {
        let out = s.cli_ok(&["webhook", "deliveries", &id, "--json"]);
        serde_json::from_str::<Value>(&out).unwrap()["deliveries"]
            .as_array()
            .is_some_and(|d| d.iter().any(|d| d["status"] == "failed"))
    });
}

fn wait_for(mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn webhook_id(s: &Server) -> String {
    let list: Value = serde_json::from_str(&s.cli_ok(&["webhook", "list", "--json"])).unwrap();
    list["webhooks"][0]["id"].as_i64().unwrap().to_string()
}

#[tokio::test]
async fn tables_fit_an_80_column_terminal_and_wide_or_piped_show_everything() {
    // One delivery attempt: the failed delivery then stays as it is, so the
    // same table printed twice (terminal, pipe, --wide) has the same cells.
    let s = Server::start_with(&[("UPDRAFT_WEBHOOK_MAX_ATTEMPTS", "1")]).await;
    realistic(&s).await;
    let id = webhook_id(&s);
    let commands: [(&[&str], &str); 4] = [
        (&["channel", "list", APP], "NAME"),
        (&["bundle", "list", APP], "VERSION"),
        (&["device", "list", APP], "DEVICE ID"),
        (&["webhook", "deliveries", &id], "ID"),
    ];
    for (args, header) in commands {
        let piped = s.cli_ok(args);
        assert!(widest(&piped) > 80, "the data is wide enough: {piped}");
        let (code, shown) = on_terminal(&s, 80, args, &[]);
        assert_eq!(code, 0, "{args:?}: {shown}");
        let plain = strip_ansi(&shown);
        assert!(plain.starts_with(header), "{args:?}:\n{plain}");
        for line in plain.lines() {
            assert!(
                line.width() <= 80,
                "{args:?}: a line of {} columns on an 80-column terminal:\n{line}\n{plain}",
                line.width()
            );
        }
        assert!(
            plain.lines().count() >= piped.lines().count(),
            "no row is lost:\n{plain}"
        );
        // Piped with an exported COLUMNS=80: the same fitted table, no colour.
        let fitted = piped_with_columns(&s, 80, args);
        assert_eq!(
            fitted.trim_end(),
            plain.trim_end(),
            "{args:?} with COLUMNS=80"
        );
        // --wide on the same terminal: every column, full values.
        let (code, wide) = on_terminal(&s, 80, &[args, &["--wide"]].concat(), &[]);
        assert_eq!(code, 0);
        assert_eq!(strip_ansi(&wide).trim_end(), piped.trim_end(), "{args:?}");
    }
    // What was shortened keeps both ends; piped output (scripts) has it whole.
    let (_, bundles) = on_terminal(&s, 80, &["bundle", "list", APP], &[]);
    assert!(
        bundles.contains('…') && bundles.contains("name.zip"),
        "{bundles}"
    );
    assert!(s.cli_ok(&["bundle", "list", APP]).contains(LONG_URL));
    let (_, channels) = on_terminal(&s, 80, &["channel", "list", APP], &[]);
    assert!(
        !channels.contains("SERVES"),
        "wide-only columns left out: {channels}"
    );
    assert!(s.cli_ok(&["channel", "list", APP]).contains(LONG_CHANNEL));
    let (_, devices) = on_terminal(&s, 80, &["device", "list", APP], &[]);
    assert!(devices.contains("3 of 3 devices"), "{devices}");
    // A wider terminal gets wider tables.
    let (_, wide_terminal) = on_terminal(&s, 300, &["bundle", "list", APP], &[]);
    assert!(
        strip_ansi(&wide_terminal).contains(LONG_URL),
        "{wide_terminal}"
    );
}

#[tokio::test]
async fn colour_only_on_a_terminal_and_never_with_no_color_or_json() {
    let s = Server::start().await;
    s.cli_ok(&["app", "add", APP]);
    let (_, coloured) = on_terminal(&s, 80, &["app", "list"], &[]);
    assert!(coloured.contains("\u{1b}[1mAPP ID"), "{coloured:?}");
    let (code, error) = on_terminal(&s, 80, &["app", "add", APP], &[]);
    assert_eq!(code, 1);
    assert!(error.contains("\u{1b}[1;31merror:\u{1b}[0m"), "{error:?}");
    for value in ["1", "0", "yes"] {
        let (_, plain) = on_terminal(&s, 80, &["app", "list"], &[("NO_COLOR", value)]);
        assert!(!plain.contains('\u{1b}'), "NO_COLOR={value}: {plain:?}");
        assert!(plain.contains("APP ID"));
        let (_, error) = on_terminal(&s, 80, &["app", "add", APP], &[("NO_COLOR", value)]);
        assert!(!error.contains('\u{1b}'), "{error:?}");
    }
    let (_, json) = on_terminal(&s, 80, &["app", "list", "--json"], &[]);
    assert!(!json.contains('\u{1b}'), "{json:?}");
    let (code, json_error) = on_terminal(&s, 80, &["app", "add", APP, "--json"], &[]);
    assert_eq!(code, 1);
    assert!(
        json_error.contains("error: ") && !json_error.contains('\u{1b}'),
        "{json_error:?}"
    );
    let (_, out, err) = s.cli(&["app", "add", APP]);
    assert!(
        !out.contains('\u{1b}') && !err.contains('\u{1b}'),
        "{err:?}"
    );
    assert!(!s.cli_ok(&["app", "list"]).contains('\u{1b}'));
}

/// A server that answers every request with `status` and `body`.
fn failing_server(status: &'static str, body: &'static str) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut request = Vec::new();
            let mut buf = [0u8; 4096];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    url
}

#[tokio::test]
async fn exit_codes_tell_ci_what_happened() {
    let s = Server::start().await;
    let empty = tempfile::tempdir().unwrap();
    let code = |args: &[&str]| {
        cli_in(
            &s.data_dir,
            Some(&s.url),
            Some(&s.key),
            args,
            Some(empty.path()),
        )
    };
    // 0: done.
    assert_eq!(code(&["app", "add", APP]).0, 0);
    assert_eq!(code(&["app", "list"]).0, 0);
    // 1: refused by the server (conflict, not found, validation).
    let (exit, _, err) = code(&["app", "add", APP]);
    assert_eq!(exit, 1, "{err}");
    assert!(err.contains("[app_already_exists]"), "{err}");
    assert_eq!(code(&["bundle", "delete", "9.9.9", APP]).0, 1);
    assert_eq!(code(&["channel", "add", " spaced ", APP]).0, 1);
    // 2: usage: clap's own errors and the CLI's argument checks.
    assert_eq!(code(&["app", "add"]).0, 2, "missing argument");
    assert_eq!(code(&["app", "list", "--no-such-flag"]).0, 2);
    let (exit, _, err) = code(&["bundle", "list"]);
    assert_eq!(exit, 2, "no app id and no capacitor.config.json: {err}");
    assert!(err.contains("[missing_app_id]"), "{err}");
    let (exit, _, err) = code(&["app", "delete", APP]);
    assert_eq!(exit, 2, "stdin is not a terminal and no --yes: {err}");
    assert!(err.contains("[confirmation_required]"), "{err}");
    // 3: not authenticated, or not allowed.
    let (exit, _, err) = cli(&s.data_dir, Some(&s.url), None, &["app", "list"]);
    assert_eq!((exit, err.contains("[missing_apikey]")), (3, true), "{err}");
    let (exit, _, err) = cli(
        &s.data_dir,
        Some(&s.url),
        Some("upd_wrong"),
        &["app", "list"],
    );
    assert_eq!(exit, 3, "{err}");
    let viewer = create_key(&s.data_dir, "viewer", "viewer", &[]);
    let (exit, _, err) = cli(
        &s.data_dir,
        Some(&s.url),
        Some(&viewer),
        &["app", "add", "com.example.other"],
    );
    assert_eq!((exit, err.contains("[forbidden]")), (3, true), "{err}");
    // 4: the server cannot be reached, or fails.
    let (exit, _, err) = cli(
        &s.data_dir,
        Some("http://127.0.0.1:9"),
        Some(&s.key),
        &["app", "list"],
    );
    assert_eq!(
        (exit, err.contains("[connection_failed]")),
        (4, true),
        "{err}"
    );
    let broken = failing_server(
        "500 Internal Server Error",
        r#"{"error":"internal_error","message":"boom"}"#,
    );
    let (exit, _, err) = cli(&s.data_dir, Some(&broken), Some(&s.key), &["app", "list"]);
    assert_eq!((exit, err.contains("[internal_error]")), (4, true), "{err}");
    // A server that accepts the connection and hangs up without an answer.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_url = format!("http://{}", silent.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in silent.incoming() {
            drop(stream);
        }
    });
    let (exit, _, err) = cli(
        &s.data_dir,
        Some(&silent_url),
        Some(&s.key),
        &["app", "list"],
    );
    assert_eq!(
        (exit, err.contains("[connection_failed]")),
        (4, true),
        "{err}"
    );
    // A code this build does not know (a newer server's): its status decides.
    let newer = failing_server(
        "503 Service Unavailable",
        r#"{"error":"quota_backend_down","message":"later"}"#,
    );
    let (exit, _, err) = cli(&s.data_dir, Some(&newer), Some(&s.key), &["app", "list"]);
    assert_eq!(
        (exit, err.contains("[quota_backend_down]")),
        (4, true),
        "{err}"
    );
    let proxy = failing_server("502 Bad Gateway", "");
    let (exit, _, err) = cli(&s.data_dir, Some(&proxy), Some(&s.key), &["app", "list"]);
    assert_eq!((exit, err.contains("[http_502]")), (4, true), "{err}");
    // 5: an incompatible bundle: release_cli.rs checks `bundle compatibility`,
    // `bundle upload --channel` and `channel set --bundle` exit 5.
}

#[tokio::test]
async fn a_closed_stdout_ends_quietly_with_0() {
    let s = Server::start().await;
    s.cli_ok(&["app", "add", APP]);
    let event = with(
        device_body(),
        json!({"action": "set", "version_name": "1.0.0", "old_version_name": ""}),
    );
    let (status, _) = s.post("/stats", &json!([event])).await;
    assert_eq!(status, 200);
    for args in [
        &["events", "export", APP, "--format", "csv"][..],
        &["events", "export", APP, "--format", "ndjson"],
        &["app", "list"],
        &["completions", "bash"],
        &["man"],
    ] {
        // `| head` that has read what it wanted: the read end is closed
        // before the CLI writes.
        let mut child = Command::new(bin())
            .args(args)
            .env("UPDRAFT_SERVER", &s.url)
            .env("UPDRAFT_APIKEY", &s.key)
            .env("UPDRAFT_DATA_DIR", &s.data_dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {err}");
        assert_eq!(err, "", "{args:?}");
    }
}

fn bundle_zip(dir: &Path, seed: u64) -> (std::path::PathBuf, Vec<u8>) {
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    writer.start_file("index.html", options).unwrap();
    writer
        .write_all(b"<!doctype html><script>notifyAppReady()</script>")
        .unwrap();
    writer.start_file("app.js", options).unwrap();
    writer.write_all(&noise(600_000, seed)).unwrap();
    let bytes = writer.finish().unwrap().into_inner();
    let path = dir.join("bundle.zip");
    std::fs::write(&path, &bytes).unwrap();
    (path, bytes)
}

#[tokio::test]
async fn a_resumed_upload_says_so_and_counts_only_what_it_sends() {
    let s = Server::start().await;
    s.cli_ok(&["app", "add", APP]);
    let dir = tempfile::tempdir().unwrap();
    let (zip, earlier) = interrupted_upload(&s, dir.path(), 18).await;

    let (code, out, err) = cli_in(
        &s.data_dir,
        Some(&s.url),
        Some(&s.key),
        &[
            "bundle",
            "upload",
            APP,
            "--path",
            "bundle.zip",
            "--bundle",
            "1.0.1",
            "--ignore-metadata-check",
        ],
        Some(dir.path()),
    );
    assert_eq!(code, 0, "{out} {err}");
    assert!(
        err.contains(&format!(
            "bundle: resuming an earlier upload from {} of {} ({earlier} bytes already on the server)",
            human(earlier),
            human(zip.len())
        )),
        "{err}"
    );
    let sent = zip.len() - earlier;
    assert!(
        err.contains(&format!("bundle: sent {sent} bytes"))
            && err.contains(&format!("resumed after {earlier} bytes sent earlier")),
        "the rate counts only this run's bytes: {err}"
    );
    // On a terminal the same line comes above the progress bar.
    let other = tempfile::tempdir().unwrap();
    let (zip, earlier) = interrupted_upload(&s, other.path(), 19).await;
    let path = other.path().join("bundle.zip");
    let (code, shown) = on_terminal(
        &s,
        80,
        &[
            "bundle",
            "upload",
            APP,
            "--path",
            path.to_str().unwrap(),
            "--bundle",
            "1.0.2",
            "--ignore-metadata-check",
        ],
        &[],
    );
    assert_eq!(code, 0, "{shown}");
    assert!(
        shown.contains(&format!(
            "resuming an earlier upload from {} of {} ({earlier} bytes already on the server)",
            human(earlier),
            human(zip.len())
        )),
        "{shown}"
    );
}

/// Writes bundle.zip into `dir` and sends its first 40 % as an earlier,
/// interrupted run would have; returns the zip and how much was sent.
async fn interrupted_upload(s: &Server, dir: &Path, seed: u64) -> (Vec<u8>, usize) {
    let (_, zip) = bundle_zip(dir, seed);
    let (status, created) = s
        .api(
            Method::POST,
            "/api/v1/uploads",
            Some(&json!({"size": zip.len(), "sha256": sha(&zip)})),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let upload_id = created["upload_id"].as_str().unwrap();
    let earlier = zip.len() * 2 / 5;
    let answer = s
        .http
        .patch(format!("{}/api/v1/uploads/{upload_id}", s.url))
        .bearer_auth(&s.key)
        .header("upload-offset", "0")
        .header("content-type", "application/offset+octet-stream")
        .body(zip[..earlier].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    (zip, earlier)
}

fn human(bytes: usize) -> String {
    updraft_cli::upload::human_bytes(bytes as u64)
}

#[tokio::test]
async fn csv_export_has_rfc3339_times_beside_epoch_milliseconds() {
    let s = Server::start().await;
    s.cli_ok(&["app", "add", APP]);
    let at = 1_767_225_600_123_i64;
    let event = with(
        device_body(),
        json!({"action": "set", "version_name": "1.0.0", "old_version_name": "", "timestamp": at}),
    );
    let (status, _) = s.post("/stats", &json!([event])).await;
    assert_eq!(status, 200);
    let mut csv = String::new();
    wait_for(|| {
        csv = s.cli_ok(&[
            "events",
            "export",
            APP,
            "--format",
            "csv",
            "--since",
            "2025-01-01",
        ]);
        csv.lines().count() >= 2
    });
    let lines: Vec<&str> = csv.lines().collect();
    assert!(
        lines[0].starts_with("id,timestamp,timestamp_ms,received_at,received_at_ms,app_id,"),
        "{}",
        lines[0]
    );
    let row: Vec<&str> = lines[1].split(',').collect();
    assert_eq!(
        &row[1..3],
        ["2026-01-01T00:00:00.123Z", &at.to_string()[..]],
        "{}",
        lines[1]
    );
    assert!(
        row[3].ends_with('Z') && row[4].parse::<i64>().is_ok(),
        "{}",
        lines[1]
    );
    // NDJSON is for programs: epoch milliseconds as before.
    let ndjson = s.cli_ok(&[
        "events",
        "export",
        APP,
        "--format",
        "ndjson",
        "--since",
        "2025-01-01",
    ]);
    let first: Value = serde_json::from_str(ndjson.lines().next().unwrap()).unwrap();
    assert_eq!(first["timestamp"], at);
}

#[tokio::test]
async fn channel_show_prints_settings_as_people_read_them() {
    let s = Server::start().await;
    s.seed("1.0.1").await;
    s.cli_ok(&[
        "channel",
        "set",
        "production",
        APP,
        "--no-electron",
        "--disable-auto-update",
        "minor",
    ]);
    let shown = s.cli_ok(&["channel", "show", "production", APP]);
    for (label, value) in [
        ("Platforms", "iOS, Android"),
        (
            "Auto-update",
            "up to patch (same major.minor as the native version)",
        ),
        ("Downgrade", "never below the native version"),
        ("Rollout", "none"),
        ("Auto-pause", "off"),
    ] {
        assert!(
            shown.lines().any(|l| l
                .strip_prefix(label)
                .is_some_and(|rest| rest.trim() == value)),
            "no {label}: {value} in:\n{shown}"
        );
    }
}

#[tokio::test]
async fn completions_man_pages_and_version_come_from_the_clap_definitions() {
    let s = Server::start().await;
    for (shell, marker) in [
        ("bash", "complete -F _updraft"),
        ("zsh", "#compdef updraft"),
        ("fish", "complete -c updraft"),
    ] {
        let out = s.cli_ok(&["completions", shell]);
        assert!(
            out.contains(marker),
            "{shell}: {}",
            &out[..out.len().min(300)]
        );
        assert!(
            out.contains("deliveries") && out.contains("wide"),
            "{shell}"
        );
    }
    assert_eq!(s.cli(&["completions", "tcsh"]).0, 2);
    let man = s.cli_ok(&["man"]);
    assert!(
        man.starts_with(".ie") || man.contains(".TH updraft 1"),
        "{}",
        &man[..200]
    );
    assert!(man.contains("completions"), "subcommands are listed");
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("man");
    s.cli_ok(&["man", "--dir", target.to_str().unwrap()]);
    for page in [
        "updraft.1",
        "updraft-bundle-upload.1",
        "updraft-webhook-deliveries.1",
    ] {
        let text = std::fs::read_to_string(target.join(page)).unwrap();
        let committed = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../docs/man")
                .join(page),
        )
        .unwrap();
        assert_eq!(
            text, committed,
            "docs/man/{page} is what `updraft man --dir` writes"
        );
    }

    let version = s.cli_ok(&["--version"]);
    let rev = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    let rev = std::env::var("UPDRAFT_GIT_REV")
        .ok()
        .filter(|r| !r.trim().is_empty())
        .or(rev)
        .unwrap_or_else(|| "unknown".into());
    assert_eq!(
        version.trim(),
        format!("updraft {} (git {rev})", env!("CARGO_PKG_VERSION"))
    );
}
