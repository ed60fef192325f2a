//! `updraft migrate` at the store level: a populated SQLite store copied into
//! a real PostgreSQL database reads back identically through `PgStore`; a
//! non-empty target is refused untouched; blobs reach object storage intact.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is its failure report

use std::collections::{BTreeMap, BTreeSet};
use tempfile::TempDir;
use updraft_core::model::{
    AutoPausePolicy, AutoUpdatePolicy, ChangeContext, ChannelPatch, DeviceSighting, ManifestFile,
    NativePackage, Observed, ObservedAt, OverrideSource, Platform, RampPlan, Role, Rollout,
    RolloutDecision, ScheduledAction, StatsEvent, Targeting,
};
use updraft_store::blob::{BlobStore, LocalBlobStore, ObjectBlobStore};
use updraft_store::migrate::{
    check_blobs_present, copy_blobs, copy_database, open_source, BlobProgress, CopyProgress,
    MigrateError,
};
use updraft_store::{
    AnalyticsStore, ApiKeyStore, AppStore, AuditQuery, AuditStore, BundleStore, ChannelStore,
    ChannelUpdate, DeviceQuery, DeviceStore, DownloadStore, DownloadTally, EventExportQuery,
    NewApiKey, NewAuditEntry, NewBundle, NewChannel, NewSchedule, NewWebhook, OverrideStore,
    PgStore, ReleaseStore, ScheduleStore, SessionStore, SqliteStore, StatsIngest, Store, UserStore,
    WebhookStore,
};

const APP: &str = "com.example.app";
const OTHER: &str = "com.example.other";
/// 2023-11-14T22:13:20Z
const T0: i64 = 1_700_000_000_000;

fn sha(text: &str) -> String {
    sha256_bytes(text.as_bytes())
}

fn sha256_bytes(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(bytes))
}

fn sighting(app_id: &str, device_id: &str, seen_at: i64, version: &str) -> DeviceSighting {
    DeviceSighting {
        app_id: app_id.to_string(),
        device_id: device_id.to_string(),
        platform: if device_id.ends_with('1') {
            "ios"
        } else {
            "android"
        }
        .to_string(),
        plugin_version: Some("7.1.0".to_string()),
        version_os: Some("17.1".to_string()),
        version_build: Some("1.0.0".to_string()),
        version_code: Some("10".to_string()),
        version_name: Some(version.to_string()),
        custom_id: device_id
            .ends_with(['0', '2', '4', '6', '8'])
            .then(|| format!("user-{device_id}")),
        is_prod: true,
        is_emulator: device_id.ends_with('3'),
        default_channel: Some("beta".to_string()),
        key_id: None,
        install_source: Some("app_store".to_string()),
        last_offered_version: Some(version.to_string()),
        last_update_outcome: None,
        seen_at,
        observed: Observed::all(ObservedAt::update_check(seen_at)),
    }
}

fn event(device_id: &str, action: &str, version: &str, at: i64) -> StatsEvent {
    StatsEvent {
        app_id: APP.to_string(),
        device_id: device_id.to_string(),
        action: action.to_string(),
        version_name: version.to_string(),
        old_version_name: Some("1.0.0".to_string()),
        platform: "android".to_string(),
        plugin_version: Some("7.1.0".to_string()),
        version_build: Some("1.0.0".to_string()),
        is_prod: true,
        is_emulator: false,
        metadata: (action == "set").then(|| BTreeMap::from([("k".to_string(), "v é".to_string())])),
        timestamp: at,
        received_at: at + 7,
    }
}

fn manifest_file(name: &str, blob: Option<&str>) -> ManifestFile {
    ManifestFile {
        file_name: name.to_string(),
        file_hash: sha(name),
        location: format!("/files/{name}"),
        size: Some(name.len() as i64),
        blob_sha256: blob.map(str::to_string),
    }
}

fn change(at: i64, reason: &str) -> ChangeContext {
    ChangeContext {
        at,
        actor: "key:ci".to_string(),
        reason: reason.to_string(),
    }
}

/// Ids of everything `populate` made that the comparison needs.
struct Seeded {
    devices: Vec<String>,
    webhook_ids: Vec<i64>,
    blobs: Vec<String>,
}

