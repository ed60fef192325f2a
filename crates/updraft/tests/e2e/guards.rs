//! Guards on destructive and risky changes (issue 14): bundles in use,
//! confirmations, mistyped channels, encryption downgrades; and the
//! Capgo CLI's registration of an encrypted external bundle.

use crate::bundles::json_out;
use crate::harness::{assert_refusal, device_body, with, Server, APP, CHECKSUM};
use reqwest::Method;
use serde_json::{json, Value};
use updraft_bundle::crypto::{self, PrivateKey, SessionKey};

/// A key pair written by `updraft key create` in a temporary folder, with
/// the private key loaded and the key id devices send.
struct Keys {
    _tmp: tempfile::TempDir,
    private: PrivateKey,
    key_id: String,
}

fn keys(s: &Server) -> Keys {
    let tmp = tempfile::tempdir().unwrap();
    let (code, out, err) = crate::harness::cli_in(
        &s.data_dir,
        Some(&s.url),
        Some(&s.key),
        &["key", "create", "--json"],
        Some(tmp.path()),
    );
    assert_eq!(code, 0, "{out} {err}");
    let created = json_out(&out);
    let pem = std::fs::read_to_string(tmp.path().join(".capgo_key_v2")).unwrap();
    Keys {
        private: PrivateKey::from_pem(&pem).unwrap(),
        key_id: created["key_id"].as_str().unwrap().to_string(),
        _tmp: tmp,
    }
}

/// (session key, RSA-encrypted checksum) of an encrypted bundle, as `capgo
/// bundle encrypt` prints them.
fn encryption(keys: &Keys) -> (String, String) {
    let session = SessionKey::generate().seal(&keys.private).unwrap();
    let checksum = crypto::encrypt_checksum(&keys.private, CHECKSUM).unwrap();
    (session, checksum)
}

async fn api_get(s: &Server, path: &str) -> Value {
    let (status, body) = s.api(Method::GET, path, None).await;
    assert_eq!(status, 200, "{path}: {body}");
    body
}

