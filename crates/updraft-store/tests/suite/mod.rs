//! Engine-independent behaviour tests of the storage traits. Each function
//! takes any `Store` and expects it empty, so every engine runs the same suite.

mod accounts;
pub use accounts::*;
mod analytics;
pub use analytics::*;
mod audit;
pub use audit::*;
mod release_safety;
pub use release_safety::*;
mod uploads;
pub use uploads::*;
mod webhooks;
pub use webhooks::*;

use std::collections::BTreeMap;
use updraft_core::model::{
    AutoUpdatePolicy, ChangeContext, Channel, ChannelPatch, DeviceSighting, ManifestFile, Millis,
    Observed, ObservedAt, OverrideSource, Role, StatsEvent,
};
use updraft_store::{
    hash_api_key, AnalyticsStore, BundleMetadataPatch, ChannelStore, ChannelUpdate, DeviceQuery,
    Entity, NewApiKey, NewBundle, NewChannel, StatsIngest, Store, StoreError, StoreResult,
};

/// A channel change outside the API, through the one write path
/// (`apply_channel_update`), as the system actor with reason `update`.
pub async fn update_channel<S: ChannelStore + ?Sized>(
    s: &S,
    app_id: &str,
    name: &str,
    patch: ChannelPatch,
    now: Millis,
) -> StoreResult<Channel> {
    s.apply_channel_update(ChannelUpdate {
        app_id: app_id.to_string(),
        name: name.to_string(),
        patch,
        change: ChangeContext {
            at: now,
            actor: "system".to_string(),
            reason: "update".to_string(),
        },
        expect_rollout_id: None,
        decision: None,
        completes_schedule: None,
        audit: None,
    })
    .await
}

/// Events (channel unknown) and sightings in one commit, through the stats
/// writer's path (`ingest_stats`) without its active-device bound or cap.
pub async fn record_stats<S: AnalyticsStore + ?Sized>(
    s: &S,
    events: &[StatsEvent],
    sightings: &[DeviceSighting],
) -> StoreResult<()> {
    s.ingest_stats(StatsIngest {
        events,
        sightings,
        ..StatsIngest::default()
    })
    .await
    .map(|_| ())
}

const APP: &str = "com.example.app";
const OTHER_APP: &str = "com.example.other";

fn new_bundle(app_id: &str, name: &str) -> NewBundle {
    NewBundle {
        app_id: app_id.to_string(),
        name: name.to_string(),
        checksum: Some(format!("{:0>64}", name.replace('.', ""))),
        external_url: Some(format!("https://cdn.example.com/{name}.zip")),
        ..NewBundle::default()
    }
}

fn new_channel(app_id: &str, name: &str, settings: ChannelPatch) -> NewChannel {
    NewChannel {
        app_id: app_id.to_string(),
        name: name.to_string(),
        settings,
    }
}

fn platforms(ios: bool, android: bool, electron: bool) -> ChannelPatch {
    ChannelPatch {
        public: Some(true),
        ios: Some(ios),
        android: Some(android),
        electron: Some(electron),
        ..ChannelPatch::default()
    }
}

fn sighting(app_id: &str, device_id: &str, seen_at: i64) -> DeviceSighting {
    DeviceSighting {
        app_id: app_id.to_string(),
        device_id: device_id.to_string(),
        platform: "ios".to_string(),
        plugin_version: Some("7.0.0".to_string()),
        version_os: Some("17.1".to_string()),
        version_build: Some("1.0.0".to_string()),
        version_code: Some("10".to_string()),
        version_name: Some("1.0.0".to_string()),
        custom_id: None,
        is_prod: true,
        is_emulator: false,
        default_channel: None,
        key_id: None,
        install_source: None,
        last_offered_version: None,
        last_update_outcome: None,
        seen_at,
        observed: Observed::all(ObservedAt::update_check(seen_at)),
    }
}

fn event(app_id: &str, device_id: &str, action: &str, timestamp: i64) -> StatsEvent {
    StatsEvent {
        app_id: app_id.to_string(),
        device_id: device_id.to_string(),
        action: action.to_string(),
        version_name: "1.0.0".to_string(),
        old_version_name: None,
        platform: "android".to_string(),
        plugin_version: Some("7.1.0".to_string()),
        version_build: Some("1.0.0".to_string()),
        is_prod: true,
        is_emulator: false,
        metadata: None,
        timestamp,
        received_at: timestamp + 5,
    }
}

fn manifest(names: &[&str]) -> Vec<ManifestFile> {
    names
        .iter()
        .enumerate()
        .map(|(i, name)| ManifestFile {
            file_name: name.to_string(),
            file_hash: format!("{:0>64}", i),
            location: format!("/files/{name}"),
            size: if i % 2 == 0 {
                Some(100 + i as i64)
            } else {
                None
            },
            blob_sha256: None,
        })
        .collect()
}

pub async fn suite_apps<S: Store>(s: &S) {
    let created = s.create_app(APP, "Example", 1_000).await.unwrap();
    assert_eq!(created.app_id, APP);
    assert_eq!(created.name, "Example");
    assert!(created.expose_metadata, "expose_metadata defaults to true");
    assert_eq!(created.created_at, 1_000);

    assert!(matches!(
        s.create_app(APP, "Again", 2_000).await,
        Err(StoreError::AlreadyExists(Entity::App))
    ));
    s.create_app("com.aaa.first", "First", 3_000).await.unwrap();

    let ids: Vec<String> = s
        .list_apps()
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.app_id)
        .collect();
    assert_eq!(ids, vec!["com.aaa.first", APP]);
    assert_eq!(s.list_app_ids().await.unwrap(), vec!["com.aaa.first", APP]);

    assert_eq!(s.get_app(APP).await.unwrap(), Some(created.clone()));
    assert_eq!(s.get_app("com.missing.app").await.unwrap(), None);

    let renamed = s.update_app(APP, Some("Renamed"), None).await.unwrap();
    assert_eq!(renamed.name, "Renamed");
    assert!(renamed.expose_metadata);
    let hidden = s.update_app(APP, None, Some(false)).await.unwrap();
    assert_eq!(hidden.name, "Renamed");
    assert!(!hidden.expose_metadata);
    assert_eq!(hidden.created_at, 1_000);
    assert_eq!(s.get_app(APP).await.unwrap(), Some(hidden));
    assert!(matches!(
        s.update_app("com.missing.app", Some("x"), None).await,
        Err(StoreError::NotFound(Entity::App))
    ));

    s.delete_app("com.aaa.first", 100).await.unwrap();
    assert_eq!(s.get_app("com.aaa.first").await.unwrap(), None);
    assert!(matches!(
        s.delete_app("com.aaa.first", 100).await,
        Err(StoreError::NotFound(Entity::App))
    ));
    s.ping().await.unwrap();
}

