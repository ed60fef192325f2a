//! Interoperability with the real Capgo CLI (`@capgo/cli` from npm, pinned in
//! tests/interop/package-lock.json and installed here on first use): keys and
//! encrypted bundles made by one tool work with the other, unchanged.

use crate::bundles::{add_app_with_public_channel, json_out, run_ok, tree, write_web_bundle};
use crate::harness::{Server, APP};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// The installed `capgo` executable; installs it with npm the first time.
fn capgo_cli() -> &'static Path {
    static CLI: OnceLock<PathBuf> = OnceLock::new();
    CLI.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("capgo-cli");
        let bin = dir.join("node_modules/.bin/capgo");
        if bin.exists() {
            return bin;
        }
        std::fs::create_dir_all(&dir).unwrap();
        let pinned = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop");
        for file in ["package.json", "package-lock.json"] {
            std::fs::copy(pinned.join(file), dir.join(file)).unwrap();
        }
        // `npm install` with the lock file rather than `npm ci`: the lock cannot
        // list @capgo/cli's macOS-only optional helpers, which `npm ci` insists on.
        let status = Command::new("npm")
            .args(["install", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(&dir)
            .status()
            .expect(
                "the interoperability tests need Node.js and npm (Debian: apt-get install nodejs npm)",
            );
        assert!(status.success(), "npm install of @capgo/cli failed");
        assert!(bin.exists(), "npm install did not install the capgo binary");
        bin
    })
}

/// Runs the Capgo CLI in a project folder; returns (exit code, stdout, stderr).
fn capgo(cwd: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new("timeout")
        .arg("180")
        .arg(capgo_cli())
        .args(args)
        .current_dir(cwd)
        .env("DO_NOT_TRACK", "1")
        .env("CAPGO_NO_TELEMETRY", "1")
        .stdin(Stdio::null())
        .output()
        .expect("run capgo");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A Capacitor project the Capgo CLI recognises, with an 8.x updater so it
/// uses the V3 checksum encoding that 8.x plugins need.
fn capacitor_project(dir: &Path) {
    std::fs::write(
        dir.join("capacitor.config.json"),
        serde_json::to_string_pretty(
            &json!({"appId": APP, "appName": "Interop", "webDir": "dist"}),
        )
        .unwrap(),
    )
    .unwrap();
    std::fs::write(
        dir.join("package.json"),
        serde_json::to_string_pretty(&json!({
            "name": "interop", "version": "1.0.0",
            "dependencies": {"@capgo/capacitor-updater": "8.51.14"}
        }))
        .unwrap(),
    )
    .unwrap();
}

/// Serves one file over HTTP at any path: a stand-in for external hosting.
fn serve_file(path: PathBuf) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            while reader.read_line(&mut line).map(|n| n > 2).unwrap_or(false) {
                line.clear();
            }
            let body = std::fs::read(&path).unwrap();
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/zip\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&body);
        }
    });
    format!("http://{addr}/bundle.zip")
}

