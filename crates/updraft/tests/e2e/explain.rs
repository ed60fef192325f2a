//! `updraft device explain`: the CLI against a running server explains what
//! a registered device was just answered, naming the rule behind it and the
//! command that would change it.

use crate::harness::*;
use reqwest::Method;
use serde_json::{json, Value};

/// The device checks for an update with `body`; `device explain` then runs
/// on what the registry recorded. Returns the device's answer, the
/// explanation (`--json`) and its text.
async fn check_then_explain(s: &Server, body: &Value) -> (Value, Value, String) {
    let (status, answer) = s.post("/updates", body).await;
    assert_eq!(status, 200, "{answer}");
    let json = s.cli_ok(&["device", "explain", DEVICE, APP, "--json"]);
    let explained: Value = serde_json::from_str(&json).expect("--json prints JSON");
    let text = s.cli_ok(&["device", "explain", DEVICE, APP]);
    // The explanation's answer is the one the device got.
    let code = answer["error"].as_str().unwrap_or("get");
    assert_eq!(explained["answer"]["outcome"], code, "{explained}");
    assert_eq!(explained["answer"]["body"], answer, "{explained}");
    (answer, explained, text)
}

/// The one rule that refused, by name.
fn blocking_rule(explained: &Value) -> String {
    let refused: Vec<&Value> = explained["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .filter(|r| r["outcome"] == "refused")
        .collect();
    assert_eq!(refused.len(), 1, "{explained}");
    refused[0]["rule"].as_str().unwrap().to_string()
}

/// The device was refused with `code` (of `kind`); the explanation names
/// `rule` for it, in JSON and text, and prints `command`.
async fn assert_explained_refusal(
    s: &Server,
    body: &Value,
    code: &str,
    kind: &str,
    rule: &str,
    command: &str,
) -> Value {
    let (answer, explained, text) = check_then_explain(s, body).await;
    assert_refusal(&answer, code, kind);
    assert_eq!(blocking_rule(&explained), rule, "{explained}");
    assert_eq!(explained["answer"]["kind"], kind);
    let refused_line = text
        .lines()
        .find(|l| l.trim_start().starts_with("refused"))
        .unwrap_or_else(|| panic!("no refused rule in:\n{text}"));
    assert!(
        refused_line.contains(rule) && refused_line.contains(&format!("[{code}]")),
        "{refused_line}"
    );
    assert!(text.contains(&format!("Answer: {code} ({kind})")), "{text}");
    assert!(text.contains(command), "no `{command}` in:\n{text}");
    let commands: Vec<&str> = explained["remedies"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["command"].as_str())
        .collect();
    assert!(commands.contains(&command), "{commands:?}");
    explained
}

#[tokio::test]
async fn explain_names_the_rule_behind_each_answer() {
    let s = Server::start().await;
    s.seed("1.0.1").await;
    let device = device_body();

    // Offered: every rule passes, the public channel serves the bundle.
    let (_, explained, text) = check_then_explain(&s, &device).await;
    assert_eq!(explained["channel"], "production");
    assert_eq!(explained["channel_source"], "public");
    assert_eq!(explained["answer"]["version"], "1.0.1");
    assert!(explained["rules"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["outcome"] == "ok" || r["outcome"] == "skipped"));
    assert!(text.contains("Channel: production (public)"), "{text}");
    assert!(text.contains("Answer: bundle 1.0.1"), "{text}");

    // up_to_date: it runs the channel's bundle already.
    let on_it = with(device.clone(), json!({"version_name": "1.0.1"}));
    assert_explained_refusal(
        &s,
        &on_it,
        "no_new_version_available",
        "up_to_date",
        "new_version",
        "updraft bundle upload com.example.app --bundle VERSION --path DIST --channel production",
    )
    .await;

    // blocked: the channel the device is assigned to does not serve Android
    // (without the override, resolution would skip it: no_channel).
    s.cli_ok(&["device", "set", DEVICE, APP, "--channel", "production"]);
    let (st, b) = s.patch_production(json!({"android": false})).await;
    assert_eq!(st, 200, "{b}");
    assert_explained_refusal(
        &s,
        &device,
        "disabled_platform_android",
        "blocked",
        "platform",
        "updraft channel set production com.example.app --android",
    )
    .await;
    s.patch_production(json!({"android": true})).await;
    s.cli_ok(&["device", "unset", DEVICE, APP]);

    // blocked: a version policy (1.0.1 is a patch above native 1.0.0).
    s.patch_production(json!({"disable_auto_update": "patch"}))
        .await;
    assert_explained_refusal(
        &s,
        &device,
        "disable_auto_update_to_patch",
        "blocked",
        "version_policy",
        "updraft channel set production com.example.app --disable-auto-update none",
    )
    .await;

    // failed: `metadata` without a minimum on the bundle.
    s.patch_production(json!({"disable_auto_update": "metadata"}))
        .await;
    assert_explained_refusal(
        &s,
        &device,
        "misconfigured_channel",
        "failed",
        "version_policy",
        "updraft channel set production com.example.app --disable-auto-update none",
    )
    .await;
    s.patch_production(json!({"disable_auto_update": "none"}))
        .await;

    // blocked: below the native version on a channel that forbids it.
    s.patch_production(json!({"disable_auto_update_under_native": true}))
        .await;
    let newer_native = with(device.clone(), json!({"version_build": "1.2.0"}));
    assert_explained_refusal(
        &s,
        &newer_native,
        "disable_auto_update_under_native",
        "blocked",
        "under_native",
        "updraft channel set production com.example.app --downgrade",
    )
    .await;
    s.patch_production(json!({"disable_auto_update_under_native": false}))
        .await;

    // blocked: production builds refused.
    s.patch_production(json!({"allow_prod": false})).await;
    assert_explained_refusal(
        &s,
        &device,
        "disable_prod_build",
        "blocked",
        "build_kind",
        "updraft channel set production com.example.app --prod",
    )
    .await;
    s.patch_production(json!({"allow_prod": true})).await;

    // Unresolved::NoChannel (failed): nothing serves iOS.
    s.patch_production(json!({"ios": false})).await;
    let iphone = with(device.clone(), json!({"platform": "ios"}));
    let explained = assert_explained_refusal(
        &s,
        &iphone,
        "no_channel",
        "failed",
        "channel",
        "updraft channel set production com.example.app --ios",
    )
    .await;
    assert_eq!(explained["channel"], Value::Null);
    assert_eq!(explained["channel_source"], Value::Null);
    s.patch_production(json!({"ios": true})).await;

    // Override: a private channel the device reaches only that way.
    let (st, b) = s
        .api(
            Method::POST,
            &format!("/api/v1/apps/{APP}/channels"),
            Some(&json!({"name": "beta", "bundle": "1.0.1"})),
        )
        .await;
    assert_eq!(st, 201, "{b}");
    s.cli_ok(&["device", "set", DEVICE, APP, "--channel", "beta"]);
    let (_, explained, text) = check_then_explain(&s, &device).await;
    assert_eq!(explained["channel"], "beta");
    assert_eq!(explained["channel_source"], "override");
    assert_eq!(explained["channel_override"]["channel"], "beta");
    assert!(text.contains("Channel: beta (override)"), "{text}");
    s.cli_ok(&["device", "unset", DEVICE, APP]);

    // Unresolved::BundleDeleted (blocked): the served bundle was deleted.
    let (st, b) = s
        .api(
            Method::DELETE,
            &format!("/api/v1/apps/{APP}/bundles/1.0.1?force=true"),
            None,
        )
        .await;
    assert_eq!(st, 204, "{b}");
    assert_explained_refusal(
        &s,
        &device,
        "bundle_deleted",
        "blocked",
        "channel",
        "updraft channel set production com.example.app --bundle VERSION",
    )
    .await;
}

#[tokio::test]
async fn explain_of_an_unknown_device_is_a_404_and_viewers_may_read_it() {
    let s = Server::start().await;
    s.seed("1.0.1").await;
    let (code, out, err) = s.cli(&["device", "explain", DEVICE, APP]);
    assert_ne!(code, 0, "{out}");
    assert!(err.contains("device_not_found"), "{err}");
    let path = format!("/api/v1/apps/{APP}/devices/{DEVICE}/explain");
    let (st, b) = s.api(Method::GET, &path, None).await;
    assert_eq!(
        (st, b["error"].as_str()),
        (404, Some("device_not_found")),
        "{b}"
    );

    s.post("/updates", &device_body()).await;
    let viewer = create_key(&s.data_dir, "viewer", "viewer", &[]);
    let (st, b) = s.api_as(&viewer, Method::GET, &path, None).await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["answer"]["version"], "1.0.1");
    assert_eq!(b["device"]["device_id"], DEVICE);
    let (code, out, err) = cli(
        &s.data_dir,
        Some(&s.url),
        Some(&viewer),
        &["device", "explain", DEVICE, APP],
    );
    assert_eq!(code, 0, "{out} {err}");
    assert!(out.contains("Answer: bundle 1.0.1"), "{out}");
}