/// Fills a store through its traits with some of everything.
async fn populate(s: &SqliteStore) -> Seeded {
    s.create_app(APP, "Example", T0).await.unwrap();
    s.create_app(OTHER, "Other", T0 + 1).await.unwrap();
    s.update_app(OTHER, None, Some(false)).await.unwrap();

    let zip = sha("zip-1.1.0");
    let file_blob = sha("file-a");
    let stable = s
        .create_bundle(
            NewBundle {
                app_id: APP.to_string(),
                name: "1.0.0".to_string(),
                checksum: Some(sha("1.0.0")),
                external_url: Some("https://cdn.example.com/1.0.0.zip".to_string()),
                native_packages: Some(vec![NativePackage {
                    name: "@capacitor/camera".to_string(),
                    version: "6.0.1".to_string(),
                    requested_version: Some("^6.0.0".to_string()),
                }]),
                ..NewBundle::default()
            },
            T0 + 10,
        )
        .await
        .unwrap();
    let candidate = s
        .create_bundle(
            NewBundle {
                app_id: APP.to_string(),
                name: "1.1.0".to_string(),
                checksum: Some(sha("1.1.0")),
                storage_path: Some(format!("blobs/{zip}")),
                zip_sha256: Some(zip.clone()),
                size: Some(4242),
                manifest: vec![
                    manifest_file("index.html", Some(&file_blob)),
                    manifest_file("assets/app.js.br", Some(&file_blob)),
                    manifest_file("ext.css", None),
                ],
                min_update_version: Some("1.0.0".to_string()),
                link: Some("https://example.com/notes".to_string()),
                comment: Some("ünïcode comment".to_string()),
                session_key: Some("iv:key".to_string()),
                encrypted_checksum: Some("ab".repeat(256)),
                key_id: Some("kid1".to_string()),
                ..NewBundle::default()
            },
            T0 + 20,
        )
        .await
        .unwrap();
    let doomed = s
        .create_bundle(
            NewBundle {
                app_id: APP.to_string(),
                name: "0.9.0".to_string(),
                zip_sha256: Some(sha("zip-0.9.0")),
                size: Some(1),
                ..NewBundle::default()
            },
            T0 + 30,
        )
        .await
        .unwrap();
    s.delete_bundle(APP, &doomed.name, T0 + 40).await.unwrap();
    s.create_bundle(
        NewBundle {
            app_id: OTHER.to_string(),
            name: "2.0.0".to_string(),
            external_url: Some("https://cdn.example.com/2.0.0.zip".to_string()),
            ..NewBundle::default()
        },
        T0 + 50,
    )
    .await
    .unwrap();

    let production = s
        .create_channel(
            NewChannel {
                app_id: APP.to_string(),
                name: "production".to_string(),
                settings: ChannelPatch {
                    bundle_id: Some(Some(stable.id)),
                    public: Some(true),
                    disable_auto_update: Some(AutoUpdatePolicy::Minor),
                    allow_emulator: Some(false),
                    ..ChannelPatch::default()
                },
            },
            T0 + 60,
        )
        .await
        .unwrap();
    let beta = s
        .create_channel(
            NewChannel {
                app_id: APP.to_string(),
                name: "beta".to_string(),
                settings: ChannelPatch {
                    allow_device_self_set: Some(true),
                    ios: Some(false),
                    ..ChannelPatch::default()
                },
            },
            T0 + 70,
        )
        .await
        .unwrap();
    s.apply_channel_update(ChannelUpdate {
        app_id: APP.to_string(),
        name: production.name.clone(),
        patch: ChannelPatch {
            rollout: Some(Some(Rollout {
                bundle_id: candidate.id,
                percentage_bps: 2_500,
                paused_at: None,
                rollout_id: "r-1".to_string(),
                started_at: T0 + 80,
                step_started_at: T0 + 80,
                targeting: Targeting {
                    platforms: vec![Platform::Android],
                    install_sources: vec!["google_play".to_string()],
                    ..Targeting::default()
                },
                auto_pause_triggered_at: None,
            })),
            auto_pause: Some(AutoPausePolicy {
                enabled: true,
                confidence: 0.9,
                ..AutoPausePolicy::default()
            }),
            ramp: Some(RampPlan {
                enabled: true,
                ..RampPlan::default()
            }),
            ..ChannelPatch::default()
        },
        change: change(T0 + 80, "rollout_start"),
        expect_rollout_id: Some(None),
        decision: Some(RolloutDecision {
            id: 0,
            app_id: APP.to_string(),
            channel: "production".to_string(),
            rollout_id: "r-1".to_string(),
            bundle: "1.1.0".to_string(),
            at: T0 + 80,
            action: "advanced".to_string(),
            reason: "healthy".to_string(),
            message: "started".to_string(),
            from_bps: 0,
            to_bps: 2_500,
            attempts: 0,
            failures: 0,
            failure_rate: Some(1.0 / 3.0),
            wilson_lower_bound: None,
            threshold_bps: 500,
        }),
        completes_schedule: None,
        audit: Some(NewAuditEntry {
            at: T0 + 80,
            actor: "key:ci".to_string(),
            api_key_id: Some(1),
            app_id: Some(APP.to_string()),
            action: "channel.rollout_start".to_string(),
            target: "production".to_string(),
            before: None,
            after: Some(serde_json::json!({"bps": 2500})),
        }),
    })
    .await
    .unwrap();

    let devices: Vec<String> = (0..25).map(|i| format!("device-{i:02}")).collect();
    s.set_override(APP, &devices[1], beta.id, OverrideSource::Admin, T0 + 90)
        .await
        .unwrap();
    s.set_override(
        APP,
        &devices[2],
        production.id,
        OverrideSource::Device,
        T0 + 91,
    )
    .await
    .unwrap();

    let sightings: Vec<DeviceSighting> = devices
        .iter()
        .enumerate()
        .map(|(i, d)| {
            sighting(
                APP,
                d,
                T0 + 100 + i as i64,
                if i % 3 == 0 { "1.1.0" } else { "1.0.0" },
            )
        })
        .chain([sighting(OTHER, "device-x", T0 + 5, "2.0.0")])
        .collect();
    s.upsert_devices(&sightings).await.unwrap();

    let events: Vec<StatsEvent> = devices
        .iter()
        .enumerate()
        .flat_map(|(i, d)| {
            let at = T0 + 1_000 * i as i64;
            [
                event(d, "get", "1.1.0", at),
                event(
                    d,
                    if i % 4 == 0 { "update_fail" } else { "set" },
                    "1.1.0",
                    at + 1,
                ),
            ]
        })
        .collect();
    let channels: Vec<Option<String>> = events
        .iter()
        .enumerate()
        .map(|(i, _)| (i % 5 != 0).then(|| "production".to_string()))
        .collect();
    s.ingest_stats(StatsIngest {
        events: &events,
        channels: &channels,
        sightings: &[],
        active_devices_since: 0,
        max_bundles_per_day: 0,
    })
    .await
    .unwrap();
    s.ingest_stats(StatsIngest {
        events: &[event("device-late", "get", "1.0.0", T0 + 86_400_000)],
        ..StatsIngest::default()
    })
    .await
    .unwrap();

    s.record_downloads(&[DownloadTally {
        app_id: APP.to_string(),
        bundle_id: candidate.id,
        day: "2023-11-14".to_string(),
        requests: 3,
        bytes: 12_726,
    }])
    .await
    .unwrap();

    s.create_schedule(NewSchedule {
        app_id: APP.to_string(),
        channel: "beta".to_string(),
        run_at: T0 + 3_600_000,
        action: ScheduledAction::StartRollout {
            bundle: "1.1.0".to_string(),
            percentage_bps: 100,
        },
        accept_incompatible: true,
        created_by: "key:ci".to_string(),
        created_at: T0 + 95,
    })
    .await
    .unwrap();

    s.record_audit(NewAuditEntry {
        at: T0 + 96,
        actor: "cli:offline".to_string(),
        api_key_id: None,
        app_id: None,
        action: "apikey.create".to_string(),
        target: "ci".to_string(),
        before: Some(serde_json::json!({"x": [1, 2]})),
        after: None,
    })
    .await
    .unwrap();
    s.create_api_key(
        NewApiKey {
            name: "ci".to_string(),
            role: Role::Publisher,
            app_id: Some(APP.to_string()),
            expires_at: Some(T0 + 999_999),
        },
        T0 + 97,
    )
    .await
    .unwrap();
    s.create_api_key(
        NewApiKey {
            name: "old".to_string(),
            role: Role::Admin,
            app_id: None,
            expires_at: None,
        },
        T0 + 98,
    )
    .await
    .unwrap();
    s.revoke_api_key("old", T0 + 99).await.unwrap();

    let mut webhook_ids = Vec::new();
    for (app_id, enabled) in [(Some(APP), true), (None, false)] {
        let hook = s
            .create_webhook(NewWebhook {
                app_id: app_id.map(str::to_string),
                url: "https://hooks.example.com/in".to_string(),
                secret: "whsec_c2VjcmV0".to_string(),
                events: vec!["bundle.created".to_string()],
                enabled,
                created_at: T0 + 100,
            })
            .await
            .unwrap();
        webhook_ids.push(hook.id);
    }
    s.enqueue_event(
        APP,
        "bundle.created",
        r#"{"type":"bundle.created"}"#,
        T0 + 101,
    )
    .await
    .unwrap();

    // An app created and deleted: SQLite must not hand its bundle ids out again.
    s.create_app("com.gone", "Gone", T0).await.unwrap();
    s.create_bundle(
        NewBundle {
            app_id: "com.gone".to_string(),
            name: "9.9.9".to_string(),
            ..NewBundle::default()
        },
        T0,
    )
    .await
    .unwrap();
    s.delete_app("com.gone", 100).await.unwrap();

    // A console user with a second factor, recovery codes and a session.
    let user = s
        .create_user(
            updraft_store::NewUser {
                email: "ada@example.com".to_string(),
                password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".to_string(),
                role: Role::Publisher,
                apps: Some(vec![APP.to_string()]),
            },
            T0,
        )
        .await
        .unwrap();
    s.set_totp_pending(user.id, Some("JBSWY3DPEHPK3PXP"), T0)
        .await
        .unwrap();
    assert!(s
        .enable_totp(
            user.id,
            "JBSWY3DPEHPK3PXP",
            7,
            &["h1".into(), "h2".into()],
            T0
        )
        .await
        .unwrap());
    s.create_session(updraft_store::NewSession {
        token_hash: sha("session"),
        user_id: user.id,
        csrf_token: "csrf".to_string(),
        created_at: T0,
        expires_at: T0 + 1_000_000,
    })
    .await
    .unwrap();

    Seeded {
        devices,
        webhook_ids,
        blobs: vec![zip, file_blob],
    }
}