pub async fn suite_bundles<S: Store>(s: &S) {
    s.create_app(APP, "Example", 1).await.unwrap();
    s.create_app(OTHER_APP, "Other", 1).await.unwrap();

    let mut with_files = new_bundle(APP, "1.0.0");
    with_files.manifest = manifest(&["index.html", "assets/app.js.br", "b.css", "a.css"]);
    with_files.session_key = Some("aXY=:a2V5".to_string());
    with_files.key_id = Some("MIIB".to_string());
    with_files.min_update_version = Some("0.9.0".to_string());
    with_files.link = Some("https://example.com/notes".to_string());
    let created = s.create_bundle(with_files.clone(), 10).await.unwrap();
    assert!(created.id > 0);
    assert_eq!(created.name, "1.0.0");
    assert_eq!(created.manifest, with_files.manifest);
    assert_eq!(created.session_key.as_deref(), Some("aXY=:a2V5"));
    assert!(!created.deleted);
    assert_eq!(created.deleted_at, None);
    assert_eq!(created.created_at, 10);

    let fetched = s.get_bundle(APP, "1.0.0").await.unwrap().unwrap();
    assert_eq!(fetched, created, "manifest comes back in position order");
    assert_eq!(s.get_bundle(APP, "9.9.9").await.unwrap(), None);
    assert_eq!(s.get_bundle(OTHER_APP, "1.0.0").await.unwrap(), None);

    assert!(matches!(
        s.create_bundle(new_bundle(APP, "1.0.0"), 11).await,
        Err(StoreError::AlreadyExists(Entity::Bundle))
    ));
    assert!(matches!(
        s.create_bundle(new_bundle("com.missing.app", "1.0.0"), 11)
            .await,
        Err(StoreError::NotFound(Entity::App))
    ));
    // The same name in another app is a different bundle.
    let other = s
        .create_bundle(new_bundle(OTHER_APP, "1.0.0"), 12)
        .await
        .unwrap();
    assert_ne!(other.id, created.id);

    let second = s.create_bundle(new_bundle(APP, "1.1.0"), 20).await.unwrap();
    let third = s.create_bundle(new_bundle(APP, "1.2.0"), 30).await.unwrap();
    let names: Vec<String> = s
        .list_bundles(APP, false)
        .await
        .unwrap()
        .into_iter()
        .map(|b| b.name)
        .collect();
    assert_eq!(names, vec!["1.2.0", "1.1.0", "1.0.0"], "newest first");
    let listed = s.list_bundles(APP, false).await.unwrap();
    assert_eq!(listed[2].manifest.len(), 4);
    assert!(listed[0].manifest.is_empty());

    // Metadata: Some(Some) sets, Some(None) clears, None leaves.
    let patched = s
        .update_bundle_metadata(
            APP,
            "1.0.0",
            BundleMetadataPatch {
                link: Some(None),
                comment: Some(Some("hotfix".to_string())),
                min_update_version: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(patched.link, None);
    assert_eq!(patched.comment.as_deref(), Some("hotfix"));
    assert_eq!(patched.min_update_version.as_deref(), Some("0.9.0"));
    assert_eq!(patched.manifest, with_files.manifest);
    assert_eq!(s.get_bundle(APP, "1.0.0").await.unwrap().unwrap(), patched);
    assert!(matches!(
        s.update_bundle_metadata(APP, "7.7.7", BundleMetadataPatch::default())
            .await,
        Err(StoreError::NotFound(Entity::Bundle))
    ));

    // Soft delete keeps the row and reserves the name.
    let deleted = s.delete_bundle(APP, "1.1.0", 40).await.unwrap();
    assert_eq!(deleted.id, second.id);
    assert!(deleted.deleted);
    assert_eq!(deleted.deleted_at, Some(40));
    let again = s.delete_bundle(APP, "1.1.0", 50).await.unwrap();
    assert_eq!(again.deleted_at, Some(40), "first deletion time is kept");
    assert!(matches!(
        s.delete_bundle(APP, "7.7.7", 50).await,
        Err(StoreError::NotFound(Entity::Bundle))
    ));

    let live: Vec<i64> = s
        .list_bundles(APP, false)
        .await
        .unwrap()
        .into_iter()
        .map(|b| b.id)
        .collect();
    assert_eq!(live, vec![third.id, created.id]);
    let all: Vec<i64> = s
        .list_bundles(APP, true)
        .await
        .unwrap()
        .into_iter()
        .map(|b| b.id)
        .collect();
    assert_eq!(all, vec![third.id, second.id, created.id]);
    assert!(s.get_bundle(APP, "1.1.0").await.unwrap().unwrap().deleted);

    assert!(matches!(
        s.create_bundle(new_bundle(APP, "1.1.0"), 60).await,
        Err(StoreError::DeletedNameReused)
    ));
    assert_eq!(
        s.list_bundles(APP, true).await.unwrap().len(),
        3,
        "refused create changed nothing"
    );
}

pub async fn suite_channels<S: Store>(s: &S) {
    s.create_app(APP, "Example", 1).await.unwrap();
    s.create_app(OTHER_APP, "Other", 1).await.unwrap();
    let bundle = s.create_bundle(new_bundle(APP, "1.0.0"), 2).await.unwrap();
    let foreign = s
        .create_bundle(new_bundle(OTHER_APP, "2.0.0"), 2)
        .await
        .unwrap();
    let gone = s.create_bundle(new_bundle(APP, "0.9.0"), 2).await.unwrap();
    s.delete_bundle(APP, "0.9.0", 3).await.unwrap();

    let defaults = s
        .create_channel(new_channel(APP, "production", ChannelPatch::default()), 100)
        .await
        .unwrap();
    assert_eq!(defaults.app_id, APP);
    assert_eq!(defaults.name, "production");
    assert_eq!(defaults.bundle_id, None);
    assert!(!defaults.public);
    assert!(defaults.ios && defaults.android && defaults.electron);
    assert!(!defaults.allow_device_self_set);
    assert!(
        defaults.allow_emulator
            && defaults.allow_device
            && defaults.allow_dev
            && defaults.allow_prod
    );
    assert_eq!(defaults.disable_auto_update, AutoUpdatePolicy::Major);
    assert!(defaults.disable_auto_update_under_native);
    assert_eq!((defaults.created_at, defaults.updated_at), (100, 100));

    let custom = s
        .create_channel(
            new_channel(
                APP,
                "beta",
                ChannelPatch {
                    bundle_id: Some(Some(bundle.id)),
                    allow_device_self_set: Some(true),
                    allow_prod: Some(false),
                    disable_auto_update: Some(AutoUpdatePolicy::Metadata),
                    disable_auto_update_under_native: Some(false),
                    ..ChannelPatch::default()
                },
            ),
            110,
        )
        .await
        .unwrap();
    assert_eq!(custom.bundle_id, Some(bundle.id));
    assert!(custom.allow_device_self_set);
    assert!(!custom.allow_prod);
    assert!(custom.allow_dev);
    assert_eq!(custom.disable_auto_update, AutoUpdatePolicy::Metadata);
    assert!(!custom.disable_auto_update_under_native);

    assert!(matches!(
        s.create_channel(new_channel(APP, "beta", ChannelPatch::default()), 120)
            .await,
        Err(StoreError::AlreadyExists(Entity::Channel))
    ));
    assert!(matches!(
        s.create_channel(
            new_channel("com.missing.app", "beta", ChannelPatch::default()),
            120
        )
        .await,
        Err(StoreError::NotFound(Entity::App))
    ));
    let pointing_at = |id| ChannelPatch {
        bundle_id: Some(Some(id)),
        ..ChannelPatch::default()
    };
    assert!(matches!(
        s.create_channel(new_channel(APP, "x", pointing_at(foreign.id)), 120)
            .await,
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        s.create_channel(new_channel(APP, "x", pointing_at(gone.id)), 120)
            .await,
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        update_channel(s, APP, "production", pointing_at(foreign.id), 120).await,
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        update_channel(s, APP, "production", pointing_at(gone.id), 120).await,
        Err(StoreError::Invalid(_))
    ));
    assert_eq!(
        s.get_channel(APP, "x").await.unwrap(),
        None,
        "refused create left nothing"
    );

    let updated = update_channel(
        s,
        APP,
        "production",
        ChannelPatch {
            bundle_id: Some(Some(bundle.id)),
            android: Some(false),
            disable_auto_update: Some(AutoUpdatePolicy::None),
            ..ChannelPatch::default()
        },
        200,
    )
    .await
    .unwrap();
    assert_eq!(updated.id, defaults.id);
    assert_eq!(updated.bundle_id, Some(bundle.id));
    assert!(!updated.android);
    assert!(updated.ios, "unpatched fields stay");
    assert_eq!(updated.disable_auto_update, AutoUpdatePolicy::None);
    assert_eq!((updated.created_at, updated.updated_at), (100, 200));
    assert_eq!(
        s.get_channel(APP, "production").await.unwrap(),
        Some(updated.clone())
    );

    let to_builtin = update_channel(
        s,
        APP,
        "production",
        ChannelPatch {
            bundle_id: Some(None),
            ..ChannelPatch::default()
        },
        210,
    )
    .await
    .unwrap();
    assert_eq!(to_builtin.bundle_id, None);
    assert!(matches!(
        update_channel(s, APP, "nope", ChannelPatch::default(), 210).await,
        Err(StoreError::NotFound(Entity::Channel))
    ));

    s.create_channel(new_channel(APP, "alpha", ChannelPatch::default()), 300)
        .await
        .unwrap();
    s.create_channel(new_channel(OTHER_APP, "aaa", ChannelPatch::default()), 300)
        .await
        .unwrap();
    let names: Vec<String> = s
        .list_channels(APP)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(names, vec!["alpha", "beta", "production"]);

    s.delete_channel(APP, "alpha").await.unwrap();
    assert_eq!(s.get_channel(APP, "alpha").await.unwrap(), None);
    assert!(matches!(
        s.delete_channel(APP, "alpha").await,
        Err(StoreError::NotFound(Entity::Channel))
    ));
    assert_eq!(s.list_channels(OTHER_APP).await.unwrap().len(), 1);
}

pub async fn suite_public_demotion<S: Store>(s: &S) {
    s.create_app(APP, "Example", 1).await.unwrap();
    s.create_app(OTHER_APP, "Other", 1).await.unwrap();
    let other_public = s
        .create_channel(
            new_channel(OTHER_APP, "prod", platforms(true, true, true)),
            5,
        )
        .await
        .unwrap();

    let ios = s
        .create_channel(new_channel(APP, "ios", platforms(true, false, false)), 10)
        .await
        .unwrap();
    let android = s
        .create_channel(
            new_channel(APP, "android", platforms(false, true, false)),
            11,
        )
        .await
        .unwrap();
    assert!(ios.public && android.public);
    assert!(
        s.get_channel(APP, "ios").await.unwrap().unwrap().public,
        "disjoint platforms coexist"
    );

    let electron = s
        .create_channel(
            new_channel(APP, "electron", platforms(false, false, true)),
            12,
        )
        .await
        .unwrap();
    assert!(electron.public);

    let all = s
        .create_channel(new_channel(APP, "all", platforms(true, true, false)), 20)
        .await
        .unwrap();
    assert!(all.public);
    let ios_now = s.get_channel(APP, "ios").await.unwrap().unwrap();
    let android_now = s.get_channel(APP, "android").await.unwrap().unwrap();
    assert!(
        !ios_now.public && !android_now.public,
        "a wider public channel demotes both"
    );
    assert_eq!(ios_now.updated_at, 20);
    assert!(
        s.get_channel(APP, "electron")
            .await
            .unwrap()
            .unwrap()
            .public,
        "no shared platform"
    );
    assert!(
        s.get_channel(OTHER_APP, "prod")
            .await
            .unwrap()
            .unwrap()
            .public,
        "other apps untouched"
    );
    assert_eq!(
        s.get_channel(OTHER_APP, "prod").await.unwrap().unwrap(),
        other_public
    );

    // Making a channel public by update demotes too.
    let promoted = update_channel(
        s,
        APP,
        "ios",
        ChannelPatch {
            public: Some(true),
            ..ChannelPatch::default()
        },
        30,
    )
    .await
    .unwrap();
    assert!(promoted.public);
    assert!(!s.get_channel(APP, "all").await.unwrap().unwrap().public);
    assert!(!s.get_channel(APP, "android").await.unwrap().unwrap().public);

    // A public channel gaining a platform demotes the channel public on it.
    let widened = update_channel(
        s,
        APP,
        "ios",
        ChannelPatch {
            electron: Some(true),
            ..ChannelPatch::default()
        },
        40,
    )
    .await
    .unwrap();
    assert!(widened.public);
    assert!(
        !s.get_channel(APP, "electron")
            .await
            .unwrap()
            .unwrap()
            .public
    );
    let public: Vec<String> = s
        .list_channels(APP)
        .await
        .unwrap()
        .into_iter()
        .filter(|c| c.public)
        .map(|c| c.name)
        .collect();
    assert_eq!(public, vec!["ios"]);
}

pub async fn suite_overrides<S: Store>(s: &S) {
    s.create_app(APP, "Example", 1).await.unwrap();
    s.create_app(OTHER_APP, "Other", 1).await.unwrap();
    let beta = s
        .create_channel(new_channel(APP, "beta", ChannelPatch::default()), 2)
        .await
        .unwrap();
    let prod = s
        .create_channel(new_channel(APP, "prod", ChannelPatch::default()), 2)
        .await
        .unwrap();
    let foreign = s
        .create_channel(new_channel(OTHER_APP, "beta", ChannelPatch::default()), 2)
        .await
        .unwrap();

    let set = s
        .set_override(APP, "dev-1", beta.id, OverrideSource::Admin, 10)
        .await
        .unwrap();
    assert_eq!(set.app_id, APP);
    assert_eq!(set.device_id, "dev-1");
    assert_eq!(set.channel_id, beta.id);
    assert_eq!(set.source, OverrideSource::Admin);
    assert_eq!(set.created_at, 10);

    let moved = s
        .set_override(APP, "dev-1", prod.id, OverrideSource::Device, 20)
        .await
        .unwrap();
    assert_eq!(moved.channel_id, prod.id);
    assert_eq!(moved.source, OverrideSource::Device);
    s.set_override(APP, "dev-2", beta.id, OverrideSource::Admin, 30)
        .await
        .unwrap();

    assert!(matches!(
        s.set_override(APP, "dev-3", foreign.id, OverrideSource::Admin, 40)
            .await,
        Err(StoreError::NotFound(Entity::Channel))
    ));
    assert!(matches!(
        s.set_override(APP, "dev-3", 999_999, OverrideSource::Admin, 40)
            .await,
        Err(StoreError::NotFound(Entity::Channel))
    ));

    let listed = s.list_overrides(APP).await.unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0], moved);
    assert_eq!(listed[1].channel_id, beta.id);
    assert!(s.list_overrides(OTHER_APP).await.unwrap().is_empty());

    assert!(s.delete_override(APP, "dev-1").await.unwrap());
    assert!(!s.delete_override(APP, "dev-1").await.unwrap());

    // Deleting a channel removes the overrides pointing at it.
    s.set_override(APP, "dev-4", prod.id, OverrideSource::Admin, 50)
        .await
        .unwrap();
    s.delete_channel(APP, "beta").await.unwrap();
    let remaining: Vec<String> = s
        .list_overrides(APP)
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.device_id)
        .collect();
    assert_eq!(remaining, vec!["dev-4"]);
}

