//! `/updates` and `PUT /channel_self` resolve the same body to the same
//! channel, whatever the device stored (wire §7.2: the plugin persists the
//! channel of every `getChannel()` answer as its `defaultChannel`).
//!
//! Every channel points at its own bundle, so the bundle an update check
//! offers names the channel it was served from.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is its failure report

use semver::Version;
use std::sync::Arc;
use updraft_core::channel_self::answer_channel_get;
use updraft_core::decision::answer_update;
use updraft_core::model::{
    App, AutoUpdatePolicy, Bundle, Channel, DeviceOverride, OverrideSource, Platform, ReleaseConfig,
};
use updraft_core::request::{ChannelSelfRequest, UpdateRequest};

const APP: &str = "com.example.app";
const DEVICE: &str = "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0";
const BASE: &str = "http://127.0.0.1:8080";

/// Each channel's bundle is named `9.0.<channel id>`.
fn bundle_of(channel_id: i64) -> Bundle {
    Bundle {
        id: 100 + channel_id,
        app_id: APP.into(),
        name: format!("9.0.{channel_id}"),
        checksum: Some("ab".repeat(32)),
        encrypted_checksum: None,
        session_key: None,
        key_id: None,
        external_url: None,
        storage_path: Some(format!("/files/{channel_id}.zip")),
        zip_sha256: None,
        size: None,
        manifest: Vec::new(),
        min_update_version: None,
        link: None,
        comment: None,
        native_packages: None,
        deleted: false,
        created_at: 0,
        deleted_at: None,
    }
}

fn channel(id: i64, name: &str, public: bool, self_set: bool, android: bool) -> Channel {
    Channel {
        id,
        app_id: APP.into(),
        name: name.into(),
        bundle_id: Some(100 + id),
        public,
        ios: true,
        android,
        electron: true,
        allow_device_self_set: self_set,
        allow_emulator: true,
        allow_device: true,
        allow_dev: true,
        allow_prod: true,
        disable_auto_update: AutoUpdatePolicy::None,
        disable_auto_update_under_native: false,
        targeting: Default::default(),
        rollout: None,
        auto_pause: Default::default(),
        ramp: Default::default(),
        created_at: 0,
        updated_at: 0,
    }
}

fn release(channels: Vec<Channel>, override_to: Option<i64>) -> ReleaseConfig {
    let mut release = ReleaseConfig {
        app: Some(App {
            app_id: APP.into(),
            name: "Example".into(),
            expose_metadata: false,
            created_at: 0,
        }),
        ..Default::default()
    };
    for c in &channels {
        release
            .bundles
            .insert(100 + c.id, Arc::new(bundle_of(c.id)));
    }
    release.channels = channels;
    release
        .channels
        .sort_by(|a, b| (&a.name, a.id).cmp(&(&b.name, b.id)));
    if let Some(channel_id) = override_to {
        release.overrides.insert(
            DEVICE.into(),
            DeviceOverride {
                app_id: APP.into(),
                device_id: DEVICE.into(),
                channel_id,
                source: OverrideSource::Admin,
                created_at: 0,
            },
        );
    }
    release
}

fn update_request(default_channel: Option<&str>, plugin: &str) -> UpdateRequest<'static> {
    UpdateRequest {
        platform: Platform::Android,
        device_id: DEVICE.into(),
        app_id: APP.into(),
        custom_id: "".into(),
        version_build: Version::new(1, 0, 0),
        version_code: None,
        version_os: None,
        version_name: "1.0.0".into(),
        plugin_version: Version::parse(plugin).unwrap(),
        is_emulator: false,
        is_prod: true,
        install_source: None,
        default_channel: default_channel.map(|c| c.to_string().into()),
        key_id: None,
    }
}

