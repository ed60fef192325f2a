//! The README's walk-through, through the CLI, against a running server.

use crate::harness::*;
use serde_json::{json, Value};

#[tokio::test]
async fn readme_walkthrough_serves_a_device() {
    let s = Server::start().await;
    s.cli_ok(&["app", "add", APP, "--name", "Example"]);
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
        "production",
        "--create-channel",
    ]);
    s.cli_ok(&["channel", "set", "production", APP, "--state", "default"]);
    let (_, b) = s.post("/updates", &device_body()).await;
    assert_plugin_success(&b);
    assert_eq!(b["version"], "1.0.1");

    let out = s.cli_ok(&["channel", "list", APP, "--json"]);
    let v: Value = serde_json::from_str(&out).expect("json");
    let production = &v["channels"][0];
    assert_eq!(
        (production["name"].as_str(), production["public"].as_bool()),
        (Some("production"), Some(true))
    );
    assert_eq!(production["bundle"], "1.0.1");
    let table = s.cli_ok(&["bundle", "list", APP]);
    assert!(table.contains("1.0.1"), "{table}");
}

#[tokio::test]
async fn channel_set_flags_change_what_devices_get() {
    let s = Server::start().await;
    s.cli_ok(&["app", "add", APP]);
    s.cli_ok(&["channel", "add", "production", APP, "--default"]);
    s.cli_ok(&[
        "bundle",
        "upload",
        APP,
        "--bundle",
        "0.9.0",
        "--external",
        "https://cdn.example.com/0.9.0.zip",
        "--checksum",
        CHECKSUM,
    ]);
    s.cli_ok(&["channel", "set", "production", APP, "--bundle", "0.9.0"]);
    // Under the native version (1.0.0): refused until downgrades are allowed.
    let (_, b) = s.post("/updates", &device_body()).await;
    assert_refusal(&b, "disable_auto_update_under_native", "blocked");
    s.cli_ok(&["channel", "set", "production", APP, "--downgrade"]);
    let (_, b) = s.post("/updates", &device_body()).await;
    assert_eq!(b["version"], "0.9.0", "{b}");
    s.cli_ok(&["channel", "set", "production", APP, "--no-android"]);
    let (_, b) = s.post("/updates", &device_body()).await;
    assert_refusal(&b, "no_channel", "failed");
    s.cli_ok(&[
        "channel",
        "set",
        "production",
        APP,
        "--android",
        "--disable-auto-update",
        "none",
        "--self-assign",
    ]);
    let out = s.cli_ok(&["channel", "list", APP, "--json"]);
    let v: Value = serde_json::from_str(&out).unwrap();
    let c = &v["channels"][0];
    assert_eq!(c["android"], true);
    assert_eq!(c["disable_auto_update"], "none");
    assert_eq!(c["allow_device_self_set"], true);
    assert_eq!(c["disable_auto_update_under_native"], false);
}

