//! `updraft backup` and `updraft restore`: a live installation backed up
//! while devices keep checking for updates and sending stats, restored into
//! an empty data directory and into PostgreSQL + S3, serves the same
//! answers, bytes and management views, with every stats event that was
//! acknowledged before the backup began; and the refusals (a target that is
//! not empty, damaged, truncated or newer backups).

use crate::harness::*;
use crate::migrate::{answers_and_bytes, upload, wait_for, BETA_DEVICE, PUBLIC_URL, SIGNED_TTL};
use reqwest::Method;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Same base URL and signing window on every server (answers compare
/// equal), and no device/app rate limits (the load below is one machine).
const COMMON: [(&str, &str); 4] = [
    ("UPDRAFT_PUBLIC_URL", PUBLIC_URL),
    ("UPDRAFT_SIGNED_URL_TTL_SECS", SIGNED_TTL),
    ("UPDRAFT_DEVICE_RATE_LIMIT_BURST", "0"),
    ("UPDRAFT_APP_RATE_LIMIT_BURST", "0"),
];

/// Runs the binary (async, so the load keeps running meanwhile); returns
/// (exit code, stdout, stderr).
async fn run(args: &[&str], env: &[(String, String)]) -> (i32, String, String) {
    let cwd = tempfile::tempdir().expect("tempdir");
    let out = tokio::process::Command::new(bin())
        .args(args)
        .current_dir(cwd.path())
        .env_remove("UPDRAFT_DATA_DIR")
        .env_remove("UPDRAFT_DATABASE_URL")
        .env_remove("UPDRAFT_STORAGE_URL")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .await
        .expect("run updraft");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn env_of(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// An app with three uploaded bundles (one with a delta manifest), two
/// channels, a device override and stats from three devices.
async fn populate(s: &Server) {
    s.cli_ok(&["app", "add", APP]);
    upload(s, "1.0.0", &[("index.html", "<p>one</p>")], &[]);
    upload(s, "1.0.1", &[("index.html", "<p>one, fixed</p>")], &[]);
    upload(
        s,
        "1.1.0",
        &[
            ("index.html", "<p>two</p>"),
            ("assets/app.js", &"console.log('two');\n".repeat(500)),
        ],
        &["--delta"],
    );
    for body in [
        json!({"name": "production", "public": true, "bundle": "1.1.0"}),
        json!({"name": "beta", "bundle": "1.0.1", "allow_device_self_set": true}),
    ] {
        let (status, b) = s
            .api(
                Method::POST,
                &format!("/api/v1/apps/{APP}/channels"),
                Some(&body),
            )
            .await;
        assert_eq!(status, 201, "{b}");
    }
    let (status, b) = s
        .api(
            Method::PUT,
            &format!("/api/v1/apps/{APP}/devices/{BETA_DEVICE}/channel"),
            Some(&json!({"channel": "beta"})),
        )
        .await;
    assert_eq!(status, 200, "{b}");
    let stats: Vec<Value> = [DEVICE, BETA_DEVICE]
        .iter()
        .flat_map(|device| {
            ["download_complete", "set"].map(|action| {
                with(
                    device_body(),
                    json!({"device_id": device, "action": action, "version_name": "1.1.0"}),
                )
            })
        })
        .collect();
    let (status, b) = s.post("/stats", &json!(stats)).await;
    assert_eq!(status, 200, "{b}");
}

/// Views the load below does not change (it uses devices of its own).
async fn stable_view(s: &Server) -> Vec<Value> {
    let mut out = Vec::new();
    for path in [
        "/api/v1/apps".to_string(),
        format!("/api/v1/apps/{APP}"),
        format!("/api/v1/apps/{APP}/bundles"),
        format!("/api/v1/apps/{APP}/channels"),
        format!("/api/v1/apps/{APP}/channels/production"),
        format!("/api/v1/apps/{APP}/devices/{DEVICE}"),
        format!("/api/v1/apps/{APP}/devices/{BETA_DEVICE}"),
    ] {
        let (status, body) = s.api(Method::GET, &path, None).await;
        assert_eq!(status, 200, "GET {path}: {body}");
        out.push(json!({"path": path, "body": body}));
    }
    out
}

/// Views the load changes: every device, the stats.
async fn load_view(s: &Server) -> Vec<Value> {
    let mut out = Vec::new();
    for path in [
        format!("/api/v1/apps/{APP}/devices?limit=1000"),
        format!("/api/v1/apps/{APP}/stats"),
    ] {
        let (status, body) = s.api(Method::GET, &path, None).await;
        assert_eq!(status, 200, "GET {path}: {body}");
        out.push(json!({"path": path, "body": body}));
    }
    out
}

/// The raw stats events the server holds, as (device, action) pairs.
async fn stored_events(s: &Server) -> BTreeSet<(String, String)> {
    let resp = s
        .http
        .get(format!(
            "{}/api/v1/apps/{APP}/events/export?format=ndjson&since=2000-01-01",
            s.url
        ))
        .bearer_auth(&s.key)
        .send()
        .await
        .expect("export");
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.expect("export body");
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let event: Value = serde_json::from_str(line).expect("ndjson");
            (
                event["device_id"].as_str().expect("device_id").to_string(),
                event["action"].as_str().expect("action").to_string(),
            )
        })
        .collect()
}

/// What the load saw.
#[derive(Default)]
struct LoadLog {
    /// When each successful update check was answered.
    updates: Vec<Instant>,
    /// When each stats request was acknowledged, and its events' devices.
    stats: Vec<(Instant, Vec<String>)>,
    failures: Vec<String>,
}

struct Load {
    stop: Arc<AtomicBool>,
    workers: Vec<tokio::task::JoinHandle<LoadLog>>,
}

fn load_device(worker: usize, n: u64) -> String {
    format!("{worker:08x}-0000-4000-8000-{n:012x}")
}

/// `workers` devices-like loops against `url`, each alternating an update
/// check (20 devices of its own) and a stats request of 5 events (each from
/// a new device), until stopped.
fn start_load(url: &str, workers: usize) -> Load {
    let stop = Arc::new(AtomicBool::new(false));
    let workers = (0..workers)
        .map(|worker| {
            let stop = stop.clone();
            let url = url.to_string();
            tokio::spawn(async move {
                let http = reqwest::Client::new();
                let mut log = LoadLog::default();
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let check = with(
                        device_body(),
                        json!({"device_id": load_device(worker + 100, n % 20)}),
                    );
                    match http
                        .post(format!("{url}/updates"))
                        .json(&check)
                        .send()
                        .await
                    {
                        Ok(resp) if resp.status() == 200 => {
                            let body: Value = resp.json().await.unwrap_or(Value::Null);
                            if body["version"] == "1.1.0" {
                                log.updates.push(Instant::now());
                            } else {
                                log.failures.push(format!("update check answered {body}"));
                            }
                        }
                        Ok(resp) => log
                            .failures
                            .push(format!("update check: status {}", resp.status())),
                        Err(err) => log.failures.push(format!("update check: {err}")),
                    }
                    let devices: Vec<String> =
                        (0..5).map(|i| load_device(worker, n * 10 + i)).collect();
                    let events: Vec<Value> = devices
                        .iter()
                        .map(|device| {
                            with(
                                device_body(),
                                json!({"device_id": device, "action": "app_moved_to_foreground"}),
                            )
                        })
                        .collect();
                    match http.post(format!("{url}/stats")).json(&events).send().await {
                        Ok(resp) if resp.status() == 200 => {
                            log.stats.push((Instant::now(), devices));
                        }
                        Ok(resp) => log
                            .failures
                            .push(format!("stats: status {}", resp.status())),
                        Err(err) => log.failures.push(format!("stats: {err}")),
                    }
                }
                log
            })
        })
        .collect();
    Load { stop, workers }
}

