//! `POST /stats`: arrays and single objects, per-item results, nothing thrown
//! away by accident, and the device registry moving with what devices report.

use crate::harness::*;
use reqwest::Method;
use serde_json::{json, Value};

fn event(action: &str, version_name: &str) -> Value {
    with(
        device_body(),
        json!({"action": action, "version_name": version_name, "old_version_name": "", "timestamp": 1767225600000i64}),
    )
}

#[tokio::test]
async fn batches_and_single_events_are_stored_and_move_the_registry() {
    let s = Server::start().await;
    s.seed("1.1.0").await;
    let batch = json!([
        event("download_complete", "1.1.0"),
        with(event("set", "1.1.0"), json!({"old_version_name": "1.0.0"})),
        event("some_future_action", "1.1.0"),
    ]);
    let (st, b) = s.post("/stats", &batch).await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["status"], "ok");
    let results = b["results"].as_array().unwrap();
    assert_eq!(results.len(), 3);
    assert!(results
        .iter()
        .enumerate()
        .all(|(i, r)| r["status"] == "ok" && r["index"] == i));
    let (st, b) = s
        .post("/stats", &event("app_moved_to_foreground", "1.1.0"))
        .await;
    assert_eq!((st, b), (200, json!({"status": "ok"})));
    let (st, d) = s
        .api(
            Method::GET,
            &format!("/api/v1/apps/{APP}/devices/{DEVICE}"),
            None,
        )
        .await;
    assert_eq!(st, 200, "{d}");
    assert_eq!(d["version_name"], "1.1.0");
    let actions: Vec<&str> = d["recent_events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for a in [
        "download_complete",
        "set",
        "some_future_action",
        "app_moved_to_foreground",
    ] {
        assert!(actions.contains(&a), "{a} missing from {actions:?}");
    }
}

#[tokio::test]
async fn a_failure_event_does_not_move_the_current_bundle() {
    let s = Server::start().await;
    s.seed("1.1.0").await;
    let (st, _) = s.post("/stats", &json!([event("set", "1.0.5")])).await;
    assert_eq!(st, 200);
    let (st, _) = s
        .post(
            "/stats",
            &json!([
                event("update_fail", "1.1.0"),
                event("download_1.1.0_start", "1.1.0")
            ]),
        )
        .await;
    assert_eq!(st, 200);
    let (_, d) = s
        .api(
            Method::GET,
            &format!("/api/v1/apps/{APP}/devices/{DEVICE}"),
            None,
        )
        .await;
    assert_eq!(d["version_name"], "1.0.5", "{d}");
}

#[tokio::test]
async fn malformed_events_get_per_item_errors_and_the_rest_is_kept() {
    let s = Server::start().await;
    s.seed("1.1.0").await;
    let batch = json!([
        event("set", "1.1.0"),
        with(event("set", "1.1.0"), json!({"action": null})),
        with(event("set", "1.1.0"), json!({"device_id": 7})),
        with(event("set", "1.1.0"), json!({"metadata": {"k": 1}})),
    ]);
    let (st, b) = s.post("/stats", &batch).await;
    assert_eq!(st, 200, "{b}");
    let codes: Vec<Value> = b["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["error"].clone())
        .collect();
    assert_eq!(
        codes,
        vec![
            Value::Null,
            json!("missing_action"),
            json!("invalid_json_body"),
            json!("invalid_metadata")
        ]
    );
    // Only the valid event reaches the rollups (on the day of its own timestamp).
    let (st, report) = s
        .api(
            reqwest::Method::GET,
            &format!("/api/v1/apps/{APP}/stats?since=2026-01-01&until=2026-01-01"),
            None,
        )
        .await;
    assert_eq!(st, 200, "{report}");
    assert_eq!(report["totals"]["events"], 1, "{report}");
    assert_eq!(report["totals"]["installs"], 1, "{report}");
    // A single malformed event is a 400.
    let (st, b) = s
        .post(
            "/stats",
            &with(event("set", "1.1.0"), json!({"action": null})),
        )
        .await;
    assert_eq!((st, b["error"].as_str()), (400, Some("missing_action")));
    // A batch of mixed apps is refused whole.
    let mixed = json!([
        event("set", "1.1.0"),
        with(event("set", "1.1.0"), json!({"app_id": "com.other.app"}))
    ]);
    let (st, b) = s.post("/stats", &mixed).await;
    assert_eq!((st, b["error"].as_str()), (400, Some("mixed_app_ids")));
    // Unknown app.
    let (st, b) = s
        .post(
            "/stats",
            &json!([with(
                event("set", "1.1.0"),
                json!({"app_id": "com.unknown.app"})
            )]),
        )
        .await;
    assert_eq!((st, b["error"].as_str()), (404, Some("app_not_found")));
    // Only the one good event of the first batch was stored.
    let (_, d) = s
        .api(
            Method::GET,
            &format!("/api/v1/apps/{APP}/devices/{DEVICE}"),
            None,
        )
        .await;
    assert_eq!(d["recent_events"].as_array().unwrap().len(), 1, "{d}");
    // Empty array: nothing to do.
    let (st, b) = s.post("/stats", &json!([])).await;
    assert_eq!((st, b), (200, json!({"status": "ok", "results": []})));
}