#[tokio::test]
async fn capgo_cli_decrypts_a_bundle_updraft_encrypted_with_capgo_keys() {
    let server = Server::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let cwd = tmp.path();
    capacitor_project(cwd);
    let (code, out, err) = capgo(cwd, &["key", "create", "--force"]);
    assert!(
        cwd.join(".capgo_key_v2").exists() && cwd.join(".capgo_key_v2.pub").exists(),
        "capgo key create ({code}) wrote no keys: {out} {err}"
    );
    write_web_bundle(&cwd.join("dist"), 3);
    add_app_with_public_channel(&server, cwd);
    run_ok(
        &server,
        cwd,
        &[
            "bundle",
            "upload",
            APP,
            "--path",
            "dist",
            "--bundle",
            "1.2.0",
            "--channel",
            "production",
            "--key-v2",
            ".capgo_key_v2",
            "--json",
        ],
    );

    // What a device with the app's public key is told, and the bytes it downloads.
    let public = std::fs::read_to_string(cwd.join(".capgo_key_v2.pub")).unwrap();
    // §4.6 computed here, independently of updraft_bundle::crypto::key_id.
    let key_id: String = public
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect::<String>()
        .chars()
        .filter(|c| !c.is_whitespace())
        .take(20)
        .collect();
    let body = crate::harness::with(crate::harness::device_body(), json!({"key_id": key_id}));
    let (status, answer) = server.post("/updates", &body).await;
    assert_eq!(status, 200, "{answer}");
    let url = answer["url"].as_str().unwrap();
    let session_key = answer["session_key"].as_str().unwrap();
    let checksum = answer["checksum"].as_str().unwrap();
    assert_eq!(checksum.len(), 512);
    let encrypted = reqwest::get(url).await.unwrap().bytes().await.unwrap();
    std::fs::write(cwd.join("downloaded.zip"), &encrypted).unwrap();

    let (code, out, err) = capgo(
        cwd,
        &[
            "bundle",
            "decrypt",
            "downloaded.zip",
            session_key,
            "--key",
            ".capgo_key_v2.pub",
            "--checksum",
            checksum,
        ],
    );
    assert_eq!(code, 0, "capgo bundle decrypt failed: {out} {err}");
    assert!(out.contains("Checksum matches"), "{out} {err}");
    let decrypted = std::fs::read(cwd.join("downloaded.zip_decrypted.zip")).unwrap();
    // The decrypted zip is the one Updraft packed: unpack it and compare with the folder.
    std::fs::write(cwd.join("plain.zip"), &decrypted).unwrap();
    updraft_bundle::unpack::unpack_zip(&cwd.join("plain.zip"), &cwd.join("unpacked")).unwrap();
    assert_eq!(tree(&cwd.join("unpacked")), tree(&cwd.join("dist")));
}

#[tokio::test]
async fn a_bundle_capgo_cli_encrypted_with_updraft_keys_installs_from_an_external_url() {
    let server = Server::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let cwd = tmp.path();
    capacitor_project(cwd);
    run_ok(&server, cwd, &["key", "create", "--json"]);
    let dist = cwd.join("dist");
    write_web_bundle(&dist, 4);
    let plain = cwd.join("bundle.zip");
    let packed = updraft_bundle::pack::pack_dir(&dist, &plain).unwrap();

    let (code, out, err) = capgo(
        cwd,
        &[
            "bundle",
            "encrypt",
            "bundle.zip",
            &packed.sha256,
            "--key",
            ".capgo_key_v2",
            "--json",
        ],
    );
    assert_eq!(code, 0, "capgo bundle encrypt failed: {out} {err}");
    let start = out.find('{').expect("JSON in capgo's output");
    let encrypted: Value = serde_json::from_str(out[start..].trim()).expect("capgo JSON");
    let iv_session_key = encrypted["ivSessionKey"].as_str().unwrap();
    let encrypted_checksum = encrypted["checksum"].as_str().unwrap();
    let url = serve_file(cwd.join(encrypted["filename"].as_str().unwrap()));

    add_app_with_public_channel(&server, cwd);
    run_ok(
        &server,
        cwd,
        &[
            "bundle",
            "upload",
            APP,
            "--bundle",
            "1.3.0",
            "--external",
            &url,
            "--checksum",
            &packed.sha256,
            "--iv-session-key",
            iv_session_key,
            "--encrypted-checksum",
            encrypted_checksum,
            "--channel",
            "production",
            "--json",
        ],
    );
    for platform in ["android", "ios"] {
        let out_dir = format!("installed-{platform}");
        let report = json_out(&run_ok(
            &server,
            cwd,
            &[
                "device",
                "simulate",
                APP,
                "--platform",
                platform,
                "--public-key",
                ".capgo_key_v2.pub",
                "--out",
                &out_dir,
                "--json",
            ],
        ));
        assert_eq!(report["version"], "1.3.0", "{report}");
        assert_eq!(tree(&cwd.join(&out_dir)), tree(&dist), "{platform}");
    }
}
