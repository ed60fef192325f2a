//! `POST /updates` as the plugin sees it.

use crate::harness::*;
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn a_device_on_an_older_bundle_gets_the_channel_bundle() {
    let s = Server::start().await;
    s.seed("1.1.0").await;
    let (status, body) = s.post("/updates", &device_body()).await;
    assert_eq!(status, 200);
    assert_plugin_success(&body);
    assert_eq!(body["version"], "1.1.0");
    assert_eq!(
        body["url"],
        format!("https://cdn.example.com/{APP}/1.1.0.zip")
    );
    assert_eq!(body["checksum"], CHECKSUM);
    assert_eq!(body["session_key"], "");
    assert!(
        body.get("manifest").is_none(),
        "no manifest key without files: {body}"
    );
}

#[tokio::test]
async fn checksums_registered_in_upper_case_are_served_lower_case() {
    let s = Server::start().await;
    s.seed("1.1.0").await;
    let (st, b) = s
        .api(
            Method::POST,
            &format!("/api/v1/apps/{APP}/bundles"),
            Some(
                &json!({"version": "1.2.0", "external_url": "https://cdn.example.com/1.2.0.zip",
                         "checksum": CHECKSUM.to_uppercase(), "channel": "production"}),
            ),
        )
        .await;
    assert_eq!(st, 201, "{b}");
    let (_, body) = s.post("/updates", &device_body()).await;
    assert_eq!(body["version"], "1.2.0");
    assert_eq!(body["checksum"], CHECKSUM);
}

#[tokio::test]
async fn refusals_carry_kind_and_http_200() {
    let s = Server::start().await;
    s.seed("1.1.0").await;
    // Same bundle as running → up_to_date.
    let (st, b) = s
        .post(
            "/updates",
            &with(device_body(), json!({"version_name": "1.1.0"})),
        )
        .await;
    assert_eq!(st, 200);
    assert_refusal(&b, "no_new_version_available", "up_to_date");
    // A named channel that does not exist falls back to the public one
    // (docs/device-api.md: a stored defaultChannel must not strand a device).
    let (st, b) = s
        .post(
            "/updates",
            &with(
                device_body(),
                json!({"defaultChannel": "staging", "version_name": "1.1.0"}),
            ),
        )
        .await;
    assert_eq!(st, 200);
    assert_refusal(&b, "no_new_version_available", "up_to_date");
    // Unknown app: Updraft answers app_not_found with HTTP 200.
    let (st, b) = s
        .post(
            "/updates",
            &with(device_body(), json!({"app_id": "com.unknown.app"})),
        )
        .await;
    assert_eq!(st, 200);
    assert_refusal(&b, "app_not_found", "failed");
}

#[tokio::test]
async fn major_upgrades_are_blocked_by_default() {
    let s = Server::start().await;
    s.seed("2.0.0").await;
    let (st, b) = s.post("/updates", &device_body()).await;
    assert_eq!(st, 200);
    assert_refusal(&b, "disable_auto_update_to_major", "blocked");
    assert_eq!(b["version"], "2.0.0");
    assert_eq!(b["major"], true);
    assert_eq!(b["old"], "1.0.0");
    // With the policy off, the same device updates.
    let (st, _) = s
        .patch_production(json!({"disable_auto_update": "none"}))
        .await;
    assert_eq!(st, 200);
    let (_, b) = s.post("/updates", &device_body()).await;
    assert_plugin_success(&b);
    assert_eq!(b["version"], "2.0.0");
}

#[tokio::test]
async fn platform_and_build_flags_block_in_order() {
    let s = Server::start().await;
    s.seed("1.1.0").await;
    let (st, _) = s
        .patch_production(json!({"allow_prod": false, "allow_emulator": false}))
        .await;
    assert_eq!(st, 200);
    let (_, b) = s.post("/updates", &device_body()).await;
    assert_refusal(&b, "disable_prod_build", "blocked");
    let (_, b) = s
        .post(
            "/updates",
            &with(
                device_body(),
                json!({"is_prod": false, "is_emulator": true}),
            ),
        )
        .await;
    assert_refusal(&b, "disable_emulator", "blocked");
    // An android-only channel is not the public channel for iOS devices.
    let (st, _) = s
        .patch_production(json!({"ios": false, "allow_prod": true}))
        .await;
    assert_eq!(st, 200);
    let (_, b) = s
        .post("/updates", &with(device_body(), json!({"platform": "ios"})))
        .await;
    assert_refusal(&b, "no_channel", "failed");
}

