//! Start-up refusals through the real binary: each says what it found and
//! what to do, and exits non-zero instead of serving.

use crate::harness::*;
use serde_json::json;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Runs `updraft serve` on `data_dir`; it must exit (not serve) within 60 s.
/// Returns (exit code, stderr).
pub(crate) fn serve_refused(data_dir: &Path, env: &[(&str, &str)]) -> (i32, String) {
    let mut cmd = Command::new(bin());
    cmd.arg("serve")
        .env("UPDRAFT_DATA_DIR", data_dir)
        .env("UPDRAFT_LISTEN", "127.0.0.1:0")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn updraft serve");
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("updraft serve started instead of refusing");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr)
        .unwrap();
    (status.code().unwrap_or(-1), stderr)
}

/// A data directory with a database holding one app, a bundle file and
/// some events, left by a clean stop (no WAL beside the file).
async fn used_data_dir() -> (Server, std::path::PathBuf) {
    let mut s = Server::start().await;
    s.seed("1.1.0").await;
    for i in 0..60 {
        let batch: Vec<_> = (0..50)
            .map(|j| {
                with(
                    device_body(),
                    json!({"action": format!("custom_{i}_{j}"), "version_name": "1.1.0"}),
                )
            })
            .collect();
        let (st, b) = s.post("/stats", &json!(batch)).await;
        assert_eq!(st, 200, "{b}");
    }
    assert!(s.sigterm().success());
    // Everything into the main file, so that damage to it is what SQLite reads.
    let store = updraft_store::SqliteStore::open(&s.data_dir).await.unwrap();
    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
        .execute(store.write_pool())
        .await
        .unwrap();
    store.close().await;
    let blob = s.data_dir.join("blobs").join("ab");
    std::fs::create_dir_all(&blob).unwrap();
    std::fs::write(blob.join("ab12"), b"PK\x03\x04 a stored bundle").unwrap();
    let db = s.data_dir.join("updraft.db");
    (s, db)
}

#[tokio::test]
async fn bundle_files_without_their_database_refuse_to_start() {
    let (s, db) = used_data_dir().await;
    std::fs::remove_file(&db).unwrap();
    let (code, err) = serve_refused(&s.data_dir, &[]);
    assert_ne!(code, 0);
    assert!(
        err.contains("found bundle files in") && err.contains("no database"),
        "{err}"
    );
    assert!(err.contains("restore updraft.db from a backup"), "{err}");
    assert!(!db.exists(), "no empty database was created");
    std::fs::write(&db, b"").unwrap();
    let (code, err) = serve_refused(&s.data_dir, &[]);
    assert_ne!(code, 0);
    assert!(err.contains("the database is empty"), "{err}");
}

#[tokio::test]
async fn a_truncated_database_refuses_to_start() {
    let (s, db) = used_data_dir().await;
    let len = std::fs::metadata(&db).unwrap().len();
    assert!(len > 64 * 1024, "a database of several pages: {len}");
    let file = std::fs::OpenOptions::new().write(true).open(&db).unwrap();
    file.set_len(len / 2).unwrap();
    drop(file);
    let (code, err) = serve_refused(&s.data_dir, &[]);
    assert_ne!(code, 0);
    assert!(err.contains("damaged"), "{err}");
    assert!(err.contains("restore"), "{err}");
}

#[tokio::test]
async fn a_file_that_is_not_a_database_refuses_to_start() {
    let (s, db) = used_data_dir().await;
    let mut bytes = std::fs::read(&db).unwrap();
    bytes[..100].fill(b'x');
    std::fs::write(&db, bytes).unwrap();
    let (code, err) = serve_refused(&s.data_dir, &[]);
    assert_ne!(code, 0);
    assert!(err.contains("damaged or not an Updraft database"), "{err}");
}

#[tokio::test]
async fn a_read_only_data_directory_refuses_to_start() {
    let fs = match updraft_testkit::Tmpfs::mount(8) {
        Ok(fs) => fs,
        Err(why) => {
            eprintln!("SKIPPED a_read_only_data_directory_refuses_to_start: {why}");
            return;
        }
    };
    let data_dir = fs.path().join("data");
    create_key(&data_dir, "admin", "admin", &[]);
    fs.set_read_only(true).unwrap();
    let (code, err) = serve_refused(&data_dir, &[]);
    fs.set_read_only(false).unwrap();
    assert_ne!(code, 0);
    assert!(err.contains("is not writable"), "{err}");
    assert!(err.contains("read-write"), "{err}");
}

#[tokio::test]
async fn a_database_from_a_newer_release_refuses_to_start() {
    let (s, db) = used_data_dir().await;
    let store = updraft_store::SqliteStore::open_path(&db).await.unwrap();
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (9999, 'from the future', 1, x'00', 0)",
    )
    .execute(store.write_pool())
    .await
    .unwrap();
    store.close().await;
    let (code, err) = serve_refused(&s.data_dir, &[]);
    assert_ne!(code, 0);
    let latest = updraft_store::sqlite::MIGRATOR
        .iter()
        .map(|m| m.version)
        .max()
        .unwrap();
    assert!(err.contains("migration 9999"), "{err}");
    assert!(err.contains(&format!("up to {latest}")), "{err}");
}

/// The export breaks off part-way (pages of the events table damaged after
/// the server started): the CLI says the server failed, not that it cannot
/// reach it, and exits non-zero.
#[tokio::test]
async fn an_export_that_fails_part_way_is_a_server_failure() {
    let (mut s, db) = used_data_dir().await;
    // The damage is made after the start-up check would have seen it.
    let key = std::mem::take(&mut s.key);
    let mut s2 = Server::spawn(&s.data_dir, &[("UPDRAFT_STARTUP_QUICK_CHECK", "false")]);
    s2.key = key;
    let (code, out, err) = s2.cli(&["events", "export", APP, "--format", "ndjson"]);
    assert_eq!(code, 0, "a whole export first: {err}");
    assert_eq!(out.lines().count(), 3000);
    assert!(s2.sigterm().success());
    // Zero the later half of the events table's leaf pages (tree order:
    // the highest ids), after a checkpoint so the main file is what is read.
    let store = updraft_store::SqliteStore::open(&s.data_dir).await.unwrap();
    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
        .execute(store.write_pool())
        .await
        .unwrap();
    let leaves: Vec<i64> = sqlx::query_scalar(
        "SELECT pageno FROM dbstat WHERE name = 'stats_events' AND pagetype = 'leaf' ORDER BY path",
    )
    .fetch_all(store.pool())
    .await
    .unwrap();
    store.close().await;
    assert!(leaves.len() > 4, "{leaves:?}");
    let mut bytes = std::fs::read(&db).unwrap();
    for page in &leaves[leaves.len() * 3 / 4..] {
        let start = (*page as usize - 1) * 4096;
        bytes[start..start + 4096].fill(0);
    }
    std::fs::write(&db, bytes).unwrap();
    let mut s3 = Server::spawn(&s.data_dir, &[("UPDRAFT_STARTUP_QUICK_CHECK", "false")]);
    s3.key = std::mem::take(&mut s2.key);
    let (code, out, err) = s3.cli(&["events", "export", APP, "--format", "ndjson"]);
    assert_ne!(code, 0, "stdout lines: {}", out.lines().count());
    assert!(err.contains("the server failed while exporting"), "{err}");
    assert!(!err.contains("cannot reach"), "{err}");
}