/// Every read the server makes, compared between the two stores.
async fn assert_same(a: &dyn StoreView, b: &dyn StoreView) {
    let (a, b) = (a.snapshot().await, b.snapshot().await);
    // The comparison covers what was seeded, not just empty answers.
    for seeded in [
        "user-device-02",
        "r-1",
        "ünïcode comment",
        "v é",
        "whsec_c2VjcmV0",
        "assets/app.js.br",
    ] {
        assert!(a.contains(seeded), "{seeded} missing from the reads");
    }
    assert_eq!(a, b);
}

/// Reads through the store traits into one comparable value per store.
#[async_trait::async_trait]
trait StoreView: Sync {
    async fn snapshot(&self) -> String;
}

struct View<'a, S: Store> {
    store: &'a S,
    seeded: &'a Seeded,
}

#[async_trait::async_trait]
impl<S: Store> StoreView for View<'_, S> {
    async fn snapshot(&self) -> String {
        let s = self.store;
        let mut out = Vec::<String>::new();
        out.push(format!("{:?}", s.list_apps().await.unwrap()));
        out.push(format!("{:?}", s.list_app_ids().await.unwrap()));
        for app in [APP, OTHER] {
            out.push(format!("{:?}", s.get_app(app).await.unwrap()));
            out.push(format!("{:?}", s.list_bundles(app, true).await.unwrap()));
            out.push(format!("{:?}", s.list_bundles(app, false).await.unwrap()));
            out.push(format!("{:?}", s.get_bundle(app, "1.1.0").await.unwrap()));
            out.push(format!("{:?}", s.list_channels(app).await.unwrap()));
            out.push(format!(
                "{:?}",
                s.get_channel(app, "production").await.unwrap()
            ));
            out.push(format!(
                "{:?}",
                s.channel_history(app, "production", 100).await.unwrap()
            ));
            out.push(format!("{:?}", s.list_overrides(app).await.unwrap()));
            let all = DeviceQuery {
                limit: 1000,
                ..DeviceQuery::default()
            };
            out.push(format!("{:?}", s.list_devices(app, &all).await.unwrap()));
            out.push(format!("{:?}", s.count_devices(app, &all).await.unwrap()));
            let search = DeviceQuery {
                search: Some("user-".to_string()),
                version_name: Some("1.0.0".to_string()),
                limit: 5,
                offset: 1,
                ..DeviceQuery::default()
            };
            out.push(format!("{:?}", s.list_devices(app, &search).await.unwrap()));
            out.push(format!(
                "{:?}",
                s.list_events(app, None, 1000).await.unwrap()
            ));
            out.push(format!(
                "{:?}",
                s.export_events(&EventExportQuery {
                    app_id: app.to_string(),
                    limit: 1000,
                    ..EventExportQuery::default()
                })
                .await
                .unwrap()
            ));
            out.push(format!(
                "{:?}",
                s.stats_rollups(app, "2023-11-01", "2023-11-30")
                    .await
                    .unwrap()
            ));
            out.push(format!(
                "{:?}",
                s.rollout_health(app, "production", "1.1.0", 0, T0 * 2)
                    .await
                    .unwrap()
            ));
            out.push(format!(
                "{:?}",
                s.list_rollout_decisions(app, None, 100).await.unwrap()
            ));
            out.push(format!("{:?}", s.list_schedules(app, None).await.unwrap()));
            out.push(format!("{:?}", s.list_webhooks(Some(app)).await.unwrap()));
            let release = s.load_release(app).await.unwrap();
            let bundles: BTreeMap<i64, _> = release.bundles.iter().map(|(k, v)| (*k, v)).collect();
            let overrides: BTreeMap<&String, _> = release.overrides.iter().collect();
            out.push(format!(
                "{:?} {:?} {bundles:?} {overrides:?}",
                release.app, release.channels
            ));
        }
        for device in &self.seeded.devices {
            out.push(format!("{:?}", s.get_device(APP, device).await.unwrap()));
            out.push(format!(
                "{:?}",
                s.list_events(APP, Some(device), 10).await.unwrap()
            ));
        }
        out.push(format!("{:?}", s.list_api_keys().await.unwrap()));
        out.push(format!("{:?}", s.list_users().await.unwrap()));
        out.push(format!(
            "{:?}",
            s.user_credentials("ada@example.com").await.unwrap()
        ));
        out.push(format!(
            "{:?}",
            s.get_session(&sha("session")).await.unwrap()
        ));
        for user in s.list_users().await.unwrap() {
            out.push(format!(
                "{:?}",
                s.count_recovery_codes(user.id).await.unwrap()
            ));
        }
        out.push(format!(
            "{:?}",
            s.list_audit(&AuditQuery {
                limit: 100,
                ..AuditQuery::default()
            })
            .await
            .unwrap()
        ));
        for id in &self.seeded.webhook_ids {
            out.push(format!("{:?}", s.get_webhook(*id).await.unwrap()));
            out.push(format!("{:?}", s.list_deliveries(*id, 100).await.unwrap()));
        }
        out.push(format!("{:?}", s.list_webhooks(None).await.unwrap()));
        out.push(format!(
            "{:?}",
            s.referenced_blobs()
                .await
                .unwrap()
                .into_iter()
                .collect::<BTreeSet<_>>()
        ));
        out.join("\n")
    }
}