/// 1,301 distinct devices span every statement size (1024 + 256 + 16 + 4 +
/// 1); two devices appear twice in the batch, so a later sighting must see
/// the earlier one, as one statement per sighting would (PostgreSQL refuses
/// an upsert touching a row twice, so the store must split them).
pub async fn suite_multi_row_upserts<S: Store>(s: &S) {
    let mut batch: Vec<DeviceSighting> = (0..1_301)
        .map(|i| sighting(APP, &format!("device-{i:04}"), 1_000 + i))
        .collect();
    batch[7].custom_id = Some("alice".to_string());
    batch[7].default_channel = Some("beta".to_string());
    // Observed in the same millisecond: the order in the batch decides.
    let mut later = sighting(APP, "device-0007", 1_007);
    later.version_name = Some("2.0.0".to_string());
    batch.push(later);
    // Observed before both (a third round): changes nothing but the fields
    // no one else carries.
    let mut older = sighting(APP, "device-0007", 500);
    older.version_name = Some("0.9.0".to_string());
    older.default_channel = Some("gamma".to_string());
    older.last_offered_version = Some("2.0.0".to_string());
    batch.push(older);
    // Within the first thousand: same statement size as its first sighting.
    let mut again = sighting(APP, "device-0003", 5_000);
    again.custom_id = Some("bob".to_string());
    batch.insert(600, again);
    s.upsert_devices(&batch).await.unwrap();

    let query = DeviceQuery::default();
    assert_eq!(s.count_devices(APP, &query).await.unwrap(), 1_301);
    let device = s.get_device(APP, "device-0007").await.unwrap().unwrap();
    // Kept from the first write (the second carries no custom_id).
    assert_eq!(device.custom_id.as_deref(), Some("alice"));
    // Overwritten by the second write, as the registry does.
    assert_eq!(device.default_channel, None);
    assert_eq!(device.version_name.as_deref(), Some("2.0.0"));
    assert_eq!(device.last_offered_version.as_deref(), Some("2.0.0"));
    // last_seen never moves backwards; first_seen is the first write's.
    assert_eq!(device.last_seen, 1_007);
    assert_eq!(device.first_seen, 1_007);
    let twice = s.get_device(APP, "device-0003").await.unwrap().unwrap();
    assert_eq!(twice.custom_id.as_deref(), Some("bob"));
    assert_eq!((twice.first_seen, twice.last_seen), (1_003, 5_000));
    let last = s.get_device(APP, "device-1300").await.unwrap().unwrap();
    assert_eq!(last.last_seen, 2_300);
}

