//! Release safety through the CLI: native-package scanning at upload and the
//! compatibility guard, rollouts from `bundle upload` and `channel set`,
//! history and rollback, scheduled releases.

use crate::harness::*;
use serde_json::{json, Value};
use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, Instant};

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, text).expect("write");
}

/// Installs a fake package in the project's node_modules; `native` adds Android sources.
fn install(project: &Path, name: &str, version: &str, native: bool) {
    let dir = project.join("node_modules").join(name);
    write(
        &dir.join("package.json"),
        &json!({"name": name, "version": version}).to_string(),
    );
    write(&dir.join("index.js"), "module.exports = {};");
    if native {
        write(
            &dir.join("android/src/main/java/com/example/Plugin.java"),
            "class Plugin {}",
        );
    }
}

/// A Capacitor project: capacitor.config.json, package.json, node_modules, dist/.
fn project(dependencies: Value) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    write(
        &root.join("capacitor.config.json"),
        &json!({"appId": APP, "webDir": "dist"}).to_string(),
    );
    write(
        &root.join("package.json"),
        &json!({"name": "example", "dependencies": dependencies}).to_string(),
    );
    write(
        &root.join("dist/index.html"),
        "<script>CapacitorUpdater.notifyAppReady()</script>",
    );
    dir
}

impl Server {
    fn cli_at(&self, dir: &Path, args: &[&str]) -> (i32, String, String) {
        cli_in(
            &self.data_dir,
            Some(&self.url),
            Some(&self.key),
            args,
            Some(dir),
        )
    }

    fn cli_at_ok(&self, dir: &Path, args: &[&str]) -> String {
        let (code, out, err) = self.cli_at(dir, args);
        assert_eq!(
            code, 0,
            "updraft {args:?} failed: stdout={out} stderr={err}"
        );
        out
    }

    fn channel_json(&self, channel: &str) -> Value {
        let out = self.cli_ok(&["channel", "show", channel, APP, "--json"]);
        serde_json::from_str(&out).expect("channel show --json")
    }
}

fn json_of(out: &str) -> Value {
    serde_json::from_str(out.trim()).expect("JSON on stdout")
}