impl Load {
    async fn stop(self) -> LoadLog {
        self.stop.store(true, Ordering::Relaxed);
        let mut all = LoadLog::default();
        for worker in self.workers {
            let log = worker.await.expect("load worker");
            all.updates.extend(log.updates);
            all.stats.extend(log.stats);
            all.failures.extend(log.failures);
        }
        all
    }
}

/// Backs up while `load` runs; returns the backup's JSON summary, when the
/// command started and when it ended.
async fn backup_during_load(
    out: &Path,
    extra: &[&str],
    env: &[(String, String)],
) -> (Value, Instant, Instant) {
    let out_text = out.display().to_string();
    let mut args = vec!["backup", "--out", out_text.as_str(), "--json"];
    args.extend_from_slice(extra);
    let began = Instant::now();
    let (code, stdout, stderr) = run(&args, env).await;
    let ended = Instant::now();
    assert_eq!(code, 0, "backup failed:\n{stdout}\n{stderr}");
    let summary: Value = serde_json::from_str(&stdout).expect("backup --json prints JSON");
    (summary, began, ended)
}

/// Checks the load's answers and prints the figures of the backup window.
fn report_load(log: &LoadLog, began: Instant, ended: Instant, summary: &Value, label: &str) {
    assert!(
        log.failures.is_empty(),
        "failed answers: {:?}",
        log.failures
    );
    let during = |t: &Instant| *t >= began && *t <= ended;
    let updates_during = log.updates.iter().filter(|t| during(t)).count();
    let stats_during = log.stats.iter().filter(|(t, _)| during(t)).count();
    eprintln!(
        "{label}: backup of {} bytes in {:.2} s (snapshot {:.2} s, command {:.2} s); load answered \
         {} update checks and {} stats requests in total, {updates_during} checks and \
         {stats_during} stats requests during the backup, 0 failures",
        summary["bytes"],
        summary["seconds"].as_f64().unwrap_or(0.0),
        summary["snapshot_seconds"].as_f64().unwrap_or(0.0),
        (ended - began).as_secs_f64(),
        log.updates.len(),
        log.stats.len(),
    );
    assert!(
        updates_during > 0 && stats_during > 0,
        "the load ran during the backup ({updates_during} checks, {stats_during} stats requests)"
    );
}

