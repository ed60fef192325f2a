//! `/channel_self` answers (reference-server-behaviour.md §3, wire §7), both
//! the device-local semantics of new plugins and the server-side overrides of
//! old ones.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is its failure report

use semver::Version;
use serde_json::{json, Value};
use updraft_core::channel_self::{
    answer_channel_get, answer_channel_list, answer_channel_set, answer_channel_unset,
    ChannelSelfAnswer, OverrideEffect,
};
use updraft_core::model::{
    App, AutoUpdatePolicy, Channel, DeviceOverride, OverrideSource, Platform, ReleaseConfig,
};
use updraft_core::request::{ChannelListQuery, ChannelSelfRequest};

const APP: &str = "com.example.app";
const DEVICE: &str = "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0";
const NEW_PLUGIN: &str = "8.51.14";
const OLD_PLUGIN: &str = "7.33.0";

// ---------- fixtures ----------

fn channel(id: i64, name: &str) -> Channel {
    Channel {
        id,
        app_id: APP.into(),
        name: name.into(),
        bundle_id: None,
        public: false,
        ios: true,
        android: true,
        electron: true,
        allow_device_self_set: false,
        allow_emulator: true,
        allow_device: true,
        allow_dev: true,
        allow_prod: true,
        disable_auto_update: AutoUpdatePolicy::Major,
        disable_auto_update_under_native: true,
        targeting: Default::default(),
        rollout: None,
        auto_pause: Default::default(),
        ramp: Default::default(),
        created_at: 0,
        updated_at: 0,
    }
}

struct Release(ReleaseConfig);

impl Release {
    fn empty() -> Self {
        Release(ReleaseConfig {
            app: Some(App {
                app_id: APP.into(),
                name: "Example".into(),
                expose_metadata: false,
                created_at: 0,
            }),
            ..Default::default()
        })
    }

    /// production (1): public, not self-assignable; beta (2): self-assignable;
    /// internal (3): private.
    fn standard() -> Self {
        Release::empty()
            .channel(Channel {
                public: true,
                ..channel(1, "production")
            })
            .channel(Channel {
                allow_device_self_set: true,
                ..channel(2, "beta")
            })
            .channel(channel(3, "internal"))
    }

    fn without_app() -> Self {
        Release(ReleaseConfig::default())
    }

    fn channel(mut self, channel: Channel) -> Self {
        self.0.channels.push(channel);
        self.0
            .channels
            .sort_by(|a, b| (&a.name, a.id).cmp(&(&b.name, b.id)));
        self
    }

    fn edit_channel(mut self, id: i64, edit: impl FnOnce(&mut Channel)) -> Self {
        if let Some(channel) = self.0.channels.iter_mut().find(|c| c.id == id) {
            edit(channel);
        }
        self
    }

    fn override_to(mut self, channel_id: i64, source: OverrideSource) -> Self {
        self.0.overrides.insert(
            DEVICE.into(),
            DeviceOverride {
                app_id: APP.into(),
                device_id: DEVICE.into(),
                channel_id,
                source,
                created_at: 0,
            },
        );
        self
    }
}

fn request(plugin: Option<&str>) -> ChannelSelfRequest<'static> {
    ChannelSelfRequest {
        platform: Platform::Android,
        device_id: DEVICE.into(),
        app_id: APP.into(),
        custom_id: "".into(),
        version_build: Some(Version::new(1, 0, 0)),
        version_name: "1.0.0".into(),
        plugin_version: plugin.and_then(|p| Version::parse(p).ok()),
        plugin_version_raw: plugin.map(|p| p.to_string().into()),
        is_emulator: false,
        is_prod: true,
        default_channel: None,
        channel: None,
        key_id: None,
        install_source: None,
    }
}

fn set_request(plugin: &str, channel: &str) -> ChannelSelfRequest<'static> {
    ChannelSelfRequest {
        channel: Some(channel.to_string().into()),
        ..request(Some(plugin))
    }
}

fn get_request(plugin: &str, default_channel: Option<&str>) -> ChannelSelfRequest<'static> {
    ChannelSelfRequest {
        default_channel: default_channel.map(|c| c.to_string().into()),
        ..request(Some(plugin))
    }
}

fn ok(body: Value) -> ChannelSelfAnswer {
    ChannelSelfAnswer {
        status: 200,
        body,
        effect: OverrideEffect::None,
    }
}

fn app_not_found() -> ChannelSelfAnswer {
    ChannelSelfAnswer {
        status: 404,
        body: json!({"error": "app_not_found",
                     "message": "App com.example.app is not registered on this Updraft server"}),
        effect: OverrideEffect::None,
    }
}