pub async fn suite_devices<S: Store>(s: &S) {
    let mut first = sighting(APP, "dev-a", 1_000);
    first.custom_id = Some("customer-42".to_string());
    first.default_channel = Some("beta".to_string());
    first.key_id = Some("AbCd".to_string());
    first.install_source = Some("testflight".to_string());
    first.last_offered_version = Some("1.1.0".to_string());
    first.last_update_outcome = Some("get".to_string());
    s.upsert_devices(&[first.clone()]).await.unwrap();

    let stored = s.get_device(APP, "dev-a").await.unwrap().unwrap();
    assert_eq!(stored.custom_id.as_deref(), Some("customer-42"));
    assert_eq!(stored.default_channel.as_deref(), Some("beta"));
    assert_eq!((stored.first_seen, stored.last_seen), (1_000, 1_000));

    // A later, sparser sighting: keep-fields survive, default_channel is overwritten.
    let mut later = sighting(APP, "dev-a", 2_000);
    later.platform = "android".to_string();
    later.plugin_version = None;
    later.version_os = Some("18.0".to_string());
    later.version_name = None;
    later.custom_id = Some("   ".to_string());
    later.is_prod = false;
    later.is_emulator = true;
    later.default_channel = None;
    later.key_id = None;
    later.last_update_outcome = Some("no_new_version_available".to_string());
    // An older sighting in the same batch must not move last_seen back.
    let mut stale = later.clone();
    stale.seen_at = 1_500;
    stale.version_name = Some("1.2.0".to_string());
    s.upsert_devices(&[later, stale]).await.unwrap();

    let device = s.get_device(APP, "dev-a").await.unwrap().unwrap();
    assert_eq!(device.platform, "android");
    assert_eq!(
        device.plugin_version.as_deref(),
        Some("7.0.0"),
        "None keeps plugin_version"
    );
    assert_eq!(device.version_os.as_deref(), Some("18.0"));
    assert_eq!(
        device.version_name.as_deref(),
        Some("1.2.0"),
        "the batch's only version_name since the stored one wins, though observed first"
    );
    assert_eq!(
        device.custom_id.as_deref(),
        Some("customer-42"),
        "blank custom_id keeps the stored one"
    );
    assert!(!device.is_prod);
    assert!(device.is_emulator);
    assert_eq!(
        device.default_channel, None,
        "default_channel is overwritten with null"
    );
    assert_eq!(device.key_id.as_deref(), Some("AbCd"));
    assert_eq!(device.install_source.as_deref(), Some("testflight"));
    assert_eq!(device.last_offered_version.as_deref(), Some("1.1.0"));
    assert_eq!(
        device.last_update_outcome.as_deref(),
        Some("no_new_version_available")
    );
    assert_eq!(device.first_seen, 1_000, "first_seen set on insert only");
    assert_eq!(device.last_seen, 2_000, "last_seen never goes back");

    let mut renamed = sighting(APP, "dev-a", 2_500);
    renamed.custom_id = Some("customer-43".to_string());
    s.upsert_devices(&[renamed]).await.unwrap();
    assert_eq!(
        s.get_device(APP, "dev-a")
            .await
            .unwrap()
            .unwrap()
            .custom_id
            .as_deref(),
        Some("customer-43")
    );

    // Listing: newest first, filters, paging.
    let mut batch = Vec::new();
    for i in 0..5 {
        let mut seen = sighting(APP, &format!("dev-{i}"), 3_000 + i);
        seen.version_name = Some(if i % 2 == 0 { "2.0.0" } else { "1.0.0" }.to_string());
        seen.custom_id = (i == 3).then(|| "Shop_Tablet".to_string());
        batch.push(seen);
    }
    batch.push(sighting(OTHER_APP, "dev-0", 9_000));
    s.upsert_devices(&batch).await.unwrap();
    s.upsert_devices(&[]).await.unwrap();

    let ids = |devices: Vec<updraft_core::model::Device>| {
        devices.into_iter().map(|d| d.device_id).collect::<Vec<_>>()
    };
    let everything = DeviceQuery::default();
    assert_eq!(
        ids(s.list_devices(APP, &everything).await.unwrap()),
        vec!["dev-4", "dev-3", "dev-2", "dev-1", "dev-0", "dev-a"]
    );
    assert_eq!(s.count_devices(APP, &everything).await.unwrap(), 6);
    assert_eq!(s.count_devices(OTHER_APP, &everything).await.unwrap(), 1);

    let page = DeviceQuery {
        limit: 2,
        offset: 1,
        ..DeviceQuery::default()
    };
    assert_eq!(
        ids(s.list_devices(APP, &page).await.unwrap()),
        vec!["dev-3", "dev-2"]
    );
    assert_eq!(
        s.count_devices(APP, &page).await.unwrap(),
        6,
        "count ignores paging"
    );

    let by_version = DeviceQuery {
        version_name: Some("2.0.0".to_string()),
        ..DeviceQuery::default()
    };
    assert_eq!(
        ids(s.list_devices(APP, &by_version).await.unwrap()),
        vec!["dev-4", "dev-2", "dev-0"]
    );
    assert_eq!(s.count_devices(APP, &by_version).await.unwrap(), 3);

    let by_custom = DeviceQuery {
        custom_id: Some("Shop_Tablet".to_string()),
        ..DeviceQuery::default()
    };
    assert_eq!(
        ids(s.list_devices(APP, &by_custom).await.unwrap()),
        vec!["dev-3"]
    );

    // Search: case-insensitive substring of device_id or custom_id.
    let search = |text: &str| DeviceQuery {
        search: Some(text.to_string()),
        ..DeviceQuery::default()
    };
    assert_eq!(
        ids(s.list_devices(APP, &search("shop_t")).await.unwrap()),
        vec!["dev-3"]
    );
    assert_eq!(
        ids(s.list_devices(APP, &search("DEV-A")).await.unwrap()),
        vec!["dev-a"]
    );
    assert_eq!(
        ids(s.list_devices(APP, &search("customer")).await.unwrap()),
        vec!["dev-a"]
    );
    // `_` and `%` are literal characters, not wildcards.
    assert_eq!(s.count_devices(APP, &search("dev_")).await.unwrap(), 0);
    assert_eq!(s.count_devices(APP, &search("%")).await.unwrap(), 0);
    assert_eq!(s.get_device(APP, "nope").await.unwrap(), None);
}