/// The (device, action) pairs of every stats event acknowledged before `began`.
fn acknowledged_before(log: &LoadLog, began: Instant) -> BTreeSet<(String, String)> {
    log.stats
        .iter()
        .filter(|(t, _)| *t < began)
        .flat_map(|(_, devices)| devices.iter().cloned())
        .map(|device| (device, "app_moved_to_foreground".to_string()))
        .collect()
}

/// A server on a restored installation, with the original's admin key.
fn serve_restored(data_dir: &Path, env: &[(&str, &str)], key: &str) -> Server {
    let mut all: Vec<(&str, &str)> = COMMON.to_vec();
    all.extend_from_slice(env);
    let mut s = Server::spawn(data_dir, &all);
    s.key = key.to_string();
    s
}

/// Everything a restored server must show; device requests come last (they
/// change the registry).
struct Seen {
    stable: Vec<Value>,
    load: Vec<Value>,
    events: BTreeSet<(String, String)>,
    answers: Vec<(Value, Vec<Vec<u8>>)>,
}

async fn seen(s: &Server) -> Seen {
    Seen {
        stable: stable_view(s).await,
        load: load_view(s).await,
        events: stored_events(s).await,
        answers: answers_and_bytes(s).await,
    }
}

fn assert_same_answers(
    what: &str,
    got: &[(Value, Vec<Vec<u8>>)],
    expected: &[(Value, Vec<Vec<u8>>)],
) {
    assert_eq!(got.len(), expected.len(), "{what}");
    for (i, (g, e)) in got.iter().zip(expected).enumerate() {
        assert_eq!(g.0, e.0, "{what}: answer to request {i}");
        assert_eq!(g.1, e.1, "{what}: downloaded bytes of request {i}");
    }
}