fn cannot_override() -> ChannelSelfAnswer {
    ok(json!({"error": "cannot_override",
              "message": "Cannot change device override current channel don't allow it"}))
}

// ---------- POST (set) ----------

#[test]
fn set_missing_channel() {
    for channel in [None, Some(String::new())] {
        let req = ChannelSelfRequest {
            channel: channel.map(Into::into),
            ..request(Some(NEW_PLUGIN))
        };
        assert_eq!(
            answer_channel_set(&req, &Release::standard().0),
            ok(json!({"error": "missing_channel", "message": "Cannot find channel in body"}))
        );
    }
}

#[test]
fn unknown_app_is_404_without_kind_on_every_method() {
    let release = Release::without_app();
    assert_eq!(
        answer_channel_set(&set_request(NEW_PLUGIN, "beta"), &release.0),
        app_not_found()
    );
    assert_eq!(
        answer_channel_get(&get_request(NEW_PLUGIN, None), &release.0),
        app_not_found()
    );
    assert_eq!(
        answer_channel_unset(&request(Some(OLD_PLUGIN)), &release.0),
        app_not_found()
    );
    let query = ChannelListQuery {
        app_id: APP.into(),
        platform: Platform::Ios,
        is_emulator: false,
        is_prod: true,
        device_id: None,
    };
    assert_eq!(answer_channel_list(&query, &release.0), app_not_found());
}

#[test]
fn set_validation_errors_for_both_semantics() {
    let release = Release::standard();
    for plugin in [NEW_PLUGIN, OLD_PLUGIN] {
        assert_eq!(
            answer_channel_set(&set_request(plugin, "staging"), &release.0),
            ok(
                json!({"error": "channel_not_found", "message": "Cannot find channel",
                      "channel": "staging", "app_id": APP})
            ),
            "{plugin}"
        );
        assert_eq!(
            answer_channel_set(&set_request(plugin, "internal"), &release.0),
            ok(json!({"error": "channel_self_set_not_allowed",
                      "message": "This channel does not allow devices to self associate",
                      "channel": "internal", "app_id": APP})),
            "{plugin}"
        );
        assert_eq!(
            answer_channel_set(&set_request(plugin, "production"), &release.0),
            ok(json!({"error": "public_channel_self_set_not_allowed",
                      "message": "This channel is public and does not allow device self-assignment. Unset the channel and the device will automatically use the public channel.",
                      "channel": "production", "app_id": APP})),
            "{plugin}"
        );
    }
}

#[test]
fn set_new_plugin_validates_only() {
    // Even an admin override does not stop a new plugin: nothing is stored.
    let release = Release::standard().override_to(3, OverrideSource::Admin);
    assert_eq!(
        answer_channel_set(&set_request(NEW_PLUGIN, "beta"), &release.0),
        ok(json!({"status": "ok", "allowSet": true}))
    );
    for plugin in ["5.34.0", "6.34.0", "7.34.0", "8.0.0"] {
        assert_eq!(
            answer_channel_set(&set_request(plugin, "beta"), &Release::standard().0),
            ok(json!({"status": "ok", "allowSet": true})),
            "{plugin}"
        );
    }
}

#[test]
fn set_new_plugin_missing_version_counts_as_new() {
    let req = ChannelSelfRequest {
        channel: Some("beta".into()),
        ..request(None)
    };
    assert_eq!(
        answer_channel_set(&req, &Release::standard().0),
        ok(json!({"status": "ok", "allowSet": true}))
    );
}

#[test]
fn set_new_plugin_public_channel_is_stored_like_any_other() {
    // `unset: true` would send a beta build (config defaultChannel "beta")
    // back to beta: the plugin must store the channel it asked for.
    let release = Release::standard().edit_channel(1, |c| c.allow_device_self_set = true);
    let answer = answer_channel_set(&set_request(NEW_PLUGIN, "production"), &release.0);
    assert_eq!(answer, ok(json!({"status": "ok", "allowSet": true})));
    assert!(answer.body.get("unset").is_none());
    let from_beta = ChannelSelfRequest {
        default_channel: Some("beta".into()),
        ..set_request(NEW_PLUGIN, "production")
    };
    assert_eq!(
        answer_channel_set(&from_beta, &release.0),
        ok(json!({"status": "ok", "allowSet": true}))
    );
}

#[test]
fn set_new_plugin_public_channel_of_other_platform_is_pinned() {
    let release = Release::standard().edit_channel(1, |c| {
        c.allow_device_self_set = true;
        c.android = false;
    });
    assert_eq!(
        answer_channel_set(&set_request(NEW_PLUGIN, "production"), &release.0),
        ok(json!({"status": "ok", "allowSet": true}))
    );
}