#[tokio::test]
async fn native_packages_are_recorded_and_incompatible_bundles_refused() {
    let s = Server::start().await;
    s.cli_ok(&["app", "add", APP]);
    let project = project(json!({"@capacitor/camera": "^6.0.0", "lodash": "^4.17.0"}));
    let root = project.path();
    install(root, "@capacitor/camera", "6.0.0", true);
    install(root, "lodash", "4.17.21", false);

    let out = s.cli_at_ok(
        root,
        &[
            "bundle",
            "upload",
            "--path",
            "dist",
            "--bundle",
            "1.0.0",
            "--channel",
            "production",
            "--create-channel",
            "--json",
        ],
    );
    let bundle = json_of(&out);
    assert_eq!(
        bundle["native_packages"],
        json!([{"name": "@capacitor/camera", "version": "6.0.0", "requested_version": "^6.0.0"}]),
        "only the package with native sources is recorded: {bundle}"
    );

    // The plugin is upgraded natively in the project: the next bundle needs 7.0.0.
    install(root, "@capacitor/camera", "7.0.0", true);
    s.cli_at_ok(
        root,
        &["bundle", "upload", "--path", "dist", "--bundle", "1.1.0"],
    );
    // Incompatible: the report is printed (one JSON document) and the command fails,
    // so a CI step can gate on the exit code.
    let (code, out, err) = s.cli_at(
        root,
        &[
            "bundle",
            "compatibility",
            "--channel",
            "production",
            "--bundle",
            "1.1.0",
            "--json",
        ],
    );
    assert_eq!(code, 5, "{out} {err}");
    assert!(
        err.contains("@capacitor/camera (version_mismatch)")
            && err.ends_with("[incompatible_bundle]\n"),
        "{err}"
    );
    let report = json_of(&out);
    assert_eq!(report["compatible"], false, "{report}");
    assert_eq!(report["live_bundle"], "1.0.0");
    assert_eq!(
        report["packages"],
        json!([{"name": "@capacitor/camera", "bundle_version": "7.0.0", "live_version": "6.0.0",
                "compatible": false, "reason": "version_mismatch"}])
    );
    // Without --bundle: the local project, as a table.
    let (code, table, err) = s.cli_at(
        root,
        &["bundle", "compatibility", "--channel", "production"],
    );
    assert_eq!(code, 5, "{table} {err}");
    assert!(err.contains("[incompatible_bundle]"), "{err}");
    assert!(table.contains("version_mismatch"), "{table}");
    assert!(table.contains("NOT compatible"), "{table}");

    // Setting it is refused, with the package named, and nothing changes.
    let (code, out, err) = s.cli_at(root, &["channel", "set", "production", "--bundle", "1.1.0"]);
    assert_eq!(code, 5, "{out}");
    assert!(err.contains("[incompatible_bundle]"), "{err}");
    assert!(
        err.contains("@capacitor/camera 6.0.0 → 7.0.0 (version_mismatch)"),
        "{err}"
    );
    // The advice comes once, in the CLI's spelling (not the API's `accept_incompatible`).
    assert_eq!(err.matches("accept").count(), 1, "{err}");
    assert!(err.contains("pass --accept-incompatible"), "{err}");
    assert_eq!(s.channel_json("production")["bundle"], "1.0.0");
    let (code, out, _) = s.cli_at(
        root,
        &[
            "channel",
            "set",
            "production",
            "--bundle",
            "1.1.0",
            "--json",
        ],
    );
    assert_eq!(code, 5);
    assert_eq!(json_of(&out)["error"], "incompatible_bundle");

    s.cli_at_ok(
        root,
        &[
            "channel",
            "set",
            "production",
            "--bundle",
            "1.1.0",
            "--accept-incompatible",
        ],
    );
    assert_eq!(s.channel_json("production")["bundle"], "1.1.0");
    // Now live, 1.1.0 is compatible with itself: exit 0.
    let out = s.cli_at_ok(
        root,
        &[
            "bundle",
            "compatibility",
            "--channel",
            "production",
            "--bundle",
            "1.1.0",
        ],
    );
    assert!(out.contains("is compatible"), "{out}");

    // Same packages as the live bundle: accepted at upload.
    s.cli_at_ok(
        root,
        &[
            "bundle",
            "upload",
            "--path",
            "dist",
            "--bundle",
            "1.2.0",
            "--channel",
            "production",
        ],
    );
    assert_eq!(s.channel_json("production")["bundle"], "1.2.0");

    // A new plugin: the upload with --channel is refused before anything is stored.
    let deps = json!({"@capacitor/camera": "^7.0.0", "@capacitor/app": "6.0.0"});
    write(
        &root.join("package.json"),
        &json!({"name": "example", "dependencies": deps}).to_string(),
    );
    install(root, "@capacitor/app", "6.0.0", true);
    let (code, out, err) = s.cli_at(
        root,
        &[
            "bundle",
            "upload",
            "--path",
            "dist",
            "--bundle",
            "1.3.0",
            "--channel",
            "production",
        ],
    );
    assert_eq!(code, 5, "{out}");
    assert!(
        err.contains("@capacitor/app absent → 6.0.0 (new_plugin)"),
        "{err}"
    );
    assert!(err.contains("--accept-incompatible"), "{err}");
    let list = s.cli_ok(&["bundle", "list", APP, "--json"]);
    assert!(
        !list.contains("1.3.0"),
        "a refused upload stores no bundle: {list}"
    );
    assert_eq!(s.channel_json("production")["bundle"], "1.2.0");
    s.cli_at_ok(
        root,
        &[
            "bundle",
            "upload",
            "--path",
            "dist",
            "--bundle",
            "1.3.0",
            "--channel",
            "production",
            "--accept-incompatible",
        ],
    );
    assert_eq!(s.channel_json("production")["bundle"], "1.3.0");

    // A dependency that is not installed: the packages are unknown, the upload says so,
    // and an unknown list is not held against the bundle on the channel.
    std::fs::remove_dir_all(root.join("node_modules/@capacitor/app")).expect("rm");
    let (code, out, err) = s.cli_at(
        root,
        &[
            "bundle",
            "upload",
            "--path",
            "dist",
            "--bundle",
            "1.4.0",
            "--channel",
            "production",
            "--json",
        ],
    );
    assert_eq!(code, 0, "{out} {err}");
    assert!(
        err.contains("not installed in node_modules: @capacitor/app"),
        "{err}"
    );
    assert_eq!(json_of(&out)["native_packages"], Value::Null);
    assert_eq!(s.channel_json("production")["bundle"], "1.4.0");
    let (code, _, err) = s.cli_at(
        root,
        &["bundle", "compatibility", "--channel", "production"],
    );
    assert_eq!(code, 2);
    assert!(err.contains("[native_packages_unknown]"), "{err}");
    // --ignore-metadata-check skips the scan silently.
    let (code, out, err) = s.cli_at(
        root,
        &[
            "bundle",
            "upload",
            "--path",
            "dist",
            "--bundle",
            "1.4.1",
            "--ignore-metadata-check",
            "--json",
        ],
    );
    assert_eq!(code, 0, "{out} {err}");
    assert!(!err.contains("native packages are unknown"), "{err}");
    assert_eq!(json_of(&out)["native_packages"], Value::Null);

    // Without package.json the packages are unknown, and the upload says so.
    let bare = tempfile::tempdir().expect("tempdir");
    write(
        &bare.path().join("dist/index.html"),
        "<script>CapacitorUpdater.notifyAppReady()</script>",
    );
    let (code, out, err) = s.cli_at(
        bare.path(),
        &[
            "bundle", "upload", APP, "--path", "dist", "--bundle", "1.5.0",
        ],
    );
    assert_eq!(code, 0, "{out} {err}");
    assert!(err.contains("native packages are unknown"), "{err}");
}