#[tokio::test]
async fn device_overrides_from_the_cli() {
    let s = Server::start().await;
    s.seed("1.1.0").await;
    s.bundle("1.2.0").await;
    s.cli_ok(&["channel", "add", "beta", APP]);
    s.cli_ok(&["channel", "set", "beta", APP, "--bundle", "1.2.0"]);
    s.cli_ok(&["device", "set", DEVICE, APP, "--channel", "beta"]);
    let (_, b) = s.post("/updates", &device_body()).await;
    assert_eq!(b["version"], "1.2.0");
    let (st, _) = s
        .post(
            "/stats",
            &with(
                device_body(),
                json!({"action": "set", "version_name": "1.2.0", "old_version_name": "1.1.0"}),
            ),
        )
        .await;
    assert_eq!(st, 200);
    // `device show` reads the override and the events typed.
    let shown = s.cli_ok(&["device", "show", DEVICE, APP]);
    let line = |label: &str| {
        shown
            .lines()
            .find(|line| line.starts_with(label))
            .map(|line| line[label.len()..].trim().to_string())
    };
    assert_eq!(
        line("Channel override").as_deref(),
        Some("beta (set by admin)"),
        "{shown}"
    );
    assert_eq!(line("Channel ").as_deref(), Some("beta"), "{shown}");
    let event = shown
        .lines()
        .skip_while(|line| !line.starts_with("Recent events:"))
        .find(|line| line.contains("  set "))
        .map(|line| line.split_whitespace().skip(2).collect::<Vec<_>>());
    assert_eq!(event, Some(vec!["set", "1.2.0", "1.1.0"]), "{shown}");
    s.cli_ok(&["device", "unset", DEVICE, APP]);
    let shown = s.cli_ok(&["device", "show", DEVICE, APP]);
    assert!(
        shown
            .lines()
            .any(|line| line.starts_with("Channel override") && line.ends_with(" none")),
        "{shown}"
    );
    let (_, b) = s.post("/updates", &device_body()).await;
    assert_eq!(b["version"], "1.1.0");
    // The registry lists the device once the writer flushed (SIGTERM-free: wait for the 1 s flush).
    let mut listed = String::new();
    for _ in 0..40 {
        listed = s.cli_ok(&["device", "list", APP, "--json"]);
        if listed.contains(DEVICE) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(listed.contains(DEVICE), "{listed}");
}

#[tokio::test]
async fn app_id_comes_from_capacitor_config_json() {
    let s = Server::start().await;
    s.cli_ok(&["app", "add", APP]);
    let project = tempfile::tempdir().unwrap();
    std::fs::write(
        project.path().join("capacitor.config.json"),
        json!({"appId": APP, "webDir": "dist"}).to_string(),
    )
    .unwrap();
    let (code, out, err) = cli_in(
        &s.data_dir,
        Some(&s.url),
        Some(&s.key),
        &["channel", "add", "production", "--default"],
        Some(project.path()),
    );
    assert_eq!(code, 0, "{out} {err}");
    let (code, out, _) = cli_in(
        &s.data_dir,
        Some(&s.url),
        Some(&s.key),
        &["channel", "list", "--json"],
        Some(project.path()),
    );
    assert_eq!(code, 0);
    assert!(out.contains("production"));
}

#[tokio::test]
async fn cli_errors_are_clear_and_exit_non_zero() {
    let s = Server::start().await;
    let (code, out, err) = cli(&s.data_dir, Some(&s.url), None, &["app", "list"]);
    assert_eq!(code, 3, "{out}");
    assert!(err.contains("missing_apikey"), "{err}");
    let (code, out, _) = s.cli(&["app", "add", "not-reverse", "--json"]);
    assert_eq!(code, 1);
    let v: Value = serde_json::from_str(out.trim()).expect("json error on stdout");
    assert_eq!(v["error"], "invalid_app_id");
    let (code, _, err) = cli(
        &s.data_dir,
        Some("http://127.0.0.1:9"),
        Some(&s.key),
        &["app", "list"],
    );
    assert_eq!(code, 4);
    assert!(err.contains("connection_failed"), "{err}");
}

#[tokio::test]
async fn serve_reads_updraft_toml_and_env_overrides_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("from-file");
    std::fs::write(
        dir.path().join("updraft.toml"),
        format!(
            "listen = \"127.0.0.1:1\"\ndata_dir = \"{}\"\n",
            data.display()
        ),
    )
    .unwrap();
    let mut child = std::process::Command::new(bin())
        .arg("serve")
        .current_dir(dir.path())
        .env_remove("UPDRAFT_DATA_DIR")
        .env("UPDRAFT_LISTEN", "127.0.0.1:0")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    child.kill().unwrap();
    let _ = child.wait();
    assert!(
        line.starts_with("updraft listening on http://127.0.0.1:"),
        "{line}"
    );
    assert!(
        !line.contains("127.0.0.1:1\n"),
        "env wins over the file: {line}"
    );
    assert!(
        data.join("updraft.db").exists(),
        "data_dir from the file is used"
    );
}