pub async fn suite_stats<S: Store>(s: &S) {
    let mut with_metadata = event(APP, "dev-1", "download_fail", 200);
    with_metadata.metadata = Some(BTreeMap::from([
        ("error".to_string(), "timeout".to_string()),
        ("url".to_string(), "https://cdn".to_string()),
    ]));
    with_metadata.old_version_name = Some("0.9.0".to_string());
    let events = vec![
        event(APP, "dev-1", "get", 100),
        with_metadata.clone(),
        event(APP, "dev-2", "set", 150),
        event(OTHER_APP, "dev-1", "get", 300),
    ];
    let mut seen = sighting(APP, "dev-1", 210);
    seen.version_name = Some("1.0.0".to_string());
    record_stats(s, &events, &[seen]).await.unwrap();

    let device = s.get_device(APP, "dev-1").await.unwrap().unwrap();
    assert_eq!(
        device.last_seen, 210,
        "the sighting was applied with the events"
    );

    let newest_first = s.list_events(APP, None, 0).await.unwrap();
    let actions: Vec<&str> = newest_first.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, vec!["download_fail", "set", "get"]);
    assert_eq!(
        newest_first[0], with_metadata,
        "metadata and every field round-trip"
    );

    let only_dev1 = s.list_events(APP, Some("dev-1"), 10).await.unwrap();
    assert_eq!(only_dev1.len(), 2);
    assert!(only_dev1
        .iter()
        .all(|e| e.device_id == "dev-1" && e.app_id == APP));
    assert_eq!(s.list_events(APP, None, 1).await.unwrap().len(), 1);
    assert_eq!(s.list_events(OTHER_APP, None, 10).await.unwrap().len(), 1);

    // Events alone, sightings alone, and nothing at all.
    record_stats(s, &[event(APP, "dev-3", "get", 400)], &[])
        .await
        .unwrap();
    record_stats(s, &[], &[sighting(APP, "dev-4", 500)])
        .await
        .unwrap();
    record_stats(s, &[], &[]).await.unwrap();
    assert_eq!(s.list_events(APP, None, 100).await.unwrap().len(), 4);
    assert!(s.get_device(APP, "dev-3").await.unwrap().is_none());
    assert!(s.get_device(APP, "dev-4").await.unwrap().is_some());
}

pub async fn suite_api_keys<S: Store>(s: &S) {
    let (admin, secret) = s
        .create_api_key(
            NewApiKey {
                name: "ci".to_string(),
                role: Role::Publisher,
                app_id: Some(APP.to_string()),
                expires_at: Some(5_000),
            },
            1_000,
        )
        .await
        .unwrap();
    assert!(secret.starts_with("upd_"));
    assert_eq!(secret.len(), 44);
    assert!(secret[4..].chars().all(|c| c.is_ascii_alphanumeric()));
    assert_eq!(admin.prefix, secret[..8]);
    assert_eq!(admin.name, "ci");
    assert_eq!(admin.role, Role::Publisher);
    assert_eq!(admin.app_id.as_deref(), Some(APP));
    assert_eq!(admin.expires_at, Some(5_000));
    assert_eq!(admin.created_at, 1_000);
    assert_eq!(admin.revoked_at, None);
    assert!(admin.is_usable(4_999));
    assert!(!admin.is_usable(5_000));

    assert_eq!(s.find_api_key(&secret).await.unwrap(), Some(admin.clone()));
    assert_eq!(s.find_api_key("upd_wrong").await.unwrap(), None);
    assert_eq!(
        s.find_api_key(&hash_api_key(&secret)).await.unwrap(),
        None,
        "the hash is not the key"
    );

    let (other, other_secret) = s
        .create_api_key(
            NewApiKey {
                name: "42".to_string(),
                role: Role::Admin,
                app_id: None,
                expires_at: None,
            },
            2_000,
        )
        .await
        .unwrap();
    assert_ne!(other_secret, secret);
    assert!(matches!(
        s.create_api_key(
            NewApiKey {
                name: "ci".to_string(),
                role: Role::Viewer,
                app_id: None,
                expires_at: None,
            },
            3_000,
        )
        .await,
        Err(StoreError::AlreadyExists(Entity::ApiKey))
    ));
    let names: Vec<String> = s
        .list_api_keys()
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.name)
        .collect();
    assert_eq!(names, vec!["ci", "42"]);

    let revoked = s
        .revoke_api_key(&admin.id.to_string(), 3_000)
        .await
        .unwrap();
    assert_eq!(revoked.id, admin.id);
    assert_eq!(revoked.revoked_at, Some(3_000));
    let again = s.revoke_api_key("ci", 4_000).await.unwrap();
    assert_eq!(
        again.revoked_at,
        Some(3_000),
        "first revocation time is kept"
    );
    assert_eq!(
        s.find_api_key(&secret).await.unwrap().unwrap().revoked_at,
        Some(3_000)
    );

    // "42" is no key's id, so it is taken as a name.
    let by_name = s.revoke_api_key("42", 4_500).await.unwrap();
    assert_eq!(by_name.id, other.id);
    assert_eq!(by_name.revoked_at, Some(4_500));
    assert!(matches!(
        s.revoke_api_key("nobody", 5_000).await,
        Err(StoreError::NotFound(Entity::ApiKey))
    ));
    assert!(matches!(
        s.revoke_api_key("987654", 5_000).await,
        Err(StoreError::NotFound(Entity::ApiKey))
    ));
}

