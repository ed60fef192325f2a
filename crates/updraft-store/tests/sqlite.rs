//! The storage suite against SQLite, plus what only a file database has.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is its failure report

mod suite;

use tempfile::TempDir;
use updraft_core::model::{ChannelPatch, OverrideSource};
use updraft_store::{
    AppStore, BundleStore, ChannelStore, DeviceQuery, DeviceStore, NewBundle, NewChannel,
    OverrideStore, ReleaseStore, SqliteStore,
};

/// A fresh store in its own temp dir (kept alive by the caller).
async fn fresh() -> (SqliteStore, TempDir) {
    let dir = TempDir::new().unwrap();
    let store = SqliteStore::open_path(&dir.path().join("test.db"))
        .await
        .unwrap();
    (store, dir)
}

macro_rules! sqlite_suite {
    ($($name:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $name() {
                let (store, _dir) = fresh().await;
                suite::$name(&store).await;
            }
        )*
    };
}

sqlite_suite!(
    suite_apps,
    suite_bundles,
    suite_channels,
    suite_public_demotion,
    suite_overrides,
    suite_devices,
    suite_devices_keep_the_newest_observation,
    suite_multi_row_upserts,
    suite_stats,
    suite_api_keys,
    suite_settings,
    suite_release,
    suite_delete_app,
    suite_delete_app_revokes_its_keys,
    suite_bulk,
    suite_rollups_match_recount,
    suite_active_devices,
    suite_export,
    suite_retention,
    suite_delete_app_removes_analytics,
    suite_bundle_storage,
    suite_download_tallies,
    suite_rollup_cardinality_cap,
);

// Console users and their sessions.
sqlite_suite!(
    suite_users,
    suite_first_user,
    suite_totp_and_recovery_codes,
    suite_sessions,
    suite_expired_sessions_are_pruned,
);

// Upload sessions shared by every node.
sqlite_suite!(
    suite_upload_find_or_create,
    suite_upload_parts,
    suite_upload_racing_appends,
    suite_upload_expiry_and_delete,
);

// Webhooks and their delivery queue.
sqlite_suite!(
    suite_webhook_fan_out,
    suite_webhook_retries,
    suite_webhook_finished_deliveries_are_pruned,
    suite_webhook_delete_cascades,
    suite_webhook_secret_is_replaced_only_while_unchanged,
);

// Release safety: channel history, rollouts, schedules, audit.
sqlite_suite!(
    suite_release_fields_round_trip,
    suite_channel_history,
    suite_channel_update_is_atomic,
    suite_rollout_health,
    suite_rollout_decisions,
    suite_schedules,
    suite_deletes_take_release_rows,
    suite_audit_log,
);

#[tokio::test]
async fn download_tallies_add_up_in_their_table() {
    let (store, _dir) = fresh().await;
    suite::suite_download_tallies(&store).await;
    let rows: Vec<(String, i64, String, i64, i64)> = sqlx::query_as(
        "SELECT app_id, bundle_id, day, requests, bytes FROM bundle_downloads ORDER BY day, bundle_id",
    )
    .fetch_all(store.pool())
    .await
    .unwrap();
    let bundle_id = store
        .get_bundle("com.example.app", "1.0.0")
        .await
        .unwrap()
        .unwrap()
        .id;
    assert_eq!(
        rows,
        vec![
            (
                "com.example.app".to_string(),
                bundle_id,
                "2026-11-26".to_string(),
                5,
                150
            ),
            (
                "com.example.app".to_string(),
                bundle_id,
                "2026-11-27".to_string(),
                1,
                7
            ),
        ]
    );
}

#[tokio::test]
async fn open_creates_the_database_in_the_data_dir() {
    let dir = TempDir::new().unwrap();
    let data_dir = dir.path().join("nested").join("data");
    let store = SqliteStore::open(&data_dir).await.unwrap();
    store.ping().await.unwrap();
    assert!(data_dir.join("updraft.db").is_file());
}

#[tokio::test]
async fn connections_are_durable_and_enforce_foreign_keys() {
    let (store, _dir) = fresh().await;
    for pool in [store.pool(), store.write_pool()] {
        let journal_mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(pool)
            .await
            .unwrap();
        assert_eq!(journal_mode, "wal");
        for (pragma, expected) in [
            ("synchronous", 2_i64),
            ("foreign_keys", 1),
            ("busy_timeout", 5_000),
        ] {
            let value: i64 = sqlx::query_scalar(&format!("PRAGMA {pragma}"))
                .fetch_one(pool)
                .await
                .unwrap();
            assert_eq!(value, expected, "PRAGMA {pragma}");
        }
    }
}

#[tokio::test]
async fn data_survives_reopening_the_same_file() {
    let dir = TempDir::new().unwrap();
    let file = dir.path().join("updraft.db");
    let (bundle_id, channel_id) = {
        let store = SqliteStore::open_path(&file).await.unwrap();
        store
            .create_app("com.example.app", "Example", 1)
            .await
            .unwrap();
        let bundle = store
            .create_bundle(
                NewBundle {
                    app_id: "com.example.app".to_string(),
                    name: "1.0.0".to_string(),
                    ..NewBundle::default()
                },
                2,
            )
            .await
            .unwrap();
        let channel = store
            .create_channel(
                NewChannel {
                    app_id: "com.example.app".to_string(),
                    name: "production".to_string(),
                    settings: ChannelPatch {
                        bundle_id: Some(Some(bundle.id)),
                        public: Some(true),
                        ..ChannelPatch::default()
                    },
                },
                3,
            )
            .await
            .unwrap();
        store
            .set_override(
                "com.example.app",
                "dev-1",
                channel.id,
                OverrideSource::Admin,
                4,
            )
            .await
            .unwrap();
        store.close().await;
        (bundle.id, channel.id)
    };

    // Reopening runs the migrations again: they must be a no-op.
    let reopened = SqliteStore::open_path(&file).await.unwrap();
    let release = reopened.load_release("com.example.app").await.unwrap();
    assert_eq!(release.app.as_ref().unwrap().name, "Example");
    assert_eq!(release.channels.len(), 1);
    assert_eq!(release.channels[0].id, channel_id);
    assert!(release.channels[0].public);
    assert_eq!(release.bundle(bundle_id).unwrap().name, "1.0.0");
    assert_eq!(release.overrides["dev-1"].channel_id, channel_id);
    assert_eq!(
        reopened
            .count_devices("com.example.app", &DeviceQuery::default())
            .await
            .unwrap(),
        0
    );
}