fn get_request(default_channel: Option<&str>, plugin: &str) -> ChannelSelfRequest<'static> {
    ChannelSelfRequest {
        platform: Platform::Android,
        device_id: DEVICE.into(),
        app_id: APP.into(),
        custom_id: "".into(),
        version_build: Some(Version::new(1, 0, 0)),
        version_name: "1.0.0".into(),
        plugin_version: Version::parse(plugin).ok(),
        plugin_version_raw: Some(plugin.to_string().into()),
        is_emulator: false,
        is_prod: true,
        default_channel: default_channel.map(|c| c.to_string().into()),
        channel: None,
        key_id: None,
        install_source: None,
    }
}

/// The channel name an update check was served from, or its refusal code.
fn served_by_updates(release: &ReleaseConfig, dc: Option<&str>, plugin: &str) -> String {
    let answer = answer_update(&update_request(dc, plugin), release, BASE);
    match answer.offered_version {
        Some(version) => {
            let id: i64 = version.trim_start_matches("9.0.").parse().unwrap();
            release.channel_by_id(id).unwrap().name.clone()
        }
        None => answer.outcome.to_string(),
    }
}

fn answered_by_get(release: &ReleaseConfig, dc: Option<&str>, plugin: &str) -> String {
    let answer = answer_channel_get(&get_request(dc, plugin), release);
    match answer.body.get("channel").and_then(|c| c.as_str()) {
        Some(name) => name.to_string(),
        None => "no_channel".to_string(),
    }
}

#[test]
fn both_endpoints_resolve_every_body_to_the_same_channel() {
    let layouts: Vec<Vec<Channel>> = vec![
        // production public; beta self-assignable; internal private; ios-beta not on Android.
        vec![
            channel(1, "production", true, false, true),
            channel(2, "beta", false, true, true),
            channel(3, "internal", false, false, true),
            channel(4, "ios-beta", false, true, false),
        ],
        // The public channel moved from production to stable.
        vec![
            channel(1, "production", false, false, true),
            channel(2, "beta", false, true, true),
            channel(5, "stable", true, false, true),
        ],
        // production stays self-assignable after stable became public.
        vec![
            channel(1, "production", false, true, true),
            channel(5, "stable", true, false, true),
        ],
        // No public channel for Android at all.
        vec![
            channel(1, "production", true, false, false),
            channel(2, "beta", false, true, true),
        ],
    ];
    let stored = [
        None,
        Some(""),
        Some("production"),
        Some("beta"),
        Some("internal"),
        Some("ios-beta"),
        Some("stable"),
        Some("deleted-long-ago"),
    ];
    let mut compared = 0;
    for (index, channels) in layouts.into_iter().enumerate() {
        for override_to in [None, Some(3)] {
            let release = release(channels.clone(), override_to);
            for dc in stored {
                for plugin in ["8.51.14", "7.34.0", "6.2.0"] {
                    let updates = served_by_updates(&release, dc, plugin);
                    let get = answered_by_get(&release, dc, plugin);
                    assert_eq!(
                        updates, get,
                        "layout {index}, override {override_to:?}, defaultChannel {dc:?}, plugin {plugin}"
                    );
                    compared += 1;
                }
            }
        }
    }
    assert_eq!(compared, 4 * 2 * 8 * 3);
}

#[test]
fn a_device_that_stored_the_public_channel_follows_it_when_it_moves() {
    // getChannel() while production was public: the device stores "production".
    let before = release(
        vec![
            channel(1, "production", true, false, true),
            channel(5, "stable", false, false, true),
        ],
        None,
    );
    let answer = answer_channel_get(&get_request(None, "8.51.14"), &before);
    assert_eq!(answer.body["channel"], "production");
    // The team makes stable the public channel; production is neither
    // public nor self-assignable any more.
    let after = release(
        vec![
            channel(1, "production", false, false, true),
            channel(5, "stable", true, false, true),
        ],
        None,
    );
    let check = answer_update(&update_request(Some("production"), "8.51.14"), &after, BASE);
    assert_eq!(
        check.offered_version.as_deref(),
        Some("9.0.5"),
        "{}",
        check.body
    );
    let get = answer_channel_get(&get_request(Some("production"), "8.51.14"), &after);
    assert_eq!(get.status, 200);
    assert_eq!(get.body["channel"], "stable");
    assert_eq!(get.body["status"], "default");
}
