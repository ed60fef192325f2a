//! Analytics end to end: acknowledged events and their rollups survive
//! SIGKILL, a tiny ingest queue answers 429 + Retry-After and loses nothing
//! once clients resend, and the CLI shows the numbers.

use crate::harness::*;
use reqwest::Method;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const DAY_MS: i64 = 86_400_000;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// 01:00 UTC two days ago, and that day as YYYY-MM-DD: every generated event
/// falls on that day.
fn test_day() -> (i64, String) {
    let start = (now_ms() / DAY_MS - 2) * DAY_MS;
    (start + 3_600_000, day_text(start))
}

fn day_text(millis: i64) -> String {
    updraft_core::analytics::day_of(millis)
}

fn device_id(n: usize) -> String {
    format!("00000000-0000-4000-8000-{n:012}")
}

/// A device's batch: pings on 1.0.0, then (for even devices) a `set` to
/// 1.1.0, and every third device an update_fail of 1.2.0.
fn device_batch(n: usize, base: i64, pings: usize) -> Vec<Value> {
    let mut events = Vec::new();
    let at = |i: usize| base + (n * 1000 + i) as i64;
    for i in 0..pings {
        events.push(with(
            device_body(),
            json!({"device_id": device_id(n), "action": "app_moved_to_foreground", "version_name": "1.0.0", "timestamp": at(i)}),
        ));
    }
    if n.is_multiple_of(2) {
        events.push(with(
            device_body(),
            json!({"device_id": device_id(n), "action": "set", "version_name": "1.1.0",
                   "old_version_name": "1.0.0", "timestamp": at(pings)}),
        ));
    }
    if n.is_multiple_of(3) {
        events.push(with(
            device_body(),
            json!({"device_id": device_id(n), "action": "update_fail", "version_name": "1.2.0", "timestamp": at(pings + 1)}),
        ));
    }
    events
}

struct Expected {
    events: usize,
    installs: i64,
    update_fails: i64,
    devices: i64,
    on_new_bundle: i64,
}

fn expected_for(devices: usize, pings: usize) -> Expected {
    let installs = (0..devices).filter(|n| n.is_multiple_of(2)).count() as i64;
    let update_fails = (0..devices).filter(|n| n.is_multiple_of(3)).count() as i64;
    Expected {
        events: devices * pings + installs as usize + update_fails as usize,
        installs,
        update_fails,
        devices: devices as i64,
        on_new_bundle: installs,
    }
}

async fn export_lines(url: &str, key: &str, format: &str) -> Vec<String> {
    let resp = reqwest::Client::new()
        .get(format!(
            "{url}/api/v1/apps/{APP}/events/export?format={format}"
        ))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    text.lines().map(str::to_string).collect()
}