pub async fn suite_release<S: Store>(s: &S) {
    let unknown = s.load_release("com.missing.app").await.unwrap();
    assert!(unknown.app.is_none());
    assert!(
        unknown.channels.is_empty() && unknown.bundles.is_empty() && unknown.overrides.is_empty()
    );

    let app = s.create_app(APP, "Example", 1).await.unwrap();
    s.create_app(OTHER_APP, "Other", 1).await.unwrap();
    let mut with_files = new_bundle(APP, "1.0.0");
    with_files.manifest = manifest(&["z.js", "a.js", "m.js"]);
    let old = s.create_bundle(with_files.clone(), 2).await.unwrap();
    let current = s.create_bundle(new_bundle(APP, "2.0.0"), 3).await.unwrap();
    let unused = s.create_bundle(new_bundle(APP, "3.0.0"), 4).await.unwrap();
    let pointing_at = |id| ChannelPatch {
        bundle_id: Some(Some(id)),
        ..ChannelPatch::default()
    };
    let zeta = s
        .create_channel(new_channel(APP, "zeta", pointing_at(old.id)), 5)
        .await
        .unwrap();
    let beta = s
        .create_channel(new_channel(APP, "beta", pointing_at(current.id)), 6)
        .await
        .unwrap();
    let builtin = s
        .create_channel(new_channel(APP, "alpha", ChannelPatch::default()), 7)
        .await
        .unwrap();
    s.create_channel(new_channel(OTHER_APP, "aaa", ChannelPatch::default()), 8)
        .await
        .unwrap();
    s.delete_bundle(APP, "1.0.0", 9).await.unwrap();
    s.set_override(APP, "Dev-Upper", beta.id, OverrideSource::Device, 10)
        .await
        .unwrap();
    s.set_override(APP, "dev-2", zeta.id, OverrideSource::Admin, 11)
        .await
        .unwrap();

    let release = s.load_release(APP).await.unwrap();
    assert_eq!(release.app, Some(app));
    let channel_ids: Vec<i64> = release.channels.iter().map(|c| c.id).collect();
    assert_eq!(
        channel_ids,
        vec![builtin.id, beta.id, zeta.id],
        "sorted by name"
    );

    let mut bundle_ids: Vec<i64> = release.bundles.keys().copied().collect();
    bundle_ids.sort();
    assert_eq!(
        bundle_ids,
        vec![old.id, current.id],
        "only referenced bundles"
    );
    assert!(!release.bundles.contains_key(&unused.id));
    let deleted = release.bundle(old.id).unwrap();
    assert!(
        deleted.deleted,
        "a deleted bundle a channel points at is still there"
    );
    assert_eq!(
        deleted.manifest, with_files.manifest,
        "manifest in position order"
    );
    assert_eq!(release.bundle(current.id).unwrap().name, "2.0.0");

    assert_eq!(release.overrides.len(), 2);
    assert_eq!(release.overrides["dev-upper"].channel_id, beta.id);
    assert_eq!(release.overrides["dev-2"].channel_id, zeta.id);
    assert_eq!(release.channel_by_id(zeta.id).unwrap().name, "zeta");
}

/// Deleting an app revokes the keys limited to it in the same transaction
/// (a reused app id must not bring them back); other keys stay as they were,
/// and a delete that finds no app revokes nothing.
pub async fn suite_delete_app_revokes_its_keys<S: Store>(s: &S) {
    s.create_app(APP, "Example", 1).await.unwrap();
    s.create_app(OTHER_APP, "Other", 1).await.unwrap();
    let key = |name: &str, app_id: Option<&str>| NewApiKey {
        name: name.to_string(),
        role: Role::Publisher,
        app_id: app_id.map(str::to_string),
        expires_at: None,
    };
    let (scoped, scoped_secret) = s.create_api_key(key("scoped", Some(APP)), 2).await.unwrap();
    let (revoked, _) = s
        .create_api_key(key("revoked", Some(APP)), 2)
        .await
        .unwrap();
    s.revoke_api_key(&revoked.id.to_string(), 3).await.unwrap();
    let (other, _) = s
        .create_api_key(key("other", Some(OTHER_APP)), 2)
        .await
        .unwrap();
    let (global, _) = s.create_api_key(key("global", None), 2).await.unwrap();
    let (unborn, _) = s
        .create_api_key(key("unborn", Some("com.example.missing")), 2)
        .await
        .unwrap();

    assert!(matches!(
        s.delete_app("com.example.missing", 9).await,
        Err(StoreError::NotFound(Entity::App))
    ));
    s.delete_app(APP, 10).await.unwrap();

    let revoked_at = |keys: &[updraft_core::model::ApiKey], id: i64| {
        keys.iter().find(|k| k.id == id).unwrap().revoked_at
    };
    let keys = s.list_api_keys().await.unwrap();
    assert_eq!(revoked_at(&keys, scoped.id), Some(10));
    assert_eq!(
        revoked_at(&keys, revoked.id),
        Some(3),
        "first revocation kept"
    );
    assert_eq!(revoked_at(&keys, other.id), None);
    assert_eq!(revoked_at(&keys, global.id), None);
    assert_eq!(
        revoked_at(&keys, unborn.id),
        None,
        "rolled back with the delete"
    );

    // The app id is free again; its old key stays dead.
    s.create_app(APP, "Again", 11).await.unwrap();
    let found = s.find_api_key(&scoped_secret).await.unwrap().unwrap();
    assert!(!found.is_usable(12));
}

/// Deleting an app removes all of it, and nothing of another app.
pub async fn suite_delete_app<S: Store>(s: &S) {
    for app in [APP, OTHER_APP] {
        s.create_app(app, "Example", 1).await.unwrap();
        let mut files = new_bundle(app, "1.0.0");
        files.manifest = manifest(&["a.js"]);
        let bundle = s.create_bundle(files, 2).await.unwrap();
        s.create_bundle(new_bundle(app, "0.1.0"), 2).await.unwrap();
        s.delete_bundle(app, "0.1.0", 3).await.unwrap();
        let channel = s
            .create_channel(
                new_channel(
                    app,
                    "production",
                    ChannelPatch {
                        bundle_id: Some(Some(bundle.id)),
                        public: Some(true),
                        ..ChannelPatch::default()
                    },
                ),
                4,
            )
            .await
            .unwrap();
        s.set_override(app, "dev-1", channel.id, OverrideSource::Admin, 5)
            .await
            .unwrap();
        record_stats(
            s,
            &[event(app, "dev-1", "get", 6)],
            &[sighting(app, "dev-1", 6)],
        )
        .await
        .unwrap();
    }

    s.delete_app(APP, 100).await.unwrap();
    assert_eq!(s.get_app(APP).await.unwrap(), None);
    assert!(s.list_bundles(APP, true).await.unwrap().is_empty());
    assert!(s.list_channels(APP).await.unwrap().is_empty());
    assert!(s.list_overrides(APP).await.unwrap().is_empty());
    assert_eq!(
        s.count_devices(APP, &DeviceQuery::default()).await.unwrap(),
        0
    );
    assert!(s.list_events(APP, None, 10).await.unwrap().is_empty());
    assert!(s.load_release(APP).await.unwrap().app.is_none());

    // Recreated, the app starts empty and its old names are free again.
    s.create_app(APP, "Again", 7).await.unwrap();
    s.create_bundle(new_bundle(APP, "0.1.0"), 8).await.unwrap();
    s.create_channel(new_channel(APP, "production", ChannelPatch::default()), 8)
        .await
        .unwrap();

    assert_eq!(s.list_bundles(OTHER_APP, true).await.unwrap().len(), 2);
    assert_eq!(s.list_channels(OTHER_APP).await.unwrap().len(), 1);
    assert_eq!(s.list_overrides(OTHER_APP).await.unwrap().len(), 1);
    assert_eq!(
        s.count_devices(OTHER_APP, &DeviceQuery::default())
            .await
            .unwrap(),
        1
    );
    assert_eq!(s.list_events(OTHER_APP, None, 10).await.unwrap().len(), 1);
    let other_release = s.load_release(OTHER_APP).await.unwrap();
    assert_eq!(other_release.bundles.len(), 1);
    assert_eq!(
        other_release
            .bundles
            .values()
            .next()
            .unwrap()
            .manifest
            .len(),
        1
    );
}