fn versions(list: &Value) -> Vec<String> {
    list["bundles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["version"].as_str().unwrap().to_string())
        .collect()
}

fn channel_names(list: &Value) -> Vec<String> {
    list["channels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn capgo_style_encrypted_external_bundle_registers_without_a_plain_checksum() {
    let s = Server::start().await;
    s.seed("1.0.0").await;
    let keys = keys(&s);
    let (session_key, encrypted_checksum) = encryption(&keys);
    // The Capgo CLI's flags, and no --checksum.
    s.cli_ok(&[
        "bundle",
        "upload",
        APP,
        "--bundle",
        "1.1.0",
        "--external",
        "https://cdn.example.com/1.1.0.zip",
        "--iv-session-key",
        &session_key,
        "--encrypted-checksum",
        &encrypted_checksum,
        "--channel",
        "production",
        "--ignore-metadata-check",
    ]);
    let bundle = api_get(&s, &format!("/api/v1/apps/{APP}/bundles/1.1.0")).await;
    assert_eq!(bundle["encrypted"], true, "{bundle}");
    assert_eq!(bundle["checksum"], Value::Null, "{bundle}");
    let (_, answer) = s
        .post(
            "/updates",
            &with(device_body(), json!({"key_id": keys.key_id})),
        )
        .await;
    crate::harness::assert_plugin_success(&answer);
    assert_eq!(answer["version"], "1.1.0", "{answer}");
    assert_eq!(answer["session_key"], session_key.as_str(), "{answer}");
    assert_eq!(answer["checksum"], encrypted_checksum.as_str(), "{answer}");

    // An unencrypted external bundle still needs its checksum, on both sides.
    let (code, _, err) = s.cli(&[
        "bundle",
        "upload",
        APP,
        "--bundle",
        "1.2.0",
        "--external",
        "https://cdn.example.com/1.2.0.zip",
        "--encrypted-checksum",
        &encrypted_checksum,
        "--ignore-metadata-check",
    ]);
    assert_ne!(code, 0);
    assert!(err.contains("--iv-session-key"), "{err}");
    let (status, body) = s
        .api(
            Method::POST,
            &format!("/api/v1/apps/{APP}/bundles"),
            Some(&json!({"version": "1.2.0", "external_url": "https://cdn.example.com/1.2.0.zip"})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "invalid_body");
    assert!(
        body["message"].as_str().unwrap().contains("checksum"),
        "{body}"
    );
}

#[tokio::test]
async fn deleting_a_bundle_in_use_is_refused_unless_forced() {
    let s = Server::start().await;
    s.seed("1.0.0").await;
    s.bundle("1.1.0").await;
    s.bundle("1.2.0").await;
    s.bundle("1.3.0").await;
    let bundles = format!("/api/v1/apps/{APP}/bundles");
    let (status, body) = s
        .api(
            Method::POST,
            &format!("/api/v1/apps/{APP}/channels"),
            Some(
                &json!({"name": "beta", "bundle": "1.0.0", "rollout_bundle": "1.1.0",
                "rollout_percentage_bps": 1000}),
            ),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = s
        .api(
            Method::POST,
            &format!("/api/v1/apps/{APP}/schedules"),
            Some(&json!({"channel": "production", "bundle": "1.2.0", "run_at": "2999-01-01T00:00:00Z"})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let schedule_id = body["id"].as_i64().unwrap();

    // Stable on two channels.
    let (status, body) = s
        .api(Method::DELETE, &format!("{bundles}/1.0.0"), None)
        .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"], "bundle_in_use");
    assert!(
        body["message"].as_str().unwrap().contains("production"),
        "{body}"
    );
    let mut users: Vec<String> = body["channels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            format!(
                "{}:{}",
                c["name"].as_str().unwrap(),
                c["as"].as_str().unwrap()
            )
        })
        .collect();
    users.sort();
    assert_eq!(users, vec!["beta:stable", "production:stable"], "{body}");
    assert_eq!(body["schedules"], json!([]));
    // Rollout bundle.
    let (status, body) = s
        .api(Method::DELETE, &format!("{bundles}/1.1.0"), None)
        .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"], "bundle_in_use");
    assert_eq!(body["channels"], json!([{"name": "beta", "as": "rollout"}]));
    // Named by a pending schedule.
    let (status, body) = s
        .api(Method::DELETE, &format!("{bundles}/1.2.0"), None)
        .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"], "bundle_in_use");
    assert_eq!(body["channels"], json!([]));
    assert_eq!(body["schedules"][0]["id"], schedule_id, "{body}");
    assert_eq!(body["schedules"][0]["channel"], "production", "{body}");
    // Refused requests changed nothing.
    let listed = versions(&api_get(&s, &bundles).await);
    for version in ["1.0.0", "1.1.0", "1.2.0", "1.3.0"] {
        assert!(listed.contains(&version.to_string()), "{listed:?}");
    }
    // A bundle nobody uses goes without force.
    let (status, body) = s
        .api(Method::DELETE, &format!("{bundles}/1.3.0"), None)
        .await;
    assert_eq!(status, 204, "{body}");

    // The CLI: refused with the channels named, then --force.
    let (code, _, err) = s.cli(&["bundle", "delete", "1.0.0", APP]);
    assert_ne!(code, 0);
    assert!(err.contains("[bundle_in_use]"), "{err}");
    assert!(err.contains("production") && err.contains("beta"), "{err}");
    assert!(err.contains("--force"), "{err}");
    assert!(versions(&api_get(&s, &bundles).await).contains(&"1.0.0".to_string()));
    s.cli_ok(&["bundle", "delete", "1.0.0", APP, "--force"]);
    let (status, body) = s
        .api(Method::DELETE, &format!("{bundles}/1.2.0?force=true"), None)
        .await;
    assert_eq!(status, 204, "{body}");
    let listed = versions(&api_get(&s, &bundles).await);
    assert!(!listed.contains(&"1.0.0".to_string()), "{listed:?}");
    assert!(!listed.contains(&"1.2.0".to_string()), "{listed:?}");
    // Devices on a channel whose bundle was force-deleted get a plain
    // refusal naming both, not no_channel.
    let (status, body) = s.post("/updates", &device_body()).await;
    assert_eq!(status, 200);
    assert_refusal(&body, "bundle_deleted", "blocked");
    assert_eq!(body["channel"], "production", "{body}");
    assert_eq!(body["version"], "1.0.0", "{body}");
    assert_eq!(
        body["message"],
        "Channel \"production\" serves bundle 1.0.0, which was deleted. Point the channel at another bundle.",
    );
}

#[tokio::test]
async fn app_and_channel_delete_need_yes_when_stdin_is_not_a_terminal() {
    let s = Server::start().await;
    s.seed("1.0.0").await;
    // The harness runs the CLI with stdin closed: no terminal.
    let (code, _, err) = s.cli(&["channel", "delete", "production", APP]);
    assert_ne!(code, 0);
    assert!(err.contains("[confirmation_required]"), "{err}");
    assert!(err.contains("--yes"), "{err}");
    let (code, _, err) = s.cli(&["app", "delete", APP]);
    assert_ne!(code, 0);
    assert!(err.contains("[confirmation_required]"), "{err}");
    assert!(err.contains("--yes"), "{err}");
    // Nothing was deleted.
    let channels = api_get(&s, &format!("/api/v1/apps/{APP}/channels")).await;
    assert_eq!(channel_names(&channels), vec!["production"]);

    s.cli_ok(&["channel", "delete", "production", APP, "--yes"]);
    let channels = api_get(&s, &format!("/api/v1/apps/{APP}/channels")).await;
    assert!(channel_names(&channels).is_empty(), "{channels}");
    s.cli_ok(&["app", "delete", APP, "--yes"]);
    let (status, _) = s
        .api(Method::GET, &format!("/api/v1/apps/{APP}"), None)
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn upload_to_a_mistyped_channel_is_refused_with_a_suggestion() {
    let s = Server::start().await;
    s.seed("1.0.0").await;
    let bundles = format!("/api/v1/apps/{APP}/bundles");
    let channels = format!("/api/v1/apps/{APP}/channels");
    let (code, _, err) = s.cli(&[
        "bundle",
        "upload",
        APP,
        "--bundle",
        "1.0.1",
        "--external",
        "https://cdn.example.com/1.0.1.zip",
        "--checksum",
        CHECKSUM,
        "--channel",
        "prodution",
        "--ignore-metadata-check",
    ]);
    assert_ne!(code, 0);
    assert!(err.contains("[channel_not_found]"), "{err}");
    assert!(err.contains("did you mean production?"), "{err}");
    assert!(err.contains("--create-channel"), "{err}");
    // A folder upload is refused before anything is uploaded.
    let tmp = tempfile::tempdir().unwrap();
    crate::bundles::write_web_bundle(tmp.path(), 3);
    let dir = tmp.path().to_string_lossy().into_owned();
    let (code, _, err) = s.cli(&[
        "bundle",
        "upload",
        APP,
        "--bundle",
        "1.0.2",
        "--path",
        &dir,
        "--no-key",
        "--channel",
        "prodution",
        "--ignore-metadata-check",
        "--no-progress",
    ]);
    assert_ne!(code, 0);
    assert!(err.contains("did you mean production?"), "{err}");
    assert!(!err.contains("Uploaded"), "{err}");
    assert_eq!(versions(&api_get(&s, &bundles).await), vec!["1.0.0"]);
    assert_eq!(
        channel_names(&api_get(&s, &channels).await),
        vec!["production"]
    );
    // The API refuses too, with the suggestions, and stores nothing.
    let (status, body) = s
        .api(
            Method::POST,
            &bundles,
            Some(
                &json!({"version": "1.0.3", "external_url": "https://cdn.example.com/1.0.3.zip",
                "checksum": CHECKSUM, "channel": "prodution"}),
            ),
        )
        .await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"], "channel_not_found");
    assert_eq!(body["suggestions"], json!(["production"]));
    assert_eq!(versions(&api_get(&s, &bundles).await), vec!["1.0.0"]);

    // Asked for: created.
    s.cli_ok(&[
        "bundle",
        "upload",
        APP,
        "--bundle",
        "1.0.1",
        "--external",
        "https://cdn.example.com/1.0.1.zip",
        "--checksum",
        CHECKSUM,
        "--channel",
        "nightly",
        "--create-channel",
        "--ignore-metadata-check",
    ]);
    let nightly = api_get(&s, &format!("{channels}/nightly")).await;
    assert_eq!(nightly["bundle"], "1.0.1", "{nightly}");
}

#[tokio::test]
async fn serving_an_unencrypted_bundle_after_an_encrypted_one_needs_force() {
    let s = Server::start().await;
    s.seed("1.0.0").await;
    let keys = keys(&s);
    let (session_key, encrypted_checksum) = encryption(&keys);
    let (status, body) = s
        .api(
            Method::POST,
            &format!("/api/v1/apps/{APP}/bundles"),
            Some(
                &json!({"version": "1.1.0", "external_url": "https://cdn.example.com/1.1.0.zip",
                "session_key": session_key, "encrypted_checksum": encrypted_checksum}),
            ),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    // Plain → encrypted is no downgrade.
    s.cli_ok(&["channel", "set", "production", APP, "--bundle", "1.1.0"]);
    let production = format!("/api/v1/apps/{APP}/channels/production");

    let (code, _, err) = s.cli(&["channel", "set", "production", APP, "--bundle", "1.0.0"]);
    assert_ne!(code, 0);
    assert!(err.contains("[encryption_downgrade]"), "{err}");
    assert!(err.contains("not encrypted"), "{err}");
    assert!(err.contains("--force"), "{err}");
    assert_eq!(api_get(&s, &production).await["bundle"], "1.1.0");
    // The API refuses the same.
    let (status, body) = s.patch_production(json!({"bundle": "1.0.0"})).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"], "encryption_downgrade");
    assert_eq!(body["bundle"], "1.0.0");
    assert_eq!(body["current_bundle"], "1.1.0");

    let (code, _, err) = s.cli(&["channel", "rollback", "production", APP]);
    assert_ne!(code, 0);
    assert!(err.contains("[encryption_downgrade]"), "{err}");
    assert!(err.contains("--force"), "{err}");
    assert_eq!(api_get(&s, &production).await["bundle"], "1.1.0");

    s.cli_ok(&["channel", "rollback", "production", APP, "--force"]);
    assert_eq!(api_get(&s, &production).await["bundle"], "1.0.0");
    s.cli_ok(&["channel", "set", "production", APP, "--bundle", "1.1.0"]);
    s.cli_ok(&[
        "channel",
        "set",
        "production",
        APP,
        "--bundle",
        "1.0.0",
        "--force",
    ]);
    assert_eq!(api_get(&s, &production).await["bundle"], "1.0.0");
}

#[tokio::test]
async fn audit_and_history_name_bundles_by_version_and_show_the_change() {
    let s = Server::start().await;
    s.seed("1.0.1").await;
    s.bundle("1.0.2").await;
    s.cli_ok(&["channel", "set", "production", APP, "--bundle", "1.0.2"]);
    s.cli_ok(&["channel", "rollback", "production", APP]);

    let audit = s.cli_ok(&["audit", APP]);
    assert!(audit.contains("CHANGE"), "{audit}");
    assert!(audit.contains("1.0.1 → 1.0.2"), "{audit}");
    assert!(audit.contains("1.0.2 → 1.0.1"), "{audit}");
    let history = s.cli_ok(&["channel", "history", "production", APP]);
    assert!(history.contains("1.0.2 → 1.0.1"), "{history}");
    assert!(history.contains("1.0.1 → 1.0.2"), "{history}");

    // Every bundle the API's audit entries name is a version.
    let page = api_get(&s, &format!("/api/v1/audit?app_id={APP}")).await;
    let entries = page["entries"].as_array().unwrap();
    let rollback = entries
        .iter()
        .find(|e| e["action"] == "channel.release" && e["before"]["bundle"] == "1.0.2")
        .unwrap_or_else(|| panic!("no rollback entry: {page}"));
    assert_eq!(rollback["after"]["bundle"], "1.0.1", "{rollback}");
    for entry in entries {
        for side in ["before", "after"] {
            let bundle = &entry[side]["bundle"];
            assert!(
                !bundle.as_str().is_some_and(|b| b.starts_with('#')),
                "{entry}"
            );
        }
    }
    let listed = api_get(
        &s,
        &format!("/api/v1/apps/{APP}/channels/production/history"),
    )
    .await;
    assert_eq!(listed["history"][0]["bundle"], "1.0.1", "{listed}");
    assert_eq!(listed["history"][0]["previous_bundle"], "1.0.2", "{listed}");
}
