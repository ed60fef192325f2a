//! The Capgo CLI's defaults for CI through the real binary (`--path` from
//! `webDir`, `--bundle` from package.json, `--version-exists-ok`,
//! `channel set --latest`, `bundle cleanup --keep`, short flags), and plain
//! answers for flags given together and changes that change nothing.

use crate::harness::*;
use reqwest::Method;
use serde_json::{json, Value};
use std::path::Path;

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, text).expect("write");
}

/// A Capacitor project: `config_name` holds `config`, package.json has `version`,
/// and `web_dir/index.html` calls notifyAppReady.
fn project(config_name: &str, config: &str, version: &str, web_dir: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    write(&root.join(config_name), config);
    write(
        &root.join("package.json"),
        &json!({"name": "example", "version": version}).to_string(),
    );
    write(
        &root.join(web_dir).join("index.html"),
        &format!("<script>CapacitorUpdater.notifyAppReady() /* {version} */</script>"),
    );
    dir
}

const INIT_TS: &str = "import type { CapacitorConfig } from '@capacitor/cli';\n\n\
    const config: CapacitorConfig = {\n  appId: 'com.example.app',\n  appName: 'Example',\n  \
    // webDir: 'old-build',\n  webDir: 'www',\n  server: { url: 'http://192.168.1.2:8100' },\n};\n\n\
    export default config;\n";

impl Server {
    fn cli_in_dir(&self, dir: &Path, args: &[&str]) -> (i32, String, String) {
        cli_in(
            &self.data_dir,
            Some(&self.url),
            Some(&self.key),
            args,
            Some(dir),
        )
    }