/// Which of `devices` (running the stable 1.0.0) are offered the rollout bundle.
async fn on_rollout(s: &Server, devices: &[String], rollout: &str) -> HashSet<String> {
    let mut chosen = HashSet::new();
    for device in devices {
        let body = with(device_body(), json!({"device_id": device}));
        let (status, answer) = s.post("/updates", &body).await;
        assert_eq!(status, 200, "{answer}");
        if answer["version"] == rollout {
            chosen.insert(device.clone());
        }
    }
    chosen
}

#[tokio::test]
async fn rollouts_history_and_rollback_through_the_cli() {
    let s = Server::start().await;
    s.seed("1.0.0").await;
    let out = s.cli_ok(&[
        "bundle",
        "upload",
        APP,
        "--bundle",
        "1.1.0",
        "--external",
        "https://cdn.example.com/1.1.0.zip",
        "--checksum",
        CHECKSUM,
        "--channel",
        "production",
        "--rollout",
        "10",
        "--ignore-metadata-check",
    ]);
    assert!(out.contains("rolls it out to 10% of its devices"), "{out}");
    let channel = s.channel_json("production");
    assert_eq!(channel["bundle"], "1.0.0", "stable unchanged: {channel}");
    assert_eq!(channel["rollout"]["bundle"], "1.1.0");
    assert_eq!(channel["rollout"]["percentage_bps"], 1000);
    let table = s.cli_ok(&["channel", "list", APP]);
    assert!(table.contains("1.1.0 @ 10%"), "{table}");

    let devices: Vec<String> = (0..300)
        .map(|i| format!("00000000-0000-4000-8000-{i:012}"))
        .collect();
    let at_10 = on_rollout(&s, &devices, "1.1.0").await;
    // 300 devices at 10%: 30 expected, SD ≈ 5.2; the bounds are > 4 SD away.
    assert!(
        (8..=60).contains(&at_10.len()),
        "{} on the rollout",
        at_10.len()
    );

    s.cli_ok(&[
        "channel",
        "set",
        "production",
        APP,
        "--rollout-percentage",
        "50",
    ]);
    let at_50 = on_rollout(&s, &devices, "1.1.0").await;
    assert!(
        at_10.is_subset(&at_50),
        "raising the percentage deselected a device"
    );
    assert!(
        (110..=190).contains(&at_50.len()),
        "{} on the rollout",
        at_50.len()
    );

    s.cli_ok(&["channel", "set", "production", APP, "--rollout-pause"]);
    let shown = s.cli_ok(&["channel", "show", "production", APP]);
    assert!(shown.contains("1.1.0 at 50% (paused)"), "{shown}");
    assert!(
        on_rollout(&s, &devices, "1.1.0").await.is_empty(),
        "a paused rollout reaches no new device"
    );
    s.cli_ok(&["channel", "set", "production", APP, "--rollout-resume"]);
    assert_eq!(on_rollout(&s, &devices, "1.1.0").await, at_50);

    // Pause and resume at once is refused by the CLI before any request.
    let (code, _, err) = s.cli(&[
        "channel",
        "set",
        "production",
        APP,
        "--rollout-pause",
        "--rollout-resume",
    ]);
    assert_eq!(code, 2, "{err}");

    s.cli_ok(&["channel", "set", "production", APP, "--rollout-promote"]);
    let channel = s.channel_json("production");
    assert_eq!(channel["bundle"], "1.1.0");
    assert_eq!(channel["rollout"], Value::Null);
    assert_eq!(on_rollout(&s, &devices, "1.1.0").await.len(), devices.len());

    let history = json_of(&s.cli_ok(&["channel", "history", "production", APP, "--json"]));
    let reasons: Vec<&str> = history["history"]
        .as_array()
        .expect("history list")
        .iter()
        .filter_map(|entry| entry["reason"].as_str())
        .collect();
    assert_eq!(
        reasons[..5],
        [
            "promote",
            "resume",
            "pause",
            "rollout_percentage",
            "rollout_start"
        ],
        "newest first: {history}"
    );
    assert!(history["history"][0]["actor"]
        .as_str()
        .is_some_and(|a| a.starts_with("key:")));
    let table = s.cli_ok(&["channel", "history", "production", APP]);
    assert!(table.contains("1.1.0 @ 50% (paused)"), "{table}");

    let out = s.cli_ok(&["channel", "rollback", "production", APP]);
    assert!(out.contains("serves 1.0.0"), "{out}");
    assert_eq!(s.channel_json("production")["bundle"], "1.0.0");
    s.cli_ok(&["channel", "rollback", "production", APP, "--to", "1.1.0"]);
    assert_eq!(s.channel_json("production")["bundle"], "1.1.0");
    let (code, out, err) = s.cli(&[
        "channel",
        "rollback",
        "production",
        APP,
        "--to",
        "9.9.9",
        "--json",
    ]);
    assert_eq!(code, 1, "{err}");
    assert_eq!(json_of(&out)["error"], "bundle_not_found");

    // The control loop has not decided anything here: an empty, well-formed list.
    let decisions = json_of(&s.cli_ok(&["channel", "decisions", "production", APP, "--json"]));
    assert_eq!(decisions["decisions"], json!([]));
    assert_eq!(
        s.cli_ok(&["channel", "decisions", "production", APP])
            .trim(),
        "No decisions."
    );

    // Rollout flags without a rollout: the server's code comes through.
    let (code, out, _) = s.cli(&[
        "channel",
        "set",
        "production",
        APP,
        "--rollout-pause",
        "--json",
    ]);
    assert_eq!(code, 1);
    assert_eq!(json_of(&out)["error"], "no_rollout");
}