#[tokio::test]
async fn a_device_override_wins_over_the_public_channel() {
    let s = Server::start().await;
    s.seed("1.1.0").await;
    s.bundle("1.2.0-beta.1").await;
    let (st, b) = s
        .api(
            Method::POST,
            &format!("/api/v1/apps/{APP}/channels"),
            Some(&json!({"name": "beta", "bundle": "1.2.0-beta.1"})),
        )
        .await;
    assert_eq!(st, 201, "{b}");
    let (st, b) = s
        .api(
            Method::PUT,
            &format!(
                "/api/v1/apps/{APP}/devices/{}/channel",
                DEVICE.to_uppercase()
            ),
            Some(&json!({"channel": "beta"})),
        )
        .await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["device_id"], DEVICE);
    let (_, b) = s.post("/updates", &device_body()).await;
    assert_plugin_success(&b);
    assert_eq!(b["version"], "1.2.0-beta.1");
    let (st, d) = s
        .api(
            Method::GET,
            &format!("/api/v1/apps/{APP}/devices/{DEVICE}"),
            None,
        )
        .await;
    assert_eq!(st, 200, "{d}");
    assert_eq!(d["channel_override"]["channel"], "beta", "{d}");
    assert_eq!(d["channel_override"]["source"], "admin", "{d}");
    // Another device still gets production.
    let other = with(
        device_body(),
        json!({"device_id": "00000000-0000-4000-8000-000000000002"}),
    );
    let (_, b) = s.post("/updates", &other).await;
    assert_eq!(b["version"], "1.1.0");
    // Unset: back to production.
    let (st, _) = s
        .api(
            Method::DELETE,
            &format!("/api/v1/apps/{APP}/devices/{DEVICE}/channel"),
            None,
        )
        .await;
    assert_eq!(st, 204);
    let (_, b) = s.post("/updates", &device_body()).await;
    assert_eq!(b["version"], "1.1.0");
}

#[tokio::test]
async fn builtin_channels_revert_devices_and_say_so_once_there() {
    let s = Server::start().await;
    s.seed("1.1.0").await;
    let (st, _) = s.patch_production(json!({"bundle": "builtin"})).await;
    assert_eq!(st, 200);
    let (_, b) = s
        .post(
            "/updates",
            &with(device_body(), json!({"version_name": "1.1.0"})),
        )
        .await;
    assert_plugin_success(&b);
    assert_eq!(b["version"], "builtin");
    let (_, b) = s
        .post(
            "/updates",
            &with(device_body(), json!({"version_name": "builtin"})),
        )
        .await;
    assert_refusal(&b, "already_on_builtin", "up_to_date");
}

#[tokio::test]
async fn a_device_with_a_public_key_is_never_offered_a_plain_bundle() {
    let s = Server::start().await;
    s.seed("1.1.0").await;
    let (_, b) = s
        .post(
            "/updates",
            &with(device_body(), json!({"key_id": "MIIBCgKCAQEAqJikYizo"})),
        )
        .await;
    assert_refusal(&b, "encryption_required", "blocked");
}

#[tokio::test]
async fn key_id_mismatch_is_refused_for_new_plugins() {
    let s = Server::start().await;
    s.seed("1.0.0").await;
    let enc_checksum = "ab".repeat(256);
    let (st, b) = s
        .api(
            Method::POST,
            &format!("/api/v1/apps/{APP}/bundles"),
            Some(&json!({"version": "1.1.0", "external_url": "https://cdn.example.com/1.1.0.zip",
                         "checksum": CHECKSUM, "encrypted_checksum": enc_checksum,
                         "session_key": "Dxhg4mYyD8LX9GnjsOXVMg==:S28cNvVjlJ6FuHgR038w", "key_id": "MIIBCgKCAQEAqJikYizo",
                         "channel": "production"})),
        )
        .await;
    assert_eq!(st, 201, "{b}");
    let (_, b) = s
        .post(
            "/updates",
            &with(device_body(), json!({"key_id": "MIIBCgKCAQEAzzzzzzzz"})),
        )
        .await;
    assert_refusal(&b, "key_id_mismatch", "blocked");
    let (_, b) = s
        .post(
            "/updates",
            &with(device_body(), json!({"key_id": "MIIBCgKCAQEAqJikYizo"})),
        )
        .await;
    assert_plugin_success(&b);
    assert_eq!(b["checksum"], enc_checksum);
    assert_eq!(
        b["session_key"],
        "Dxhg4mYyD8LX9GnjsOXVMg==:S28cNvVjlJ6FuHgR038w"
    );
}