#[test]
fn set_old_plugin_creates_override() {
    let answer = answer_channel_set(&set_request(OLD_PLUGIN, "beta"), &Release::standard().0);
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body, json!({"status": "ok"}));
    assert_eq!(answer.effect, OverrideEffect::Set { channel_id: 2 });
}

#[test]
fn set_old_plugin_below_x34_of_each_major() {
    for plugin in ["5.33.9", "6.33.0", "7.33.99", "8.0.0-rc.1", "not-a-version"] {
        let answer = answer_channel_set(&set_request(plugin, "beta"), &Release::standard().0);
        assert_eq!(
            answer.effect,
            OverrideEffect::Set { channel_id: 2 },
            "{plugin}"
        );
    }
}

#[test]
fn set_old_plugin_same_override_is_ok_without_effect() {
    let release = Release::standard().override_to(2, OverrideSource::Device);
    assert_eq!(
        answer_channel_set(&set_request(OLD_PLUGIN, "beta"), &release.0),
        ok(json!({"status": "ok"}))
    );
}

#[test]
fn set_old_plugin_public_channel_deletes_override() {
    let release = Release::standard()
        .edit_channel(1, |c| c.allow_device_self_set = true)
        .override_to(2, OverrideSource::Device);
    let answer = answer_channel_set(&set_request(OLD_PLUGIN, "production"), &release.0);
    assert_eq!(answer.body, json!({"status": "ok"}));
    assert_eq!(answer.effect, OverrideEffect::Delete);
}

#[test]
fn set_old_plugin_cannot_escape_admin_override() {
    let release = Release::standard().override_to(3, OverrideSource::Admin);
    assert_eq!(
        answer_channel_set(&set_request(OLD_PLUGIN, "beta"), &release.0),
        cannot_override()
    );
    // An override on a self-assignable channel can be moved.
    let release = Release::standard()
        .channel(Channel {
            allow_device_self_set: true,
            ..channel(4, "alpha")
        })
        .override_to(4, OverrideSource::Device);
    assert_eq!(
        answer_channel_set(&set_request(OLD_PLUGIN, "beta"), &release.0).effect,
        OverrideEffect::Set { channel_id: 2 }
    );
}

// ---------- PUT (get) ----------

#[test]
fn get_new_plugin_override_first() {
    let release = Release::standard().override_to(3, OverrideSource::Admin);
    assert_eq!(
        answer_channel_get(&get_request(NEW_PLUGIN, Some("beta")), &release.0),
        ok(json!({"channel": "internal", "status": "override", "allowSet": false}))
    );
    let release = Release::standard().override_to(2, OverrideSource::Admin);
    assert_eq!(
        answer_channel_get(&get_request(NEW_PLUGIN, None), &release.0),
        ok(json!({"channel": "beta", "status": "override", "allowSet": true}))
    );
}

#[test]
fn get_new_plugin_resolvable_default_channel() {
    assert_eq!(
        answer_channel_get(
            &get_request(NEW_PLUGIN, Some("beta")),
            &Release::standard().0
        ),
        ok(json!({"channel": "beta", "status": "default", "allowSet": true}))
    );
}

#[test]
fn get_new_plugin_unresolvable_default_channel_falls_back_to_public() {
    let release = Release::standard().channel(Channel {
        allow_device_self_set: true,
        android: false,
        ..channel(4, "ios-beta")
    });
    for dc in [
        None,
        Some(""),
        Some("internal"),
        Some("staging"),
        Some("ios-beta"),
    ] {
        assert_eq!(
            answer_channel_get(&get_request(NEW_PLUGIN, dc), &release.0),
            ok(json!({"channel": "production", "status": "default", "allowSet": true})),
            "{dc:?}"
        );
    }
}

#[test]
fn get_new_plugin_nothing_is_400_channel_not_found() {
    let release = Release::empty().channel(channel(3, "internal"));
    assert_eq!(
        answer_channel_get(&get_request(NEW_PLUGIN, Some("internal")), &release.0),
        ChannelSelfAnswer {
            status: 400,
            body: json!({"error": "channel_not_found", "message": "Cannot find channel"}),
            effect: OverrideEffect::None,
        }
    );
}

