//! Bundles end to end through the CLI: a folder uploaded with `updraft bundle
//! upload --path`, then installed by `updraft device simulate` exactly as the
//! plugin would — plain, encrypted, delta and encrypted delta.

use crate::harness::{Server, APP};
use crate::storage::noise;
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

/// A web bundle with what delta updates care about: a compressible file over
/// the Brotli threshold, an incompressible one, an empty one, nesting, and a
/// dotfile that must not be shipped.
pub fn write_web_bundle(dir: &Path, seed: u8) {
    let write = |name: &str, bytes: &[u8]| {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    };
    write(
        "index.html",
        format!(
            "<!doctype html><html><body data-seed=\"{seed}\"><script src=\"assets/app.js\"></script></body></html>"
        )
        .as_bytes(),
    );
    let app_js: String = (0..2000)
        .map(|i| format!("console.log('line {i} of build {seed}');\n"))
        .collect::<String>()
        + "import { CapacitorUpdater } from '@capgo/capacitor-updater';\nCapacitorUpdater.notifyAppReady();\n";
    write("assets/app.js", app_js.as_bytes());
    write("assets/logo.bin", &noise(20_000, u64::from(seed)));
    write("assets/empty.txt", b"");
    write("css/deep/nested/site.css", b"body { margin: 0 }\n");
    write(".env", b"SECRET=not-shipped\n");
}