async fn sqlite_store() -> (SqliteStore, TempDir) {
    let dir = TempDir::new().unwrap();
    let store = SqliteStore::open(dir.path()).await.unwrap();
    (store, dir)
}

#[tokio::test]
async fn a_populated_store_reads_back_identically_from_postgres() {
    let (sqlite, dir) = sqlite_store().await;
    let seeded = populate(&sqlite).await;
    let pg_url = updraft_testkit::postgres_database().await;
    let pg = PgStore::connect(&pg_url, None).await.unwrap();

    let source = open_source(&dir.path().join("updraft.db")).await.unwrap();
    let mut started = Vec::new();
    let mut verified = 0;
    let copy = copy_database(&source, pg.pool(), &mut |event| match event {
        CopyProgress::TableStarted { table, rows } => started.push((table.to_string(), rows)),
        CopyProgress::TableVerified(table) => {
            assert!(table.verified(), "{table:?}");
            verified += 1;
        }
        _ => {}
    })
    .await
    .unwrap();

    // Every table of the schema, parents first, each verified.
    let tables: Vec<&str> = copy.tables.iter().map(|t| t.table.as_str()).collect();
    assert_eq!(started.len(), copy.tables.len());
    assert_eq!(verified, copy.tables.len());
    for (parent, child) in [
        ("apps", "bundles"),
        ("bundles", "manifest_files"),
        ("bundles", "channels"),
        ("channels", "device_overrides"),
        ("webhooks", "webhook_deliveries"),
    ] {
        let at = |name: &str| tables.iter().position(|t| *t == name).unwrap();
        assert!(at(parent) < at(child), "{parent} after {child}: {tables:?}");
    }
    let rows: BTreeMap<&str, u64> = copy
        .tables
        .iter()
        .map(|t| (t.table.as_str(), t.rows))
        .collect();
    let expected_rows = [
        ("apps", 2),
        ("bundles", 4),
        ("manifest_files", 3),
        ("channels", 2),
        ("device_overrides", 2),
        ("devices", 26),
        ("stats_events", 51),
        ("api_keys", 2),
        ("bundle_downloads", 1),
        // One when the channel was created with a bundle, one for the rollout.
        ("channel_history", 2),
        ("rollout_decisions", 1),
        ("scheduled_releases", 1),
        ("audit_log", 2),
        ("webhooks", 2),
        ("webhook_deliveries", 1),
        ("users", 1),
        ("user_recovery_codes", 2),
        ("sessions", 1),
    ];
    for (table, count) in expected_rows {
        assert_eq!(rows[table], count, "{table}");
    }
    for table in [
        "stats_daily",
        "device_days",
        "daily_devices",
        "rollout_health",
    ] {
        assert!(rows[table] > 0, "{table} is empty in the source");
    }
    // Every table of the SQLite schema was copied, none forgotten.
    let sqlite_tables: BTreeSet<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' \
         AND name NOT LIKE 'sqlite_%' AND name <> '_sqlx_migrations'",
    )
    .fetch_all(sqlite.pool())
    .await
    .unwrap()
    .into_iter()
    .collect();
    assert_eq!(
        rows.keys().map(|t| t.to_string()).collect::<BTreeSet<_>>(),
        sqlite_tables
    );
    assert_eq!(
        copy.referenced_blobs,
        seeded.blobs.iter().cloned().collect::<BTreeSet<_>>()
    );
    assert_same(
        &View {
            store: &sqlite,
            seeded: &seeded,
        },
        &View {
            store: &pg,
            seeded: &seeded,
        },
    )
    .await;

    // The registry's observation keys came along: an update check observed
    // before the copied row's version is not written over it in PostgreSQL.
    let observations = "SELECT app_id, device_id, facts_at, version_name_at, \
         last_offered_version_at, last_update_outcome_at FROM devices ORDER BY app_id, device_id";
    type Observations = Vec<(String, String, i64, i64, i64, i64)>;
    let in_sqlite: Observations = sqlx::query_as(observations)
        .fetch_all(sqlite.pool())
        .await
        .unwrap();
    let in_pg: Observations = sqlx::query_as(observations)
        .fetch_all(pg.pool())
        .await
        .unwrap();
    assert_eq!(in_sqlite.len(), 26);
    assert!(in_sqlite.iter().all(|row| row.3 > 0), "{in_sqlite:?}");
    assert_eq!(in_pg, in_sqlite);
    let device = &seeded.devices[0];
    let before = pg.get_device(APP, device).await.unwrap().unwrap();
    pg.upsert_devices(&[sighting(APP, device, T0 + 1, "0.9.0")])
        .await
        .unwrap();
    let after = pg.get_device(APP, device).await.unwrap().unwrap();
    assert_eq!(after.version_name, before.version_name);
    assert_eq!(after.last_seen, before.last_seen);

    // Ids continue after the highest one SQLite handed out, deleted ones included.
    let next = pg
        .create_bundle(
            NewBundle {
                app_id: APP.to_string(),
                name: "1.2.0".to_string(),
                ..NewBundle::default()
            },
            T0 + 200,
        )
        .await
        .unwrap();
    assert_eq!(
        next.id, 6,
        "bundle ids 1-5 were handed out in SQLite (5 = the deleted app's)"
    );
    let key_ids: Vec<i64> = pg
        .list_api_keys()
        .await
        .unwrap()
        .iter()
        .map(|k| k.id)
        .collect();
    let (new_key, _) = pg
        .create_api_key(
            NewApiKey {
                name: "after".to_string(),
                role: Role::Viewer,
                app_id: None,
                expires_at: None,
            },
            T0 + 201,
        )
        .await
        .unwrap();
    assert_eq!(new_key.id, key_ids.iter().max().unwrap() + 1);
    pg.close().await;
}