/// Waits until the original's registry and download counts are flushed,
/// so that the views taken now are what the database holds.
async fn settle(s: &Server, devices: u64, downloads: u64) {
    wait_for("the registry flushed every device", || async {
        let (_, body) = s
            .api(Method::GET, &format!("/api/v1/apps/{APP}/devices"), None)
            .await;
        body["total"].as_u64() == Some(devices)
    })
    .await;
    wait_for("the download counts flushed", || async {
        let (_, stats) = s
            .api(Method::GET, &format!("/api/v1/apps/{APP}/stats"), None)
            .await;
        stats["totals"]["downloads"].as_u64() == Some(downloads)
    })
    .await;
}

fn downloads_of(answers: &[(Value, Vec<Vec<u8>>)]) -> u64 {
    answers.iter().map(|(_, files)| files.len() as u64).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_installation_backed_up_under_load_restores_into_a_directory_and_postgres() {
    let old = Server::start_with(&COMMON).await;
    populate(&old).await;
    let before = answers_and_bytes(&old).await;
    assert_eq!(before[0].0["version"], "1.1.0");
    assert_eq!(before[0].1.len(), 3, "zip + two delta files");
    settle(&old, 5, downloads_of(&before)).await;
    let stable_before = stable_view(&old).await;

    let load = start_load(&old.url, 2);
    tokio::time::sleep(Duration::from_millis(700)).await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let file = tmp.path().join("backup.tar");
    let source_env = env_of(&[("UPDRAFT_DATA_DIR", &old.data_dir.display().to_string())]);
    let (summary, began, ended) = backup_during_load(&file, &[], &source_env).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let log = load.stop().await;
    report_load(&log, began, ended, &summary, "SQLite + local files");
    let acknowledged = acknowledged_before(&log, began);
    assert!(!acknowledged.is_empty());
    // The load never touched what the stable views show.
    assert_eq!(stable_view(&old).await, stable_before);
    let manifest = &summary["manifest"];
    assert_eq!(manifest["source"]["engine"], "sqlite");
    assert_eq!(manifest["blobs"]["included"], true);
    assert_eq!(
        manifest["blobs"]["count"], 5,
        "three zips and two delta files"
    );

    let (code, out, err) = run(&["backup", "--verify", &file.display().to_string()], &[]).await;
    assert_eq!(code, 0, "verify: {out} {err}");
    assert!(out.contains("a complete Updraft backup"), "{out}");

    // Into an empty directory.
    let dir = tmp.path().join("restored");
    let (code, out, err) = run(
        &[
            "restore",
            &file.display().to_string(),
            "--data-dir",
            &dir.display().to_string(),
        ],
        &[],
    )
    .await;
    assert_eq!(code, 0, "restore into a directory: {out} {err}");
    let in_dir = serve_restored(&dir, &[], &old.key);
    let seen_dir = seen(&in_dir).await;

    // Into PostgreSQL, the files into a bucket.
    let database = updraft_testkit::postgres_database().await;
    let bucket = updraft_testkit::s3_bucket().await;
    let (code, out, err) = run(
        &[
            "restore",
            &file.display().to_string(),
            "--database-url",
            &database,
            "--storage",
            &bucket.url,
        ],
        &bucket.env(),
    )
    .await;
    assert_eq!(code, 0, "restore into PostgreSQL: {out} {err}");
    let node = tempfile::tempdir().expect("tempdir");
    let bucket_env = bucket.env();
    let mut pg_env: Vec<(&str, &str)> = bucket_env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    pg_env.push(("UPDRAFT_DATABASE_URL", &database));
    pg_env.push(("UPDRAFT_STORAGE_URL", &bucket.url));
    let in_pg = serve_restored(&node.path().join("data"), &pg_env, &old.key);
    let seen_pg = seen(&in_pg).await;

    for (what, seen) in [("directory", &seen_dir), ("PostgreSQL", &seen_pg)] {
        assert_eq!(seen.stable, stable_before, "{what}: management views");
        assert_same_answers(what, &seen.answers, &before);
        let missing: Vec<_> = acknowledged.difference(&seen.events).collect();
        assert!(
            missing.is_empty(),
            "{what}: {} of {} events acknowledged before the backup are missing, e.g. {:?}",
            missing.len(),
            acknowledged.len(),
            missing.first()
        );
    }
    // One snapshot: both restores hold exactly the same devices, stats and events.
    assert_eq!(seen_dir.load, seen_pg.load, "devices and stats views");
    assert_eq!(seen_dir.events, seen_pg.events);
    // Nothing invented, and no more than was acknowledged by the time the
    // backup command ended (its snapshot was taken before that).
    let from_load: BTreeSet<_> = seen_dir
        .events
        .iter()
        .filter(|(_, action)| action == "app_moved_to_foreground")
        .cloned()
        .collect();
    assert!(from_load.is_subset(&acknowledged_before(&log, Instant::now())));
    let by_end = acknowledged_before(&log, ended).len();
    assert!(
        from_load.len() <= by_end,
        "{} load events in the backup, only {by_end} acknowledged before it ended",
        from_load.len()
    );
    // The files came from the bucket: nothing local on the PostgreSQL node.
    let local = node.path().join("data").join("blobs");
    assert_eq!(
        std::fs::read_dir(&local).map(|d| d.count()).unwrap_or(0),
        0,
        "{} holds files",
        local.display()
    );
}

/// The PostgreSQL tables' row counts (to show a refused restore changed nothing).
async fn pg_rows(url: &str) -> Vec<(String, i64)> {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(url).await.expect("connect");
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables \
         WHERE table_schema = current_schema() ORDER BY 1",
    )
    .fetch_all(&mut conn)
    .await
    .expect("tables");
    let mut out = Vec::new();
    for table in tables {
        let rows: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM \"{table}\""))
            .fetch_one(&mut conn)
            .await
            .expect("count");
        out.push((table, rows));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_and_s3_installation_backs_up_its_object_list_or_its_bytes() {
    let database = updraft_testkit::postgres_database().await;
    let bucket = updraft_testkit::s3_bucket().await;
    let bucket_env = bucket.env();
    let mut env: Vec<(&str, &str)> = COMMON.to_vec();
    env.extend(bucket_env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    env.push(("UPDRAFT_DATABASE_URL", &database));
    env.push(("UPDRAFT_STORAGE_URL", &bucket.url));
    let node = tempfile::tempdir().expect("tempdir");
    let data = node.path().join("data");
    let key = create_key_pg(&data, &database);
    let mut old = Server::spawn(&data, &env);
    old.key = key;
    populate(&old).await;
    let before = answers_and_bytes(&old).await;
    settle(&old, 5, downloads_of(&before)).await;
    let stable_before = stable_view(&old).await;

    let mut source_env = bucket_env.clone();
    source_env.push(("UPDRAFT_DATABASE_URL".into(), database.clone()));
    source_env.push(("UPDRAFT_STORAGE_URL".into(), bucket.url.clone()));
    source_env.push(("UPDRAFT_DATA_DIR".into(), data.display().to_string()));
    let tmp = tempfile::tempdir().expect("tempdir");
    let listed = tmp.path().join("listed.tar");
    let whole = tmp.path().join("whole.tar");

    let load = start_load(&old.url, 2);
    tokio::time::sleep(Duration::from_millis(700)).await;
    let (summary, began, ended) = backup_during_load(&listed, &[], &source_env).await;
    let (whole_summary, _, _) = backup_during_load(&whole, &["--include-blobs"], &source_env).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let log = load.stop().await;
    report_load(&log, began, ended, &summary, "PostgreSQL + S3");
    let acknowledged = acknowledged_before(&log, began);

    let manifest = &summary["manifest"];
    assert_eq!(manifest["source"]["engine"], "postgres");
    assert_eq!(manifest["blobs"]["included"], false);
    assert_eq!(manifest["blobs"]["count"], 5);
    let keys: Vec<&str> = manifest["blobs"]["files"]
        .as_array()
        .expect("files")
        .iter()
        .map(|f| f["key"].as_str().expect("an object key"))
        .collect();
    assert!(keys.iter().all(|k| k.contains("/blobs/")), "{keys:?}");
    assert_eq!(whole_summary["manifest"]["blobs"]["included"], true);
    assert!(
        whole_summary["bytes"].as_u64() > summary["bytes"].as_u64(),
        "the bytes are in the second file"
    );
    for file in [&listed, &whole] {
        let (code, out, err) = run(&["backup", "--verify", &file.display().to_string()], &[]).await;
        assert_eq!(code, 0, "verify {}: {out} {err}", file.display());
    }

    // Without the bytes, a restore needs the bucket that holds them.
    let refused = tmp.path().join("refused");
    let (code, _, err) = run(
        &[
            "restore",
            &listed.display().to_string(),
            "--data-dir",
            &refused.display().to_string(),
        ],
        &[],
    )
    .await;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("--storage"), "{err}");
    assert!(!refused.exists());

    // The object list into a directory that keeps using the bucket …
    let with_bucket = tmp.path().join("with-bucket");
    let (code, out, err) = run(
        &[
            "restore",
            &listed.display().to_string(),
            "--data-dir",
            &with_bucket.display().to_string(),
            "--storage",
            &bucket.url,
        ],
        &bucket_env,
    )
    .await;
    assert_eq!(code, 0, "{out} {err}");
    let mut bucket_only: Vec<(&str, &str)> = bucket_env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    bucket_only.push(("UPDRAFT_STORAGE_URL", &bucket.url));
    // … and the whole backup into a directory with its own files.
    let standalone = tmp.path().join("standalone");
    let (code, out, err) = run(
        &[
            "restore",
            &whole.display().to_string(),
            "--data-dir",
            &standalone.display().to_string(),
        ],
        &[],
    )
    .await;
    assert_eq!(code, 0, "{out} {err}");

    let a = serve_restored(&with_bucket, &bucket_only, &old.key);
    let b = serve_restored(&standalone, &[], &old.key);
    let (seen_a, seen_b) = (seen(&a).await, seen(&b).await);
    for (what, seen) in [("object list + bucket", &seen_a), ("standalone", &seen_b)] {
        assert_eq!(seen.stable, stable_before, "{what}: management views");
        assert_same_answers(what, &seen.answers, &before);
        assert!(
            acknowledged.is_subset(&seen.events),
            "{what}: events acknowledged before the backup are missing"
        );
    }
    assert!(
        std::fs::read_dir(standalone.join("blobs"))
            .map(|d| d.count())
            .unwrap_or(0)
            > 0,
        "the standalone restore has its files on disk"
    );
}