/// Thousands of rows per call, as the stats writer batches them.
pub async fn suite_bulk<S: Store>(s: &S) {
    const DEVICES: usize = 3_000;
    let sightings: Vec<DeviceSighting> = (0..DEVICES)
        .map(|i| sighting(APP, &format!("bulk-{i:05}"), 10_000 + i as i64))
        .collect();
    let events: Vec<StatsEvent> = (0..DEVICES)
        .map(|i| event(APP, &format!("bulk-{i:05}"), "get", 10_000 + i as i64))
        .collect();
    let started = std::time::Instant::now();
    record_stats(s, &events, &sightings).await.unwrap();
    s.upsert_devices(&sightings).await.unwrap();
    let elapsed = started.elapsed();
    assert!(
        elapsed < std::time::Duration::from_secs(20),
        "bulk write took {elapsed:?}"
    );
    assert_eq!(
        s.count_devices(APP, &DeviceQuery::default()).await.unwrap(),
        DEVICES as i64
    );
    assert_eq!(
        s.list_events(APP, None, 5_000).await.unwrap().len(),
        1_000,
        "limit is capped"
    );
    let newest = s.list_devices(APP, &DeviceQuery::default()).await.unwrap();
    assert_eq!(newest.len(), 50, "default page size");
    assert_eq!(newest[0].device_id, format!("bulk-{:05}", DEVICES - 1));
}

fn stored_file(name: &str, blob: &str, size: i64) -> ManifestFile {
    ManifestFile {
        file_name: name.to_string(),
        file_hash: blob.to_string(),
        location: format!("/dl/{APP}/2.0.0/{blob}"),
        size: Some(size),
        blob_sha256: Some(blob.to_string()),
    }
}

/// Bundles hosted by Updraft keep their blob references, and gc sees exactly
/// the blobs of live bundles.
pub async fn suite_bundle_storage<S: Store>(s: &S) {
    s.create_app(APP, "Example", 1).await.unwrap();
    s.create_app(OTHER_APP, "Other", 1).await.unwrap();
    let zip = "a".repeat(64);
    let index = "b".repeat(64);
    let script = "c".repeat(64);
    let other_zip = "d".repeat(64);

    let stored = NewBundle {
        app_id: APP.to_string(),
        name: "2.0.0".to_string(),
        checksum: Some(zip.clone()),
        storage_path: Some(format!("/dl/{APP}/2.0.0/{zip}.zip")),
        zip_sha256: Some(zip.clone()),
        size: Some(4096),
        manifest: vec![
            stored_file("index.html", &index, 120),
            stored_file("app.js.br", &script, 77),
        ],
        ..NewBundle::default()
    };
    let created = s.create_bundle(stored.clone(), 5).await.unwrap();
    assert_eq!(created.zip_sha256.as_deref(), Some(zip.as_str()));
    assert_eq!(created.size, Some(4096));
    assert_eq!(created.manifest, stored.manifest);
    let fetched = s.get_bundle(APP, "2.0.0").await.unwrap().unwrap();
    assert_eq!(fetched, created);
    let listed = s.list_bundles(APP, false).await.unwrap();
    assert_eq!(listed, vec![created.clone()]);

    let other = NewBundle {
        app_id: OTHER_APP.to_string(),
        name: "1.0.0".to_string(),
        zip_sha256: Some(other_zip.clone()),
        size: Some(1),
        ..NewBundle::default()
    };
    s.create_bundle(other, 6).await.unwrap();
    // An external bundle references no blob.
    s.create_bundle(new_bundle(APP, "3.0.0"), 7).await.unwrap();

    // Per app: which asked blobs its bundles reference, and its live files' sizes.
    let asked = vec![
        zip.clone(),
        index.clone(),
        other_zip.clone(),
        "e".repeat(64),
    ];
    let mut seen: Vec<String> = s
        .app_blobs(APP, &asked)
        .await
        .unwrap()
        .into_iter()
        .collect();
    seen.sort();
    assert_eq!(seen, vec![zip.clone(), index.clone()]);
    let seen: Vec<String> = s
        .app_blobs(OTHER_APP, &asked)
        .await
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(seen, vec![other_zip.clone()]);
    let live = s.app_live_blobs(APP).await.unwrap();
    assert_eq!(live.values().sum::<i64>(), 4096 + 120 + 77, "{live:?}");

    let referenced = s.referenced_blobs().await.unwrap();
    let mut expected: Vec<String> = vec![
        zip.clone(),
        index.clone(),
        script.clone(),
        other_zip.clone(),
    ];
    expected.sort();
    let mut got: Vec<String> = referenced.into_iter().collect();
    got.sort();
    assert_eq!(got, expected);

    // Deleted bundles stop referencing their blobs.
    s.delete_bundle(APP, "2.0.0", 8).await.unwrap();
    let got: Vec<String> = s.referenced_blobs().await.unwrap().into_iter().collect();
    assert_eq!(got, vec![other_zip.clone()]);
    assert!(s.app_live_blobs(APP).await.unwrap().is_empty());
    // A deleted bundle's files still belong to its app for the existence check.
    assert_eq!(s.app_blobs(APP, &asked).await.unwrap().len(), 2);

    // The release (in-memory cache source) carries the references too.
    let channel = s
        .create_channel(
            new_channel(
                OTHER_APP,
                "production",
                ChannelPatch {
                    bundle_id: Some(Some(
                        s.get_bundle(OTHER_APP, "1.0.0").await.unwrap().unwrap().id,
                    )),
                    ..ChannelPatch::default()
                },
            ),
            9,
        )
        .await
        .unwrap();
    let release = s.load_release(OTHER_APP).await.unwrap();
    let bundle = release.bundle(channel.bundle_id.unwrap()).unwrap();
    assert_eq!(bundle.zip_sha256.as_deref(), Some(other_zip.as_str()));
}

/// Download tallies add up per (app, bundle, day); unknown bundles are dropped.
pub async fn suite_download_tallies<S: Store>(s: &S) {
    use updraft_store::DownloadTally;
    s.create_app(APP, "Example", 1).await.unwrap();
    let bundle = s.create_bundle(new_bundle(APP, "1.0.0"), 2).await.unwrap();
    let tally = |day: &str, requests: i64, bytes: i64| DownloadTally {
        app_id: APP.to_string(),
        bundle_id: bundle.id,
        day: day.to_string(),
        requests,
        bytes,
    };
    s.record_downloads(&[tally("2026-11-26", 2, 100), tally("2026-11-27", 1, 7)])
        .await
        .unwrap();
    let mut missing = tally("2026-11-26", 5, 5);
    missing.bundle_id = bundle.id + 1000;
    s.record_downloads(&[tally("2026-11-26", 3, 50), missing])
        .await
        .unwrap();
    s.record_downloads(&[]).await.unwrap();
    // Read back through the delete path: the totals are in the table the
    // analytics read; the SQLite test checks the rows themselves.
}

pub async fn suite_settings<S: Store>(s: &S) {
    let first = s
        .setting_or_insert("url_signing_key", "aaaa", 1)
        .await
        .unwrap();
    assert_eq!(first, "aaaa");
    // A second node's candidate loses: everyone gets the first value.
    let second = s
        .setting_or_insert("url_signing_key", "bbbb", 2)
        .await
        .unwrap();
    assert_eq!(second, "aaaa");
    let other = s.setting_or_insert("other", "cccc", 3).await.unwrap();
    assert_eq!(other, "cccc");
    // The write probe commits (and overwrites its one row each time).
    s.probe_write(10).await.unwrap();
    s.probe_write(20).await.unwrap();
    let probe = s
        .setting_or_insert("write_probe", "none", 30)
        .await
        .unwrap();
    assert_eq!(probe, "20");
}