#[tokio::test]
async fn link_and_comment_reach_plugins_that_support_them() {
    let s = Server::start().await;
    s.seed("1.0.0").await;
    let (st, b) = s
        .api(
            Method::POST,
            &format!("/api/v1/apps/{APP}/bundles"),
            Some(&json!({"version": "1.1.0", "external_url": "https://cdn.example.com/1.1.0.zip", "checksum": CHECKSUM,
                         "link": "https://example.com/changelog", "comment": "Faster start", "channel": "production"})),
        )
        .await;
    assert_eq!(st, 201, "{b}");
    let (_, b) = s.post("/updates", &device_body()).await;
    assert_eq!(b["link"], "https://example.com/changelog");
    assert_eq!(b["comment"], "Faster start");
    let (_, b) = s
        .post(
            "/updates",
            &with(device_body(), json!({"plugin_version": "8.34.0"})),
        )
        .await;
    assert_plugin_success(&b);
    assert!(b.get("link").is_none() && b.get("comment").is_none(), "{b}");
}

#[tokio::test]
async fn malformed_update_checks_get_4xx_with_codes_and_change_nothing() {
    let s = Server::start().await;
    s.seed("1.1.0").await;
    let (st, b) = s.post_raw("/updates", b"{not json".to_vec()).await;
    assert_eq!(
        (st, b["error"].as_str()),
        (400, Some("invalid_json_parse_body"))
    );
    let (st, b) = s.post("/updates", &json!({})).await;
    assert_eq!((st, b["error"].as_str()), (400, Some("invalid_json_body")));
    let (st, b) = s.post("/updates", &json!({"platform": "android"})).await;
    assert_eq!((st, b["error"].as_str()), (400, Some("missing_device_id")));
    let (st, b) = s
        .post(
            "/updates",
            &with(device_body(), json!({"device_id": 12345})),
        )
        .await;
    assert_eq!((st, b["error"].as_str()), (400, Some("invalid_json_body")));
    let (st, b) = s
        .post(
            "/updates",
            &with(device_body(), json!({"version_build": "not-a-version"})),
        )
        .await;
    assert_eq!((st, b["error"].as_str()), (400, Some("semver_error")));
    let (st, b) = s
        .post(
            "/updates",
            &with(device_body(), json!({"platform": "windows"})),
        )
        .await;
    assert_eq!((st, b["error"].as_str()), (400, Some("invalid_json_body")));
    let (st, b) = s
        .post(
            "/updates",
            &with(device_body(), json!({"key_id": "x".repeat(26)})),
        )
        .await;
    assert_eq!((st, b["error"].as_str()), (400, Some("invalid_json_body")));
    // Every /updates refusal carries a kind the plugin knows, malformed input included.
    let (_, b) = s.post("/updates", &json!({})).await;
    assert_eq!(b["kind"], "failed", "{b}");
    let huge = format!("{{\"pad\":\"{}\"}}", "x".repeat(2 * 1024 * 1024));
    let (st, b) = s.post_raw("/updates", huge.into_bytes()).await;
    assert_eq!((st, b["error"].as_str()), (413, Some("body_too_large")));
    // None of that registered a device.
    let (st, b) = s
        .api(Method::GET, &format!("/api/v1/apps/{APP}/devices"), None)
        .await;
    assert_eq!(st, 200);
    assert_eq!(b["total"], 0, "{b}");
}

