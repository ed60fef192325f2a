//! The `/updates` decision, rule by rule (reference-server-behaviour.md §1.2–§1.8,
//! plugin-wire-protocol.md §2, §5, protocol README differences).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is its failure report

use semver::Version;
use serde_json::{json, Value};
use std::sync::Arc;
use updraft_core::decision::{answer_manifest_size, answer_update, UpdateAnswer, PLACEHOLDER_URL};
use updraft_core::model::{
    App, AutoUpdatePolicy, Bundle, Channel, DeviceOverride, ManifestFile, OverrideSource, Platform,
    ReleaseConfig,
};
use updraft_core::request::UpdateRequest;

const BASE: &str = "http://127.0.0.1:8080";
const APP: &str = "com.example.app";
const DEVICE: &str = "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0";
const SHA: &str = "9f2c3885ee49aa00112233445566778899aabbccddeeff00112233445566aa77";

// ---------- fixtures ----------

fn channel(id: i64, name: &str, bundle_id: Option<i64>) -> Channel {
    Channel {
        id,
        app_id: APP.into(),
        name: name.into(),
        bundle_id,
        public: false,
        ios: true,
        android: true,
        electron: true,
        allow_device_self_set: false,
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

fn public_channel(id: i64, name: &str, bundle_id: Option<i64>) -> Channel {
    Channel {
        public: true,
        ..channel(id, name, bundle_id)
    }
}

fn bundle(id: i64, name: &str) -> Bundle {
    Bundle {
        id,
        app_id: APP.into(),
        name: name.into(),
        checksum: Some(SHA.into()),
        encrypted_checksum: None,
        session_key: None,
        key_id: None,
        external_url: None,
        storage_path: Some(format!("/files/{APP}/{name}.zip")),
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

fn manifest_bundle(id: i64, name: &str) -> Bundle {
    Bundle {
        storage_path: None,
        checksum: None,
        manifest: vec![
            ManifestFile {
                file_name: "index.html".into(),
                file_hash: "E1C0FFEE".into(),
                location: "/files/manifest/e1c0ffee/index.html".into(),
                size: Some(1321),
                blob_sha256: None,
            },
            ManifestFile {
                file_name: "assets/app.js.br".into(),
                file_hash: "77aa".into(),
                location: "https://cdn.example.com/77aa/app.js.br".into(),
                size: None,
                blob_sha256: None,
            },
        ],
        ..bundle(id, name)
    }
}

fn encrypted(bundle: Bundle, key_id: &str) -> Bundle {
    Bundle {
        session_key: Some("aXY=:a2V5".into()),
        encrypted_checksum: Some("ABCDEF0123".into()),
        key_id: Some(key_id.into()),
        ..bundle
    }
}

struct Release(ReleaseConfig);

impl Release {
    fn new() -> Self {
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

    fn without_app() -> Self {
        Release(ReleaseConfig::default())
    }

    fn expose_metadata(mut self) -> Self {
        if let Some(app) = self.0.app.as_mut() {
            app.expose_metadata = true;
        }
        self
    }

    fn bundle(mut self, bundle: Bundle) -> Self {
        self.0.bundles.insert(bundle.id, Arc::new(bundle));
        self
    }

    fn channel(mut self, channel: Channel) -> Self {
        self.0.channels.push(channel);
        self.0
            .channels
            .sort_by(|a, b| (&a.name, a.id).cmp(&(&b.name, b.id)));
        self
    }

    fn override_to(mut self, channel_id: i64) -> Self {
        self.0.overrides.insert(
            DEVICE.into(),
            DeviceOverride {
                app_id: APP.into(),
                device_id: DEVICE.into(),
                channel_id,
                source: OverrideSource::Admin,
                created_at: 0,
            },
        );
        self
    }

    /// The usual app: public "production" on bundle 1.0.1 (id 10).
    fn standard() -> Self {
        Release::new()
            .bundle(bundle(10, "1.0.1"))
            .channel(public_channel(1, "production", Some(10)))
    }

    /// Production plus one extra channel (id 2, reached by override) on `b`.
    fn with_override_channel(b: Bundle, edit: impl FnOnce(&mut Channel)) -> Self {
        let mut extra = channel(2, "special", Some(b.id));
        edit(&mut extra);
        Release::standard().bundle(b).channel(extra).override_to(2)
    }
}

fn request() -> UpdateRequest<'static> {
    UpdateRequest {
        platform: Platform::Android,
        device_id: DEVICE.into(),
        app_id: APP.into(),
        custom_id: "".into(),
        version_build: Version::new(1, 0, 0),
        version_code: Some("10".into()),
        version_os: Some("14".into()),
        version_name: "1.0.0".into(),
        plugin_version: Version::new(8, 51, 14),
        is_emulator: false,
        is_prod: true,
        install_source: None,
        default_channel: None,
        key_id: None,
    }
}

fn with_plugin(version: &str) -> UpdateRequest<'static> {
    UpdateRequest {
        plugin_version: Version::parse(version).unwrap(),
        ..request()
    }
}

fn answer(req: &UpdateRequest, release: &Release) -> UpdateAnswer {
    answer_update(req, &release.0, BASE)
}

fn assert_success_shape(body: &Value) {
    let object = body.as_object().expect("success body is an object");
    for forbidden in ["error", "kind", "message", "breaking", "major"] {
        assert!(
            !object.contains_key(forbidden),
            "success body has `{forbidden}`: {body}"
        );
    }
    assert!(object["version"].is_string(), "{body}");
    let url = object["url"].as_str().expect("url is a string");
    assert!(
        url.starts_with("http://") || url.starts_with("https://"),
        "{url}"
    );
}

// ---------- success ----------

#[test]
fn success_zip_bundle_full_body() {
    let answer = answer(&request(), &Release::standard());
    assert_eq!(
        answer.body,
        json!({
            "version": "1.0.1",
            "url": format!("{BASE}/files/{APP}/1.0.1.zip"),
            "checksum": SHA,
            "session_key": "",
        })
    );
    assert_eq!(answer.outcome, "get");
    assert_eq!(answer.offered_version.as_deref(), Some("1.0.1"));
}

#[test]
fn success_body_never_contains_error_kind_message() {
    let metadata_bundle = Bundle {
        link: Some("https://example.com/changelog".into()),
        comment: Some("Notes".into()),
        ..bundle(10, "1.0.1")
    };
    let releases = [
        Release::standard(),
        Release::new()
            .bundle(manifest_bundle(10, "1.0.1"))
            .channel(public_channel(1, "production", Some(10))),
        Release::new()
            .expose_metadata()
            .bundle(metadata_bundle)
            .channel(public_channel(1, "production", Some(10))),
        Release::new().channel(public_channel(1, "production", None)),
    ];
    // The device runs a bundle, so the builtin channel means a revert.
    let on_bundle = UpdateRequest {
        version_name: "1.0.4".into(),
        ..request()
    };
    for release in &releases {
        let answer = answer(&on_bundle, release);
        assert_eq!(answer.outcome, "get", "{}", answer.body);
        assert_success_shape(&answer.body);
    }
    let encrypted_release = Release::new()
        .bundle(encrypted(bundle(10, "1.0.1"), "MIIBCgKCAQEAsdxadXKk"))
        .channel(public_channel(1, "production", Some(10)));
    let keyed = UpdateRequest {
        key_id: Some("MIIBCgKCAQEAsdxadXKk".into()),
        ..request()
    };
    let answer = answer(&keyed, &encrypted_release);
    assert_eq!(answer.outcome, "get");
    assert_success_shape(&answer.body);
}

#[test]
fn success_checksum_is_lowercased() {
    let release = Release::new()
        .bundle(Bundle {
            checksum: Some(SHA.to_uppercase()),
            ..bundle(10, "1.0.1")
        })
        .channel(public_channel(1, "production", Some(10)));
    assert_eq!(answer(&request(), &release).body["checksum"], json!(SHA));
}

#[test]
fn success_checksum_key_omitted_when_none() {
    for missing in [None, Some(String::new())] {
        let release = Release::new()
            .bundle(Bundle {
                checksum: missing,
                ..bundle(10, "1.0.1")
            })
            .channel(public_channel(1, "production", Some(10)));
        let body = answer(&request(), &release).body;
        assert_eq!(
            body,
            json!({"version": "1.0.1", "url": format!("{BASE}/files/{APP}/1.0.1.zip"), "session_key": ""})
        );
    }
}

#[test]
fn success_encrypted_bundle_sends_encrypted_checksum_and_session_key() {
    let release = Release::new()
        .bundle(encrypted(bundle(10, "1.0.1"), "MIIBCgKCAQEAsdxadXKk"))
        .channel(public_channel(1, "production", Some(10)));
    let req = UpdateRequest {
        key_id: Some("MIIBCgKCAQEAsdxadXKk".into()),
        ..request()
    };
    assert_eq!(
        answer(&req, &release).body,
        json!({
            "version": "1.0.1",
            "url": format!("{BASE}/files/{APP}/1.0.1.zip"),
            "checksum": "abcdef0123",
            "session_key": "aXY=:a2V5",
        })
    );
}

#[test]
fn url_external_verbatim_then_storage_then_placeholder() {
    let cases = [
        (
            Bundle {
                external_url: Some("https://cdn.example.com/b.zip?sig=AbC".into()),
                ..bundle(10, "1.0.1")
            },
            "https://cdn.example.com/b.zip?sig=AbC".to_string(),
        ),
        (
            Bundle {
                storage_path: Some("https://s3.example.com/x.zip".into()),
                ..bundle(10, "1.0.1")
            },
            "https://s3.example.com/x.zip".to_string(),
        ),
        (bundle(10, "1.0.1"), format!("{BASE}/files/{APP}/1.0.1.zip")),
        (manifest_bundle(10, "1.0.1"), PLACEHOLDER_URL.to_string()),
    ];
    for (b, expected) in cases {
        let release = Release::new()
            .bundle(b)
            .channel(public_channel(1, "production", Some(10)));
        assert_eq!(answer(&request(), &release).body["url"], json!(expected));
    }
}

#[test]
fn url_missing_gives_no_bundle_url() {
    let release = Release::new()
        .bundle(Bundle {
            external_url: Some("ftp://example.com/b.zip".into()),
            storage_path: None,
            ..bundle(10, "1.0.1")
        })
        .channel(public_channel(1, "production", Some(10)));
    let answer = answer(&request(), &release);
    assert_eq!(
        answer.body,
        json!({"error": "no_bundle_url", "message": "Cannot get bundle url", "kind": "failed"})
    );
    assert_eq!(answer.outcome, "no_bundle_url");
    assert_eq!(answer.offered_version, None);
}

// ---------- manifest ----------

#[test]
fn manifest_full_body_for_supporting_plugin() {
    let release = Release::new()
        .bundle(manifest_bundle(10, "1.0.1"))
        .channel(public_channel(1, "production", Some(10)));
    assert_eq!(
        answer(&request(), &release).body,
        json!({
            "version": "1.0.1",
            "url": PLACEHOLDER_URL,
            "session_key": "",
            "manifest": [
                {"file_name": "index.html", "file_hash": "e1c0ffee",
                 "download_url": format!("{BASE}/files/manifest/e1c0ffee/index.html")},
                {"file_name": "assets/app.js.br", "file_hash": "77aa",
                 "download_url": "https://cdn.example.com/77aa/app.js.br"},
            ],
        })
    );
}

#[test]
fn manifest_gated_by_plugin_version() {
    let release = Release::new()
        .bundle(manifest_bundle(10, "1.0.1"))
        .channel(public_channel(1, "production", Some(10)));
    let cases = [
        ("5.9.9", false),
        ("5.10.0", true),
        ("6.24.9", false),
        ("6.25.0", true),
        ("7.0.34", false),
        ("7.0.35", true),
        ("8.0.0", true),
        ("3.1.0", true),
    ];
    for (plugin, expected) in cases {
        let body = answer(&with_plugin(plugin), &release).body;
        assert_eq!(body.get("manifest").is_some(), expected, "{plugin}: {body}");
        assert_success_shape(&body);
    }
}

#[test]
fn manifest_key_absent_when_empty() {
    let no_files = answer(&request(), &Release::standard()).body;
    assert!(no_files.get("manifest").is_none(), "{no_files}");

    // Files without a download location are dropped; none left → no key.
    let mut unlocated = manifest_bundle(10, "1.0.1");
    for file in &mut unlocated.manifest {
        file.location.clear();
    }
    let release =
        Release::new()
            .bundle(unlocated)
            .channel(public_channel(1, "production", Some(10)));
    let body = answer(&request(), &release).body;
    assert!(body.get("manifest").is_none(), "{body}");
    assert_eq!(body["url"], json!(PLACEHOLDER_URL));
}

// ---------- link / comment ----------

#[test]
fn link_comment_gated_by_expose_metadata_and_plugin_version() {
    let b = Bundle {
        link: Some("https://example.com/changelog".into()),
        comment: Some("Release notes".into()),
        ..bundle(10, "1.0.1")
    };
    let exposing = Release::new()
        .expose_metadata()
        .bundle(b.clone())
        .channel(public_channel(1, "production", Some(10)));
    let hiding = Release::new()
        .bundle(b)
        .channel(public_channel(1, "production", Some(10)));
    let cases = [
        (&exposing, "8.35.0", true),
        (&exposing, "8.35.0-beta.1", false),
        (&exposing, "8.34.9", false),
        (&exposing, "7.35.0", true),
        (&exposing, "7.34.0", false),
        (&exposing, "6.35.0", true),
        (&exposing, "5.35.0", true),
        (&exposing, "5.34.0", false),
        (&hiding, "8.51.14", false),
    ];
    for (release, plugin, expected) in cases {
        let body = answer(&with_plugin(plugin), release).body;
        if expected {
            assert_eq!(
                body["link"],
                json!("https://example.com/changelog"),
                "{plugin}"
            );
            assert_eq!(body["comment"], json!("Release notes"), "{plugin}");
        } else {
            assert!(body.get("link").is_none(), "{plugin}: {body}");
            assert!(body.get("comment").is_none(), "{plugin}: {body}");
        }
    }
}

#[test]
fn link_comment_omitted_when_empty() {
    let release = Release::new()
        .expose_metadata()
        .bundle(Bundle {
            link: Some(String::new()),
            comment: Some("Only a comment".into()),
            ..bundle(10, "1.0.1")
        })
        .channel(public_channel(1, "production", Some(10)));
    let body = answer(&request(), &release).body;
    assert!(body.get("link").is_none(), "{body}");
    assert_eq!(body["comment"], json!("Only a comment"));
}

// ---------- early refusals ----------

#[test]
fn unknown_app_is_app_not_found_failed() {
    let answer = answer(&request(), &Release::without_app());
    assert_eq!(
        answer.body,
        json!({
            "error": "app_not_found",
            "message": "App com.example.app is not registered on this Updraft server",
            "kind": "failed",
        })
    );
    assert_eq!(answer.outcome, "app_not_found");
    assert_eq!(answer.offered_version, None);
}

#[test]
fn plugin_major_4_is_unsupported() {
    let answer = answer(&with_plugin("4.13.2"), &Release::standard());
    assert_eq!(
        answer.body,
        json!({
            "error": "unsupported_plugin_version",
            "message": "Plugin version 4.13.2 (v4) is no longer supported. Please upgrade to v5.10.0 or later.",
            "kind": "failed",
        })
    );
}

fn no_channel_body() -> Value {
    json!({"error": "no_channel", "message": "no default channel or override", "kind": "failed"})
}

#[test]
fn no_channel_when_nothing_resolves() {
    let only_private =
        Release::new()
            .bundle(bundle(10, "1.0.1"))
            .channel(channel(1, "beta", Some(10)));
    let ios_only_public = Release::new().bundle(bundle(10, "1.0.1")).channel(Channel {
        android: false,
        ..public_channel(1, "production", Some(10))
    });
    for release in [&only_private, &ios_only_public] {
        let answer = answer(&request(), release);
        assert_eq!(answer.body, no_channel_body());
        assert_eq!(answer.outcome, "no_channel");
    }
}

#[test]
fn a_default_channel_the_device_may_not_use_falls_back_to_public() {
    // Deliberately unlike the reference (no_channel): the plugin persists the
    // channel of every getChannel() answer, so such a name must not strand it.
    let release = Release::standard()
        .bundle(bundle(11, "1.1.0"))
        .channel(channel(2, "private", Some(11)))
        .channel(Channel {
            android: false,
            allow_device_self_set: true,
            ..channel(3, "ios-beta", Some(11))
        });
    for dc in ["staging", "private", "ios-beta"] {
        let req = UpdateRequest {
            default_channel: Some(dc.into()),
            ..request()
        };
        let answer = answer(&req, &release);
        assert_eq!(answer.offered_version.as_deref(), Some("1.0.1"), "{dc}");
        assert_success_shape(&answer.body);
    }
}

#[test]
fn a_stored_public_channel_name_follows_the_public_channel_when_it_moves() {
    // The device called getChannel() while production was public and sends
    // defaultChannel "production" for ever; then stable becomes public.
    let moved = Release::new()
        .bundle(bundle(10, "1.0.1"))
        .bundle(bundle(11, "1.0.2"))
        .channel(channel(1, "production", Some(10)))
        .channel(public_channel(2, "stable", Some(11)));
    let req = UpdateRequest {
        default_channel: Some("production".into()),
        ..request()
    };
    assert_eq!(
        answer(&req, &moved).offered_version.as_deref(),
        Some("1.0.2")
    );
    // A name that is still usable keeps working exactly as before.
    let still_self_assignable = Release::new()
        .bundle(bundle(10, "1.0.1"))
        .bundle(bundle(11, "1.0.2"))
        .channel(Channel {
            allow_device_self_set: true,
            ..channel(1, "production", Some(10))
        })
        .channel(public_channel(2, "stable", Some(11)));
    assert_eq!(
        answer(&req, &still_self_assignable)
            .offered_version
            .as_deref(),
        Some("1.0.1")
    );
}

#[test]
fn a_channel_on_a_deleted_bundle_is_refused_plainly() {
    let deleted_public = Release::new()
        .bundle(Bundle {
            deleted: true,
            ..bundle(10, "1.0.1")
        })
        .channel(public_channel(1, "production", Some(10)));
    let answer = answer(&request(), &deleted_public);
    assert_eq!(
        answer.body,
        json!({
            "error": "bundle_deleted",
            "message": "Channel \"production\" serves bundle 1.0.1, which was deleted. Point the channel at another bundle.",
            "channel": "production",
            "version": "1.0.1",
            "kind": "blocked",
        })
    );
    assert_eq!(answer.outcome, "bundle_deleted");
    // A bundle the release no longer knows at all.
    let unknown = Release::new().channel(public_channel(1, "production", Some(99)));
    assert_eq!(
        answer_of(&unknown)["message"],
        "Channel \"production\" serves a bundle that was deleted. Point the channel at another bundle."
    );
}

fn answer_of(release: &Release) -> Value {
    answer(&request(), release).body
}

#[test]
fn named_default_channel_self_assignable_or_public_resolves() {
    let release = Release::standard()
        .bundle(bundle(11, "1.1.0"))
        .channel(Channel {
            allow_device_self_set: true,
            ..channel(2, "beta", Some(11))
        });
    let req = UpdateRequest {
        default_channel: Some("beta".into()),
        ..request()
    };
    assert_eq!(
        answer(&req, &release).offered_version.as_deref(),
        Some("1.1.0")
    );
    let req = UpdateRequest {
        default_channel: Some("production".into()),
        ..request()
    };
    assert_eq!(
        answer(&req, &release).offered_version.as_deref(),
        Some("1.0.1")
    );
    // Empty defaultChannel means "the public channel".
    let req = UpdateRequest {
        default_channel: Some("".into()),
        ..request()
    };
    assert_eq!(
        answer(&req, &release).offered_version.as_deref(),
        Some("1.0.1")
    );
}

#[test]
fn channel_resolution_orders_by_name_then_id() {
    let release = Release::new()
        .bundle(bundle(10, "1.0.1"))
        .bundle(bundle(11, "1.0.2"))
        .channel(Channel {
            allow_device_self_set: true,
            ..channel(7, "beta", Some(11))
        })
        .channel(Channel {
            allow_device_self_set: true,
            ..channel(5, "beta", Some(10))
        });
    let req = UpdateRequest {
        default_channel: Some("beta".into()),
        ..request()
    };
    assert_eq!(
        answer(&req, &release).offered_version.as_deref(),
        Some("1.0.1")
    );
}

#[test]
fn channel_resolution_skips_channels_on_deleted_bundles() {
    let release = Release::new()
        .bundle(Bundle {
            deleted: true,
            ..bundle(10, "1.0.1")
        })
        .bundle(bundle(11, "1.0.2"))
        .channel(Channel {
            allow_device_self_set: true,
            ..channel(5, "beta", Some(10))
        })
        .channel(Channel {
            allow_device_self_set: true,
            ..channel(7, "beta", Some(11))
        });
    let req = UpdateRequest {
        default_channel: Some("beta".into()),
        ..request()
    };
    assert_eq!(
        answer(&req, &release).offered_version.as_deref(),
        Some("1.0.2")
    );
}

#[test]
fn override_wins_over_default_channel_and_ignores_visibility() {
    // A private, non-self-assignable channel works through an admin override.
    let release = Release::standard()
        .bundle(bundle(11, "2.0.0-beta.1"))
        .channel(channel(2, "internal", Some(11)))
        .bundle(bundle(12, "1.5.0"))
        .channel(Channel {
            allow_device_self_set: true,
            ..channel(3, "beta", Some(12))
        })
        .override_to(2);
    let req = UpdateRequest {
        default_channel: Some("beta".into()),
        ..request()
    };
    let answer = answer(&req, &release);
    assert_eq!(answer.offered_version.as_deref(), Some("2.0.0-beta.1"));
    assert_success_shape(&answer.body);
}

#[test]
fn override_on_deleted_bundle_is_ignored() {
    let release = Release::standard()
        .bundle(Bundle {
            deleted: true,
            ..bundle(11, "2.0.0")
        })
        .channel(channel(2, "internal", Some(11)))
        .override_to(2);
    assert_eq!(
        answer(&request(), &release).offered_version.as_deref(),
        Some("1.0.1")
    );
}

#[test]
fn no_bundle_when_bundle_has_no_source() {
    let release = Release::new()
        .bundle(Bundle {
            storage_path: None,
            external_url: Some(String::new()),
            ..bundle(10, "1.0.1")
        })
        .channel(public_channel(1, "production", Some(10)));
    assert_eq!(
        answer(&request(), &release).body,
        json!({"error": "no_bundle", "message": "Cannot get bundle", "kind": "failed"})
    );
}

// ---------- key id, equality, encryption ----------

fn key_mismatch_body() -> Value {
    json!({
        "error": "key_id_mismatch",
        "message": "Device encryption key does not match bundle encryption key. The device may have a different public key than the one used to encrypt this bundle.",
        "deviceKeyId": "MIIBCgKCAQEAdeviceAA",
        "bundleKeyId": "MIIBCgKCAQEAbundleBB",
        "kind": "blocked",
    })
}

#[test]
fn key_id_mismatch_enforced_above_8_40_7() {
    let release = Release::new()
        .bundle(encrypted(bundle(10, "1.0.1"), "MIIBCgKCAQEAbundleBB"))
        .channel(public_channel(1, "production", Some(10)));
    let keyed = |plugin: &str| UpdateRequest {
        key_id: Some("MIIBCgKCAQEAdeviceAA".into()),
        ..with_plugin(plugin)
    };
    let answer_new = answer(&keyed("8.40.8"), &release);
    assert_eq!(answer_new.body, key_mismatch_body());
    assert_eq!(answer_new.outcome, "key_id_mismatch");
    // Older plugins sent truncated ids: no check, the encrypted bundle is offered.
    assert_eq!(answer(&keyed("8.40.7"), &release).outcome, "get");
}

#[test]
fn key_id_mismatch_checked_before_equality() {
    let release = Release::new()
        .bundle(encrypted(bundle(10, "1.0.1"), "MIIBCgKCAQEAbundleBB"))
        .channel(public_channel(1, "production", Some(10)));
    let req = UpdateRequest {
        key_id: Some("MIIBCgKCAQEAdeviceAA".into()),
        version_name: "1.0.1".into(),
        ..request()
    };
    assert_eq!(answer(&req, &release).body, key_mismatch_body());
}

#[test]
fn equality_is_no_new_version_available() {
    let req = UpdateRequest {
        version_name: "1.0.1".into(),
        ..request()
    };
    let answer = answer(&req, &Release::standard());
    assert_eq!(
        answer.body,
        json!({"error": "no_new_version_available", "message": "No new version available", "kind": "up_to_date"})
    );
    assert_eq!(answer.outcome, "no_new_version_available");
}

#[test]
fn equality_checked_before_channel_flags() {
    let release = Release::with_override_channel(bundle(11, "1.0.5"), |c| c.android = false);
    let req = UpdateRequest {
        version_name: "1.0.5".into(),
        ..request()
    };
    assert_eq!(answer(&req, &release).outcome, "no_new_version_available");
}

fn encryption_required_body(version: &str) -> Value {
    json!({
        "error": "encryption_required",
        "message": format!("The device has an encryption key (key_id MIIBCgKCAQEAsdxadXKk) but bundle {version} is not encrypted; it would reject it. Upload an encrypted bundle to this channel."),
        "version": version,
        "kind": "blocked",
    })
}

#[test]
fn encryption_required_when_device_has_key_and_bundle_is_plain() {
    let req = UpdateRequest {
        key_id: Some("MIIBCgKCAQEAsdxadXKk".into()),
        ..request()
    };
    let answer = answer(&req, &Release::standard());
    assert_eq!(answer.body, encryption_required_body("1.0.1"));
    assert_eq!(answer.outcome, "encryption_required");
    assert_eq!(answer.offered_version, None);
}

#[test]
fn encryption_required_applies_to_manifest_bundles() {
    let release = Release::new()
        .bundle(manifest_bundle(10, "1.0.1"))
        .channel(public_channel(1, "production", Some(10)));
    let req = UpdateRequest {
        key_id: Some("MIIBCgKCAQEAsdxadXKk".into()),
        ..request()
    };
    assert_eq!(
        answer(&req, &release).body,
        encryption_required_body("1.0.1")
    );
}

#[test]
fn encryption_required_after_equality_and_before_channel_flags() {
    let keyed = |version_name: &str| UpdateRequest {
        key_id: Some("MIIBCgKCAQEAsdxadXKk".into()),
        version_name: version_name.to_string().into(),
        ..request()
    };
    let release = Release::with_override_channel(bundle(11, "1.0.5"), |c| c.android = false);
    assert_eq!(
        answer(&keyed("1.0.5"), &release).outcome,
        "no_new_version_available"
    );
    assert_eq!(
        answer(&keyed("1.0.0"), &release).body,
        encryption_required_body("1.0.5")
    );
}

#[test]
fn encryption_not_required_for_builtin_or_without_key() {
    let release = Release::new().channel(public_channel(1, "production", None));
    let req = UpdateRequest {
        key_id: Some("MIIBCgKCAQEAsdxadXKk".into()),
        version_name: "1.0.4".into(),
        ..request()
    };
    assert_eq!(answer(&req, &release).outcome, "get");
    let empty_key = UpdateRequest {
        key_id: Some("".into()),
        ..request()
    };
    assert_eq!(answer(&empty_key, &Release::standard()).outcome, "get");
}

// ---------- §1.5 channel flag checks ----------

struct FlagCase {
    name: &'static str,
    bundle: &'static str,
    min_update_version: Option<&'static str>,
    edit: fn(&mut Channel),
    req: fn(&mut UpdateRequest),
    expected: Value,
}

fn no_request_change(_: &mut UpdateRequest) {}

#[test]
fn channel_flag_rows_exact_bodies() {
    let cases = [
        FlagCase {
            name: "row 1 ios disabled",
            bundle: "1.0.5",
            min_update_version: None,
            edit: |c| c.ios = false,
            req: |r| r.platform = Platform::Ios,
            expected: json!({"error": "disabled_platform_ios", "message": "Cannot update, ios it's disabled",
                             "version": "1.0.5", "old": "0.9.0", "kind": "blocked"}),
        },
        FlagCase {
            name: "row 2 android disabled",
            bundle: "1.0.5",
            min_update_version: None,
            edit: |c| c.android = false,
            req: no_request_change,
            expected: json!({"error": "disabled_platform_android", "message": "Cannot update, android is disabled",
                             "version": "1.0.5", "old": "0.9.0", "kind": "blocked"}),
        },
        FlagCase {
            name: "row 3 electron disabled",
            bundle: "1.0.5",
            min_update_version: None,
            edit: |c| c.electron = false,
            req: |r| r.platform = Platform::Electron,
            expected: json!({"error": "disabled_platform_electron", "message": "Cannot update, electron is disabled",
                             "version": "1.0.5", "old": "0.9.0", "kind": "blocked"}),
        },
        FlagCase {
            name: "row 4 major",
            bundle: "2.0.0",
            min_update_version: None,
            edit: |c| c.disable_auto_update = AutoUpdatePolicy::Major,
            req: no_request_change,
            expected: json!({"error": "disable_auto_update_to_major", "message": "Cannot upgrade major version",
                             "major": true, "version": "2.0.0", "old": "1.0.0", "kind": "blocked"}),
        },
        FlagCase {
            name: "row 6 minor",
            bundle: "1.1.0",
            min_update_version: None,
            edit: |c| c.disable_auto_update = AutoUpdatePolicy::Minor,
            req: no_request_change,
            expected: json!({"error": "disable_auto_update_to_minor", "message": "Cannot upgrade minor version",
                             "major": true, "version": "1.1.0", "old": "1.0.0", "kind": "blocked"}),
        },
        FlagCase {
            name: "row 7 patch",
            bundle: "1.0.1",
            min_update_version: None,
            edit: |c| c.disable_auto_update = AutoUpdatePolicy::Patch,
            req: no_request_change,
            expected: json!({"error": "disable_auto_update_to_patch", "message": "Cannot upgrade patch version",
                             "major": true, "version": "1.0.1", "old": "1.0.0", "kind": "blocked"}),
        },
        FlagCase {
            name: "row 8a metadata without min_update_version",
            bundle: "1.0.1",
            min_update_version: None,
            edit: |c| c.disable_auto_update = AutoUpdatePolicy::Metadata,
            req: no_request_change,
            expected: json!({"error": "misconfigured_channel", "message": "Channel special is misconfigured",
                             "version": "1.0.1", "old": "1.0.0", "kind": "failed"}),
        },
        FlagCase {
            name: "row 8b metadata above native",
            bundle: "1.0.1",
            min_update_version: Some("1.1"),
            edit: |c| c.disable_auto_update = AutoUpdatePolicy::Metadata,
            req: no_request_change,
            expected: json!({"error": "disable_auto_update_to_metadata",
                             "message": "Cannot upgrade version, min update version > current version",
                             "major": true, "version": "1.0.1", "old": "1.0.0", "kind": "blocked"}),
        },
        FlagCase {
            name: "row 9 under native",
            bundle: "0.9.5",
            min_update_version: None,
            edit: |c| c.disable_auto_update_under_native = true,
            req: no_request_change,
            expected: json!({"error": "disable_auto_update_under_native", "message": "Cannot revert under native version",
                             "version": "0.9.5", "old": "0.9.0", "kind": "blocked"}),
        },
        FlagCase {
            name: "row 10 prod",
            bundle: "1.0.5",
            min_update_version: None,
            edit: |c| c.allow_prod = false,
            req: no_request_change,
            expected: json!({"error": "disable_prod_build", "message": "Cannot update, prod build is disabled",
                             "version": "1.0.5", "old": "0.9.0", "kind": "blocked"}),
        },
        FlagCase {
            name: "row 11 dev",
            bundle: "1.0.5",
            min_update_version: None,
            edit: |c| c.allow_dev = false,
            req: |r| r.is_prod = false,
            expected: json!({"error": "disable_dev_build", "message": "Cannot update, dev build is disabled",
                             "version": "1.0.5", "old": "0.9.0", "kind": "blocked"}),
        },
        FlagCase {
            name: "row 12 device",
            bundle: "1.0.5",
            min_update_version: None,
            edit: |c| c.allow_device = false,
            req: no_request_change,
            expected: json!({"error": "disable_device", "message": "Cannot update, device is disabled",
                             "version": "1.0.5", "old": "0.9.0", "kind": "blocked"}),
        },
        FlagCase {
            name: "row 13 emulator",
            bundle: "1.0.5",
            min_update_version: None,
            edit: |c| c.allow_emulator = false,
            req: |r| r.is_emulator = true,
            expected: json!({"error": "disable_emulator", "message": "Cannot update, emulator is disabled",
                             "version": "1.0.5", "old": "0.9.0", "kind": "blocked"}),
        },
    ];
    for case in cases {
        let b = Bundle {
            min_update_version: case.min_update_version.map(str::to_string),
            ..bundle(11, case.bundle)
        };
        let release = Release::with_override_channel(b, case.edit);
        // The device runs bundle 0.9.0 on native 1.0.0, so `old` tells vb from vn.
        let mut req = UpdateRequest {
            version_name: "0.9.0".into(),
            ..request()
        };
        (case.req)(&mut req);
        let answer = answer(&req, &release);
        assert_eq!(answer.body, case.expected, "{}", case.name);
        assert_eq!(
            Some(answer.outcome.as_str()),
            case.expected["error"].as_str(),
            "{}",
            case.name
        );
        assert_eq!(answer.offered_version, None, "{}", case.name);
    }
}

#[test]
fn channel_flag_rows_pass_when_not_applicable() {
    type Case = (
        &'static str,
        &'static str,
        Option<&'static str>,
        fn(&mut Channel),
    );
    let cases: [Case; 9] = [
        ("major allows same major", "1.9.0", None, |c| {
            c.disable_auto_update = AutoUpdatePolicy::Major
        }),
        ("major allows a lower major", "0.9.5", None, |c| {
            c.disable_auto_update = AutoUpdatePolicy::Major
        }),
        ("minor allows patch change", "1.0.7", None, |c| {
            c.disable_auto_update = AutoUpdatePolicy::Minor
        }),
        (
            "patch allows prerelease of same x.y.z",
            "1.0.0-hotfix.1",
            None,
            |c| c.disable_auto_update = AutoUpdatePolicy::Patch,
        ),
        ("metadata min equal to native", "1.3.0", Some("1.0"), |c| {
            c.disable_auto_update = AutoUpdatePolicy::Metadata
        }),
        ("under native allows equal-or-newer", "1.0.1", None, |c| {
            c.disable_auto_update_under_native = true
        }),
        (
            "non-semver name skips version policies",
            "deferred-v1",
            None,
            |c| {
                c.disable_auto_update = AutoUpdatePolicy::Patch;
                c.disable_auto_update_under_native = true;
            },
        ),
        ("dev disabled does not affect prod", "1.0.5", None, |c| {
            c.allow_dev = false
        }),
        (
            "emulator disabled does not affect devices",
            "1.0.5",
            None,
            |c| c.allow_emulator = false,
        ),
    ];
    for (name, bundle_name, min, edit) in cases {
        let b = Bundle {
            min_update_version: min.map(str::to_string),
            ..bundle(11, bundle_name)
        };
        let release = Release::with_override_channel(b, edit);
        let answer = answer(&request(), &release);
        assert_eq!(answer.outcome, "get", "{name}: {}", answer.body);
        assert_eq!(
            answer.offered_version.as_deref(),
            Some(bundle_name),
            "{name}"
        );
    }
}

#[test]
fn channel_flag_minor_blocks_downward_minor_change() {
    let release = Release::with_override_channel(bundle(11, "0.9.0"), |c| {
        c.disable_auto_update = AutoUpdatePolicy::Minor
    });
    assert_eq!(
        answer(&request(), &release).outcome,
        "disable_auto_update_to_minor"
    );
}

#[test]
fn channel_flag_order_platform_before_policy_before_build() {
    let release = Release::with_override_channel(bundle(11, "2.0.0"), |c| {
        c.android = false;
        c.disable_auto_update = AutoUpdatePolicy::Major;
        c.allow_prod = false;
    });
    assert_eq!(
        answer(&request(), &release).outcome,
        "disabled_platform_android"
    );
    let release = Release::with_override_channel(bundle(11, "2.0.0"), |c| {
        c.disable_auto_update = AutoUpdatePolicy::Major;
        c.allow_prod = false;
    });
    assert_eq!(
        answer(&request(), &release).outcome,
        "disable_auto_update_to_major"
    );
    let release = Release::with_override_channel(bundle(11, "0.5.0"), |c| {
        c.disable_auto_update_under_native = true;
        c.allow_prod = false;
    });
    assert_eq!(
        answer(&request(), &release).outcome,
        "disable_auto_update_under_native"
    );
}

// ---------- builtin ----------

#[test]
fn builtin_target_reverts_with_success_body() {
    let release = Release::new().channel(public_channel(1, "production", None));
    let req = UpdateRequest {
        version_name: "1.0.4".into(),
        ..request()
    };
    let answer = answer(&req, &release);
    assert_eq!(
        answer.body,
        json!({"version": "builtin", "url": "https://404.capgo.app/no.zip"})
    );
    assert_eq!(answer.outcome, "get");
    assert_eq!(answer.offered_version.as_deref(), Some("builtin"));
}

#[test]
fn builtin_target_already_on_builtin() {
    let release = Release::new().channel(public_channel(1, "production", None));
    // On the native bundle the device reports its native version as version_name.
    let answer = answer(&request(), &release);
    assert_eq!(
        answer.body,
        json!({"error": "already_on_builtin", "message": "Already on builtin", "version": "builtin", "kind": "up_to_date"})
    );
    assert_eq!(answer.outcome, "already_on_builtin");
}

#[test]
fn builtin_target_needs_plugin_6_2_0() {
    let release = Release::new().channel(public_channel(1, "production", None));
    let req = UpdateRequest {
        version_name: "1.0.4".into(),
        ..with_plugin("6.1.9")
    };
    assert_eq!(
        answer(&req, &release).body,
        json!({"error": "revert_to_builtin_plugin_version_too_old",
               "message": "revert_to_builtin used, but plugin version is too old", "kind": "failed"})
    );
    let req = UpdateRequest {
        version_name: "1.0.4".into(),
        ..with_plugin("6.2.0")
    };
    assert_eq!(answer(&req, &release).outcome, "get");
}

#[test]
fn builtin_target_skips_version_policies_but_not_flags() {
    let mut strict = public_channel(1, "production", None);
    strict.disable_auto_update = AutoUpdatePolicy::Patch;
    strict.disable_auto_update_under_native = true;
    let req = UpdateRequest {
        version_name: "1.0.4".into(),
        ..request()
    };
    let release = Release::new().channel(strict.clone());
    assert_eq!(answer(&req, &release).outcome, "get");

    strict.allow_prod = false;
    let release = Release::new().channel(strict);
    assert_eq!(
        answer(&req, &release).body,
        json!({"error": "disable_prod_build", "message": "Cannot update, prod build is disabled",
               "version": "builtin", "old": "1.0.4", "kind": "blocked"})
    );
}

// ---------- manifest_size ----------

fn manifest_release() -> Release {
    Release::new()
        .bundle(manifest_bundle(10, "1.0.1"))
        .channel(public_channel(1, "production", Some(10)))
}

#[test]
fn manifest_size_known_and_unknown_files() {
    let body = json!({
        "version": "1.0.1",
        "manifest": [
            {"file_name": "index.html", "file_hash": "e1c0ffee", "download_url": "http://x/index.html"},
            {"file_name": "assets/app.js.br", "file_hash": "77aa", "download_url": "http://x/app.js.br"},
            {"file_name": "missing.css", "file_hash": "00", "download_url": "http://x/missing.css"},
        ],
    });
    let answer = answer_manifest_size(&request(), &body, &manifest_release().0);
    assert_eq!(
        answer.body,
        json!({
            "totalSize": 1321,
            "knownFiles": 1,
            "unknownFiles": 2,
            "files": [
                {"file_name": "index.html", "file_hash": "e1c0ffee", "download_url": "http://x/index.html", "size": 1321},
                {"file_name": "assets/app.js.br", "file_hash": "77aa", "download_url": "http://x/app.js.br", "error": "size_unknown"},
                {"file_name": "missing.css", "file_hash": "00", "download_url": "http://x/missing.css", "error": "size_unknown"},
            ],
        })
    );
    assert_eq!(answer.offered_version, None);
}

#[test]
fn manifest_size_accepts_files_key_and_resolves_channel_without_version() {
    let body = json!({"files": [{"file_name": "index.html", "file_hash": "E1C0FFEE", "download_url": "u"}]});
    let answer = answer_manifest_size(&request(), &body, &manifest_release().0);
    assert_eq!(
        answer.body,
        json!({"totalSize": 1321, "knownFiles": 1, "unknownFiles": 0,
               "files": [{"file_name": "index.html", "file_hash": "E1C0FFEE", "download_url": "u", "size": 1321}]})
    );
}

#[test]
fn manifest_size_refusals() {
    let body = json!({"version": "1.0.1", "manifest": []});
    let unknown_app = answer_manifest_size(&request(), &body, &Release::without_app().0);
    assert_eq!(
        unknown_app.body,
        json!({"error": "app_not_found",
               "message": "App com.example.app is not registered on this Updraft server", "kind": "failed"})
    );
    let unknown_version = answer_manifest_size(
        &request(),
        &json!({"version": "9.9.9", "manifest": []}),
        &manifest_release().0,
    );
    assert_eq!(
        unknown_version.body,
        json!({"error": "no_bundle", "message": "Cannot get bundle", "kind": "failed"})
    );
    let no_channel = answer_manifest_size(&request(), &json!({}), &Release::new().0);
    assert_eq!(no_channel.body, no_channel_body());
}

#[test]
fn manifest_size_empty_request_is_all_zero() {
    let answer = answer_manifest_size(
        &request(),
        &json!({"version": "1.0.1"}),
        &manifest_release().0,
    );
    assert_eq!(
        answer.body,
        json!({"totalSize": 0, "knownFiles": 0, "unknownFiles": 0, "files": []})
    );
}

// ---------- rollouts and targeting ----------

/// DEVICE's bucket in rollout "rollout-1" (SHA-256 of "rollout-1:<DEVICE>",
/// computed independently): selected from 9540 bps up, not at 9539.
const DEVICE_BUCKET: u32 = 9539;

fn rollout_on(percentage_bps: u32) -> updraft_core::model::Rollout {
    updraft_core::model::Rollout {
        bundle_id: 20,
        percentage_bps,
        paused_at: None,
        rollout_id: "rollout-1".into(),
        started_at: 0,
        step_started_at: 0,
        targeting: Default::default(),
        auto_pause_triggered_at: None,
    }
}

/// Production on 1.0.1 (id 10) with a rollout of 1.1.0 (id 20).
fn rollout_release(rollout: updraft_core::model::Rollout, rollout_bundle: Bundle) -> Release {
    Release::new()
        .bundle(bundle(10, "1.0.1"))
        .bundle(rollout_bundle)
        .channel(Channel {
            rollout: Some(rollout),
            ..public_channel(1, "production", Some(10))
        })
}

#[test]
fn rollout_selected_device_gets_the_rollout_bundle() {
    let release = rollout_release(rollout_on(DEVICE_BUCKET + 1), bundle(20, "1.1.0"));
    let answer = answer(&request(), &release);
    assert_eq!(
        answer.body,
        json!({
            "version": "1.1.0",
            "url": format!("{BASE}/files/{APP}/1.1.0.zip"),
            "checksum": SHA,
            "session_key": "",
        })
    );
    assert_eq!(
        (answer.outcome.as_str(), answer.offered_version.as_deref()),
        ("get", Some("1.1.0"))
    );
}

#[test]
fn rollout_not_selected_device_gets_the_stable_bundle() {
    let release = rollout_release(rollout_on(DEVICE_BUCKET), bundle(20, "1.1.0"));
    assert_eq!(
        answer(&request(), &release).offered_version.as_deref(),
        Some("1.0.1")
    );
}

#[test]
fn paused_rollout_keeps_devices_already_on_it_and_takes_no_new_ones() {
    let paused = updraft_core::model::Rollout {
        paused_at: Some(5),
        ..rollout_on(10_000)
    };
    let release = rollout_release(paused, bundle(20, "1.1.0"));
    assert_eq!(
        answer(&request(), &release).offered_version.as_deref(),
        Some("1.0.1")
    );
    let on_rollout = UpdateRequest {
        version_name: "1.1.0".into(),
        ..request()
    };
    assert_eq!(
        answer(&on_rollout, &release).body,
        json!({"error": "no_new_version_available", "message": "No new version available", "kind": "up_to_date"})
    );
    // The same holds at 0 %.
    let zero = rollout_release(rollout_on(0), bundle(20, "1.1.0"));
    assert_eq!(
        answer(&on_rollout, &zero).outcome,
        "no_new_version_available"
    );
}

#[test]
fn deleted_or_unknown_rollout_bundle_falls_back_to_stable() {
    let deleted = rollout_release(
        rollout_on(10_000),
        Bundle {
            deleted: true,
            ..bundle(20, "1.1.0")
        },
    );
    let on_rollout = UpdateRequest {
        version_name: "1.1.0".into(),
        ..request()
    };
    assert_eq!(
        answer(&on_rollout, &deleted).offered_version.as_deref(),
        Some("1.0.1")
    );
    let unknown = rollout_release(rollout_on(10_000), bundle(99, "9.9.9"));
    assert_eq!(
        answer(&request(), &unknown).offered_version.as_deref(),
        Some("1.0.1")
    );
}

#[test]
fn rollout_targeting_limits_who_gets_the_rollout() {
    let ios_only = updraft_core::model::Rollout {
        targeting: updraft_core::model::Targeting {
            platforms: vec![Platform::Ios],
            ..Default::default()
        },
        ..rollout_on(10_000)
    };
    let release = rollout_release(ios_only, bundle(20, "1.1.0"));
    assert_eq!(
        answer(&request(), &release).offered_version.as_deref(),
        Some("1.0.1")
    );
    let ios = UpdateRequest {
        platform: Platform::Ios,
        ..request()
    };
    assert_eq!(
        answer(&ios, &release).offered_version.as_deref(),
        Some("1.1.0")
    );
}

#[test]
fn channel_checks_run_against_the_rollout_bundle() {
    let mut release = rollout_release(rollout_on(10_000), bundle(20, "2.0.0"));
    release.0.channels[0].disable_auto_update = AutoUpdatePolicy::Major;
    assert_eq!(
        answer(&request(), &release).body,
        json!({
            "error": "disable_auto_update_to_major",
            "message": "Cannot upgrade major version",
            "major": true,
            "version": "2.0.0",
            "old": "1.0.0",
            "kind": "blocked",
        })
    );
}

fn testflight_only() -> updraft_core::model::Targeting {
    updraft_core::model::Targeting {
        install_sources: vec!["testflight".into()],
        ..Default::default()
    }
}

#[test]
fn channel_targeting_refuses_other_devices_with_exact_body() {
    let mut release = Release::standard();
    release.0.channels[0].targeting = testflight_only();
    let answer = answer(&request(), &release);
    assert_eq!(
        answer.body,
        json!({
            "error": "device_not_targeted",
            "message": "This channel's release does not target this device",
            "version": "1.0.1",
            "old": "1.0.0",
            "kind": "blocked",
        })
    );
    assert_eq!(
        (answer.outcome.as_str(), answer.offered_version),
        ("device_not_targeted", None)
    );
    let tester = UpdateRequest {
        install_source: Some("testflight".into()),
        ..request()
    };
    assert_eq!(
        answer_update(&tester, &release.0, BASE)
            .offered_version
            .as_deref(),
        Some("1.0.1")
    );
}

#[test]
fn channel_targeting_comes_after_equality_and_the_flag_checks() {
    let mut release = rollout_release(rollout_on(10_000), bundle(20, "1.1.0"));
    release.0.channels[0].targeting = testflight_only();
    // The refusal names the bundle the device would have got: the rollout's.
    assert_eq!(answer(&request(), &release).body["version"], json!("1.1.0"));
    let on_it = UpdateRequest {
        version_name: "1.1.0".into(),
        ..request()
    };
    assert_eq!(answer(&on_it, &release).outcome, "no_new_version_available");
    release.0.channels[0].allow_prod = false;
    assert_eq!(answer(&request(), &release).outcome, "disable_prod_build");
}