#[tokio::test]
async fn rollout_targeted_by_os_version_reaches_only_matching_devices() {
    let s = Server::start().await;
    s.seed("1.0.0").await;
    s.bundle("1.1.0").await;
    s.cli_ok(&[
        "channel",
        "set",
        "production",
        APP,
        "--rollout-bundle",
        "1.1.0",
        "--rollout-percentage",
        "100",
        "--rollout-target-os-version",
        ">=15",
    ]);
    // A second criterion merges in; the OS range stays.
    s.cli_ok(&[
        "channel",
        "set",
        "production",
        APP,
        "--rollout-target-install-source",
        "Google_Play",
    ]);
    let targeting = &s.channel_json("production")["rollout"]["targeting"];
    assert_eq!(targeting["os_version"], ">=15", "{targeting}");
    assert_eq!(
        targeting["install_sources"],
        json!(["google_play"]),
        "{targeting}"
    );

    for (version_os, expected) in [("14", None), ("15", Some("1.1.0")), ("16.2", Some("1.1.0"))] {
        let body = with(
            device_body(),
            json!({"version_os": version_os, "install_source": "google_play"}),
        );
        let (status, answer) = s.post("/updates", &body).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(
            answer["version"].as_str(),
            expected,
            "android {version_os}: {answer}"
        );
    }
}

