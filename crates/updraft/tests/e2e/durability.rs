//! Nothing acknowledged is lost: not on SIGKILL, not on SIGTERM.

use crate::harness::*;
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn acknowledged_stats_survive_sigkill() {
    let mut s = Server::start().await;
    s.seed("1.1.0").await;
    let mut sent = 0;
    for i in 0..20 {
        let batch: Vec<_> = (0..10)
            .map(|j| {
                with(device_body(), json!({"action": format!("custom_{i}_{j}"), "version_name": "1.1.0", "timestamp": 1767225600000i64 + i * 10 + j}))
            })
            .collect();
        let (st, b) = s.post("/stats", &json!(batch)).await;
        assert_eq!(st, 200, "{b}");
        sent += 10;
    }
    s.sigkill();
    s.restart();
    let (st, d) = s
        .api(
            Method::GET,
            &format!("/api/v1/apps/{APP}/devices/{DEVICE}"),
            None,
        )
        .await;
    assert_eq!(st, 200, "{d}");
    // The device view shows the newest 50; count every event through the store.
    assert_eq!(d["recent_events"].as_array().unwrap().len(), 50);
    s.sigkill();
    let store = updraft_store::SqliteStore::open(&s.data_dir)
        .await
        .expect("open the data directory");
    let stored = updraft_store::StatsStore::list_events(&store, APP, None, 1000)
        .await
        .expect("events");
    assert_eq!(stored.len(), sent);
}

#[tokio::test]
async fn sigterm_flushes_the_device_registry() {
    let mut s = Server::start().await;
    s.seed("1.1.0").await;
    let (_, b) = s.post("/updates", &device_body()).await;
    assert_eq!(b["version"], "1.1.0");
    let status = s.sigterm();
    assert!(status.success(), "clean exit: {status:?}");
    s.restart();
    let (st, d) = s
        .api(
            Method::GET,
            &format!("/api/v1/apps/{APP}/devices/{DEVICE}"),
            None,
        )
        .await;
    assert_eq!(st, 200, "{d}");
    assert_eq!(d["version_name"], "1.0.0");
    assert_eq!(d["last_offered_version"], "1.1.0");
    assert_eq!(d["last_update_outcome"], "get");
    assert_eq!(d["platform"], "android");
}

#[tokio::test]
async fn release_configuration_survives_restart() {
    let mut s = Server::start().await;
    s.seed("1.1.0").await;
    s.restart();
    let (_, b) = s.post("/updates", &device_body()).await;
    assert_eq!(b["version"], "1.1.0", "{b}");
}
