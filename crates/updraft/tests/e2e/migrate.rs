//! `updraft migrate`: a populated embedded installation (SQLite + files),
//! copied while its server runs into a real PostgreSQL database and a real
//! S3-compatible bucket, gives devices identical answers and identical bytes
//! from a new server on PostgreSQL + S3, and shows the same devices, stats
//! and configuration through the API.

use crate::harness::*;
use reqwest::Method;
use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// Both servers answer with this base URL, so their answers can be equal.
pub(crate) const PUBLIC_URL: &str = "http://updates.example.test";
/// A week: signed URLs are stable for half of it, so both servers sign alike.
pub(crate) const SIGNED_TTL: &str = "604800";
pub(crate) const IOS_DEVICE: &str = "0b5e6c1d-7a34-4f2e-9c81-2d3e4f5a6b7c";
pub(crate) const BETA_DEVICE: &str = "a1b2c3d4-e5f6-4789-8abc-def012345678";
pub(crate) const CURRENT_DEVICE: &str = "f0e1d2c3-b4a5-4697-8877-665544332211";
pub(crate) const EMULATOR_DEVICE: &str = "5d4c3b2a-1908-4766-8554-433221100ffe";

pub(crate) fn project_with(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, text) in files {
        let path = dir.path().join("dist").join(name);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    }
    std::fs::write(
        dir.path().join("capacitor.config.json"),
        json!({"appId": APP, "webDir": "dist"}).to_string(),
    )
    .expect("write");
    dir
}

pub(crate) fn upload(s: &Server, version: &str, files: &[(&str, &str)], extra: &[&str]) {
    let project = project_with(files);
    let mut args = vec![
        "bundle",
        "upload",
        "--path",
        "dist",
        "--bundle",
        version,
        "--no-progress",
    ];
    args.extend_from_slice(extra);
    let (code, out, err) = cli_in(
        &s.data_dir,
        Some(&s.url),
        Some(&s.key),
        &args,
        Some(project.path()),
    );
    assert_eq!(code, 0, "upload {version}: {out} {err}");
}

/// The device requests whose answers must survive the move.
pub(crate) fn device_requests() -> Vec<Value> {
    vec![
        device_body(),
        with(
            device_body(),
            json!({"platform": "ios", "device_id": IOS_DEVICE, "version_os": "17.4"}),
        ),
        with(device_body(), json!({"device_id": BETA_DEVICE})),
        with(
            device_body(),
            json!({"device_id": CURRENT_DEVICE, "version_name": "1.1.0"}),
        ),
        with(
            device_body(),
            json!({"is_emulator": true, "device_id": EMULATOR_DEVICE}),
        ),
    ]
}

/// A download URL of `PUBLIC_URL` fetched from the server actually running.
pub(crate) async fn download(s: &Server, url: &str) -> Vec<u8> {
    let path = url
        .strip_prefix(PUBLIC_URL)
        .unwrap_or_else(|| panic!("{url} is not under {PUBLIC_URL}"));
    let resp = s
        .http
        .get(format!("{}{path}", s.url))
        .send()
        .await
        .expect("download");
    assert_eq!(resp.status(), 200, "GET {path}");
    resp.bytes().await.expect("bytes").to_vec()
}

/// Every answer and every byte each answer points at.
pub(crate) async fn answers_and_bytes(s: &Server) -> Vec<(Value, Vec<Vec<u8>>)> {
    let mut out = Vec::new();
    for request in device_requests() {
        let (status, answer) = s.post("/updates", &request).await;
        assert_eq!(status, 200, "{answer}");
        let mut bytes = Vec::new();
        if let Some(url) = answer["url"].as_str() {
            bytes.push(download(s, url).await);
        }
        for file in answer["manifest"].as_array().into_iter().flatten() {
            let url = file["download_url"].as_str().expect("download_url");
            bytes.push(download(s, url).await);
        }
        out.push((answer, bytes));
    }
    out
}