#[tokio::test]
async fn a_second_run_or_a_used_target_is_refused_and_changes_nothing() {
    let (sqlite, dir) = sqlite_store().await;
    let seeded = populate(&sqlite).await;
    let source = open_source(&dir.path().join("updraft.db")).await.unwrap();

    let pg_url = updraft_testkit::postgres_database().await;
    let pg = PgStore::connect(&pg_url, None).await.unwrap();
    let copy = copy_database(&source, pg.pool(), &mut |_| {})
        .await
        .unwrap();
    let filled: Vec<String> = copy
        .tables
        .iter()
        .filter(|t| t.rows > 0)
        .map(|t| t.table.clone())
        .collect();
    let before = View {
        store: &pg,
        seeded: &seeded,
    }
    .snapshot()
    .await;
    let again = copy_database(&source, pg.pool(), &mut |_| {}).await;
    assert!(
        matches!(&again, Err(MigrateError::TargetNotEmpty { tables }) if tables == &filled),
        "{again:?}"
    );
    assert_eq!(
        View {
            store: &pg,
            seeded: &seeded
        }
        .snapshot()
        .await,
        before
    );

    // One row in one table is enough to refuse, and it stays the only one.
    let used_url = updraft_testkit::postgres_database().await;
    let used = PgStore::connect(&used_url, None).await.unwrap();
    used.upsert_devices(&[sighting(OTHER, "lonely", T0, "1.0.0")])
        .await
        .unwrap();
    let refused = copy_database(&source, used.pool(), &mut |_| {}).await;
    assert!(
        matches!(&refused, Err(MigrateError::TargetNotEmpty { tables }) if tables == &["devices"]),
        "{refused:?}"
    );
    assert!(used.list_apps().await.unwrap().is_empty());
    let devices: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM devices")
        .fetch_one(used.pool())
        .await
        .unwrap();
    assert_eq!(devices, 1);
    pg.close().await;
    used.close().await;
}