#[tokio::test]
async fn health_routes_and_cors() {
    let s = Server::start().await;
    for path in ["/healthz", "/readyz", "/updates", "/stats"] {
        let (st, b) = s.request(Method::GET, path, None).await;
        assert_eq!((st, b["status"].as_str()), (200, Some("ok")), "{path}");
    }
    let resp = s
        .http
        .request(Method::OPTIONS, format!("{}/updates", s.url))
        .header("Origin", "capacitor://localhost")
        .header("Access-Control-Request-Method", "POST")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 204);
    assert_eq!(
        resp.headers()["access-control-allow-origin"],
        "capacitor://localhost"
    );
    let resp = s
        .http
        .post(format!("{}/stats", s.url))
        .header("Origin", "ionic://localhost")
        .json(&serde_json::json!([]))
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.headers()["access-control-allow-origin"],
        "ionic://localhost"
    );
    let resp = s
        .http
        .post(format!("{}/updates", s.url))
        .header("Origin", "https://evil.example")
        .json(&device_body())
        .send()
        .await
        .unwrap();
    assert!(resp.headers().get("access-control-allow-origin").is_none());
    let (st, b) = s.request(Method::GET, "/nope", None).await;
    assert_eq!((st, b["error"].as_str()), (404, Some("not_found")));
    let (st, b) = s.request(Method::PATCH, "/updates", None).await;
    assert_eq!((st, b["error"].as_str()), (405, Some("method_not_allowed")));
}

#[tokio::test]
async fn manifest_size_answers_for_known_apps() {
    let s = Server::start().await;
    s.seed("1.1.0").await;
    let body = with(device_body(), json!({"version": "1.1.0", "manifest": []}));
    let (st, b) = s.post("/updates/manifest_size", &body).await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["totalSize"], 0, "{b}");
    assert_eq!(b["files"], json!([]));
}

/// One app per case: a public `production` channel on `bundle`, then `settings`.
struct PolicyCase {
    name: &'static str,
    bundle: &'static str,
    min_update_version: Option<&'static str>,
    settings: serde_json::Value,
    /// Pin the device with an admin override (reaches channels the public lookup skips).
    pin: bool,
    device: serde_json::Value,
    expect_error: Option<(&'static str, &'static str)>,
}