/// Every non-dot file under `dir`, by relative `/` path.
pub fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            let path = entry.path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let rel = path
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .replace('\\', "/");
                out.insert(rel, std::fs::read(&path).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

pub(crate) fn json_out(text: &str) -> Value {
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

struct Project {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
}

fn project() -> Project {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    Project { _tmp: tmp, dir }
}

fn run_in(server: &Server, cwd: &Path, args: &[&str]) -> (i32, String, String) {
    crate::harness::cli_in(
        &server.data_dir,
        Some(&server.url),
        Some(&server.key),
        args,
        Some(cwd),
    )
}

pub(crate) fn run_ok(server: &Server, cwd: &Path, args: &[&str]) -> String {
    let (code, out, err) = run_in(server, cwd, args);
    assert_eq!(
        code, 0,
        "updraft {args:?} failed: stdout={out} stderr={err}"
    );
    out
}

/// The test app with a public `production` channel, through the CLI.
pub fn add_app_with_public_channel(server: &Server, cwd: &Path) {
    run_ok(server, cwd, &["app", "add", APP]);
    run_ok(
        server,
        cwd,
        &["channel", "add", "production", APP, "--default"],
    );
}

#[tokio::test]
async fn uploaded_folders_install_byte_for_byte_plain_encrypted_and_delta() {
    let server = Server::start().await;
    let project = project();
    let cwd = project.dir.as_path();
    add_app_with_public_channel(&server, cwd);
    let keys = json_out(&run_ok(&server, cwd, &["key", "create", "--json"]));
    let key_id = keys["key_id"].as_str().unwrap().to_string();
    assert_eq!(key_id.len(), 20);
    assert!(std::fs::read_to_string(cwd.join(".capgo_key_v2"))
        .unwrap()
        .starts_with("-----BEGIN RSA PRIVATE KEY-----"));
    assert!(std::fs::read_to_string(cwd.join(".capgo_key_v2.pub"))
        .unwrap()
        .starts_with("-----BEGIN RSA PUBLIC KEY-----"));

    // (version, flags, delta files, encrypted). Without --key-v2 or --no-key the
    // CLI encrypts with ./.capgo_key_v2 when it exists, as the Capgo CLI does.
    let variants: [(&str, &[&str], bool, bool); 5] = [
        ("1.0.1", &["--no-key"], false, false),
        ("1.0.2", &[], false, true),
        ("1.0.3", &["--no-key", "--delta"], true, false),
        (
            "1.0.4",
            &["--key-v2", ".capgo_key_v2", "--delta"],
            true,
            true,
        ),
        ("1.0.5", &["--delta-only"], true, true),
    ];
    for (index, (version, extra, delta, encrypted)) in variants.into_iter().enumerate() {
        let dist = cwd.join(format!("dist-{version}"));
        write_web_bundle(&dist, index as u8);
        let dist_arg = dist.to_string_lossy().into_owned();
        let mut args = vec![
            "bundle",
            "upload",
            APP,
            "--path",
            &dist_arg,
            "--bundle",
            version,
            "--channel",
            "production",
            "--json",
        ];
        args.extend_from_slice(extra);
        let (code, out, err) = run_in(&server, cwd, &args);
        assert_eq!(code, 0, "{args:?}: {out} {err}");
        let uploaded = json_out(&out);
        assert_eq!(uploaded["version"], version, "{uploaded}");
        assert_eq!(
            err.contains("encrypting with"),
            !extra.contains(&"--key-v2") && !extra.contains(&"--no-key"),
            "the implicit key is announced, and only then: {err}"
        );

        for platform in ["android", "ios"] {
            let out_dir = format!("installed-{version}-{platform}");
            let mut sim = vec![
                "device",
                "simulate",
                APP,
                "--platform",
                platform,
                "--version-build",
                "1.0.0",
                "--out",
                &out_dir,
                "--json",
            ];
            if encrypted {
                sim.extend_from_slice(&["--public-key", ".capgo_key_v2.pub"]);
            }
            let report = json_out(&run_ok(&server, cwd, &sim));
            assert_eq!(report["version"], version, "{report}");
            assert_eq!(
                report["download"],
                if delta { "manifest" } else { "zip" },
                "{report}"
            );
            let response = &report["response"];
            if encrypted {
                assert_eq!(
                    response["checksum"].as_str().unwrap().len(),
                    512,
                    "{response}"
                );
                assert!(!response["session_key"].as_str().unwrap().is_empty());
            } else {
                assert_eq!(
                    response["checksum"].as_str().unwrap().len(),
                    64,
                    "{response}"
                );
            }
            if delta {
                let manifest = response["manifest"].as_array().unwrap();
                assert!(
                    manifest
                        .iter()
                        .any(|f| f["file_name"] == "assets/app.js.br"),
                    "the compressible file travels Brotli-compressed: {manifest:?}"
                );
                assert!(
                    manifest.iter().any(|f| f["file_name"] == "assets/logo.bin"),
                    "the incompressible file travels as is: {manifest:?}"
                );
            }
            assert_eq!(
                tree(&cwd.join(&out_dir)),
                tree(&dist),
                "{version} on {platform} installs the folder byte for byte"
            );
        }

        let delta_only = extra.contains(&"--delta-only");
        if delta_only {
            assert!(uploaded["zip_sha256"].is_null(), "{uploaded}");
        }
        if delta && !delta_only {
            // Zip-only plugins still get the zip of a delta bundle.
            let out_dir = format!("installed-{version}-zip");
            let mut sim = vec![
                "device",
                "simulate",
                APP,
                "--download",
                "zip",
                "--out",
                &out_dir,
                "--json",
            ];
            if encrypted {
                sim.extend_from_slice(&["--public-key", ".capgo_key_v2.pub"]);
            }
            run_ok(&server, cwd, &sim);
            assert_eq!(tree(&cwd.join(&out_dir)), tree(&dist));
        }
    }

    // An encrypted bundle is refused to a device with another key, and a device
    // without a key cannot install it.
    let other = project.dir.join("other-key");
    run_ok(
        &server,
        cwd,
        &["key", "create", "--dir", &other.to_string_lossy()],
    );
    let other_pub = other
        .join(".capgo_key_v2.pub")
        .to_string_lossy()
        .into_owned();
    let (code, _, err) = run_in(
        &server,
        cwd,
        &[
            "device",
            "simulate",
            APP,
            "--public-key",
            &other_pub,
            "--out",
            "mismatch",
        ],
    );
    assert_eq!(code, 1);
    assert!(err.contains("[key_id_mismatch]"), "{err}");
    let (code, _, err) = run_in(&server, cwd, &["device", "simulate", APP, "--out", "nokey"]);
    assert_eq!(code, 1);
    assert!(err.contains("[decrypt_fail]"), "{err}");
}

#[tokio::test]
async fn upload_warns_when_the_bundle_never_calls_notify_app_ready() {
    let server = Server::start().await;
    let project = project();
    let cwd = project.dir.as_path();
    run_ok(&server, cwd, &["app", "add", APP]);
    let dist = cwd.join("dist");
    std::fs::create_dir_all(&dist).unwrap();
    std::fs::write(dist.join("index.html"), "<html>hello</html>").unwrap();
    let (code, out, err) = run_in(
        &server,
        cwd,
        &[
            "bundle", "upload", APP, "--path", "dist", "--bundle", "1.0.0",
        ],
    );
    assert_eq!(code, 0, "{out} {err}");
    assert!(err.contains("notifyAppReady"), "stderr: {err}");
    assert!(out.contains("Uploaded bundle 1.0.0"), "{out}");

    // A folder without index.html is refused before anything is sent.
    let empty = cwd.join("nothing");
    std::fs::create_dir_all(empty.join("sub")).unwrap();
    std::fs::write(empty.join("sub/app.js"), "x").unwrap();
    let (code, _, err) = run_in(
        &server,
        cwd,
        &[
            "bundle", "upload", APP, "--path", "nothing", "--bundle", "1.0.1",
        ],
    );
    assert_eq!(code, 1);
    assert!(err.contains("[missing_index_html]"), "{err}");
    let list = json_out(&run_ok(&server, cwd, &["bundle", "list", APP, "--json"]));
    assert_eq!(list["bundles"].as_array().unwrap().len(), 1, "{list}");
}

/// Forwards TCP to `upstream`, cutting the first connection that has carried
/// more than `cut_after` bytes towards the server.
fn flaky_proxy(upstream: String, cut_after: u64) -> (String, Arc<AtomicBool>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let cut_done = Arc::new(AtomicBool::new(false));
    let flag = cut_done.clone();
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { continue };
            let Ok(server) = TcpStream::connect(&upstream) else {
                continue;
            };
            let sent = Arc::new(AtomicU64::new(0));
            let (mut c_read, mut s_write) =
                (client.try_clone().unwrap(), server.try_clone().unwrap());
            let (mut s_read, mut c_write) = (server, client);
            let flag = flag.clone();
            let counter = sent.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 16 * 1024];
                loop {
                    let n = match c_read.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    let total = counter.fetch_add(n as u64, Ordering::SeqCst) + n as u64;
                    if total > cut_after && !flag.swap(true, Ordering::SeqCst) {
                        let _ = c_read.shutdown(Shutdown::Both);
                        let _ = s_write.shutdown(Shutdown::Both);
                        break;
                    }
                    if s_write.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
                let _ = s_write.shutdown(Shutdown::Write);
            });
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut s_read, &mut c_write);
                let _ = c_write.shutdown(Shutdown::Both);
            });
        }
    });
    (format!("http://{addr}"), cut_done)
}

