//! The storage suite against a real PostgreSQL (a fresh database per test on
//! the test kit's throwaway server), plus what only a shared database has:
//! several nodes writing at once, the read replica pool, and the
//! `updraft_release` notifications.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is its failure report

mod suite;

use sqlx::postgres::PgListener;
use std::time::Duration;
use updraft_core::model::{ChannelPatch, DeviceSighting, Observed, ObservedAt, StatsEvent};
use updraft_store::{
    AnalyticsStore, AppStore, BundleStore, ChannelStore, EventExportQuery, NewBundle, NewChannel,
    PgStore, ReleaseStore, RolloutStore, StatsIngest, StoreError,
};

const APP: &str = "com.example.app";

/// A store on a new, empty database, and that database's URL.
async fn fresh() -> (PgStore, String) {
    let url = updraft_testkit::postgres_database().await;
    let store = PgStore::connect(&url, None).await.unwrap();
    (store, url)
}

macro_rules! pg_suite {
    ($($name:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $name() {
                let (store, _url) = fresh().await;
                suite::$name(&store).await;
                store.close().await;
            }
        )*
    };
}

// Every function of the suite, as tests/sqlite.rs runs them.
pg_suite!(
    suite_active_devices,
    suite_api_keys,
    suite_settings,
    suite_apps,
    suite_audit_log,
    suite_bulk,
    suite_bundle_storage,
    suite_bundles,
    suite_channel_history,
    suite_channel_update_is_atomic,
    suite_channels,
    suite_delete_app,
    suite_delete_app_revokes_its_keys,
    suite_delete_app_removes_analytics,
    suite_deletes_take_release_rows,
    suite_devices,
    suite_devices_keep_the_newest_observation,
    suite_download_tallies,
    suite_export,
    suite_multi_row_upserts,
    suite_overrides,
    suite_public_demotion,
    suite_release,
    suite_release_fields_round_trip,
    suite_retention,
    suite_rollout_decisions,
    suite_rollout_health,
    suite_rollups_match_recount,
    suite_rollup_cardinality_cap,
    suite_schedules,
    suite_stats,
    suite_upload_find_or_create,
    suite_upload_parts,
    suite_upload_racing_appends,
    suite_upload_expiry_and_delete,
    suite_webhook_delete_cascades,
    suite_webhook_secret_is_replaced_only_while_unchanged,
    suite_webhook_fan_out,
    suite_webhook_retries,
    suite_webhook_finished_deliveries_are_pruned,
);

// Console users and their sessions.
pg_suite!(
    suite_users,
    suite_first_user,
    suite_totp_and_recovery_codes,
    suite_sessions,
    suite_expired_sessions_are_pruned,
);

/// A day in the middle of 2026, so every event falls on one UTC day.
const DAY_START: i64 = 1_780_000_000_000 - 1_780_000_000_000 % 86_400_000;
const DEVICES: usize = 100;

fn event(device: usize, n: i64) -> StatsEvent {
    StatsEvent {
        app_id: APP.to_string(),
        device_id: format!("device-{device:03}"),
        action: if n % 2 == 0 { "set" } else { "get" }.to_string(),
        version_name: "1.0.0".to_string(),
        old_version_name: None,
        platform: "android".to_string(),
        plugin_version: Some("7.1.0".to_string()),
        version_build: Some("1.0.0".to_string()),
        is_prod: true,
        is_emulator: false,
        metadata: None,
        timestamp: DAY_START + n,
        received_at: DAY_START + n + 5,
    }
}

fn sighting(event: &StatsEvent) -> DeviceSighting {
    DeviceSighting {
        app_id: event.app_id.clone(),
        device_id: event.device_id.clone(),
        platform: event.platform.clone(),
        plugin_version: event.plugin_version.clone(),
        version_os: None,
        version_build: event.version_build.clone(),
        version_code: None,
        version_name: Some(event.version_name.clone()),
        custom_id: None,
        is_prod: true,
        is_emulator: false,
        default_channel: None,
        key_id: None,
        install_source: None,
        last_offered_version: None,
        last_update_outcome: None,
        seen_at: event.received_at,
        observed: Observed::all(ObservedAt::stats_event(event.received_at)),
    }
}