#[tokio::test]
async fn scheduled_release_runs_at_its_time() {
    let s = Server::start_with(&[("UPDRAFT_ROLLOUT_CONTROL_INTERVAL_MS", "200")]).await;
    s.seed("1.0.0").await;
    s.bundle("1.1.0").await;
    s.bundle("1.2.0").await;
    let created = json_of(&s.cli_ok(&[
        "schedule",
        "add",
        "production",
        APP,
        "--bundle",
        "1.1.0",
        "--at",
        "+2s",
        "--json",
    ]));
    let id = created["id"].as_i64().expect("schedule id");
    assert_eq!(created["status"], "pending");
    let later = json_of(&s.cli_ok(&[
        "schedule",
        "add",
        "production",
        APP,
        "--bundle",
        "1.2.0",
        "--at",
        "+1h",
        "--rollout",
        "5",
        "--json",
    ]));
    let later_id = later["id"].as_i64().expect("schedule id").to_string();
    assert_eq!(later["rollout_percentage_bps"], 500);
    let table = s.cli_ok(&["schedule", "list", APP]);
    assert!(table.contains("rollout 1.2.0 @ 5%"), "{table}");
    assert!(table.contains("set 1.1.0"), "{table}");

    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if s.channel_json("production")["bundle"] == "1.1.0" {
            break;
        }
        assert!(Instant::now() < deadline, "the schedule did not run");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let list = json_of(&s.cli_ok(&["schedule", "list", APP, "--json"]));
    let done = list["schedules"]
        .as_array()
        .expect("schedules")
        .iter()
        .find(|schedule| schedule["id"] == id)
        .expect("the schedule is listed");
    assert_eq!(done["status"], "done", "{done}");
    let history = json_of(&s.cli_ok(&["channel", "history", "production", APP, "--json"]));
    assert_eq!(history["history"][0]["actor"], format!("schedule:{id}"));

    s.cli_ok(&["schedule", "cancel", &later_id, APP]);
    let (code, out, _) = s.cli(&["schedule", "cancel", &later_id, APP, "--json"]);
    assert_eq!(code, 1, "cancelling twice fails");
    assert!(
        json_of(&out)["error"]
            .as_str()
            .is_some_and(|c| !c.is_empty()),
        "{out}"
    );
    let (code, out, _) = s.cli(&[
        "schedule",
        "add",
        "production",
        APP,
        "--bundle",
        "9.9.9",
        "--at",
        "+1h",
        "--json",
    ]);
    assert_eq!(code, 1);
    assert_eq!(json_of(&out)["error"], "bundle_not_found");
}