/// The bundle `device list --bundle` finds the device on.
async fn listed_on<S: Store>(s: &S, device_id: &str) -> Option<String> {
    s.get_device(APP, device_id)
        .await
        .unwrap()
        .and_then(|d| d.version_name)
}

/// Each field keeps its newest observation, whatever order the sightings are
/// written in, by either path (a registry flush or a stats commit), in one
/// statement or several.
pub async fn suite_devices_keep_the_newest_observation<S: Store>(s: &S) {
    // A newer sighting, then an older one: nothing of the older one lands.
    let mut newer = sighting(APP, "dev-order", 2_000);
    newer.version_name = Some("1.0.1".to_string());
    newer.last_offered_version = Some("1.0.2".to_string());
    newer.last_update_outcome = Some("get".to_string());
    newer.default_channel = Some("beta".to_string());
    let mut older = sighting(APP, "dev-order", 1_000);
    older.version_name = Some("1.0.0".to_string());
    older.last_offered_version = Some("1.0.1".to_string());
    older.last_update_outcome = Some("no_new_version_available".to_string());
    older.default_channel = None;
    older.is_prod = false;
    older.plugin_version = Some("6.0.0".to_string());
    s.upsert_devices(&[newer.clone()]).await.unwrap();
    s.upsert_devices(&[older.clone()]).await.unwrap();
    // The same two in one statement, both orders.
    let mut same_batch = newer.clone();
    same_batch.device_id = "dev-order-batch".to_string();
    let mut same_batch_older = older.clone();
    same_batch_older.device_id = "dev-order-batch".to_string();
    s.upsert_devices(&[same_batch.clone(), same_batch_older.clone()])
        .await
        .unwrap();
    same_batch.device_id = "dev-order-batch-2".to_string();
    same_batch_older.device_id = "dev-order-batch-2".to_string();
    s.upsert_devices(&[same_batch_older, same_batch])
        .await
        .unwrap();
    for id in ["dev-order", "dev-order-batch", "dev-order-batch-2"] {
        let row = s.get_device(APP, id).await.unwrap().unwrap();
        assert_eq!(row.version_name.as_deref(), Some("1.0.1"), "{id}");
        assert_eq!(row.last_offered_version.as_deref(), Some("1.0.2"), "{id}");
        assert_eq!(row.last_update_outcome.as_deref(), Some("get"), "{id}");
        assert_eq!(row.default_channel.as_deref(), Some("beta"), "{id}");
        assert!(row.is_prod, "{id}");
        assert_eq!(row.plugin_version.as_deref(), Some("7.0.0"), "{id}");
        // first_seen is the first write's, last_seen the newest.
        let first_write = if id == "dev-order-batch-2" {
            1_000
        } else {
            2_000
        };
        assert_eq!(
            (row.first_seen, row.last_seen),
            (first_write, 2_000),
            "{id}"
        );
    }

    // Per field: a newer sighting that says nothing of a field does not
    // stop an older one that does, if that one is newer than what is stored.
    let mut stored = sighting(APP, "dev-fields", 1_000);
    stored.version_name = Some("1.0.0".to_string());
    stored.last_offered_version = Some("1.0.0".to_string());
    stored.last_update_outcome = Some("get".to_string());
    s.upsert_devices(&[stored]).await.unwrap();
    // At 3_000: a failure stat (no running bundle, no offer).
    let mut silent = sighting(APP, "dev-fields", 3_000);
    silent.version_name = None;
    silent.default_channel = Some("beta".to_string());
    record_stats(s, &[], &[silent]).await.unwrap();
    // At 2_000, written last: an update check.
    let mut check = sighting(APP, "dev-fields", 2_000);
    check.version_name = Some("1.0.1".to_string());
    check.last_offered_version = Some("1.0.2".to_string());
    check.last_update_outcome = Some("no_new_version_available".to_string());
    check.default_channel = None;
    s.upsert_devices(&[check]).await.unwrap();
    let row = s.get_device(APP, "dev-fields").await.unwrap().unwrap();
    assert_eq!(row.version_name.as_deref(), Some("1.0.1"));
    assert_eq!(row.last_offered_version.as_deref(), Some("1.0.2"));
    assert_eq!(
        row.last_update_outcome.as_deref(),
        Some("no_new_version_available")
    );
    assert_eq!(
        row.default_channel.as_deref(),
        Some("beta"),
        "the device facts of 3_000 stay"
    );
    assert_eq!(row.last_seen, 3_000);

    // An offer-less check newer than an offering one, written first: the
    // older check's offer is still the newest offer, its outcome is not.
    let mut offering = sighting(APP, "dev-offer", 1_000);
    offering.last_offered_version = Some("1.0.1".to_string());
    offering.last_update_outcome = Some("get".to_string());
    let mut nothing_new = sighting(APP, "dev-offer", 2_000);
    nothing_new.last_offered_version = None;
    nothing_new.last_update_outcome = Some("no_new_version_available".to_string());
    s.upsert_devices(&[nothing_new]).await.unwrap();
    s.upsert_devices(&[offering]).await.unwrap();
    let row = s.get_device(APP, "dev-offer").await.unwrap().unwrap();
    assert_eq!(row.last_offered_version.as_deref(), Some("1.0.1"));
    assert_eq!(
        row.last_update_outcome.as_deref(),
        Some("no_new_version_available")
    );

    // The field report: a `set` stat committed, then the update check that
    // came before it flushed from the registry buffer.
    let mut set = sighting(APP, "dev-set", 1_400);
    set.version_name = Some("1.0.1".to_string());
    record_stats(s, &[], &[set]).await.unwrap();
    let mut check = sighting(APP, "dev-set", 1_000);
    check.version_name = Some("1.0.0".to_string());
    check.last_offered_version = Some("1.0.1".to_string());
    check.last_update_outcome = Some("get".to_string());
    s.upsert_devices(&[check]).await.unwrap();
    assert_eq!(listed_on(s, "dev-set").await.as_deref(), Some("1.0.1"));
    let row = s.get_device(APP, "dev-set").await.unwrap().unwrap();
    assert_eq!(row.last_offered_version.as_deref(), Some("1.0.1"));
    assert_eq!(row.last_update_outcome.as_deref(), Some("get"));
    let on_new = DeviceQuery {
        version_name: Some("1.0.1".to_string()),
        ..DeviceQuery::default()
    };
    let on_new_ids: Vec<String> = s
        .list_devices(APP, &on_new)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.device_id)
        .collect();
    assert!(
        on_new_ids.contains(&"dev-set".to_string()),
        "{on_new_ids:?}"
    );

    // A stats event and an update check of the same millisecond: the stats
    // event counts as the later, in either write order.
    for (id, stats_first) in [("dev-tie-a", true), ("dev-tie-b", false)] {
        let mut set = sighting(APP, id, 1_500);
        set.version_name = Some("1.0.1".to_string());
        set.observed = Observed::all(ObservedAt::stats_event(1_500));
        let mut check = sighting(APP, id, 1_500);
        check.version_name = Some("1.0.0".to_string());
        if stats_first {
            record_stats(s, &[], &[set]).await.unwrap();
            s.upsert_devices(&[check]).await.unwrap();
        } else {
            s.upsert_devices(&[check]).await.unwrap();
            record_stats(s, &[], &[set]).await.unwrap();
        }
        assert_eq!(listed_on(s, id).await.as_deref(), Some("1.0.1"), "{id}");
    }
}