#[tokio::test]
async fn concurrent_writers_do_not_fail_with_busy() {
    let (store, _dir) = fresh().await;
    store
        .create_app("com.example.app", "Example", 1)
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..16 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let name = format!("ch-{i}");
            let channel = store
                .create_channel(
                    NewChannel {
                        app_id: "com.example.app".to_string(),
                        name: name.clone(),
                        settings: ChannelPatch::default(),
                    },
                    i,
                )
                .await?;
            suite::update_channel(
                &store,
                "com.example.app",
                &name,
                ChannelPatch {
                    public: Some(true),
                    ..ChannelPatch::default()
                },
                100 + i,
            )
            .await?;
            Ok::<_, updraft_store::StoreError>(channel.id)
        }));
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let channels = store.list_channels("com.example.app").await.unwrap();
    assert_eq!(channels.len(), 16);
    assert_eq!(
        channels.iter().filter(|c| c.public).count(),
        1,
        "one public channel survives"
    );
}

/// "database or disk is full" in the middle of a write transaction (a full
/// tmpfs) must not leave the one writer connection inside a dead
/// transaction: once there is room again, the next write succeeds without
/// reopening the store.
#[tokio::test]
async fn a_failed_commit_does_not_poison_the_writer() {
    let fs = match updraft_testkit::Tmpfs::mount(4) {
        Ok(fs) => fs,
        Err(why) => {
            eprintln!("SKIPPED a_failed_commit_does_not_poison_the_writer: {why}");
            return;
        }
    };
    let store = SqliteStore::open_path(&fs.path().join("test.db"))
        .await
        .unwrap();
    store
        .create_app("com.example.first", "First", 0)
        .await
        .unwrap();
    let channel = |name: String| NewChannel {
        app_id: "com.example.first".to_string(),
        name,
        settings: ChannelPatch::default(),
    };
    fs.fill("filler");
    let long_name = "n".repeat(3000);
    let mut failure = None;
    for i in 0..2000 {
        if let Err(err) = store
            .create_channel(channel(format!("{i}-{long_name}")), i)
            .await
        {
            failure = Some(err);
            break;
        }
    }
    let failure = failure.expect("the full disk made a write fail");
    assert!(
        failure.to_string().contains("full"),
        "a disk-full error: {failure}"
    );
    std::fs::remove_file(fs.path().join("filler")).unwrap();
    for name in ["after", "after-2"] {
        store
            .create_channel(channel(name.to_string()), 1000)
            .await
            .expect("the writer works again once there is room");
    }
    assert!(store
        .get_channel("com.example.first", "after-2")
        .await
        .unwrap()
        .is_some());
    let check: String = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(check, "ok");
    store.close().await;
}

/// An older database (fewer migrations) is migrated by this binary; a newer
/// one (a migration this binary lacks) is refused with both versions named.
#[tokio::test]
async fn schema_versions_are_checked_at_open() {
    let dir = TempDir::new().unwrap();
    let file = dir.path().join("test.db");
    let all = &updraft_store::sqlite::MIGRATOR;
    let latest = all.iter().map(|m| m.version).max().unwrap();
    // What an older release left: every migration but the last.
    let older = sqlx::migrate::Migrator {
        migrations: std::borrow::Cow::Owned(
            all.iter().filter(|m| m.version < latest).cloned().collect(),
        ),
        ..sqlx::migrate::Migrator::DEFAULT
    };
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(&file)
        .create_if_missing(true);
    let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
    older.run(&pool).await.unwrap();
    pool.close().await;
    let store = SqliteStore::open_path(&file)
        .await
        .expect("an older database migrates");
    let applied: i64 = sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(applied, latest);
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (9999, 'from the future', 1, x'00', 0)",
    )
    .execute(store.write_pool())
    .await
    .unwrap();
    store.close().await;
    let err = SqliteStore::open_path(&file).await.unwrap_err().to_string();
    assert!(err.contains("migration 9999"), "{err}");
    assert!(err.contains(&format!("up to {latest}")), "{err}");
}

/// The database and its WAL companions are readable by their owner only,
/// whatever the umask, and an older, wider database is tightened at open.
#[cfg(unix)]
#[tokio::test]
async fn database_files_are_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let dir = TempDir::new().unwrap();
    let db = dir.path().join("updraft.db");
    let store = SqliteStore::open_path(&db).await.unwrap();
    store
        .create_app("com.example.app", "Example", 1)
        .await
        .unwrap();
    for suffix in ["", "-wal", "-shm"] {
        let path = std::path::PathBuf::from(format!("{}{suffix}", db.display()));
        assert_eq!(mode(&path), 0o600, "{}", path.display());
    }
    store.close().await;

    let old = dir.path().join("old.db");
    std::fs::write(&old, b"").unwrap();
    std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o644)).unwrap();
    let store = SqliteStore::open_path(&old).await.unwrap();
    assert_eq!(mode(&old), 0o600);
    store.close().await;
}