    async fn bundles_json(&self) -> Vec<Value> {
        let (status, body) = self
            .api(
                Method::GET,
                &format!("/api/v1/apps/{APP}/bundles?include_deleted=true"),
                None,
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body["bundles"].as_array().expect("bundles").clone()
    }
}

fn json_of(out: &str) -> Value {
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

#[tokio::test]
async fn upload_defaults_to_web_dir_and_the_package_json_version() {
    let s = Server::start().await;
    s.cli_ok(&["app", "add", APP]);

    // capacitor.config.ts as `npx cap init` writes it (a comment names another
    // folder); the app id comes from it too.
    let ts = project("capacitor.config.ts", INIT_TS, "1.4.0", "www");
    let (code, out, err) = s.cli_in_dir(ts.path(), &["bundle", "upload"]);
    assert_eq!(code, 0, "stdout={out} stderr={err}");
    assert!(
        out.contains("Uploaded bundle 1.4.0 of com.example.app"),
        "{out}"
    );
    assert!(
        err.contains("--bundle 1.4.0 (the version of package.json)")
            && err.contains("--path www (the webDir of the Capacitor config)"),
        "{err}"
    );

    // capacitor.config.json: the app id comes from it too; a zip as webDir works as --path does.
    let config = json!({"appId": APP, "webDir": "dist"}).to_string();
    let plain = project("capacitor.config.json", &config, "1.5.0", "dist");
    let out = {
        let (code, out, err) = s.cli_in_dir(plain.path(), &["bundle", "upload", "--json"]);
        assert_eq!(code, 0, "stdout={out} stderr={err}");
        out
    };
    assert_eq!(json_of(&out)["version"], "1.5.0");
    // An explicit flag wins over the project.
    let (code, out, err) = s.cli_in_dir(
        plain.path(),
        &["bundle", "upload", "--bundle", "1.5.1", "--json"],
    );
    assert_eq!(code, 0, "stdout={out} stderr={err}");
    assert_eq!(json_of(&out)["version"], "1.5.1");

    // A webDir computed when the config runs cannot be read: said plainly, nothing uploaded.
    let computed = "const config = { appId: 'com.example.app', webDir: process.env.WEB_DIR };\n\
                    export default config;\n";
    let dynamic = project("capacitor.config.ts", computed, "1.6.0", "www");
    let (code, out, err) = s.cli_in_dir(dynamic.path(), &["bundle", "upload", APP, "--json"]);
    assert_eq!(code, 2, "a usage error: stdout={out} stderr={err}");
    assert_eq!(json_of(&out)["error"], "missing_path", "{out}");
    assert!(
        err.contains("webDir is not a plain string literal") && err.contains("pass --path"),
        "{err}"
    );
    // No version anywhere: refused with its own code.
    std::fs::write(plain.path().join("package.json"), r#"{"name": "x"}"#).expect("write");
    let (code, out, _) = s.cli_in_dir(plain.path(), &["bundle", "upload", "--json"]);
    assert_eq!(code, 2, "a usage error: {out}");
    assert_eq!(json_of(&out)["error"], "missing_version", "{out}");
    let versions: Vec<Value> = s
        .bundles_json()
        .await
        .iter()
        .map(|b| b["version"].clone())
        .collect();
    assert_eq!(versions, [json!("1.5.1"), json!("1.5.0"), json!("1.4.0")]);
}

#[tokio::test]
async fn version_exists_ok_accepts_the_same_checksum_only() {
    let s = Server::start().await;
    s.cli_ok(&["app", "add", APP]);
    let config = json!({"appId": APP, "webDir": "dist"}).to_string();
    let p = project("capacitor.config.json", &config, "1.0.0", "dist");
    let root = p.path();
    let (code, out, err) = s.cli_in_dir(root, &["bundle", "upload"]);
    assert_eq!(code, 0, "stdout={out} stderr={err}");

    // The same job run again: success, nothing uploaded.
    let (code, out, err) = s.cli_in_dir(root, &["bundle", "upload", "--version-exists-ok"]);
    assert_eq!(code, 0, "stdout={out} stderr={err}");
    assert!(
        out.contains("Bundle 1.0.0 of com.example.app already exists with the same checksum"),
        "{out}"
    );
    let (code, out, _) = s.cli_in_dir(root, &["bundle", "upload", "--version-exists-ok", "--json"]);
    assert_eq!(code, 0);
    let answer = json_of(&out);
    assert_eq!(answer["status"], "exists");
    assert_eq!(answer["version"], "1.0.0");
    assert_eq!(answer["deleted"], false);
    // Without the flag it stays the server's refusal.
    let (code, out, _) = s.cli_in_dir(root, &["bundle", "upload", "--json"]);
    assert_eq!(code, 1);
    assert_eq!(json_of(&out)["error"], "bundle_already_exists");

    // Other content under the same version: still refused, flag or not.
    write(
        &root.join("dist/index.html"),
        "<script>CapacitorUpdater.notifyAppReady() // v2</script>",
    );
    let (code, out, err) =
        s.cli_in_dir(root, &["bundle", "upload", "--version-exists-ok", "--json"]);
    assert_eq!(code, 1, "stdout={out} stderr={err}");
    assert_eq!(json_of(&out)["error"], "version_exists_different", "{out}");
    assert!(
        err.contains("already exists with another checksum"),
        "{err}"
    );

    // An external bundle compares the checksum it gives.
    s.bundle("2.0.0").await;
    let url = format!("https://cdn.example.com/{APP}/2.0.0.zip");
    let external = [
        "bundle",
        "upload",
        APP,
        "-b",
        "2.0.0",
        "--external",
        &url,
        "--version-exists-ok",
    ];
    let mut same = external.to_vec();
    same.extend(["--checksum", CHECKSUM]);
    let (code, out, err) = s.cli(&same);
    assert_eq!(code, 0, "stdout={out} stderr={err}");
    let other = "0".repeat(64);
    let mut different = external.to_vec();
    different.extend(["--checksum", other.as_str()]);
    let (code, _, err) = s.cli(&different);
    assert_eq!(code, 1);
    assert!(err.contains("[version_exists_different]"), "{err}");
    // A deleted version is no "exists ok".
    s.cli_ok(&["bundle", "delete", "2.0.0", APP]);
    let (code, _, err) = s.cli(&same);
    assert_eq!(code, 1);
    assert!(
        err.contains("was deleted") && err.contains("[bundle_already_exists]"),
        "{err}"
    );
}

#[tokio::test]
async fn channel_set_latest_uses_package_json_and_latest_remote_the_newest_bundle() {
    let s = Server::start().await;
    s.seed("1.0.0").await;
    s.bundle("1.1.0").await;
    s.bundle("1.2.0").await;
    let config = json!({"appId": APP, "webDir": "dist"}).to_string();
    let p = project("capacitor.config.json", &config, "1.1.0", "dist");

    let (code, out, err) = s.cli_in_dir(
        p.path(),
        &["channel", "set", "production", "--latest", "--json"],
    );
    assert_eq!(code, 0, "stdout={out} stderr={err}");
    assert_eq!(json_of(&out)["bundle"], "1.1.0");
    let (code, out, err) = s.cli_in_dir(
        p.path(),
        &["channel", "set", "production", "--latest-remote", "--json"],
    );
    assert_eq!(code, 0, "stdout={out} stderr={err}");
    assert_eq!(json_of(&out)["bundle"], "1.2.0");
    // A deleted bundle is not the newest one.
    s.bundle("1.3.0").await;
    s.cli_ok(&["bundle", "delete", "1.3.0", APP]);
    let (code, out, _) = s.cli_in_dir(
        p.path(),
        &["channel", "set", "production", "--latest-remote", "--json"],
    );
    assert_eq!(code, 0);
    assert_eq!(json_of(&out)["bundle"], "1.2.0");
    // --latest with --bundle is a usage error.
    let (code, _, err) = s.cli_in_dir(
        p.path(),
        &[
            "channel",
            "set",
            "production",
            "--latest",
            "--bundle",
            "1.0.0",
        ],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("cannot be used with"), "{err}");
}

#[tokio::test]
async fn capgo_short_flags() {
    let s = Server::start().await;
    // -a is --apikey (no UPDRAFT_APIKEY in the environment here).
    let (code, out, err) = cli(
        &s.data_dir,
        Some(&s.url),
        None,
        &["-a", &s.key, "app", "add", APP],
    );
    assert_eq!(code, 0, "stdout={out} stderr={err}");
    s.cli_ok(&["channel", "add", "production", APP]);
    let config = json!({"appId": APP, "webDir": "dist"}).to_string();
    let p = project("capacitor.config.json", &config, "1.0.0", "dist");
    let (code, out, err) = cli_in(
        &s.data_dir,
        Some(&s.url),
        None,
        &[
            "bundle",
            "upload",
            "-a",
            &s.key,
            "-p",
            "dist",
            "-b",
            "3.0.0",
            "-c",
            "production",
            "--json",
        ],
        Some(p.path()),
    );
    assert_eq!(code, 0, "stdout={out} stderr={err}");
    assert_eq!(json_of(&out)["channels"], json!(["production"]));
    // -d for channel add --default, -s for channel set --state.
    let out = s.cli_ok(&["channel", "add", "beta", APP, "-d", "--json"]);
    assert_eq!(json_of(&out)["public"], true);
    let out = s.cli_ok(&["channel", "set", "beta", APP, "-s", "normal", "--json"]);
    assert_eq!(json_of(&out)["public"], false);
}

#[tokio::test]
async fn bundle_cleanup_keeps_the_newest_and_every_bundle_in_use() {
    let s = Server::start().await;
    s.seed("1.0.0").await; // production serves 1.0.0
    for version in ["1.0.1", "1.0.2", "1.0.3", "1.0.4", "1.0.5", "1.0.6"] {
        s.bundle(version).await;
    }
    s.cli_ok(&["channel", "add", "beta", APP]);
    s.cli_ok(&["channel", "set", "beta", APP, "--bundle", "1.0.4"]);
    s.cli_ok(&[
        "channel",
        "set",
        "beta",
        APP,
        "--rollout-bundle",
        "1.0.2",
        "--rollout-percentage",
        "10",
    ]);
    s.cli_ok(&[
        "schedule",
        "add",
        "production",
        APP,
        "--bundle",
        "1.0.3",
        "--at",
        "+30d",
    ]);

    // Not on a terminal and without --yes: the plan is said, nothing is deleted.
    let (code, out, err) = s.cli(&["bundle", "cleanup", APP, "--keep", "2", "--json"]);
    assert_eq!(code, 2, "a usage error: stdout={out} stderr={err}");
    assert_eq!(json_of(&out)["error"], "confirmation_required");
    assert!(err.contains("1.0.1"), "{err}");
    let (code, out, _) = s.cli(&["bundle", "cleanup", APP, "-k", "2", "--dry-run", "--json"]);
    assert_eq!(code, 0);
    let plan = json_of(&out);
    assert_eq!(plan["would_delete"], json!(["1.0.1"]), "{plan}");
    let reasons: Vec<(Value, Value)> = plan["kept"]
        .as_array()
        .expect("kept")
        .iter()
        .map(|k| (k["version"].clone(), k["reason"].clone()))
        .collect();
    assert_eq!(
        reasons,
        [
            (json!("1.0.6"), json!("newest")),
            (json!("1.0.5"), json!("newest")),
            (json!("1.0.4"), json!("in_use")),
            (json!("1.0.3"), json!("in_use")),
            (json!("1.0.2"), json!("in_use")),
            (json!("1.0.0"), json!("in_use")),
        ]
    );
    assert!(s.bundles_json().await.iter().all(|b| b["deleted"] == false));

    let (code, out, err) = s.cli(&["bundle", "cleanup", APP, "--keep", "2", "--yes", "--json"]);
    assert_eq!(code, 0, "stdout={out} stderr={err}");
    assert_eq!(json_of(&out)["deleted"], json!(["1.0.1"]));
    let deleted: Vec<Value> = s
        .bundles_json()
        .await
        .iter()
        .filter(|b| b["deleted"] == true)
        .map(|b| b["version"].clone())
        .collect();
    assert_eq!(deleted, [json!("1.0.1")]);

    // Keeping none deletes only what nothing uses.
    let (code, out, err) = s.cli(&["bundle", "cleanup", APP, "--keep", "0", "-y"]);
    assert_eq!(code, 0, "stdout={out} stderr={err}");
    assert!(
        out.contains("Deleted 2 bundles of com.example.app (1.0.6, 1.0.5)"),
        "{out}"
    );
    let (code, out, _) = s.cli(&["bundle", "cleanup", APP, "--keep", "0", "-y"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("Nothing to delete"), "{out}");
}

#[tokio::test]
async fn flags_that_exclude_each_other_are_usage_errors() {
    let s = Server::start().await;
    s.seed("1.0.0").await;
    let pairs = [
        ("--ios", "--no-ios"),
        ("--android", "--no-android"),
        ("--electron", "--no-electron"),
        ("--self-assign", "--no-self-assign"),
        ("--downgrade", "--no-downgrade"),
        ("--dev", "--no-dev"),
        ("--prod", "--no-prod"),
        ("--emulator", "--no-emulator"),
        ("--device", "--no-device"),
        ("--auto-pause-enabled", "--auto-pause-disabled"),
        ("--ramp-enabled", "--ramp-disabled"),
        ("--ramp-promote", "--no-ramp-promote"),
        ("--rollout-pause", "--rollout-resume"),
        ("--latest", "--latest-remote"),
    ];
    for (yes, no) in pairs {
        for (first, second) in [(yes, no), (no, yes)] {
            let (code, out, err) = s.cli(&["channel", "set", "production", APP, first, second]);
            assert_eq!(code, 2, "{first} {second}: stdout={out} stderr={err}");
            assert!(
                err.contains("cannot be used with") && out.is_empty(),
                "{first} {second}: {err}"
            );
        }
    }
    // Nothing reached the server: no channel change was recorded.
    let out = s.cli_ok(&["audit", APP, "--json"]);
    let actions: Vec<Value> = json_of(&out)["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| e["action"].clone())
        .collect();
    assert!(!actions.contains(&json!("channel.update")), "{actions:?}");
}

#[tokio::test]
async fn changes_that_change_nothing_are_said_plainly_and_write_nothing() {
    let s = Server::start().await;
    s.seed("1.0.0").await;
    s.bundle("1.1.0").await;
    let set = |extra: &[&str]| {
        let mut args = vec!["channel", "set", "production", APP];
        args.extend_from_slice(extra);
        s.cli(&args)
    };
    let (code, out, _) = set(&["--rollout-bundle", "1.1.0", "--rollout-percentage", "10"]);
    assert_eq!(code, 0, "{out}");
    let (code, out, _) = set(&["--rollout-pause"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("Updated channel production"), "{out}");
    let history_len = |s: &Server| {
        let out = s.cli_ok(&["channel", "history", "production", APP, "--json"]);
        json_of(&out)["history"].as_array().expect("history").len()
    };
    let audit_len = |s: &Server| {
        let out = s.cli_ok(&["audit", APP, "--json"]);
        json_of(&out)["entries"].as_array().expect("entries").len()
    };
    let (history, audit) = (history_len(&s), audit_len(&s));

    let cases: [(&[&str], &str, &str); 5] = [
        (
            &["--rollout-pause"],
            "already_paused",
            "Nothing changed: the rollout of 1.1.0 on channel production is already paused (already_paused).",
        ),
        (&["--bundle", "1.0.0"], "already_serving", "Nothing changed: channel production already serves bundle 1.0.0 (already_serving)."),
        (&["--rollout-percentage", "10"], "same_percentage", "Nothing changed: the rollout of 1.1.0 on channel production is already at 1000 basis points (same_percentage)."),
        (&["--ios", "--android"], "same_settings", "Nothing changed: channel production already has these settings (same_settings)."),
        (&["--rollout-pause", "--ios"], "already_paused", "Nothing changed: the rollout of 1.1.0 on channel production is already paused (already_paused)."),
    ];
    for (flags, code_text, sentence) in cases {
        let (code, out, err) = set(flags);
        assert_eq!(code, 0, "{flags:?}: stdout={out} stderr={err}");
        assert_eq!(out.trim(), sentence, "{flags:?}");
        let mut json_flags = flags.to_vec();
        json_flags.push("--json");
        let (code, out, _) = set(&json_flags);
        assert_eq!(code, 0);
        let answer = json_of(&out);
        assert_eq!(answer["changed"], false, "{answer}");
        assert_eq!(answer["unchanged"]["code"], code_text, "{answer}");
        assert_eq!(answer["name"], "production");
    }
    // Resuming a running rollout changes nothing either.
    set(&["--rollout-resume"]);
    let (code, out, _) = set(&["--rollout-resume", "--json"]);
    assert_eq!(code, 0);
    assert_eq!(json_of(&out)["unchanged"]["code"], "not_paused");
    // One history row and one audit entry for the resume; none for the no-ops.
    assert_eq!(history_len(&s), history + 1);
    assert_eq!(audit_len(&s), audit + 1);
    // A real change still says Updated, with changed: true; its no-op part (the
    // rollout is paused already) is no release change in the audit log.
    set(&["--rollout-pause"]);
    let (code, out, _) = set(&["--rollout-pause", "--no-ios", "--json"]);
    assert_eq!(code, 0);
    assert_eq!(json_of(&out)["changed"], true);
    let out = s.cli_ok(&["audit", APP, "--json"]);
    let newest = &json_of(&out)["entries"][0];
    assert_eq!(newest["action"], "channel.update", "{newest}");
    assert_eq!(newest["after"]["ios"], false, "{newest}");
}