#[tokio::test]
async fn every_channel_rule_is_observable_over_http() {
    let s = Server::start().await;
    let none = json!({});
    let cases = vec![
        PolicyCase {
            name: "minor policy",
            bundle: "1.1.0",
            min_update_version: None,
            settings: json!({"disable_auto_update": "minor"}),
            pin: false,
            device: none.clone(),
            expect_error: Some(("disable_auto_update_to_minor", "blocked")),
        },
        PolicyCase {
            name: "patch policy",
            bundle: "1.0.1",
            min_update_version: None,
            settings: json!({"disable_auto_update": "patch"}),
            pin: false,
            device: none.clone(),
            expect_error: Some(("disable_auto_update_to_patch", "blocked")),
        },
        PolicyCase {
            name: "patch policy, same x.y.z",
            bundle: "1.0.0-hotfix.1",
            min_update_version: None,
            settings: json!({"disable_auto_update": "patch", "disable_auto_update_under_native": false}),
            pin: false,
            device: none.clone(),
            expect_error: None,
        },
        PolicyCase {
            name: "metadata without min",
            bundle: "1.1.0",
            min_update_version: None,
            settings: json!({"disable_auto_update": "metadata"}),
            pin: false,
            device: none.clone(),
            expect_error: Some(("misconfigured_channel", "failed")),
        },
        PolicyCase {
            name: "metadata above native",
            bundle: "1.1.0",
            min_update_version: Some("1.0.5"),
            settings: json!({"disable_auto_update": "metadata"}),
            pin: false,
            device: none.clone(),
            expect_error: Some(("disable_auto_update_to_metadata", "blocked")),
        },
        PolicyCase {
            name: "metadata satisfied",
            bundle: "1.1.0",
            min_update_version: Some("1.0.0"),
            settings: json!({"disable_auto_update": "metadata"}),
            pin: false,
            device: none.clone(),
            expect_error: None,
        },
        PolicyCase {
            name: "under native",
            bundle: "0.9.0",
            min_update_version: None,
            settings: json!({}),
            pin: false,
            device: none.clone(),
            expect_error: Some(("disable_auto_update_under_native", "blocked")),
        },
        PolicyCase {
            name: "dev build",
            bundle: "1.1.0",
            min_update_version: None,
            settings: json!({"allow_dev": false}),
            pin: false,
            device: json!({"is_prod": false}),
            expect_error: Some(("disable_dev_build", "blocked")),
        },
        PolicyCase {
            name: "physical device",
            bundle: "1.1.0",
            min_update_version: None,
            settings: json!({"allow_device": false}),
            pin: false,
            device: none.clone(),
            expect_error: Some(("disable_device", "blocked")),
        },
        PolicyCase {
            name: "ios disabled, pinned",
            bundle: "1.1.0",
            min_update_version: None,
            settings: json!({"ios": false}),
            pin: true,
            device: json!({"platform": "ios"}),
            expect_error: Some(("disabled_platform_ios", "blocked")),
        },
        PolicyCase {
            name: "android disabled, pinned",
            bundle: "1.1.0",
            min_update_version: None,
            settings: json!({"android": false}),
            pin: true,
            device: none.clone(),
            expect_error: Some(("disabled_platform_android", "blocked")),
        },
        PolicyCase {
            name: "plugin v4",
            bundle: "1.1.0",
            min_update_version: None,
            settings: json!({}),
            pin: false,
            device: json!({"plugin_version": "4.13.0"}),
            expect_error: Some(("unsupported_plugin_version", "failed")),
        },
        PolicyCase {
            name: "electron",
            bundle: "1.1.0",
            min_update_version: None,
            settings: json!({}),
            pin: false,
            device: json!({"platform": "electron"}),
            expect_error: None,
        },
        PolicyCase {
            name: "builtin on a plugin too old to revert",
            bundle: "1.1.0",
            min_update_version: None,
            settings: json!({"bundle": "builtin"}),
            pin: false,
            device: json!({"plugin_version": "6.1.0", "version_name": "1.1.0"}),
            expect_error: Some(("revert_to_builtin_plugin_version_too_old", "failed")),
        },
        PolicyCase {
            name: "version_build coerced",
            bundle: "1.1.0",
            min_update_version: None,
            settings: json!({}),
            pin: false,
            device: json!({"version_build": "v1", "version_name": "builtin"}),
            expect_error: None,
        },
    ];
    for (i, case) in cases.into_iter().enumerate() {
        let app = format!("com.case{i}.app");
        let (st, b) = s
            .api(Method::POST, "/api/v1/apps", Some(&json!({"app_id": app})))
            .await;
        assert_eq!(st, 201, "{}: {b}", case.name);
        let mut bundle = json!({"version": case.bundle, "external_url": "https://cdn.example.com/b.zip", "checksum": CHECKSUM});
        if let Some(min) = case.min_update_version {
            bundle["min_update_version"] = json!(min);
        }
        let (st, b) = s
            .api(
                Method::POST,
                &format!("/api/v1/apps/{app}/bundles"),
                Some(&bundle),
            )
            .await;
        assert_eq!(st, 201, "{}: {b}", case.name);
        let mut channel = json!({"name": "production", "public": true, "bundle": case.bundle});
        for (k, v) in case.settings.as_object().unwrap() {
            channel[k] = v.clone();
        }
        let (st, b) = s
            .api(
                Method::POST,
                &format!("/api/v1/apps/{app}/channels"),
                Some(&channel),
            )
            .await;
        assert_eq!(st, 201, "{}: {b}", case.name);
        if case.pin {
            let (st, b) = s
                .api(
                    Method::PUT,
                    &format!("/api/v1/apps/{app}/devices/{DEVICE}/channel"),
                    Some(&json!({"channel": "production"})),
                )
                .await;
            assert_eq!(st, 200, "{}: {b}", case.name);
        }
        let mut device = with(device_body(), json!({"app_id": app}));
        device = with(device, case.device.clone());
        let (st, body) = s.post("/updates", &device).await;
        assert_eq!(st, 200, "{}: {body}", case.name);
        match case.expect_error {
            Some((code, kind)) => {
                assert_eq!(body["error"], code, "{}: {body}", case.name);
                assert_eq!(body["kind"], kind, "{}: {body}", case.name);
            }
            None => {
                assert_plugin_success(&body);
                assert_eq!(body["version"], case.bundle, "{}: {body}", case.name);
            }
        }
    }
}
