//! The audit log: every management change once, with who, what, before and
//! after; refused requests leave nothing; filters, pages and the CLI.

use crate::harness::{create_key, Server, APP, CHECKSUM, DEVICE};
use reqwest::Method;
use serde_json::{json, Value};

async fn all_entries(s: &Server, key: &str, query: &str) -> Vec<Value> {
    let (st, page) = s
        .api_as(
            key,
            Method::GET,
            &format!("/api/v1/audit?limit=500{query}"),
            None,
        )
        .await;
    assert_eq!(st, 200, "{page}");
    page["entries"].as_array().unwrap().clone()
}

async fn count(s: &Server) -> usize {
    all_entries(s, &s.key.clone(), "").await.len()
}

/// Calls the API and insists on the status.
async fn call(s: &Server, method: Method, path: &str, body: Option<Value>, status: u16) -> Value {
    let (st, b) = s.api(method, path, body.as_ref()).await;
    assert_eq!(st, status, "{path}: {b}");
    b
}

fn external_bundle(version: &str) -> Value {
    json!({
        "version": version,
        "external_url": format!("https://cdn.example.com/{version}.zip"),
        "checksum": CHECKSUM,
    })
}

#[tokio::test]
async fn every_management_change_is_recorded_once() {
    let s = Server::start().await;
    let apps = "/api/v1/apps";
    let app = format!("/api/v1/apps/{APP}");
    call(&s, Method::POST, apps, Some(json!({"app_id": APP})), 201).await;
    call(
        &s,
        Method::PATCH,
        &app,
        Some(json!({"name": "Renamed"})),
        200,
    )
    .await;
    call(
        &s,
        Method::POST,
        &format!("{app}/bundles"),
        Some(external_bundle("1.0.0")),
        201,
    )
    .await;
    call(
        &s,
        Method::POST,
        &format!("{app}/bundles"),
        Some(external_bundle("1.0.1")),
        201,
    )
    .await;
    call(
        &s,
        Method::PATCH,
        &format!("{app}/bundles/1.0.0"),
        Some(json!({"comment": "first"})),
        200,
    )
    .await;
    call(
        &s,
        Method::DELETE,
        &format!("{app}/bundles/1.0.1"),
        None,
        204,
    )
    .await;
    call(
        &s,
        Method::POST,
        &format!("{app}/channels"),
        Some(json!({"name": "beta"})),
        201,
    )
    .await;
    call(
        &s,
        Method::PATCH,
        &format!("{app}/channels/beta"),
        Some(json!({"allow_emulator": false})),
        200,
    )
    .await;
    // Release changes: a stable bundle, an upload that creates its channel
    // and goes live there, a schedule made and cancelled.
    call(
        &s,
        Method::PATCH,
        &format!("{app}/channels/beta"),
        Some(json!({"bundle": "1.0.0"})),
        200,
    )
    .await;
    let mut into_rollout = external_bundle("1.0.2");
    into_rollout["channel"] = json!("canary");
    // A channel that does not exist yet is created only on request.
    into_rollout["create_channel"] = json!(true);
    call(
        &s,
        Method::POST,
        &format!("{app}/bundles"),
        Some(into_rollout),
        201,
    )
    .await;
    let schedule = call(
        &s,
        Method::POST,
        &format!("{app}/schedules"),
        Some(json!({"channel": "beta", "bundle": "1.0.2", "run_at": "2099-01-01T00:00:00Z"})),
        201,
    )
    .await;
    let schedule_id = schedule["id"].as_i64().unwrap().to_string();
    call(
        &s,
        Method::DELETE,
        &format!("{app}/schedules/{schedule_id}"),
        None,
        200,
    )
    .await;
    let device = format!("{app}/devices/{DEVICE}/channel");
    call(
        &s,
        Method::PUT,
        &device,
        Some(json!({"channel": "beta"})),
        200,
    )
    .await;
    call(&s, Method::DELETE, &device, None, 204).await;
    let created = call(
        &s,
        Method::POST,
        "/api/v1/apikeys",
        Some(json!({"name": "ci", "role": "publisher", "app_id": APP})),
        201,
    )
    .await;
    let ci_secret = created["key"].as_str().unwrap().to_string();
    call(&s, Method::DELETE, "/api/v1/apikeys/ci", None, 204).await;
    // Revoking again changes nothing and records nothing.
    call(&s, Method::DELETE, "/api/v1/apikeys/ci", None, 204).await;
    let hook = call(
        &s,
        Method::POST,
        "/api/v1/webhooks",
        Some(json!({"url": "https://hooks.example.com/x", "app_id": APP})),
        201,
    )
    .await;
    let hook_secret = hook["secret"].as_str().unwrap().to_string();
    let hook_id = hook["id"].as_i64().unwrap();
    call(
        &s,
        Method::DELETE,
        &format!("/api/v1/webhooks/{hook_id}"),
        None,
        204,
    )
    .await;
    // Offline key changes on the data directory.
    let offline_secret = create_key(&s.data_dir, "offline", "viewer", &[]);
    s.cli_ok(&["apikey", "revoke", "offline"]);

    let entries = all_entries(&s, &s.key.clone(), "").await;
    let log: Vec<(String, String, String)> = entries
        .iter()
        .rev()
        .map(|e| {
            (
                e["actor"].as_str().unwrap().to_string(),
                e["action"].as_str().unwrap().to_string(),
                e["target"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let hook_target = hook_id.to_string();
    let expected: Vec<(&str, &str, &str)> = vec![
        ("cli:offline", "apikey.create", "admin"),
        ("key:admin", "app.create", APP),
        ("key:admin", "app.update", APP),
        ("key:admin", "bundle.create", "1.0.0"),
        ("key:admin", "bundle.create", "1.0.1"),
        ("key:admin", "bundle.update", "1.0.0"),
        ("key:admin", "bundle.delete", "1.0.1"),
        ("key:admin", "channel.create", "beta"),
        ("key:admin", "channel.update", "beta"),
        ("key:admin", "channel.release", "beta"),
        ("key:admin", "bundle.create", "1.0.2"),
        ("key:admin", "channel.create", "canary"),
        ("key:admin", "channel.release", "canary"),
        ("key:admin", "schedule.create", &schedule_id),
        ("key:admin", "schedule.cancel", &schedule_id),
        ("key:admin", "device.override.set", DEVICE),
        ("key:admin", "device.override.delete", DEVICE),
        ("key:admin", "apikey.create", "ci"),
        ("key:admin", "apikey.revoke", "ci"),
        ("key:admin", "webhook.create", &hook_target),
        ("key:admin", "webhook.delete", &hook_target),
        ("cli:offline", "apikey.create", "offline"),
        ("cli:offline", "apikey.revoke", "offline"),
    ];
    let expected: Vec<(String, String, String)> = expected
        .into_iter()
        .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
        .collect();
    assert_eq!(log, expected);

    // Ids descend (newest first); times are RFC 3339.
    let ids: Vec<i64> = entries.iter().map(|e| e["id"].as_i64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "{ids:?}");
    assert!(entries
        .iter()
        .all(|e| e["at"].as_str().unwrap().ends_with('Z')));

    let find = |action: &str, target: &str| -> Value {
        entries
            .iter()
            .find(|e| e["action"] == action && e["target"] == target)
            .unwrap()
            .clone()
    };
    // Before and after are the API's views; creations have no before,
    // deletions no after.
    let app_update = find("app.update", APP);
    assert_eq!(app_update["app_id"], APP);
    assert_eq!(app_update["before"]["name"], APP);
    assert_eq!(app_update["after"]["name"], "Renamed");
    assert!(app_update["api_key_id"].as_i64().is_some());
    let created = find("bundle.create", "1.0.0");
    assert_eq!(created["before"], Value::Null);
    assert_eq!(created["after"]["version"], "1.0.0");
    assert_eq!(created["after"]["checksum"], CHECKSUM);
    let updated = find("bundle.update", "1.0.0");
    assert_eq!(updated["before"]["comment"], Value::Null);
    assert_eq!(updated["after"]["comment"], "first");
    let deleted = find("bundle.delete", "1.0.1");
    assert_eq!(deleted["before"]["version"], "1.0.1");
    assert_eq!(deleted["after"], Value::Null);
    let channel = find("channel.update", "beta");
    assert_eq!(channel["before"]["allow_emulator"], true);
    assert_eq!(channel["after"]["allow_emulator"], false);
    let set = find("device.override.set", DEVICE);
    assert_eq!(set["before"], Value::Null);
    assert_eq!(set["after"]["channel"], "beta");
    let unset = find("device.override.delete", DEVICE);
    assert_eq!(unset["before"]["channel"], "beta");
    assert_eq!(unset["after"], Value::Null);
    let revoked = find("apikey.revoke", "ci");
    assert_eq!(revoked["app_id"], APP);
    assert_eq!(revoked["before"]["revoked_at"], Value::Null);
    assert!(revoked["after"]["revoked_at"].is_string());
    let offline = find("apikey.create", "offline");
    assert_eq!(offline["api_key_id"], Value::Null);
    assert_eq!(offline["after"]["role"], "viewer");
    let hook_created = find("webhook.create", &hook_target);
    assert_eq!(hook_created["after"]["url"], "https://hooks.example.com/x");

    // No secret ever reaches the log.
    let text = serde_json::to_string(&entries).unwrap();
    for secret in [&ci_secret, &hook_secret, &offline_secret, &s.key] {
        assert!(
            !text.contains(secret.as_str()),
            "a secret is in the audit log"
        );
    }

    // Refused requests add nothing.
    let before = count(&s).await;
    call(
        &s,
        Method::POST,
        apps,
        Some(json!({"app_id": "not an id"})),
        400,
    )
    .await;
    call(&s, Method::POST, apps, Some(json!({"app_id": APP})), 409).await;
    call(
        &s,
        Method::PATCH,
        "/api/v1/apps/com.example.none",
        Some(json!({"name": "x"})),
        404,
    )
    .await;
    call(
        &s,
        Method::POST,
        &format!("{app}/bundles"),
        Some(json!({"version": "not semver", "external_url": "https://x.example.com/a.zip", "checksum": CHECKSUM})),
        400,
    )
    .await;
    call(
        &s,
        Method::DELETE,
        &format!("{app}/bundles/9.9.9"),
        None,
        404,
    )
    .await;
    call(
        &s,
        Method::PATCH,
        &format!("{app}/channels/beta"),
        Some(json!({"disable_auto_update": "sometimes"})),
        400,
    )
    .await;
    call(&s, Method::DELETE, &device, None, 404).await;
    call(&s, Method::DELETE, "/api/v1/apikeys/nobody", None, 404).await;
    call(
        &s,
        Method::POST,
        "/api/v1/webhooks",
        Some(json!({"url": "ftp://x"})),
        400,
    )
    .await;
    let viewer = create_key(&s.data_dir, "viewer", "viewer", &[]);
    let (st, _) = s
        .api_as(&viewer, Method::PATCH, &app, Some(&json!({"name": "no"})))
        .await;
    assert_eq!(st, 403);
    // Only the viewer key's own (offline) creation was added.
    let after = all_entries(&s, &s.key.clone(), "").await;
    assert_eq!(after.len(), before + 1);
    assert_eq!(after[0]["action"], "apikey.create");
    assert_eq!(after[0]["target"], "viewer");
}

#[tokio::test]
async fn the_audit_log_filters_pages_and_prints() {
    let s = Server::start().await;
    let other = "com.example.other";
    for app_id in [APP, other] {
        call(
            &s,
            Method::POST,
            "/api/v1/apps",
            Some(json!({"app_id": app_id})),
            201,
        )
        .await;
        for version in ["1.0.0", "1.0.1", "1.0.2"] {
            call(
                &s,
                Method::POST,
                &format!("/api/v1/apps/{app_id}/bundles"),
                Some(external_bundle(version)),
                201,
            )
            .await;
        }
    }
    // 1 offline key + 2 apps + 6 bundles.
    let everything = all_entries(&s, &s.key.clone(), "").await;
    assert_eq!(everything.len(), 9);

    let only = |entries: &[Value], key: &str| -> Vec<String> {
        entries
            .iter()
            .map(|e| e[key].as_str().unwrap_or("-").to_string())
            .collect()
    };
    let bundles = all_entries(&s, &s.key.clone(), "&action=bundle.").await;
    assert_eq!(only(&bundles, "action"), vec!["bundle.create"; 6]);
    let exact = all_entries(&s, &s.key.clone(), "&action=app.create").await;
    assert_eq!(only(&exact, "target"), vec![other, APP]);
    let offline = all_entries(&s, &s.key.clone(), "&actor=cli:offline").await;
    assert_eq!(only(&offline, "target"), vec!["admin"]);
    let of_app = all_entries(&s, &s.key.clone(), &format!("&app_id={APP}")).await;
    assert_eq!(of_app.len(), 4);
    assert!(of_app.iter().all(|e| e["app_id"] == APP));
    assert_eq!(all_entries(&s, &s.key.clone(), "&since=1h").await.len(), 9);
    assert_eq!(
        all_entries(&s, &s.key.clone(), "&until=2000-01-01")
            .await
            .len(),
        0
    );
    let (st, b) = s
        .api(Method::GET, "/api/v1/audit?since=yesterdayish", None)
        .await;
    assert_eq!((st, b["error"].as_str()), (400, Some("invalid_time")));

    // Keyset pages of 4 walk through everything once.
    let mut seen = Vec::new();
    let mut before_id: Option<i64> = None;
    loop {
        let query = match before_id {
            Some(id) => format!("/api/v1/audit?limit=4&before_id={id}"),
            None => "/api/v1/audit?limit=4".to_string(),
        };
        let (st, page) = s.api(Method::GET, &query, None).await;
        assert_eq!(st, 200);
        let entries = page["entries"].as_array().unwrap();
        assert!(entries.len() <= 4);
        seen.extend(entries.iter().map(|e| e["id"].as_i64().unwrap()));
        match page["next_before_id"].as_i64() {
            Some(next) => before_id = Some(next),
            None => break,
        }
    }
    assert_eq!(
        seen,
        everything
            .iter()
            .map(|e| e["id"].as_i64().unwrap())
            .collect::<Vec<_>>()
    );

    // An app-scoped key sees only its app, whatever it asks for.
    let scoped = create_key(&s.data_dir, "scoped", "viewer", &["--app", APP]);
    let mine = all_entries(&s, &scoped, "").await;
    // Its own creation is about the app too.
    assert_eq!(
        only(&mine, "action"),
        vec![
            "apikey.create",
            "bundle.create",
            "bundle.create",
            "bundle.create",
            "app.create"
        ]
    );
    assert!(mine.iter().all(|e| e["app_id"] == APP));
    let (st, _) = s
        .api_as(
            &scoped,
            Method::GET,
            &format!("/api/v1/audit?app_id={other}"),
            None,
        )
        .await;
    assert_eq!(st, 403);

    // The CLI: a table, and JSON.
    let table = s.cli_ok(&["audit", APP, "--action", "bundle.create", "--limit", "2"]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "{table}");
    assert!(
        lines[0].starts_with("ID") && lines[0].contains("ACTOR"),
        "{table}"
    );
    let newest: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(
        newest[3..],
        ["key:admin", "bundle.create", APP, "1.0.2", "created"],
        "{table}"
    );
    let out = s.cli_ok(&["audit", "--actor", "cli:offline", "--since", "7d", "--json"]);
    let page: Value = serde_json::from_str(&out).unwrap();
    let targets = only(page["entries"].as_array().unwrap(), "target");
    assert_eq!(targets, vec!["scoped", "admin"]);
}