#[tokio::test]
async fn an_upload_resumes_after_the_connection_breaks() {
    let server = Server::start().await;
    let project = project();
    let cwd = project.dir.as_path();
    add_app_with_public_channel(&server, cwd);
    let dist = cwd.join("dist");
    write_web_bundle(&dist, 7);
    // 12 MB that do not compress: the upload spans two chunks.
    let big = noise(12 * 1024 * 1024, 99);
    std::fs::write(dist.join("assets/video.bin"), &big).unwrap();

    let upstream = server.url.trim_start_matches("http://").to_string();
    let (proxy_url, cut) = flaky_proxy(upstream, 3 * 1024 * 1024);
    let (code, out, err) = crate::harness::cli_in(
        &server.data_dir,
        Some(&proxy_url),
        Some(&server.key),
        &[
            "bundle",
            "upload",
            APP,
            "--path",
            "dist",
            "--bundle",
            "1.5.0",
            "--channel",
            "production",
            "--json",
        ],
        Some(cwd),
    );
    assert_eq!(code, 0, "stdout={out} stderr={err}");
    assert!(
        cut.load(Ordering::SeqCst),
        "the proxy did break a connection"
    );

    let report = json_out(&run_ok(
        &server,
        cwd,
        &["device", "simulate", APP, "--out", "installed", "--json"],
    ));
    assert_eq!(report["version"], "1.5.0");
    assert_eq!(tree(&cwd.join("installed")), tree(&dist));

    // The download is counted for analytics: one request, the whole zip.
    let bundles = json_out(&run_ok(&server, cwd, &["bundle", "list", APP, "--json"]));
    let zip_size = bundles["bundles"][0]["size"].as_i64().expect("stored size");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let stats = json_out(&run_ok(&server, cwd, &["stats", APP, "--json"]));
        let totals = &stats["totals"];
        if totals["downloads"] == 1 {
            assert_eq!(totals["bytes"].as_i64(), Some(zip_size), "{stats}");
            break;
        }
        assert_eq!(totals["downloads"], 0, "{stats}");
        assert!(
            std::time::Instant::now() < deadline,
            "download never counted: {stats}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}

#[tokio::test]
async fn download_urls_use_the_public_url() {
    let public = "https://updates.example.com/edge";
    let server = Server::start_with(&[("UPDRAFT_PUBLIC_URL", public)]).await;
    let project = project();
    let cwd = project.dir.as_path();
    add_app_with_public_channel(&server, cwd);
    write_web_bundle(&cwd.join("dist"), 5);
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
            "1.0.1",
            "--channel",
            "production",
            "--delta",
        ],
    );
    let (status, answer) = server
        .post("/updates", &crate::harness::device_body())
        .await;
    assert_eq!(status, 200, "{answer}");
    let url = answer["url"].as_str().unwrap();
    let prefix = format!("{public}/dl/{APP}/1.0.1/");
    assert!(url.starts_with(&prefix) && url.ends_with(".zip"), "{url}");
    let manifest = answer["manifest"].as_array().unwrap();
    assert_eq!(manifest.len(), 5, "{manifest:?}");
    for entry in manifest {
        let file_url = entry["download_url"].as_str().unwrap();
        assert!(file_url.starts_with(&prefix), "{file_url}");
        // The same path is served here (a CDN or proxy in front maps the public URL to it).
        let local = format!("{}{}", server.url, &file_url[public.len()..]);
        let response = reqwest::get(&local).await.unwrap();
        assert_eq!(response.status(), 200, "{local}");
        assert!(response.headers().get("content-encoding").is_none());
    }
}
