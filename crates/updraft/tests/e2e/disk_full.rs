//! A full disk (a 20 MiB tmpfs as the data directory): writes are refused
//! with 503 + Retry-After, `/readyz` says not ready, update checks keep
//! being answered, and writes come back by themselves once there is room,
//! with every acknowledged stats event stored. Needs root to mount (as in
//! `.ci/run`); skipped with a message elsewhere.

use crate::harness::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// One stats batch of 10 distinct events; returns (status, Retry-After).
async fn send_batch(s: &Server, round: usize) -> (u16, Option<String>) {
    let batch: Vec<Value> = (0..10)
        .map(|j| {
            with(
                device_body(),
                json!({
                    "action": format!("custom_{round}_{j}"),
                    "version_name": "1.1.0",
                    "timestamp": 1767225600000i64 + (round * 10 + j) as i64,
                    "metadata": {"padding": "p".repeat(1500)},
                }),
            )
        })
        .collect();
    let resp = s
        .http
        .post(format!("{}/stats", s.url))
        .json(&batch)
        .send()
        .await
        .expect("stats request");
    let retry_after = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    (resp.status().as_u16(), retry_after)
}

async fn readyz(s: &Server) -> (u16, Value) {
    let resp = s
        .http
        .get(format!("{}/readyz", s.url))
        .send()
        .await
        .expect("readyz");
    Server::read(resp).await
}

#[tokio::test]
async fn a_full_disk_refuses_writes_and_recovers_without_a_restart() {
    let fs = match updraft_testkit::Tmpfs::mount(20) {
        Ok(fs) => fs,
        Err(why) => {
            eprintln!("SKIPPED a_full_disk_refuses_writes_and_recovers_without_a_restart: {why}");
            return;
        }
    };
    let data_dir = fs.path().join("data");
    let key = create_key(&data_dir, "admin", "admin", &[]);
    let mut s = Server::spawn(
        &data_dir,
        &[
            ("UPDRAFT_MIN_FREE_DISK_MB", "4"),
            ("UPDRAFT_WRITE_CHECK_INTERVAL_MS", "200"),
        ],
    );
    s.key = key;
    s.seed("1.1.0").await;
    let mut acknowledged = 0usize;
    let mut round = 0usize;
    for _ in 0..20 {
        let (status, _) = send_batch(&s, round).await;
        round += 1;
        assert_eq!(status, 200);
        acknowledged += 10;
    }
    let (status, _) = readyz(&s).await;
    assert_eq!(status, 200);

    // The disk fills up: every byte left goes to a filler file.
    let filled = fs.fill("filler");
    assert!(filled > 0);
    let mut refused = 0;
    let deadline = Instant::now() + Duration::from_secs(20);
    let refusal = loop {
        let (status, retry_after) = send_batch(&s, round).await;
        round += 1;
        match status {
            200 => acknowledged += 10,
            503 => {
                refused += 1;
                assert!(
                    retry_after
                        .as_deref()
                        .is_some_and(|v| v.parse::<u64>().is_ok()),
                    "503 carries a numeric Retry-After: {retry_after:?}"
                );
                let (ready, body) = readyz(&s).await;
                if ready == 503 {
                    break body;
                }
            }
            other => panic!("stats on a full disk answered {other}, not 200 or 503"),
        }
        assert!(Instant::now() < deadline, "writes were never refused");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(refusal["error"], "low_disk_space", "{refusal}");
    assert!(refused > 0);
    // Update checks are still answered.
    let (status, body) = s.post("/updates", &device_body()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["version"], "1.1.0", "{body}");
    // Management writes are refused too, with the same header.
    let resp = s
        .http
        .post(format!("{}/api/v1/apps/{APP}/channels", s.url))
        .bearer_auth(&s.key)
        .json(&json!({"name": "beta"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 503);
    assert!(resp.headers().get("retry-after").is_some());
    let (_, body) = Server::read(resp).await;
    assert_eq!(body["error"], "low_disk_space", "{body}");
    // A few more refused batches while full.
    for _ in 0..5 {
        let (status, _) = send_batch(&s, round).await;
        round += 1;
        assert_eq!(status, 503);
    }

    // Room again: writes resume by themselves.
    std::fs::remove_file(fs.path().join("filler")).unwrap();
    let freed = Instant::now();
    let resumed = loop {
        let (status, _) = send_batch(&s, round).await;
        round += 1;
        if status == 200 {
            acknowledged += 10;
            break freed.elapsed();
        }
        assert_eq!(status, 503);
        assert!(
            freed.elapsed() < Duration::from_secs(30),
            "writes never resumed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let ready_again = loop {
        let (status, _) = readyz(&s).await;
        if status == 200 {
            break freed.elapsed();
        }
        assert!(
            freed.elapsed() < Duration::from_secs(30),
            "never ready again"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    // Figures for docs/reliability.md (printed, not asserted).
    eprintln!(
        "disk full: writes resumed {} ms and /readyz 200 {} ms after space returned",
        resumed.as_millis(),
        ready_again.as_millis()
    );
    for _ in 0..10 {
        let (status, _) = send_batch(&s, round).await;
        round += 1;
        assert_eq!(status, 200);
        acknowledged += 10;
    }
    let (status, body) = s
        .api(
            reqwest::Method::POST,
            &format!("/api/v1/apps/{APP}/channels"),
            Some(&json!({"name": "beta"})),
        )
        .await;
    assert_eq!(status, 201, "{body}");

    let status = s.sigterm();
    assert!(status.success(), "{status:?}");
    let store = updraft_store::SqliteStore::open(&data_dir).await.unwrap();
    let stored: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM stats_events")
        .fetch_one(store.pool())
        .await
        .unwrap();
    let check: String = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_one(store.pool())
        .await
        .unwrap();
    store.close().await;
    eprintln!(
        "disk full: {acknowledged} events acknowledged, {stored} stored, {refused}+ batches refused"
    );
    assert_eq!(
        stored as usize, acknowledged,
        "every acknowledged event is stored"
    );
    assert_eq!(check, "ok");
}