#[test]
fn get_old_plugin_reference_steps() {
    let release = Release::standard().override_to(3, OverrideSource::Admin);
    assert_eq!(
        answer_channel_get(&get_request(OLD_PLUGIN, None), &release.0),
        ok(json!({"channel": "internal", "status": "override", "allowSet": false}))
    );
    let release = Release::standard();
    assert_eq!(
        answer_channel_get(&get_request(OLD_PLUGIN, Some("beta")), &release.0),
        ok(json!({"channel": "beta", "status": "default"}))
    );
    assert_eq!(
        answer_channel_get(&get_request(OLD_PLUGIN, None), &release.0),
        ok(json!({"channel": "production", "status": "default"}))
    );
    // Deliberately unlike the reference (which names "internal" and refuses
    // "staging"): the channel `/updates` serves, for old plugins too.
    for dc in ["internal", "staging"] {
        assert_eq!(
            answer_channel_get(&get_request(OLD_PLUGIN, Some(dc)), &release.0),
            ok(json!({"channel": "production", "status": "default"})),
            "{dc}"
        );
    }
    let no_public = Release::empty().channel(channel(3, "internal"));
    assert_eq!(
        answer_channel_get(&get_request(OLD_PLUGIN, None), &no_public.0),
        ok(json!({"error": "channel_not_found", "message": "Cannot find channel"}))
    );
}

// ---------- DELETE (unset) ----------

#[test]
fn unset_new_plugin_is_ok_without_effect() {
    let release = Release::standard().override_to(2, OverrideSource::Device);
    assert_eq!(
        answer_channel_unset(&request(Some(NEW_PLUGIN)), &release.0),
        ok(json!({"status": "ok"}))
    );
}

#[test]
fn unset_old_plugin_rules() {
    assert_eq!(
        answer_channel_unset(&request(Some(OLD_PLUGIN)), &Release::standard().0),
        cannot_override()
    );
    let admin = Release::standard().override_to(3, OverrideSource::Admin);
    assert_eq!(
        answer_channel_unset(&request(Some(OLD_PLUGIN)), &admin.0),
        cannot_override()
    );
    let device = Release::standard().override_to(2, OverrideSource::Device);
    assert_eq!(
        answer_channel_unset(&request(Some(OLD_PLUGIN)), &device.0),
        ChannelSelfAnswer {
            status: 200,
            body: json!({"status": "ok"}),
            effect: OverrideEffect::Delete,
        }
    );
}

// ---------- GET (list) ----------

#[test]
fn list_filters_compatible_channels_as_bare_array() {
    let release = Release::standard()
        .channel(Channel {
            allow_device_self_set: true,
            allow_emulator: false,
            ..channel(5, "no-emulator")
        })
        .channel(Channel {
            allow_device_self_set: true,
            allow_dev: false,
            ..channel(6, "no-dev")
        })
        .channel(Channel {
            allow_device_self_set: true,
            ios: false,
            ..channel(7, "android-only")
        })
        .channel(Channel {
            allow_device_self_set: true,
            allow_device: false,
            ..channel(8, "emulators-only")
        });
    let query = |platform, is_emulator, is_prod| ChannelListQuery {
        app_id: APP.into(),
        platform,
        is_emulator,
        is_prod,
        device_id: Some(DEVICE.into()),
    };
    let entry = |id: i64, name: &str, public: bool, self_set: bool| json!({"id": id, "name": name, "public": public, "allow_self_set": self_set});
    // Channels come in (name, id) order; private "internal" never appears.
    assert_eq!(
        answer_channel_list(&query(Platform::Android, false, true), &release.0),
        ok(json!([
            entry(7, "android-only", false, true),
            entry(2, "beta", false, true),
            entry(6, "no-dev", false, true),
            entry(5, "no-emulator", false, true),
            entry(1, "production", true, false),
        ]))
    );
    assert_eq!(
        answer_channel_list(&query(Platform::Ios, true, false), &release.0),
        ok(json!([
            entry(2, "beta", false, true),
            entry(8, "emulators-only", false, true),
            entry(1, "production", true, false),
        ]))
    );
}

#[test]
fn list_ids_are_numbers_and_empty_is_empty_array() {
    let answer = answer_channel_list(
        &ChannelListQuery {
            app_id: APP.into(),
            platform: Platform::Electron,
            is_emulator: false,
            is_prod: true,
            device_id: None,
        },
        &Release::empty().channel(channel(3, "internal")).0,
    );
    assert_eq!(answer, ok(json!([])));
    let answer = answer_channel_list(
        &ChannelListQuery {
            app_id: APP.into(),
            platform: Platform::Electron,
            is_emulator: false,
            is_prod: true,
            device_id: None,
        },
        &Release::standard().0,
    );
    let ids: Vec<bool> = answer
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].is_i64())
        .collect();
    assert_eq!(ids, vec![true, true]);
}