#[tokio::test]
async fn a_table_postgres_does_not_know_stops_the_copy() {
    let (sqlite, dir) = sqlite_store().await;
    sqlite.create_app(APP, "Example", T0).await.unwrap();
    sqlx::query("CREATE TABLE added_later (id INTEGER PRIMARY KEY, note TEXT)")
        .execute(sqlite.pool())
        .await
        .unwrap();
    let source = open_source(&dir.path().join("updraft.db")).await.unwrap();
    let pg_url = updraft_testkit::postgres_database().await;
    let pg = PgStore::connect(&pg_url, None).await.unwrap();
    let result = copy_database(&source, pg.pool(), &mut |_| {}).await;
    match result {
        Err(MigrateError::SchemaMismatch(message)) => {
            assert!(message.contains("added_later"), "{message}")
        }
        other => panic!("expected a schema mismatch, got {other:?}"),
    }
    assert!(pg.list_apps().await.unwrap().is_empty());
    pg.close().await;
}

#[tokio::test]
async fn a_flag_that_is_not_0_or_1_is_refused_not_guessed() {
    let (sqlite, dir) = sqlite_store().await;
    sqlite.create_app(APP, "Example", T0).await.unwrap();
    sqlx::query("UPDATE apps SET expose_metadata = 2")
        .execute(sqlite.pool())
        .await
        .unwrap();
    let source = open_source(&dir.path().join("updraft.db")).await.unwrap();
    let pg_url = updraft_testkit::postgres_database().await;
    let pg = PgStore::connect(&pg_url, None).await.unwrap();
    let result = copy_database(&source, pg.pool(), &mut |_| {}).await;
    assert!(
        matches!(&result, Err(MigrateError::Value { table, column, .. }) if table == "apps" && column == "expose_metadata"),
        "{result:?}"
    );
    assert!(pg.list_apps().await.unwrap().is_empty());
    pg.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_snapshot_ignores_writes_made_during_the_copy() {
    let (sqlite, dir) = sqlite_store().await;
    sqlite.create_app(APP, "Example", T0).await.unwrap();
    let many: Vec<DeviceSighting> = (0..3_000)
        .map(|i| sighting(APP, &format!("d{i:05}"), T0 + i, "1.0.0"))
        .collect();
    sqlite.upsert_devices(&many).await.unwrap();
    let source = open_source(&dir.path().join("updraft.db")).await.unwrap();
    let pg_url = updraft_testkit::postgres_database().await;
    let pg = PgStore::connect(&pg_url, None).await.unwrap();

    // Written from inside the progress callback, i.e. after the snapshot
    // began and between two pages of the devices table.
    let writer = sqlite.clone();
    let handle = tokio::runtime::Handle::current();
    let mut wrote = false;
    let copy = copy_database(&source, pg.pool(), &mut |event| {
        if let CopyProgress::RowsCopied {
            table: "devices",
            copied,
            ..
        } = event
        {
            if !wrote && copied < 3_000 {
                wrote = true;
                let writer = writer.clone();
                std::thread::scope(|scope| {
                    scope.spawn(|| {
                        handle.block_on(async {
                            writer
                                .upsert_devices(&[sighting(APP, "d99999", T0, "1.0.0")])
                                .await
                                .unwrap();
                            writer.create_app(OTHER, "Late", T0).await.unwrap();
                        })
                    });
                });
            }
        }
    })
    .await
    .unwrap();
    assert!(wrote, "the devices table was copied in more than one page");
    let devices = copy.tables.iter().find(|t| t.table == "devices").unwrap();
    assert_eq!(devices.rows, 3_000);
    assert_eq!(
        sqlite
            .count_devices(APP, &DeviceQuery::default())
            .await
            .unwrap(),
        3_001
    );
    assert_eq!(
        pg.count_devices(APP, &DeviceQuery::default())
            .await
            .unwrap(),
        3_000
    );
    assert_eq!(pg.list_app_ids().await.unwrap(), vec![APP.to_string()]);
    pg.close().await;
}

#[tokio::test]
async fn blobs_reach_object_storage_and_are_verified() {
    let (sqlite, dir) = sqlite_store().await;
    let local = LocalBlobStore::open(
        dir.path(),
        std::sync::Arc::new(updraft_core::model::SystemClock),
    )
    .unwrap();
    let zip_bytes = vec![7u8; 300_000];
    let zip = local.put_bytes(&zip_bytes, None).await.unwrap().sha256;
    let file = local
        .put_bytes(b"<html></html>", None)
        .await
        .unwrap()
        .sha256;
    let orphan = local
        .put_bytes(b"not referenced", None)
        .await
        .unwrap()
        .sha256;
    sqlite.create_app(APP, "Example", T0).await.unwrap();
    sqlite
        .create_bundle(
            NewBundle {
                app_id: APP.to_string(),
                name: "1.0.0".to_string(),
                zip_sha256: Some(zip.clone()),
                size: Some(zip_bytes.len() as i64),
                manifest: vec![manifest_file("index.html", Some(&file))],
                ..NewBundle::default()
            },
            T0,
        )
        .await
        .unwrap();
    let source = open_source(&dir.path().join("updraft.db")).await.unwrap();
    let pg = PgStore::connect(&updraft_testkit::postgres_database().await, None)
        .await
        .unwrap();
    let copy = copy_database(&source, pg.pool(), &mut |_| {})
        .await
        .unwrap();
    assert_eq!(check_blobs_present(&local, &copy).await.unwrap(), 2);

    let bucket = updraft_testkit::s3_bucket().await;
    // The bucket's AWS_* environment as object_store option keys.
    let options: Vec<(String, String)> = bucket
        .env()
        .into_iter()
        .map(|(name, value)| {
            let key = match name.as_str() {
                "AWS_ENDPOINT_URL" => "endpoint".to_string(),
                other => other.trim_start_matches("AWS_").to_lowercase(),
            };
            (key, value)
        })
        .collect();
    let staging = TempDir::new().unwrap();
    let remote = ObjectBlobStore::from_url(&bucket.url, &options, staging.path()).unwrap();
    // Before the database copy (what `updraft migrate` does first): every stored blob.
    let none = BTreeSet::new();
    let mut events = Vec::new();
    let first = copy_blobs(&local, &remote, &none, &none, &mut |e| events.push(e))
        .await
        .unwrap();
    assert_eq!(
        first.verified,
        BTreeSet::from([zip.clone(), file.clone(), orphan.clone()])
    );
    assert_eq!(first.uploaded, 3);
    assert_eq!(first.bytes, 300_000 + 13 + 14);
    assert_eq!(
        events.first(),
        Some(&BlobProgress::Started {
            total: 3,
            total_bytes: 300_027
        })
    );
    assert_eq!(
        events.last(),
        Some(&BlobProgress::Done {
            done: 3,
            bytes: 300_027
        })
    );
    for sha in [&zip, &file, &orphan] {
        assert_eq!(
            remote.stat(sha).await.unwrap(),
            local.stat(sha).await.unwrap()
        );
        let mut bytes = Vec::new();
        let reader = remote.open(sha).await.unwrap().unwrap();
        let size = reader.size;
        tokio::io::AsyncReadExt::read_to_end(&mut reader.range(0, size).await.unwrap(), &mut bytes)
            .await
            .unwrap();
        assert_eq!(&sha256_bytes(&bytes), sha);
    }

    // After it: only what the first pass did not verify (a blob published
    // in between), while the referenced ones are known to be there.
    let late = local
        .put_bytes(b"published later", None)
        .await
        .unwrap()
        .sha256;
    let second = copy_blobs(
        &local,
        &remote,
        &copy.referenced_blobs,
        &first.verified,
        &mut |_| {},
    )
    .await
    .unwrap();
    assert_eq!(second.verified, BTreeSet::from([late.clone()]));
    assert_eq!(second.uploaded, 1);

    // A fresh pass over a filled bucket uploads nothing and verifies everything.
    let again = copy_blobs(&local, &remote, &copy.referenced_blobs, &none, &mut |_| {})
        .await
        .unwrap();
    assert_eq!((again.verified.len(), again.uploaded), (4, 0));

    // A referenced blob lost locally stops the copy and is named.
    local.delete(&file).await.unwrap();
    let lost = copy_blobs(&local, &remote, &copy.referenced_blobs, &none, &mut |_| {}).await;
    assert!(
        matches!(&lost, Err(MigrateError::MissingBlobs(names)) if names == &vec![file.clone()]),
        "{lost:?}"
    );
    assert!(matches!(
        check_blobs_present(&local, &copy).await,
        Err(MigrateError::MissingBlobs(names)) if names == vec![file.clone()]
    ));
    pg.close().await;
}

#[tokio::test]
async fn a_copy_that_reads_back_differently_is_rolled_back() {
    let (sqlite, dir) = sqlite_store().await;
    sqlite.create_app(APP, "Example", T0).await.unwrap();
    sqlite.create_app(OTHER, "Other", T0).await.unwrap();
    let source = open_source(&dir.path().join("updraft.db")).await.unwrap();
    let pg = PgStore::connect(&updraft_testkit::postgres_database().await, None)
        .await
        .unwrap();
    // The target alters what it stores: same row count, other content.
    sqlx::query(
        "CREATE FUNCTION shout() RETURNS trigger LANGUAGE plpgsql AS \
         $$ BEGIN NEW.name := upper(NEW.name); RETURN NEW; END; $$",
    )
    .execute(pg.pool())
    .await
    .unwrap();
    sqlx::query("CREATE TRIGGER shout BEFORE INSERT ON apps FOR EACH ROW EXECUTE FUNCTION shout()")
        .execute(pg.pool())
        .await
        .unwrap();
    let result = copy_database(&source, pg.pool(), &mut |_| {}).await;
    match result {
        Err(MigrateError::Verification { tables }) => {
            let failed: Vec<_> = tables.iter().filter(|t| !t.verified()).collect();
            assert_eq!(failed.len(), 1, "{failed:?}");
            assert_eq!(failed[0].table, "apps");
            assert_eq!((failed[0].rows, failed[0].target_rows), (2, 2));
            assert_ne!(failed[0].checksum, failed[0].target_checksum);
        }
        other => panic!("expected a verification failure, got {other:?}"),
    }
    assert!(pg.list_apps().await.unwrap().is_empty(), "rolled back");
    pg.close().await;
}