/// What the management API shows about the installation (no device request
/// in between: those would update the registry).
pub(crate) async fn api_view(s: &Server) -> Vec<Value> {
    let mut out = Vec::new();
    for path in [
        "/api/v1/apps".to_string(),
        format!("/api/v1/apps/{APP}"),
        format!("/api/v1/apps/{APP}/bundles"),
        format!("/api/v1/apps/{APP}/channels"),
        format!("/api/v1/apps/{APP}/channels/production"),
        format!("/api/v1/apps/{APP}/devices"),
        format!("/api/v1/apps/{APP}/devices/{DEVICE}"),
        format!("/api/v1/apps/{APP}/devices/{BETA_DEVICE}"),
        format!("/api/v1/apps/{APP}/stats"),
    ] {
        let (status, body) = s.api(Method::GET, &path, None).await;
        assert_eq!(status, 200, "GET {path}: {body}");
        out.push(json!({"path": path, "body": body}));
    }
    out
}

pub(crate) async fn wait_for<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while !check().await {
        assert!(started.elapsed() < Duration::from_secs(20), "{what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn migrate(data_dir: &Path, args: &[&str], env: &[(String, String)]) -> (i32, String, String) {
    let out = Command::new(bin())
        .arg("migrate")
        .args(args)
        .env("UPDRAFT_DATA_DIR", data_dir)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .expect("run updraft migrate");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn a_running_installation_moves_to_postgres_and_s3_and_answers_alike() {
    let common = [
        ("UPDRAFT_PUBLIC_URL", PUBLIC_URL),
        ("UPDRAFT_SIGNED_URL_TTL_SECS", SIGNED_TTL),
    ];
    let old = Server::start_with(&common).await;
    old.cli_ok(&["app", "add", APP]);
    upload(&old, "1.0.0", &[("index.html", "<p>one</p>")], &[]);
    upload(&old, "1.0.1", &[("index.html", "<p>one, fixed</p>")], &[]);
    upload(
        &old,
        "1.1.0",
        &[
            ("index.html", "<p>two</p>"),
            ("assets/app.js", &"console.log('two');\n".repeat(500)),
        ],
        &["--delta"],
    );
    for (name, body) in [
        (
            "production",
            json!({"name": "production", "public": true, "bundle": "1.1.0"}),
        ),
        (
            "beta",
            json!({"name": "beta", "bundle": "1.0.1", "allow_device_self_set": true, "allow_emulator": false}),
        ),
    ] {
        let (status, b) = old
            .api(
                Method::POST,
                &format!("/api/v1/apps/{APP}/channels"),
                Some(&body),
            )
            .await;
        assert_eq!(status, 201, "{name}: {b}");
    }
    let (status, b) = old
        .api(
            Method::PUT,
            &format!("/api/v1/apps/{APP}/devices/{BETA_DEVICE}/channel"),
            Some(&json!({"channel": "beta"})),
        )
        .await;
    assert_eq!(status, 200, "{b}");
    let stats: Vec<Value> = [DEVICE, IOS_DEVICE, BETA_DEVICE]
        .iter()
        .enumerate()
        .flat_map(|(i, device)| {
            [
                with(
                    device_body(),
                    json!({"device_id": device, "action": "download_complete", "version_name": "1.1.0", "timestamp": 1_767_225_600_000i64 + i as i64}),
                ),
                with(
                    device_body(),
                    json!({"device_id": device, "action": "set", "version_name": "1.1.0", "timestamp": 1_767_225_601_000i64 + i as i64}),
                ),
            ]
        })
        .collect();
    let (status, b) = old.post("/stats", &json!(stats)).await;
    assert_eq!(status, 200, "{b}");

    let before = answers_and_bytes(&old).await;
    // The delta bundle is answered with its manifest, the beta device with 1.0.1.
    assert_eq!(before[0].0["version"], "1.1.0");
    assert_eq!(before[0].0["manifest"].as_array().map(Vec::len), Some(2));
    assert_eq!(before[0].1.len(), 3, "zip + two files");
    assert_eq!(before[2].0["version"], "1.0.1");
    assert!(
        before[0].0["url"].as_str().unwrap().contains("sig="),
        "signed"
    );
    // Every device request is in the registry before the copy.
    wait_for("the registry flushed every device", || async {
        let (_, devices) = old
            .api(Method::GET, &format!("/api/v1/apps/{APP}/devices"), None)
            .await;
        devices["total"].as_u64() == Some(5)
    })
    .await;
    // ...and so is every download count (flushed on their own timer).
    let downloaded = before.iter().map(|(_, files)| files.len()).sum::<usize>() as u64;
    wait_for("the download counts flushed", || async {
        let (_, stats) = old
            .api(Method::GET, &format!("/api/v1/apps/{APP}/stats"), None)
            .await;
        stats["totals"]["downloads"].as_u64() == Some(downloaded)
    })
    .await;
    let view_before = api_view(&old).await;

    // The copy, while the old server keeps running.
    let database = updraft_testkit::postgres_database().await;
    let bucket = updraft_testkit::s3_bucket().await;
    let env = bucket.env();
    let (code, out, err) = migrate(
        &old.data_dir,
        &["--to", &database, "--storage", &bucket.url],
        &env,
    );
    assert_eq!(code, 0, "migrate failed:\n{out}\n{err}");
    assert!(
        out.contains(&format!("UPDRAFT_DATABASE_URL={database}")),
        "{out}"
    );
    assert!(
        out.contains(&format!("UPDRAFT_STORAGE_URL={}", bucket.url)),
        "{out}"
    );
    assert!(
        out.contains("AWS_SECRET_ACCESS_KEY=<the value used for this migration>"),
        "{out}"
    );
    assert!(
        !out.contains("updraft-test-secret"),
        "secrets are not printed: {out}"
    );
    assert!(
        out.contains("URL signing key: copied with the database"),
        "{out}"
    );
    for line in out
        .lines()
        .filter(|l| l.trim_start().starts_with("stats_events"))
    {
        assert!(line.trim_end().ends_with("ok"), "{line}");
    }
    assert!(!out.contains("MISMATCH"), "{out}");
    assert!(err.contains("not copied"), "the snapshot warning: {err}");

    // Once is enough: the target is no longer empty.
    let (code, again_out, again_err) = migrate(
        &old.data_dir,
        &["--to", &database, "--storage", &bucket.url],
        &env,
    );
    assert_eq!(code, 1, "{again_out} {again_err}");
    assert!(again_err.contains("not empty"), "{again_err}");
    // Refused before any file moves: a fresh bucket stays empty.
    let untouched = updraft_testkit::s3_bucket().await;
    let (code, _, refused) = migrate(
        &old.data_dir,
        &["--to", &database, "--storage", &untouched.url],
        &env,
    );
    assert_eq!(code, 1, "{refused}");
    assert!(refused.contains("not empty"), "{refused}");
    let staging = tempfile::tempdir().expect("tempdir");
    let bucket_view = updraft_store::blob::ObjectBlobStore::from_url(
        &untouched.url,
        &untouched.options(),
        staging.path(),
    )
    .expect("open the bucket");
    use updraft_store::blob::BlobStore;
    assert!(
        bucket_view.list().await.expect("list").is_empty(),
        "no file was copied for a refused target"
    );

    // A new node: an empty data directory, PostgreSQL and the bucket; the
    // same admin key works (its hash moved) and so does the URL-signing key
    // (a row of the database): the signed links below come out identical.
    let node_dir = tempfile::tempdir().expect("tempdir");
    let new_data = node_dir.path().join("data");
    std::fs::create_dir_all(&new_data).expect("mkdir");
    let mut new_env: Vec<(&str, &str)> =
        env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    new_env.extend(common);
    new_env.push(("UPDRAFT_DATABASE_URL", &database));
    new_env.push(("UPDRAFT_STORAGE_URL", &bucket.url));
    let mut new = Server::spawn(&new_data, &new_env);
    new.key = old.key.clone();

    assert_eq!(api_view(&new).await, view_before);
    let after = answers_and_bytes(&new).await;
    assert_eq!(after.len(), before.len());
    for (i, (b, a)) in before.iter().zip(&after).enumerate() {
        assert_eq!(a.0, b.0, "answer to request {i}");
        assert_eq!(a.1, b.1, "downloaded bytes of request {i}");
    }
    // The bundle files really come from the bucket: none were written locally.
    let local_blobs = new_data.join("blobs");
    let local_files = std::fs::read_dir(&local_blobs)
        .map(|entries| entries.count())
        .unwrap_or(0);
    assert_eq!(local_files, 0, "{} holds files", local_blobs.display());
    new.sigkill();
}