async fn stats_report(s: &Server, day: &str, extra: &str) -> Value {
    let (status, report) = s
        .api(
            Method::GET,
            &format!("/api/v1/apps/{APP}/stats?since={day}&until={day}{extra}"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{report}");
    report
}

fn check_report(report: &Value, expected: &Expected, day: &str) {
    let totals = &report["totals"];
    assert_eq!(totals["events"], expected.events as i64, "{report}");
    assert_eq!(totals["installs"], expected.installs, "{report}");
    assert_eq!(totals["failures"], expected.update_fails, "{report}");
    assert_eq!(
        totals["failures_by_kind"],
        json!({"update_fail": expected.update_fails})
    );
    assert_eq!(
        totals["active_devices_latest"], expected.devices,
        "{report}"
    );
    let days = report["days"].as_array().unwrap();
    assert_eq!(days.len(), 1);
    assert_eq!(days[0]["day"], day);
    assert_eq!(days[0]["active_devices"], expected.devices);
    let curve = |bundle: &str| -> i64 {
        report["adoption"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["bundle"] == bundle)
            .map_or(0, |c| c["days"][0]["devices"].as_i64().unwrap())
    };
    assert_eq!(curve("1.1.0"), expected.on_new_bundle, "{report}");
    assert_eq!(
        curve("1.0.0"),
        expected.devices - expected.on_new_bundle,
        "{report}"
    );
    // update_fail names the failed bundle, never the running one.
    assert_eq!(curve("1.2.0"), 0);
}

#[tokio::test]
async fn acknowledged_events_and_their_rollups_survive_sigkill() {
    let mut s = Server::start().await;
    s.seed("1.1.0").await;
    let (base, day) = test_day();
    const DEVICES: usize = 30;
    const PINGS: usize = 12;
    let mut tasks = Vec::new();
    for n in 0..DEVICES {
        let url = s.url.clone();
        tasks.push(tokio::spawn(async move {
            let resp = reqwest::Client::new()
                .post(format!("{url}/stats"))
                .json(&json!(device_batch(n, base, PINGS)))
                .send()
                .await
                .unwrap();
            let status = resp.status().as_u16();
            let body: Value = resp.json().await.unwrap();
            (status, body)
        }));
    }
    for task in tasks {
        let (status, body) = task.await.unwrap();
        assert_eq!(status, 200, "{body}");
        assert!(
            body["results"]
                .as_array()
                .unwrap()
                .iter()
                .all(|r| r["status"] == "ok"),
            "{body}"
        );
    }
    // Killed the moment the last answer arrived: nothing may be buffered.
    s.sigkill();
    s.restart();

    let expected = expected_for(DEVICES, PINGS);
    let lines = export_lines(&s.url, &s.key, "ndjson").await;
    assert_eq!(lines.len(), expected.events);
    for line in &lines {
        let event: Value = serde_json::from_str(line).unwrap();
        // Attributed at ingest: no override, no defaultChannel → the public channel.
        assert_eq!(event["channel"], "production", "{event}");
    }
    let csv = export_lines(&s.url, &s.key, "csv").await;
    assert_eq!(csv.len(), expected.events + 1);
    assert!(csv[0].starts_with(
        "id,timestamp,timestamp_ms,received_at,received_at_ms,app_id,device_id,action,"
    ));
    // Times for people (RFC 3339) beside the epoch milliseconds, which agree.
    let ndjson_first: Value = serde_json::from_str(&lines[0]).unwrap();
    let first: Vec<&str> = csv[1].split(',').collect();
    assert_eq!(first[0], ndjson_first["id"].to_string(), "{}", csv[1]);
    assert_eq!(first[2], ndjson_first["timestamp"].to_string());
    assert_eq!(first[4], ndjson_first["received_at"].to_string());
    for (text, ms) in [(first[1], first[2]), (first[3], first[4])] {
        assert_eq!(
            updraft_core::analytics::parse_rfc3339(text),
            Some(ms.parse().unwrap()),
            "{}",
            csv[1]
        );
        assert!(text.ends_with('Z') && text.contains('T'), "{text}");
    }

    check_report(&stats_report(&s, &day, "").await, &expected, &day);
    check_report(
        &stats_report(&s, &day, "&channel=production").await,
        &expected,
        &day,
    );
    let other_channel = stats_report(&s, &day, "&channel=beta").await;
    assert_eq!(other_channel["totals"]["events"], 0);
    let one_bundle = stats_report(&s, &day, "&bundle=1.1.0").await;
    assert_eq!(one_bundle["totals"]["installs"], expected.installs);
    assert_eq!(one_bundle["totals"]["failures"], 0);

    // The registry moved with the same commit.
    let (status, device) = s
        .api(
            Method::GET,
            &format!("/api/v1/apps/{APP}/devices/{}", device_id(2)),
            None,
        )
        .await;
    assert_eq!(status, 200, "{device}");
    assert_eq!(device["version_name"], "1.1.0");
    assert_eq!(
        device["channel"], "production",
        "the registry shows the device's channel"
    );
    let (_, device) = s
        .api(
            Method::GET,
            &format!("/api/v1/apps/{APP}/devices/{}", device_id(3)),
            None,
        )
        .await;
    assert_eq!(
        device["version_name"], "1.0.0",
        "a failure does not move the bundle"
    );
}

/// `updraft serve --config FILE` on a data dir; returns the child and its URL.
fn spawn_with_config(data_dir: &std::path::Path, config: &std::path::Path) -> (Child, String) {
    let mut child = Command::new(bin())
        .args(["serve", "--config"])
        .arg(config)
        .env("UPDRAFT_DATA_DIR", data_dir)
        .env("UPDRAFT_LISTEN", "127.0.0.1:0")
        .env("RUST_LOG", "error")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut url = String::new();
    for line in BufReader::new(stdout).lines().map_while(Result::ok) {
        if let Some(found) = line.strip_prefix("updraft listening on ") {
            url = found.trim().to_string();
            break;
        }
    }
    assert!(!url.is_empty(), "server printed its address");
    (child, url)
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn a_tiny_queue_answers_429_and_resent_batches_count_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let data_dir = tmp.path().join("data");
    let key = create_key(&data_dir, "admin", "admin", &[]);
    let config = tmp.path().join("updraft.toml");
    std::fs::write(&config, "stats_queue_capacity = 1\n").unwrap();
    let (child, url) = spawn_with_config(&data_dir, &config);
    let _guard = KillOnDrop(child);
    let http = reqwest::Client::new();
    let (status, _) = Server::read(
        http.post(format!("{url}/api/v1/apps"))
            .bearer_auth(&key)
            .json(&json!({"app_id": APP}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 201);

    let (base, day) = test_day();
    const DEVICES: usize = 80;
    const PINGS: usize = 40;
    let mut tasks = Vec::new();
    for n in 0..DEVICES {
        let (url, http) = (url.clone(), http.clone());
        tasks.push(tokio::spawn(async move {
            let batch = json!(device_batch(n, base, PINGS));
            let mut refused = 0;
            loop {
                let resp = http
                    .post(format!("{url}/stats"))
                    .json(&batch)
                    .send()
                    .await
                    .unwrap();
                match resp.status().as_u16() {
                    200 => return refused,
                    429 => {
                        let retry_after: u64 = resp
                            .headers()
                            .get("retry-after")
                            .and_then(|v| v.to_str().ok())
                            .and_then(|v| v.parse().ok())
                            .expect("numeric Retry-After");
                        assert!((1..=60).contains(&retry_after));
                        let body: Value = resp.json().await.unwrap();
                        assert_eq!(body["error"], "too_many_requests", "{body}");
                        refused += 1;
                        // A plugin waits Retry-After; a short pause keeps the test quick.
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    other => panic!("unexpected status {other}"),
                }
            }
        }));
    }
    let mut refused = 0;
    for task in tasks {
        refused += task.await.unwrap();
    }
    assert!(refused > 0, "the tiny queue must push back under this load");

    let expected = expected_for(DEVICES, PINGS);
    let lines = export_lines(&url, &key, "ndjson").await;
    assert_eq!(
        lines.len(),
        expected.events,
        "every batch stored exactly once"
    );
    let (status, report) = Server::read(
        http.get(format!(
            "{url}/api/v1/apps/{APP}/stats?since={day}&until={day}"
        ))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    let totals = &report["totals"];
    assert_eq!(totals["events"], expected.events as i64);
    assert_eq!(totals["installs"], expected.installs);
    assert_eq!(totals["failures"], expected.update_fails);
    assert_eq!(totals["active_devices_latest"], expected.devices);
}

#[tokio::test]
async fn cli_shows_stats_as_a_table_and_json_and_exports_events() {
    let s = Server::start().await;
    s.seed("1.1.0").await;
    let (base, day) = test_day();
    for n in 0..4 {
        let (status, body) = s.post("/stats", &json!(device_batch(n, base, 2))).await;
        assert_eq!(status, 200, "{body}");
    }
    let expected = expected_for(4, 2);
    let table = s.cli_ok(&["stats", APP, "--since", &day, "--until", &day]);
    assert!(
        table.contains(&format!("{APP}  {day} .. {day}  channel: all  bundle: all")),
        "{table}"
    );
    assert!(
        table.contains("Active devices: 4 (newest day), peak 4"),
        "{table}"
    );
    // 2 installs (devices 0 and 2), 2 update_fail (devices 0 and 3).
    assert!(
        table.contains("Installs: 2  Failures: 2 (update_fail 2)  Failure rate: 50.0%"),
        "{table}"
    );
    assert!(
        table.contains(&format!("{day}  4       2         2         50.0%")),
        "{table}"
    );
    assert!(
        table.contains("1.0.0   50.0% (2)") && table.contains("1.1.0   50.0% (2)"),
        "{table}"
    );

    let json_text = s.cli_ok(&[
        "stats",
        APP,
        "--since",
        &day,
        "--until",
        &day,
        "--channel",
        "production",
        "--json",
    ]);
    let report: Value = serde_json::from_str(&json_text).unwrap();
    assert_eq!(report["channel"], "production");
    assert_eq!(report["totals"]["installs"], expected.installs);
    assert_eq!(report["totals"]["events"], expected.events as i64);
    assert_eq!(report["totals"]["failure_rate"], 0.5);

    let (code, _, err) = s.cli(&["stats", APP, "--since", "yesterday-ish"]);
    assert_eq!(code, 1);
    assert!(err.contains("invalid_time"), "{err}");

    let out_file = s.data_dir.join("export.csv");
    let out_text = out_file.to_str().unwrap();
    let summary = s.cli_ok(&[
        "events", "export", APP, "--format", "csv", "--output", out_text,
    ]);
    assert!(
        summary.contains(&format!("Exported {} events", expected.events)),
        "{summary}"
    );
    let csv = std::fs::read_to_string(&out_file).unwrap();
    assert_eq!(csv.lines().count(), expected.events + 1);
    let stdout = s.cli_ok(&[
        "events",
        "export",
        APP,
        "--format",
        "ndjson",
        "--device-id",
        &device_id(1),
    ]);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert!(stdout.ends_with("}\n"), "exactly one final newline");
    for line in lines {
        let event: Value = serde_json::from_str(line).unwrap();
        assert_eq!(event["device_id"], device_id(1));
    }
}