/// An admin key created offline in the PostgreSQL database.
fn create_key_pg(data_dir: &Path, database: &str) -> String {
    let out = std::process::Command::new(bin())
        .args([
            "apikey", "create", "--name", "admin", "--role", "admin", "--json",
        ])
        .env("UPDRAFT_DATA_DIR", data_dir)
        .env("UPDRAFT_DATABASE_URL", database)
        .output()
        .expect("apikey create");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    v["key"].as_str().expect("key").to_string()
}

/// Flips one byte at `offset` of `file`.
fn flip_byte(file: &Path, offset: u64) {
    let mut bytes = std::fs::read(file).expect("read");
    bytes[offset as usize] ^= 0x5a;
    std::fs::write(file, bytes).expect("write");
}

/// Where each entry's data starts in the archive, by entry name.
fn entry_offsets(file: &Path) -> Vec<(String, u64, u64)> {
    let mut archive = tar::Archive::new(std::fs::File::open(file).expect("open"));
    archive
        .entries()
        .expect("entries")
        .map(|e| {
            let e = e.expect("entry");
            (
                e.path().expect("path").display().to_string(),
                e.raw_file_position(),
                e.size(),
            )
        })
        .collect()
}

/// Rewrites the archive with its manifest changed by `change`.
fn rewrite_manifest(from: &Path, to: &Path, change: impl Fn(&mut Value)) {
    use std::io::Read;
    let mut archive = tar::Archive::new(std::fs::File::open(from).expect("open"));
    let mut builder = tar::Builder::new(std::fs::File::create(to).expect("create"));
    for entry in archive.entries().expect("entries") {
        let mut entry = entry.expect("entry");
        let path = entry.path().expect("path").into_owned();
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).expect("read");
        if path == Path::new("manifest.json") {
            let mut manifest: Value = serde_json::from_slice(&bytes).expect("manifest");
            change(&mut manifest);
            bytes = serde_json::to_vec(&manifest).expect("json");
        }
        let mut header = entry.header().clone();
        header.set_size(bytes.len() as u64);
        header.set_cksum();
        builder.append(&header, bytes.as_slice()).expect("append");
    }
    builder.finish().expect("finish");
}