/// Two nodes (two stores on one database) ingest group commits at once, on
/// the same devices and day: every event lands in the rollups, and each
/// device counts once among the day's active devices. Ingest reads the
/// stored device-day rows and then writes the moves, so without the
/// cluster-wide write lock two commits would both count a new device.
#[tokio::test]
async fn two_nodes_ingesting_at_once_lose_nothing() {
    const TASKS_PER_NODE: i64 = 4;
    const BATCHES_PER_TASK: i64 = 8;
    const EVENTS_PER_BATCH: i64 = 50;
    let (first, url) = fresh().await;
    let second = PgStore::connect(&url, None).await.unwrap();
    first.create_app(APP, "Example", 1).await.unwrap();

    let mut tasks = Vec::new();
    for (node, store) in [first.clone(), second.clone()].into_iter().enumerate() {
        for task in 0..TASKS_PER_NODE {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                for batch in 0..BATCHES_PER_TASK {
                    let seed = ((node as i64 * TASKS_PER_NODE + task) * BATCHES_PER_TASK + batch)
                        * EVENTS_PER_BATCH;
                    let events: Vec<StatsEvent> = (0..EVENTS_PER_BATCH)
                        .map(|i| event((seed + i) as usize % DEVICES, seed + i))
                        .collect();
                    let sightings: Vec<DeviceSighting> = events.iter().map(sighting).collect();
                    let channels = vec![Some("production".to_string()); events.len()];
                    store
                        .ingest_stats(StatsIngest {
                            events: &events,
                            channels: &channels,
                            sightings: &sightings,
                            active_devices_since: 0,
                            max_bundles_per_day: 0,
                        })
                        .await?;
                }
                Ok::<_, StoreError>(())
            }));
        }
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }

    let total = 2 * TASKS_PER_NODE * BATCHES_PER_TASK * EVENTS_PER_BATCH;
    let day = updraft_core::analytics::day_of(DAY_START);
    let rollups = first.stats_rollups(APP, &day, &day).await.unwrap();
    let counted: i64 = rollups.actions.iter().map(|a| a.events).sum();
    assert_eq!(counted, total);
    let installs: i64 = rollups
        .actions
        .iter()
        .filter(|a| a.action == "set")
        .map(|a| a.events)
        .sum();
    assert_eq!(installs, total / 2);
    let active: i64 = rollups.devices.iter().map(|d| d.devices).sum();
    assert_eq!(active, DEVICES as i64);
    let exported = second
        .export_events(&EventExportQuery {
            app_id: APP.to_string(),
            limit: 10_000,
            ..EventExportQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(exported.len() as i64, total);
    // Ids grow with commits (retention relies on it): strictly increasing.
    assert!(exported.windows(2).all(|w| w[0].id < w[1].id));
    let health = second
        .rollout_health(
            APP,
            "production",
            "1.0.0",
            DAY_START,
            DAY_START + 86_400_000,
        )
        .await
        .unwrap();
    assert_eq!((health.installs, health.failures), (total / 2, 0));
    first.close().await;
    second.close().await;
}

/// Two nodes create channels and make each public at once: the
/// one-public-channel rule (read the others, then demote them) holds across
/// nodes, and every change got its history row.
#[tokio::test]
async fn two_nodes_updating_channels_at_once_keep_one_public() {
    const CHANNELS: i64 = 12;
    let (first, url) = fresh().await;
    let second = PgStore::connect(&url, None).await.unwrap();
    first.create_app(APP, "Example", 1).await.unwrap();
    let bundle = first
        .create_bundle(
            NewBundle {
                app_id: APP.to_string(),
                name: "1.0.0".to_string(),
                ..NewBundle::default()
            },
            2,
        )
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..CHANNELS {
        let store = if i % 2 == 0 {
            first.clone()
        } else {
            second.clone()
        };
        tasks.push(tokio::spawn(async move {
            let name = format!("ch-{i:02}");
            store
                .create_channel(
                    NewChannel {
                        app_id: APP.to_string(),
                        name: name.clone(),
                        settings: ChannelPatch {
                            bundle_id: Some(Some(bundle.id)),
                            ..ChannelPatch::default()
                        },
                    },
                    10 + i,
                )
                .await?;
            suite::update_channel(
                &store,
                APP,
                &name,
                ChannelPatch {
                    public: Some(true),
                    ..ChannelPatch::default()
                },
                100 + i,
            )
            .await
        }));
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let channels = second.list_channels(APP).await.unwrap();
    assert_eq!(channels.len(), CHANNELS as usize);
    assert_eq!(
        channels.iter().filter(|c| c.public).count(),
        1,
        "one public channel survives"
    );
    for channel in &channels {
        // Created serving 1.0.0; going public does not change what is served.
        let history = first.channel_history(APP, &channel.name, 10).await.unwrap();
        assert_eq!(history.len(), 1, "history of {}", channel.name);
        assert_eq!(history[0].bundle, "1.0.0");
    }
    first.close().await;
    second.close().await;
}

/// With a read URL, release loads and the app list read there and nothing
/// else does. The "replica" here is a second database, so where each read
/// went shows in what it returns.
#[tokio::test]
async fn release_loads_read_from_the_read_pool() {
    let (primary, primary_url) = fresh().await;
    let (replica, replica_url) = fresh().await;
    primary.create_app(APP, "On the primary", 1).await.unwrap();
    replica
        .create_app("com.example.replica", "On the replica", 2)
        .await
        .unwrap();

    let store = PgStore::connect(&primary_url, Some(&replica_url))
        .await
        .unwrap();
    assert_eq!(
        store.list_app_ids().await.unwrap(),
        vec!["com.example.replica".to_string()]
    );
    let loaded = store.load_release("com.example.replica").await.unwrap();
    assert_eq!(loaded.app.unwrap().name, "On the replica");
    assert!(store.load_release(APP).await.unwrap().app.is_none());
    // Everything else is the primary.
    let apps = store.list_apps().await.unwrap();
    assert_eq!(apps.len(), 1);
    assert_eq!(apps[0].name, "On the primary");

    // The usual setup: the read URL is the same database.
    let same = PgStore::connect(&primary_url, Some(&primary_url))
        .await
        .unwrap();
    let loaded = same.load_release(APP).await.unwrap();
    assert_eq!(loaded.app.unwrap().name, "On the primary");
    for store in [primary, replica, store, same] {
        store.close().await;
    }
}

/// Waits briefly for the next notification on the release channel.
async fn next_release_notice(listener: &mut PgListener) -> Option<String> {
    tokio::time::timeout(Duration::from_secs(5), listener.recv())
        .await
        .ok()
        .map(|received| received.unwrap().payload().to_string())
}

/// A committed channel change tells every listening node which app to
/// reload, once per transaction; writes that do not touch the release
/// configuration (stats) stay silent.
#[tokio::test]
async fn a_channel_change_notifies_its_app_once() {
    let (store, url) = fresh().await;
    store.create_app(APP, "Example", 1).await.unwrap();
    for name in ["beta", "production"] {
        store
            .create_channel(
                NewChannel {
                    app_id: APP.to_string(),
                    name: name.to_string(),
                    settings: ChannelPatch {
                        public: Some(true),
                        ..ChannelPatch::default()
                    },
                },
                2,
            )
            .await
            .unwrap();
    }
    let mut listener = PgListener::connect(&url).await.unwrap();
    listener.listen("updraft_release").await.unwrap();

    // Makes "beta" public again: two rows change (and history is written) in
    // one transaction, which PostgreSQL folds into one notification.
    suite::update_channel(
        &store,
        APP,
        "beta",
        ChannelPatch {
            public: Some(true),
            ..ChannelPatch::default()
        },
        3,
    )
    .await
    .unwrap();
    assert_eq!(
        next_release_notice(&mut listener).await.as_deref(),
        Some(APP)
    );

    let events = vec![event(1, 1)];
    store
        .ingest_stats(StatsIngest {
            events: &events,
            channels: &[],
            sightings: &[],
            active_devices_since: 0,
            max_bundles_per_day: 0,
        })
        .await
        .unwrap();
    let silent = tokio::time::timeout(Duration::from_millis(300), listener.recv()).await;
    assert!(silent.is_err(), "stats must not notify: {silent:?}");

    store.delete_app(APP, 100).await.unwrap();
    assert_eq!(
        next_release_notice(&mut listener).await.as_deref(),
        Some(APP)
    );
    store.close().await;
}

/// A real streaming replica that replays every commit late: a release load
/// right after a change (what a notified node does) still sees the change,
/// because loads wait for the replica to reach the primary's position.
#[tokio::test]
async fn a_lagging_replica_never_hides_a_committed_change() {
    let (primary_url, replica_url) = updraft_testkit::postgres_database_with_replica().await;
    let store = PgStore::connect(&primary_url, Some(&replica_url))
        .await
        .unwrap();
    store.create_app(APP, "Example", 1).await.unwrap();
    let loaded = store.load_release(APP).await.unwrap();
    assert_eq!(loaded.app.unwrap().name, "Example");
    let direct = sqlx::postgres::PgPoolOptions::new()
        .connect(&replica_url)
        .await
        .unwrap();
    for round in 0..3 {
        let name = format!("Renamed {round}");
        store
            .update_app(APP, Some(name.as_str()), None)
            .await
            .unwrap();
        // The replica itself is behind at this moment (the test would prove
        // nothing otherwise) ...
        let on_replica: String = sqlx::query_scalar("SELECT name FROM apps WHERE app_id = $1")
            .bind(APP)
            .fetch_one(&direct)
            .await
            .unwrap();
        assert_ne!(on_replica, name, "the replica is expected to lag");
        // ... yet a load sees the change.
        let loaded = store.load_release(APP).await.unwrap();
        assert_eq!(loaded.app.unwrap().name, name);
    }
    direct.close().await;
    store.close().await;
}

/// A database migrated by a newer Updraft (a migration this binary does not
/// have) is refused with both versions named, not run against.
#[tokio::test]
async fn a_database_newer_than_the_binary_is_refused() {
    let (store, url) = fresh().await;
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (9999, 'from the future', TRUE, '\\x00', 0)",
    )
    .execute(store.pool())
    .await
    .unwrap();
    store.close().await;
    let err = PgStore::connect(&url, None).await.unwrap_err().to_string();
    let binary_latest = updraft_store::postgres::MIGRATOR
        .iter()
        .map(|m| m.version)
        .max()
        .unwrap();
    assert!(err.contains("migration 9999"), "{err}");
    assert!(
        err.contains(&format!("up to {binary_latest}")),
        "names the binary's latest migration: {err}"
    );
}

/// The connection of a write transaction is killed half-way (here: while it
/// waits for the cluster-wide write lock another session holds): that write
/// fails as `Unavailable` (a 503 for the request), the pool replaces the
/// dead connection, and the next write succeeds.
#[tokio::test]
async fn a_connection_lost_mid_transaction_is_replaced() {
    let (store, url) = fresh().await;
    store.create_app(APP, "App", 0).await.unwrap();
    let mut holder = <sqlx::PgConnection as sqlx::Connection>::connect(&url)
        .await
        .unwrap();
    sqlx::query("BEGIN").execute(&mut holder).await.unwrap();
    // The store's write lock key ("UPDRAFTW").
    sqlx::query("SELECT pg_advisory_xact_lock(6147488611433862231)")
        .execute(&mut holder)
        .await
        .unwrap();
    let writer = {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .create_channel(
                    NewChannel {
                        app_id: APP.to_string(),
                        name: "blocked".to_string(),
                        settings: ChannelPatch::default(),
                    },
                    1,
                )
                .await
        })
    };
    // Wait until the write waits on the lock inside its transaction, then
    // terminate that backend.
    let mut terminated = false;
    for _ in 0..100 {
        let killed: Vec<bool> = sqlx::query_scalar(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = current_database() AND wait_event_type = 'Lock' \
             AND pid <> pg_backend_pid()",
        )
        .fetch_all(&mut holder)
        .await
        .unwrap();
        if killed.iter().any(|k| *k) {
            terminated = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(terminated, "the write never waited on the lock");
    let err = writer.await.unwrap().unwrap_err();
    assert!(
        matches!(err, StoreError::Unavailable(_)),
        "a lost connection is transient: {err:?}"
    );
    sqlx::query("ROLLBACK").execute(&mut holder).await.unwrap();
    let channel = store
        .create_channel(
            NewChannel {
                app_id: APP.to_string(),
                name: "after".to_string(),
                settings: ChannelPatch::default(),
            },
            2,
        )
        .await
        .expect("the next write succeeds on a fresh connection");
    assert_eq!(channel.name, "after");
    assert!(store.get_channel(APP, "blocked").await.unwrap().is_none());
    store.close().await;
}

/// Nodes starting at once with UPDRAFT_ADMIN_EMAIL set (each with its own
/// pool, different emails even): exactly one first user exists afterwards.
#[tokio::test]
async fn nodes_starting_together_create_one_first_user() {
    use updraft_core::model::Role;
    use updraft_store::{NewUser, UserStore};
    let (first, url) = fresh().await;
    let mut nodes = vec![first];
    for _ in 0..3 {
        nodes.push(PgStore::connect(&url, None).await.unwrap());
    }
    let attempts = nodes.iter().enumerate().map(|(i, node)| async move {
        node.create_first_user(
            NewUser {
                email: format!("admin{i}@example.com"),
                password_hash: "$argon2id$x".to_string(),
                role: Role::Admin,
                apps: None,
            },
            1_000,
        )
        .await
        .unwrap()
    });
    let created: Vec<_> = futures_util::future::join_all(attempts).await;
    assert_eq!(
        created.iter().filter(|c| c.is_some()).count(),
        1,
        "{created:?}"
    );
    assert_eq!(nodes[0].list_users().await.unwrap().len(), 1);
    for node in nodes {
        node.close().await;
    }
}
