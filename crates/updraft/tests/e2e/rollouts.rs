//! Rollouts through the management API of the real binary: start, percentage,
//! pause, resume, promote and rollback by PATCH; what devices are offered;
//! history and the rollback endpoint; schedules; auto-pause from reported
//! failures; and requests refused without changing anything.

use crate::harness::*;
use reqwest::Method;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// A history row: stable bundle, rollout bundle, percentage, paused, reason.
type HistoryRow = (String, Option<String>, Option<i64>, bool, String);

const FAST_LOOP: [(&str, &str); 1] = [("UPDRAFT_ROLLOUT_CONTROL_INTERVAL_MS", "100")];

fn device(i: usize) -> String {
    format!("{i:08x}-1111-4000-8000-000000000000")
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// The version `/updates` offers this device running `running`, if any.
async fn offered(s: &Server, device_id: &str, running: &str) -> Option<String> {
    let (status, body) = s
        .post(
            "/updates",
            &with(
                device_body(),
                json!({"device_id": device_id, "version_name": running}),
            ),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    if body.get("url").is_some() {
        assert_plugin_success(&body);
        body["version"].as_str().map(str::to_string)
    } else {
        assert_eq!(body["error"], "no_new_version_available", "{body}");
        None
    }
}

/// Of 200 devices on 1.0.0, those offered `version`.
async fn offered_set(s: &Server, version: &str) -> BTreeSet<usize> {
    let mut set = BTreeSet::new();
    for i in 0..200 {
        if offered(s, &device(i), "1.0.0").await.as_deref() == Some(version) {
            set.insert(i);
        }
    }
    set
}

async fn get(s: &Server, path: &str) -> Value {
    let (status, body) = s.api(Method::GET, path, None).await;
    assert_eq!(status, 200, "{path}: {body}");
    body
}

async fn production(s: &Server) -> Value {
    get(s, &format!("/api/v1/apps/{APP}/channels/production")).await
}

async fn patch_ok(s: &Server, settings: Value) -> Value {
    let (status, body) = s.patch_production(settings.clone()).await;
    assert_eq!(status, 200, "{settings}: {body}");
    body
}

/// Polls `check` until it returns `Some`, for at most 30 s.
async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn rollout_lifecycle_by_patch_with_history_and_rollback() {
    let s = Server::start().await;
    s.seed("1.0.0").await;
    s.bundle("1.1.0").await;
    s.bundle("1.2.0").await;

    let view = patch_ok(
        &s,
        json!({"rollout_bundle": "1.1.0", "rollout_percentage_bps": 10000}),
    )
    .await;
    assert_eq!(view["bundle"], "1.0.0");
    assert_eq!(view["rollout"]["bundle"], "1.1.0");
    assert_eq!(view["rollout"]["percentage_bps"], 10000);
    assert_eq!(view["rollout"]["paused"], false);
    assert_eq!(offered(&s, DEVICE, "1.0.0").await.as_deref(), Some("1.1.0"));
    // The bundles say which channel serves them, and how.
    let rolled = get(&s, &format!("/api/v1/apps/{APP}/bundles/1.1.0")).await;
    assert_eq!(
        (&rolled["channels"], &rolled["rollout_channels"]),
        (&json!([]), &json!(["production"]))
    );
    let stable = get(&s, &format!("/api/v1/apps/{APP}/bundles/1.0.0")).await;
    assert_eq!(
        (&stable["channels"], &stable["rollout_channels"]),
        (&json!(["production"]), &json!([]))
    );

    // At 0 % nobody new gets it, and a device already on it keeps it.
    patch_ok(&s, json!({"rollout_percentage_bps": 0})).await;
    assert_eq!(offered(&s, DEVICE, "1.0.0").await, None);
    assert_eq!(offered(&s, DEVICE, "1.1.0").await, None);

    let view = patch_ok(&s, json!({"rollout_percentage_bps": 5000})).await;
    assert_eq!(view["rollout"]["percentage_bps"], 5000);
    let half = offered_set(&s, "1.1.0").await;
    assert!((60..=140).contains(&half.len()), "{} of 200", half.len());

    let view = patch_ok(&s, json!({"rollout_action": "pause"})).await;
    assert_eq!(view["rollout"]["paused"], true);
    assert!(offered_set(&s, "1.1.0").await.is_empty());
    assert_eq!(
        offered(&s, DEVICE, "1.1.0").await,
        None,
        "kept while paused"
    );

    let view = patch_ok(&s, json!({"rollout_action": "resume"})).await;
    assert_eq!(view["rollout"]["paused"], false);
    assert_eq!(
        offered_set(&s, "1.1.0").await,
        half,
        "the same devices again"
    );

    let view = patch_ok(&s, json!({"rollout_action": "promote"})).await;
    assert_eq!(view["bundle"], "1.1.0");
    assert_eq!(view["rollout"], Value::Null);
    assert_eq!(offered(&s, DEVICE, "1.0.0").await.as_deref(), Some("1.1.0"));

    let view = patch_ok(
        &s,
        json!({"rollout_bundle": "1.2.0", "rollout_percentage_bps": 10000}),
    )
    .await;
    assert_eq!(view["rollout"]["bundle"], "1.2.0");
    assert_eq!(offered(&s, DEVICE, "1.1.0").await.as_deref(), Some("1.2.0"));
    let view = patch_ok(&s, json!({"rollout_action": "rollback"})).await;
    assert_eq!(
        (&view["bundle"], &view["rollout"]),
        (&json!("1.1.0"), &Value::Null)
    );
    // Devices on the rolled-back bundle return to the stable one.
    assert_eq!(offered(&s, DEVICE, "1.2.0").await.as_deref(), Some("1.1.0"));

    let history = get(
        &s,
        &format!("/api/v1/apps/{APP}/channels/production/history"),
    )
    .await;
    let rows: Vec<HistoryRow> = history["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            assert_eq!(h["actor"], "key:admin");
            (
                h["bundle"].as_str().unwrap().to_string(),
                h["rollout_bundle"].as_str().map(str::to_string),
                h["rollout_percentage_bps"].as_i64(),
                h["rollout_paused"].as_bool().unwrap(),
                h["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let row = |b: &str, r: Option<&str>, p: Option<i64>, paused: bool, reason: &str| {
        (
            b.to_string(),
            r.map(str::to_string),
            p,
            paused,
            reason.to_string(),
        )
    };
    assert_eq!(
        rows,
        vec![
            row("1.1.0", None, None, false, "rollback"),
            row("1.1.0", Some("1.2.0"), Some(10000), false, "rollout_start"),
            row("1.1.0", None, None, false, "promote"),
            row("1.0.0", Some("1.1.0"), Some(5000), false, "resume"),
            row("1.0.0", Some("1.1.0"), Some(5000), true, "pause"),
            row(
                "1.0.0",
                Some("1.1.0"),
                Some(5000),
                false,
                "rollout_percentage"
            ),
            row("1.0.0", Some("1.1.0"), Some(0), false, "rollout_percentage"),
            row("1.0.0", Some("1.1.0"), Some(10000), false, "rollout_start"),
            row("1.0.0", None, None, false, "set"),
        ]
    );
    let limited = get(
        &s,
        &format!("/api/v1/apps/{APP}/channels/production/history?limit=2"),
    )
    .await;
    assert_eq!(limited["history"].as_array().unwrap().len(), 2);

    // One call back to the previous stable bundle, then to a chosen one.
    let (status, view) = s
        .api(
            Method::POST,
            &format!("/api/v1/apps/{APP}/channels/production/rollback"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["bundle"], "1.0.0");
    // 1.2.0 was only ever a rollout bundle here: putting it live for everyone
    // is a release (with the compatibility guard), not a rollback.
    let (status, body) = s
        .api(
            Method::POST,
            &format!("/api/v1/apps/{APP}/channels/production/rollback"),
            Some(&json!({"to": "1.2.0"})),
        )
        .await;
    assert_eq!(
        (status, &body["error"]),
        (409, &json!("not_in_history")),
        "{body}"
    );
    assert_eq!(production(&s).await["bundle"], "1.0.0");
    let (status, view) = s
        .api(
            Method::POST,
            &format!("/api/v1/apps/{APP}/channels/production/rollback"),
            Some(&json!({"to": "1.1.0"})),
        )
        .await;
    assert_eq!((status, &view["bundle"]), (200, &json!("1.1.0")), "{view}");
    let history = get(
        &s,
        &format!("/api/v1/apps/{APP}/channels/production/history?limit=1"),
    )
    .await;
    assert_eq!(history["history"][0]["reason"], "rollback");

    let (status, body) = s
        .api(
            Method::POST,
            &format!("/api/v1/apps/{APP}/channels"),
            Some(&json!({"name": "beta", "bundle": "1.0.0"})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = s
        .api(
            Method::POST,
            &format!("/api/v1/apps/{APP}/channels/beta/rollback"),
            Some(&json!({})),
        )
        .await;
    assert_eq!(
        (status, &body["error"]),
        (409, &json!("nothing_to_roll_back")),
        "{body}"
    );

    let decisions = get(&s, &format!("/api/v1/apps/{APP}/rollouts/decisions")).await;
    assert_eq!(decisions["decisions"], json!([]));

    // Filters name real channels; malformed query strings get the API's JSON errors.
    for path in [
        format!("/api/v1/apps/{APP}/rollouts/decisions?channel=nope"),
        format!("/api/v1/apps/{APP}/schedules?channel=nope"),
    ] {
        let (status, body) = s.api(Method::GET, &path, None).await;
        assert_eq!(
            (status, &body["error"]),
            (404, &json!("channel_not_found")),
            "{path}: {body}"
        );
    }
    for path in [
        format!("/api/v1/apps/{APP}/channels/production/history?limit=abc"),
        format!("/api/v1/apps/{APP}/bundles?include_deleted=maybe"),
        "/api/v1/audit?limit=abc".to_string(),
    ] {
        let (status, body) = s.api(Method::GET, &path, None).await;
        assert_eq!(
            (status, &body["error"]),
            (400, &json!("invalid_query")),
            "{path}: {body}"
        );
        assert!(
            body["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{body}"
        );
    }
}

#[tokio::test]
async fn refused_changes_change_nothing() {
    let s = Server::start().await;
    s.seed("1.0.0").await;
    s.bundle("1.1.0").await;
    let before = production(&s).await;
    let cases = [
        (
            json!({"rollout_bundle": "1.1.0", "rollout_percentage_bps": 10001}),
            400,
            "invalid_percentage",
        ),
        (
            json!({"rollout_percentage_bps": -1}),
            400,
            "invalid_percentage",
        ),
        (
            json!({"auto_pause": {"confidence": 1.0}}),
            400,
            "invalid_auto_pause",
        ),
        (
            json!({"auto_pause": {"confidence": 0}}),
            400,
            "invalid_auto_pause",
        ),
        (
            json!({"auto_pause": {"window_minutes": 0}}),
            400,
            "invalid_auto_pause",
        ),
        (
            json!({"auto_pause": {"cooldown_minutes": 10081}}),
            400,
            "invalid_auto_pause",
        ),
        (
            json!({"auto_pause": {"action": "notify", "cooldown_minutes": 0}}),
            400,
            "invalid_auto_pause",
        ),
        (
            json!({"auto_pause": {"action": "explode"}}),
            400,
            "invalid_auto_pause",
        ),
        (
            json!({"ramp": {"steps_bps": [500, 100, 10000]}}),
            400,
            "invalid_ramp",
        ),
        (
            json!({"ramp": {"steps_bps": [100, 5000]}}),
            400,
            "invalid_ramp",
        ),
        (
            json!({"ramp": {"steps_bps": [0, 10000]}}),
            400,
            "invalid_ramp",
        ),
        (
            json!({"targeting": {"os_version": ">=banana"}}),
            400,
            "invalid_version_range",
        ),
        (
            json!({"rollout_targeting": {"native_version": "~>1"}}),
            400,
            "invalid_version_range",
        ),
        (
            json!({"targeting": {"platforms": ["windows"]}}),
            400,
            "invalid_platform",
        ),
        (
            json!({"rollout_action": "explode"}),
            400,
            "invalid_rollout_action",
        ),
        (json!({"rollout_action": "pause"}), 409, "no_rollout"),
        (json!({"rollout_percentage_bps": 500}), 409, "no_rollout"),
        (
            json!({"rollout_bundle": "9.9.9", "rollout_percentage_bps": 100}),
            404,
            "bundle_not_found",
        ),
        (
            json!({"rollout_bundle": "1.0.0", "rollout_percentage_bps": 100}),
            409,
            "rollout_same_as_stable",
        ),
        // Several changes in one request: all or nothing.
        (
            json!({"ios": false, "rollout_bundle": "1.1.0", "rollout_percentage_bps": 20000}),
            400,
            "invalid_percentage",
        ),
        (
            json!({"bundle": "1.1.0", "public": false, "rollout_action": "pause"}),
            409,
            "no_rollout",
        ),
        (
            json!({"targeting": {"platforms": ["ios"]}, "rollout_bundle": "1.1.0", "rollout_percentage_bps": 100, "ramp": {"steps_bps": []}}),
            400,
            "invalid_ramp",
        ),
    ];
    for (body, status, code) in cases {
        let (st, answer) = s.patch_production(body.clone()).await;
        assert_eq!(
            (st, answer["error"].as_str()),
            (status, Some(code)),
            "{body}: {answer}"
        );
    }
    assert_eq!(production(&s).await, before);
    let history = get(
        &s,
        &format!("/api/v1/apps/{APP}/channels/production/history"),
    )
    .await;
    assert_eq!(history["history"].as_array().unwrap().len(), 1, "{history}");

    // Good settings are stored and shown; partial policies keep the rest.
    let view = patch_ok(
        &s,
        json!({
            "targeting": {"platforms": ["ios"], "os_version": ">=17"},
            "auto_pause": {"enabled": true, "action": "notify"},
            "ramp": {"enabled": true, "steps_bps": [1000, 10000], "min_dwell_minutes": 5},
        }),
    )
    .await;
    assert_eq!(view["targeting"]["platforms"], json!(["ios"]));
    assert_eq!(view["targeting"]["os_version"], ">=17");
    assert_eq!(view["auto_pause"]["enabled"], true);
    assert_eq!(view["auto_pause"]["action"], "notify");
    assert_eq!(view["auto_pause"]["window_minutes"], 60);
    assert_eq!(view["ramp"]["steps_bps"], json!([1000, 10000]));
    assert_eq!(view["ramp"]["min_attempts"], 100);
    // An Android device that would otherwise be offered 1.0.0.
    let (status, body) = s
        .post(
            "/updates",
            &with(device_body(), json!({"version_name": "0.9.0"})),
        )
        .await;
    assert_eq!(status, 200);
    assert_refusal(&body, "device_not_targeted", "blocked");

    let viewer = create_key(&s.data_dir, "viewer", "viewer", &[]);
    let (status, _) = s
        .api_as(
            &viewer,
            Method::PATCH,
            &format!("/api/v1/apps/{APP}/channels/production"),
            Some(&json!({"rollout_bundle": "1.1.0", "rollout_percentage_bps": 100})),
        )
        .await;
    assert_eq!(status, 403);
    let (status, _) = s
        .api_as(
            &viewer,
            Method::GET,
            &format!("/api/v1/apps/{APP}/channels/production/history"),
            None,
        )
        .await;
    assert_eq!(status, 200);
}

async fn schedules(s: &Server) -> Vec<Value> {
    get(s, &format!("/api/v1/apps/{APP}/schedules")).await["schedules"]
        .as_array()
        .unwrap()
        .clone()
}

#[tokio::test]
async fn schedules_run_when_due_fail_when_refused_and_can_be_cancelled() {
    let s = Server::start_with(&FAST_LOOP).await;
    s.seed("1.0.0").await;
    s.bundle("1.1.0").await;
    s.bundle("1.2.0").await;
    let path = format!("/api/v1/apps/{APP}/schedules");

    let run_at = now_ms() + 2000;
    let (status, created) = s
        .api(
            Method::POST,
            &path,
            Some(&json!({"channel": "production", "run_at": run_at, "bundle": "1.1.0", "rollout_percentage_bps": 2500})),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["action"], "start_rollout");
    let id = created["id"].as_i64().unwrap();

    // One that will be refused when it runs: its bundle is deleted first.
    let (status, doomed) = s
        .api(
            Method::POST,
            &path,
            Some(&json!({"channel": "production", "run_at": now_ms() + 5000, "bundle": "1.2.0"})),
        )
        .await;
    assert_eq!(status, 201, "{doomed}");
    let (status, body) = s
        .api(
            Method::DELETE,
            // Forced: a pending schedule names it (bundle_in_use otherwise).
            &format!("/api/v1/apps/{APP}/bundles/1.2.0?force=true"),
            None,
        )
        .await;
    assert!(status == 200 || status == 204, "{status} {body}");

    let (status, later) = s
        .api(
            Method::POST,
            &path,
            Some(&json!({"channel": "production", "run_at": "2099-01-01T00:00:00Z", "bundle": "1.0.0"})),
        )
        .await;
    assert_eq!(status, 201, "{later}");
    assert_eq!(later["run_at"], "2099-01-01T00:00:00.000Z");

    let done = eventually("the schedule to run", || async {
        schedules(&s)
            .await
            .into_iter()
            .find(|x| x["id"] == id && x["status"] == "done")
    })
    .await;
    let executed_at = done["executed_at"].as_str().unwrap().to_string();
    assert!(
        *executed_at >= *created["run_at"].as_str().unwrap(),
        "{done}"
    );
    let view = production(&s).await;
    assert_eq!(view["rollout"]["bundle"], "1.1.0");
    assert_eq!(view["rollout"]["percentage_bps"], 2500);
    let history = get(
        &s,
        &format!("/api/v1/apps/{APP}/channels/production/history?limit=1"),
    )
    .await;
    assert_eq!(history["history"][0]["actor"], format!("schedule:{id}"));
    assert_eq!(history["history"][0]["reason"], "rollout_start");

    let failed = eventually("the refused schedule to fail", || async {
        schedules(&s)
            .await
            .into_iter()
            .find(|x| x["id"] == doomed["id"] && x["status"] == "failed")
    })
    .await;
    assert!(
        failed["result"]
            .as_str()
            .unwrap()
            .contains("bundle_deleted"),
        "{failed}"
    );

    let cancel = format!("{path}/{}", later["id"]);
    let (status, body) = s.api(Method::DELETE, &cancel, None).await;
    assert_eq!(
        (status, &body["status"]),
        (200, &json!("cancelled")),
        "{body}"
    );
    let (status, body) = s.api(Method::DELETE, &cancel, None).await;
    assert_eq!(
        (status, &body["error"]),
        (409, &json!("schedule_not_pending"))
    );
    let (status, body) = s.api(Method::DELETE, &format!("{path}/999999"), None).await;
    assert_eq!(
        (status, &body["error"]),
        (404, &json!("schedule_not_found"))
    );

    for (body, status, code) in [
        (
            json!({"channel": "production", "run_at": now_ms() - 1000, "bundle": "1.1.0"}),
            400,
            "invalid_run_at",
        ),
        (
            json!({"channel": "production", "run_at": "tomorrow", "bundle": "1.1.0"}),
            400,
            "invalid_run_at",
        ),
        (
            json!({"channel": "production", "run_at": "2099-01-01T00:00:00Z", "bundle": "9.9.9"}),
            404,
            "bundle_not_found",
        ),
        (
            json!({"channel": "nope", "run_at": "2099-01-01T00:00:00Z", "bundle": "1.1.0"}),
            404,
            "channel_not_found",
        ),
        (
            json!({"channel": "production", "run_at": "2099-01-01T00:00:00Z", "bundle": "1.1.0", "rollout_percentage_bps": 10001}),
            400,
            "invalid_percentage",
        ),
    ] {
        let (st, answer) = s.api(Method::POST, &path, Some(&body)).await;
        assert_eq!(
            (st, answer["error"].as_str()),
            (status, Some(code)),
            "{body}: {answer}"
        );
    }
    assert_eq!(schedules(&s).await.len(), 3);
}

#[tokio::test]
async fn auto_pause_stops_a_failing_rollout() {
    let s = Server::start_with(&FAST_LOOP).await;
    s.seed("1.0.0").await;
    s.bundle("1.1.0").await;
    patch_ok(
        &s,
        json!({
            "rollout_bundle": "1.1.0",
            "rollout_percentage_bps": 10000,
            "auto_pause": {"enabled": true, "window_minutes": 1, "min_attempts": 20, "min_failures": 5,
                           "failure_rate_bps": 500, "confidence": 0.95, "action": "pause", "cooldown_minutes": 60},
        }),
    )
    .await;
    // Before any stats: the live assessment says what is missing.
    let before = get(
        &s,
        &format!("/api/v1/apps/{APP}/rollouts/decisions?channel=production"),
    )
    .await;
    assert_eq!(
        before["current"][0]["reason"], "not_enough_attempts",
        "{before}"
    );
    assert_eq!(before["current"][0]["attempts"], 0);
    assert_eq!(before["current"][0]["bundle"], "1.1.0");
    // 25 devices fail to install it, reported in one batch (one commit).
    let failures: Vec<Value> = (0..25)
        .map(|i| {
            with(
                device_body(),
                json!({"device_id": device(i), "action": "update_fail", "version_name": "1.1.0", "old_version_name": "1.0.0"}),
            )
        })
        .collect();
    let (status, body) = s.post("/stats", &Value::Array(failures)).await;
    assert_eq!(status, 200, "{body}");

    let paused = eventually("auto-pause", || async {
        let view = production(&s).await;
        (view["rollout"]["paused"] == true).then_some(view)
    })
    .await;
    assert!(paused["rollout"]["auto_pause_triggered_at"].is_string());
    let decisions = get(
        &s,
        &format!("/api/v1/apps/{APP}/rollouts/decisions?channel=production"),
    )
    .await;
    let decision = decisions["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["action"] == "paused")
        .cloned()
        .expect("a paused decision");
    assert_eq!(decision["reason"], "auto_pause_triggered");
    // Paused, no ramp: nothing left to assess.
    assert_eq!(decisions["current"], json!([]));
    assert_eq!(
        (decision["attempts"].as_i64(), decision["failures"].as_i64()),
        (Some(25), Some(25))
    );
    assert_eq!(decision["failure_rate"], 1.0);
    assert_eq!(decision["threshold_bps"], 500);
    // Wilson lower bound of 25/25 at 95 %: n / (n + z²).
    let z: f64 = 1.959_963_984_540_054;
    let expected = 25.0 / (25.0 + z * z);
    assert!(
        (decision["wilson_lower_bound"].as_f64().unwrap() - expected).abs() < 1e-6,
        "{decision}"
    );

    // Nobody new gets it; a device on it keeps it.
    assert_eq!(offered(&s, &device(100), "1.0.0").await, None);
    assert_eq!(offered(&s, &device(101), "1.1.0").await, None);
    let history = get(
        &s,
        &format!("/api/v1/apps/{APP}/channels/production/history?limit=1"),
    )
    .await;
    assert_eq!(history["history"][0]["actor"], "control-loop");
    assert_eq!(history["history"][0]["reason"], "auto_pause");
    assert_eq!(history["history"][0]["rollout_paused"], true);
    // The pause is counted once in /metrics.
    let (_, samples) = crate::metrics::scrape(&s).await;
    assert_eq!(
        crate::metrics::value_of(
            &samples,
            "updraft_rollout_control_outcomes_total",
            &[("action", "paused"), ("reason", "auto_pause_triggered")]
        ),
        Some(1.0)
    );
}