fn names_in(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect()
}

#[tokio::test]
async fn backups_and_restores_refuse_what_they_cannot_do_safely() {
    let s = Server::start_with(&COMMON).await;
    s.cli_ok(&["app", "add", APP]);
    upload(&s, "1.0.0", &[("index.html", "<p>one</p>")], &[]);
    let source_env = env_of(&[("UPDRAFT_DATA_DIR", &s.data_dir.display().to_string())]);
    let tmp = tempfile::tempdir().expect("tempdir");
    let good = tmp.path().join("good.tar");
    let good_text = good.display().to_string();
    let (code, out, err) = run(&["backup", "--out", &good_text], &source_env).await;
    assert_eq!(code, 0, "{out} {err}");
    let good_bytes = std::fs::read(&good).expect("read");
    let restore_into = |file: PathBuf, dir: PathBuf| async move {
        run(
            &[
                "restore",
                &file.display().to_string(),
                "--data-dir",
                &dir.display().to_string(),
            ],
            &[],
        )
        .await
    };

    // A target that is not empty: refused, and left as it was.
    let taken = tmp.path().join("taken");
    std::fs::create_dir_all(&taken).expect("mkdir");
    std::fs::write(taken.join("notes.txt"), "mine").expect("write");
    let (code, _, err) = restore_into(good.clone(), taken.clone()).await;
    assert_eq!(code, 5, "{err}");
    assert!(err.contains("not empty"), "{err}");
    assert_eq!(names_in(&taken), BTreeSet::from(["notes.txt".to_string()]));
    let database = updraft_testkit::postgres_database().await;
    let pg_restore = |file: String, url: String, dir: PathBuf| async move {
        run(
            &[
                "restore",
                &file,
                "--database-url",
                &url,
                "--data-dir",
                &dir.display().to_string(),
            ],
            &[],
        )
        .await
    };
    let (code, out, err) = pg_restore(
        good_text.clone(),
        database.clone(),
        tmp.path().join("pg-files"),
    )
    .await;
    assert_eq!(code, 0, "{out} {err}");
    let rows = pg_rows(&database).await;
    let (code, _, err) = pg_restore(
        good_text.clone(),
        database.clone(),
        tmp.path().join("pg-files"),
    )
    .await;
    assert_eq!(code, 5, "{err}");
    assert!(err.contains("not empty"), "{err}");
    assert_eq!(
        pg_rows(&database).await,
        rows,
        "the refused restore changed nothing"
    );

    // Damaged backups: --verify names the damage (exit 3), restore writes nothing.
    let offsets = entry_offsets(&good);
    let damaged = |name: &str| tmp.path().join(name);
    for (label, entry) in [
        ("blob", "blobs/"),
        ("database", "database/"),
        ("manifest", "manifest.json"),
    ] {
        let (_, offset, size) = offsets
            .iter()
            .find(|(path, _, _)| path.starts_with(entry))
            .cloned()
            .expect("entry");
        let file = damaged(&format!("{label}.tar"));
        std::fs::write(&file, &good_bytes).expect("copy");
        flip_byte(&file, offset + size / 2);
        let (code, out, err) = run(&["backup", "--verify", &file.display().to_string()], &[]).await;
        assert_eq!(code, 3, "{label}: {out} {err}");
        assert!(err.contains("not a usable backup"), "{label}: {err}");
        let dir = tmp.path().join(format!("from-{label}"));
        let (code, _, err) = restore_into(file, dir.clone()).await;
        assert_eq!(code, 3, "{label}: {err}");
        assert!(
            !dir.exists(),
            "{label}: a damaged backup created {}",
            dir.display()
        );
    }
    // Truncated anywhere: in the database, in a file, at an entry's end.
    let (_, blob_offset, blob_size) = offsets
        .iter()
        .find(|(path, _, _)| path.starts_with("blobs/"))
        .cloned()
        .expect("a blob");
    for cut in [
        good_bytes.len() / 3,
        (blob_offset + blob_size / 2) as usize,
        blob_offset as usize - 512,
    ] {
        let file = damaged("truncated.tar");
        std::fs::write(&file, &good_bytes[..cut]).expect("write");
        let (code, out, err) = run(&["backup", "--verify", &file.display().to_string()], &[]).await;
        assert_eq!(code, 3, "cut at {cut}: {out} {err}");
        let dir = tmp.path().join("from-truncated");
        let (code, _, err) = restore_into(file, dir.clone()).await;
        assert_eq!(code, 3, "cut at {cut}: {err}");
        assert!(!dir.exists());
    }
    // Not a backup at all.
    let junk = damaged("junk.tar");
    std::fs::write(&junk, b"hello").expect("write");
    let (code, _, err) = run(&["backup", "--verify", &junk.display().to_string()], &[]).await;
    assert_eq!(code, 3, "{err}");

    // From a newer Updraft: refused with both versions named (exit 4).
    let newer_schema = damaged("newer-schema.tar");
    rewrite_manifest(&good, &newer_schema, |m| {
        m["database"]["schema_version"] = json!(9999);
        m["updraft_version"] = json!("99.0.0");
    });
    let newer_format = damaged("newer-format.tar");
    rewrite_manifest(&good, &newer_format, |m| {
        m["format_version"] = json!(2);
        m["updraft_version"] = json!("99.0.0");
    });
    for file in [newer_schema, newer_format] {
        let (code, _, err) = run(&["backup", "--verify", &file.display().to_string()], &[]).await;
        assert_eq!(code, 4, "{err}");
        assert!(
            err.contains("99.0.0") && err.contains(env!("CARGO_PKG_VERSION")),
            "{err}"
        );
        let dir = tmp.path().join("from-newer");
        let (code, _, err) = restore_into(file, dir.clone()).await;
        assert_eq!(code, 4, "{err}");
        assert!(!dir.exists());
    }

    // A backup that fails half-way leaves the previous file as it was and no
    // partial file: a file the database uses no longer matches its name.
    let (sha256, _) = {
        let mut blobs = Vec::new();
        for entry in walk(&s.data_dir.join("blobs")) {
            blobs.push(entry);
        }
        let path = blobs.first().expect("a blob file").clone();
        let name = path
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        (name, path)
    };
    let blob_path = walk(&s.data_dir.join("blobs"))
        .into_iter()
        .find(|p| p.file_name().is_some_and(|n| n.to_string_lossy() == sha256))
        .expect("blob");
    flip_byte(&blob_path, 10);
    let before_names = names_in(tmp.path());
    let (code, out, err) = run(&["backup", "--out", &good_text], &source_env).await;
    assert_eq!(code, 1, "{out} {err}");
    assert!(err.contains(&sha256), "{err}");
    assert_eq!(
        std::fs::read(&good).expect("read"),
        good_bytes,
        "the old backup is intact"
    );
    assert_eq!(names_in(tmp.path()), before_names, "nothing left behind");
}

/// Every file under `dir`.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out
}
