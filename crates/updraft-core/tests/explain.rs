//! `explain_update`: the update decision, rule by rule, for `updraft device
//! explain` — every refusal the decision gives, every way to a channel, and
//! the request built from a device's registry record.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is its failure report

use semver::Version;
use serde_json::json;
use std::collections::HashSet;
use std::sync::Arc;
use updraft_core::decision::{
    answer_update, explain_update, request_from_device, ChannelSource, Explanation, Refusal, Rule,
    StepOutcome, UpdateOutcome,
};
use updraft_core::model::{
    App, AutoUpdatePolicy, Bundle, Channel, Device, DeviceOverride, OverrideSource, Platform,
    ReleaseConfig, Rollout,
};
use updraft_core::request::{parse_update_request, UpdateRequest};

const BASE: &str = "http://127.0.0.1:8080";
const APP: &str = "com.example.app";
const DEVICE: &str = "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0";
const SHA: &str = "9f2c3885ee49aa00112233445566778899aabbccddeeff00112233445566aa77";

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

/// The app with a public `production` channel (id 1) on bundle `version`
/// (id 10), the channel edited by `edit`, the bundle by `edit_bundle`.
fn release_with(
    version: &str,
    edit: impl FnOnce(&mut Channel),
    edit_bundle: impl FnOnce(&mut Bundle),
) -> ReleaseConfig {
    let mut production = channel(1, "production", Some(10));
    production.public = true;
    edit(&mut production);
    let mut b = bundle(10, version);
    edit_bundle(&mut b);
    ReleaseConfig {
        app: Some(App {
            app_id: APP.into(),
            name: "Example".into(),
            expose_metadata: false,
            created_at: 0,
        }),
        channels: vec![production],
        bundles: [(10, Arc::new(b))].into_iter().collect(),
        overrides: Default::default(),
    }
}

fn channel_edit(edit: impl FnOnce(&mut Channel)) -> ReleaseConfig {
    release_with("1.0.1", edit, |_| {})
}

fn standard() -> ReleaseConfig {
    channel_edit(|_| {})
}

fn request() -> UpdateRequest<'static> {
    UpdateRequest {
        platform: Platform::Ios,
        device_id: DEVICE.into(),
        app_id: APP.into(),
        custom_id: "".into(),
        version_build: Version::new(1, 0, 0),
        version_code: Some("10".into()),
        version_os: Some("17.2".into()),
        version_name: "1.0.0".into(),
        plugin_version: Version::new(8, 51, 14),
        is_emulator: false,
        is_prod: true,
        install_source: None,
        default_channel: None,
        key_id: None,
    }
}

fn override_to(release: &mut ReleaseConfig, channel_id: i64) {
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

/// Explains, and checks what holds for every explanation: its answer is
/// `answer_update`'s, byte for byte; every rule appears once, in order; the
/// rules before the deciding one passed or did not apply, those after it
/// were not reached, and a refusal is named by exactly one rule.
fn explain(req: &UpdateRequest, release: &ReleaseConfig) -> Explanation {
    let explained = explain_update(req, release, BASE);
    assert_eq!(explained.answer, answer_update(req, release, BASE));
    let rules: Vec<Rule> = explained.steps.iter().map(|s| s.rule).collect();
    assert_eq!(rules, Rule::ALL);
    let refused: Vec<_> = explained
        .steps
        .iter()
        .filter_map(|s| match s.outcome {
            StepOutcome::Refused(why) => Some(why),
            _ => None,
        })
        .collect();
    // Which rules may not apply: the bundle's own checks to a builtin revert,
    // the builtin's to a bundle (every bundle name here is a version).
    let may_skip: &[Rule] = match explained.target.as_deref() {
        None => &[],
        Some("builtin") => &[
            Rule::BundleFiles,
            Rule::KeyId,
            Rule::MajorPolicy,
            Rule::VersionPolicy,
            Rule::UnderNative,
            Rule::BundleUrl,
        ],
        Some(_) => &[Rule::BuiltinRevert],
    };
    for step in &explained.steps {
        if step.outcome == StepOutcome::Skipped {
            assert!(may_skip.contains(&step.rule), "{step:?}");
        }
    }
    let reached = |rule: Rule| {
        explained
            .blocking_rule()
            .is_none_or(|blocking| rule < blocking)
    };
    for step in explained.steps.iter().filter(|s| reached(s.rule)) {
        if !may_skip.contains(&step.rule) {
            assert_eq!(step.outcome, StepOutcome::Ok, "{step:?}");
        }
    }
    match explained.answer.outcome {
        UpdateOutcome::Refused(why) => {
            assert_eq!(refused, vec![why]);
            assert!(!explained.remedies.is_empty(), "no remedy for {why:?}");
            let blocking = explained.blocking_rule().unwrap();
            for step in &explained.steps {
                match step.rule.cmp(&blocking) {
                    std::cmp::Ordering::Less => assert!(
                        matches!(step.outcome, StepOutcome::Ok | StepOutcome::Skipped),
                        "{step:?}"
                    ),
                    std::cmp::Ordering::Greater => {
                        assert_eq!(step.outcome, StepOutcome::NotReached, "{step:?}")
                    }
                    std::cmp::Ordering::Equal => assert_eq!(
                        step.detail,
                        explained.answer.body["message"].as_str().unwrap()
                    ),
                }
            }
        }
        _ => {
            assert!(refused.is_empty());
            assert!(explained.remedies.is_empty());
            assert!(explained
                .steps
                .iter()
                .all(|s| matches!(s.outcome, StepOutcome::Ok | StepOutcome::Skipped)));
        }
    }
    explained
}

fn builtin_channel() -> ReleaseConfig {
    channel_edit(|c| c.bundle_id = None)
}

/// `release` with the device's override on `production`: an override
/// reaches a channel whatever its platforms (resolution otherwise skips a
/// channel that does not serve the device's platform).
fn overridden(mut release: ReleaseConfig) -> ReleaseConfig {
    override_to(&mut release, 1);
    release
}

/// One device and release per refusal the decision can give, with the rule
/// that must name it.
fn refusal_cases() -> Vec<(Refusal, Rule, UpdateRequest<'static>, ReleaseConfig)> {
    let req = request();
    let android = UpdateRequest {
        platform: Platform::Android,
        ..request()
    };
    let electron = UpdateRequest {
        platform: Platform::Electron,
        ..request()
    };
    let keyed = |key: &str| UpdateRequest {
        key_id: Some(key.to_string().into()),
        ..request()
    };
    let plugin = |v: &str| UpdateRequest {
        plugin_version: Version::parse(v).unwrap(),
        ..request()
    };
    let policy = |version: &str, policy: AutoUpdatePolicy, min: Option<&str>| {
        release_with(
            version,
            |c| c.disable_auto_update = policy,
            |b| b.min_update_version = min.map(str::to_string),
        )
    };
    let deleted = release_with("1.0.1", |_| {}, |b| b.deleted = true);
    let no_files = release_with("1.0.1", |_| {}, |b| b.storage_path = None);
    let no_url = release_with(
        "1.0.1",
        |_| {},
        |b| {
            b.storage_path = None;
            b.external_url = Some("ftp://cdn.example.com/1.0.1.zip".into());
        },
    );
    let encrypted = release_with(
        "1.0.1",
        |_| {},
        |b| {
            b.session_key = Some("aXY=:a2V5".into());
            b.encrypted_checksum = Some("ABCDEF0123".into());
            b.key_id = Some("bundlekey".into());
        },
    );
    let none = ReleaseConfig {
        channels: Vec::new(),
        ..standard()
    };
    vec![
        (
            Refusal::AppNotFound,
            Rule::App,
            req.clone(),
            ReleaseConfig::default(),
        ),
        (
            Refusal::UnsupportedPluginVersion,
            Rule::PluginVersion,
            plugin("4.15.0"),
            standard(),
        ),
        (Refusal::NoChannel, Rule::Channel, req.clone(), none),
        (Refusal::BundleDeleted, Rule::Channel, req.clone(), deleted),
        (Refusal::NoBundle, Rule::BundleFiles, req.clone(), no_files),
        (
            Refusal::KeyIdMismatch,
            Rule::KeyId,
            keyed("devicekey"),
            encrypted,
        ),
        (
            Refusal::NoNewVersionAvailable,
            Rule::NewVersion,
            UpdateRequest {
                version_name: "1.0.1".into(),
                ..request()
            },
            standard(),
        ),
        (
            Refusal::AlreadyOnBuiltin,
            Rule::BuiltinRevert,
            req.clone(),
            builtin_channel(),
        ),
        (
            Refusal::EncryptionRequired,
            Rule::Encryption,
            keyed("devicekey"),
            standard(),
        ),
        (
            Refusal::DisabledPlatformIos,
            Rule::Platform,
            req.clone(),
            overridden(channel_edit(|c| c.ios = false)),
        ),
        (
            Refusal::DisabledPlatformAndroid,
            Rule::Platform,
            android,
            overridden(channel_edit(|c| c.android = false)),
        ),
        (
            Refusal::DisabledPlatformElectron,
            Rule::Platform,
            electron,
            overridden(channel_edit(|c| c.electron = false)),
        ),
        (
            Refusal::DisableAutoUpdateToMajor,
            Rule::MajorPolicy,
            req.clone(),
            policy("2.0.0", AutoUpdatePolicy::Major, None),
        ),
        (
            Refusal::DisableAutoUpdateToMinor,
            Rule::VersionPolicy,
            req.clone(),
            policy("1.1.0", AutoUpdatePolicy::Minor, None),
        ),
        (
            Refusal::DisableAutoUpdateToPatch,
            Rule::VersionPolicy,
            req.clone(),
            policy("1.0.1", AutoUpdatePolicy::Patch, None),
        ),
        (
            Refusal::DisableAutoUpdateToMetadata,
            Rule::VersionPolicy,
            req.clone(),
            policy("1.0.1", AutoUpdatePolicy::Metadata, Some("2.0.0")),
        ),
        (
            Refusal::MisconfiguredChannel,
            Rule::VersionPolicy,
            req.clone(),
            policy("1.0.1", AutoUpdatePolicy::Metadata, None),
        ),
        (
            Refusal::DisableAutoUpdateUnderNative,
            Rule::UnderNative,
            req.clone(),
            release_with(
                "0.9.0",
                |c| c.disable_auto_update_under_native = true,
                |_| {},
            ),
        ),
        (
            Refusal::DisableProdBuild,
            Rule::BuildKind,
            req.clone(),
            channel_edit(|c| c.allow_prod = false),
        ),
        (
            Refusal::DisableDevBuild,
            Rule::BuildKind,
            UpdateRequest {
                is_prod: false,
                ..request()
            },
            channel_edit(|c| c.allow_dev = false),
        ),
        (
            Refusal::DisableDevice,
            Rule::BuildKind,
            req.clone(),
            channel_edit(|c| c.allow_device = false),
        ),
        (
            Refusal::DisableEmulator,
            Rule::BuildKind,
            UpdateRequest {
                is_emulator: true,
                ..request()
            },
            channel_edit(|c| c.allow_emulator = false),
        ),
        (
            Refusal::DeviceNotTargeted,
            Rule::Targeting,
            req.clone(),
            channel_edit(|c| c.targeting.platforms = vec![Platform::Android]),
        ),
        (
            Refusal::RevertToBuiltinPluginVersionTooOld,
            Rule::BuiltinRevert,
            UpdateRequest {
                version_name: "0.9.0".into(),
                ..plugin("6.0.0")
            },
            builtin_channel(),
        ),
        (Refusal::NoBundleUrl, Rule::BundleUrl, req, no_url),
    ]
}

#[test]
fn every_refusal_is_named_by_the_rule_that_gives_it() {
    let mut seen = HashSet::new();
    for (why, rule, req, release) in refusal_cases() {
        let explained = explain(&req, &release);
        assert_eq!(
            explained.answer.outcome,
            UpdateOutcome::Refused(why),
            "{why:?}: {}",
            explained.answer.body
        );
        assert_eq!(explained.blocking_rule(), Some(rule), "{why:?}");
        seen.insert(why);
    }
    // Resolution never reaches a private channel without an override, so
    // `cannot_update_via_private_channel` is the one refusal no device gets
    // (the decision's own unit tests exercise that check directly).
    let unreachable: HashSet<Refusal> = Refusal::ALL
        .iter()
        .copied()
        .filter(|why| !seen.contains(why))
        .collect();
    assert_eq!(
        unreachable,
        [Refusal::CannotUpdateViaPrivateChannel]
            .into_iter()
            .collect()
    );
}

#[test]
fn remedies_name_the_command_that_changes_the_answer() {
    let commands = |why: Refusal| -> Vec<String> {
        let (_, _, req, release) = refusal_cases()
            .into_iter()
            .find(|(w, ..)| *w == why)
            .unwrap();
        explain(&req, &release)
            .remedies
            .into_iter()
            .filter_map(|r| r.command)
            .collect()
    };
    let cases = [
        (
            Refusal::DisabledPlatformIos,
            "updraft channel set production com.example.app --ios",
        ),
        (
            Refusal::DisabledPlatformAndroid,
            "updraft channel set production com.example.app --android",
        ),
        (
            Refusal::DisableAutoUpdateToMajor,
            "updraft channel set production com.example.app --disable-auto-update none",
        ),
        (
            Refusal::DisableAutoUpdateToMetadata,
            "updraft channel set production com.example.app --disable-auto-update none",
        ),
        (
            Refusal::DisableAutoUpdateUnderNative,
            "updraft channel set production com.example.app --downgrade",
        ),
        (
            Refusal::DisableProdBuild,
            "updraft channel set production com.example.app --prod",
        ),
        (
            Refusal::DisableEmulator,
            "updraft channel set production com.example.app --emulator",
        ),
        (
            Refusal::DeviceNotTargeted,
            "updraft channel set production com.example.app --clear-targeting",
        ),
        (
            Refusal::BundleDeleted,
            "updraft channel set production com.example.app --bundle VERSION",
        ),
        (
            Refusal::NoChannel,
            "updraft channel add production com.example.app --default",
        ),
    ];
    for (why, command) in cases {
        let got = commands(why);
        assert!(got.iter().any(|c| c == command), "{why:?}: {got:?}");
    }
}

#[test]
fn a_bundle_offered_passes_every_rule_it_reaches() {
    let explained = explain(&request(), &standard());
    assert_eq!(explained.answer.outcome, UpdateOutcome::Get);
    assert_eq!(explained.target.as_deref(), Some("1.0.1"));
    let outcome = |rule: Rule| {
        explained
            .steps
            .iter()
            .find(|s| s.rule == rule)
            .unwrap()
            .outcome
    };
    assert_eq!(outcome(Rule::BundleUrl), StepOutcome::Ok);
    assert_eq!(outcome(Rule::BuiltinRevert), StepOutcome::Skipped);

    // A builtin revert skips the bundle's own checks.
    let reverting = UpdateRequest {
        version_name: "1.0.1".into(),
        ..request()
    };
    let explained = explain(&reverting, &builtin_channel());
    assert_eq!(explained.answer.offered_version.as_deref(), Some("builtin"));
    for rule in [
        Rule::BundleFiles,
        Rule::KeyId,
        Rule::MajorPolicy,
        Rule::BundleUrl,
    ] {
        let step = explained.steps.iter().find(|s| s.rule == rule).unwrap();
        assert_eq!(step.outcome, StepOutcome::Skipped, "{rule:?}");
    }
}

#[test]
fn the_channel_says_how_it_was_reached() {
    // Override: to a private channel, which it may use only that way.
    let mut release = standard();
    release.channels.push(channel(2, "beta", Some(10)));
    override_to(&mut release, 2);
    let explained = explain(&request(), &release);
    assert_eq!(explained.source, Some(ChannelSource::Override));
    assert_eq!(explained.channel.as_deref(), Some("beta"));
    assert!(
        explained.channel_reason.contains("override (set by admin)"),
        "{}",
        explained.channel_reason
    );

    // Stored defaultChannel: a self-assignable channel.
    let mut release = standard();
    let mut beta = channel(2, "beta", Some(10));
    beta.allow_device_self_set = true;
    release.channels.insert(0, beta);
    let asks_beta = UpdateRequest {
        default_channel: Some("beta".into()),
        ..request()
    };
    let explained = explain(&asks_beta, &release);
    assert_eq!(explained.source, Some(ChannelSource::DefaultChannel));
    assert_eq!(explained.channel.as_deref(), Some("beta"));
    assert!(explained.channel_reason.contains("defaultChannel \"beta\""));

    // Public: no defaultChannel, or one the device may not use.
    let explained = explain(&request(), &standard());
    assert_eq!(explained.source, Some(ChannelSource::Public));
    assert_eq!(explained.channel.as_deref(), Some("production"));
    let mut release = standard();
    release.channels.insert(0, channel(2, "beta", Some(10)));
    let explained = explain(&asks_beta, &release);
    assert_eq!(explained.source, Some(ChannelSource::Public));
    assert!(
        explained
            .channel_reason
            .contains("defaultChannel \"beta\" is not used: it is private"),
        "{}",
        explained.channel_reason
    );
    let asks_gone = UpdateRequest {
        default_channel: Some("gone".into()),
        ..request()
    };
    let explained = explain(&asks_gone, &standard());
    assert!(explained.channel_reason.contains("no such channel"));

    // None: nothing serves the platform.
    let release = channel_edit(|c| c.ios = false);
    let explained = explain(&request(), &release);
    assert_eq!(explained.source, None);
    assert_eq!(explained.channel, None);
    assert_eq!(explained.blocking_rule(), Some(Rule::Channel));
    assert!(explained.channel_reason.starts_with("no channel"));
    assert_eq!(
        explained.remedies[0].command.as_deref(),
        Some("updraft channel set production com.example.app --ios")
    );

    // An override whose channel serves a deleted bundle is ignored.
    let mut release = standard();
    release.channels.push(channel(2, "beta", Some(11)));
    let mut gone = bundle(11, "0.5.0");
    gone.deleted = true;
    release.bundles.insert(11, Arc::new(gone));
    override_to(&mut release, 2);
    let explained = explain(&request(), &release);
    assert_eq!(explained.source, Some(ChannelSource::Public));
    assert!(explained
        .channel_reason
        .contains("override to \"beta\" is ignored"));
}

#[test]
fn a_rollout_says_whether_the_device_is_in_it() {
    let mut release = standard();
    release.bundles.insert(11, Arc::new(bundle(11, "1.1.0")));
    release.channels[0].rollout = Some(Rollout {
        bundle_id: 11,
        percentage_bps: 10_000,
        paused_at: None,
        rollout_id: "r1".into(),
        started_at: 0,
        step_started_at: 0,
        targeting: Default::default(),
        auto_pause_triggered_at: None,
    });
    let explained = explain(&request(), &release);
    assert_eq!(explained.target.as_deref(), Some("1.1.0"));
    let rollout = explained
        .steps
        .iter()
        .find(|s| s.rule == Rule::Rollout)
        .unwrap();
    assert!(
        rollout.detail.contains("in the rollout of 1.1.0 (100%)"),
        "{}",
        rollout.detail
    );

    release.channels[0].rollout.as_mut().unwrap().percentage_bps = 0;
    let explained = explain(&request(), &release);
    assert_eq!(explained.target.as_deref(), Some("1.0.1"));
}

fn device() -> Device {
    Device {
        app_id: APP.into(),
        device_id: DEVICE.into(),
        platform: "android".into(),
        plugin_version: Some("8.51.14".into()),
        version_os: Some("14".into()),
        version_build: Some("1.4".into()),
        version_code: Some("14".into()),
        version_name: Some("1.4.2".into()),
        custom_id: Some("user-1".into()),
        is_prod: false,
        is_emulator: true,
        default_channel: Some("beta".into()),
        key_id: Some("abcdefghij0123456789".into()),
        install_source: Some("google_play".into()),
        last_offered_version: None,
        last_update_outcome: None,
        first_seen: 0,
        last_seen: 0,
    }
}

#[test]
fn a_registered_device_asks_what_it_last_reported() {
    // The same request the device's own update check parses to.
    let body = json!({
        "platform": "android", "device_id": DEVICE, "app_id": APP,
        "custom_id": "user-1", "version_build": "1.4", "version_code": "14",
        "version_os": "14", "version_name": "1.4.2", "plugin_version": "8.51.14",
        "is_emulator": true, "is_prod": false, "install_source": "google_play",
        "defaultChannel": "beta", "key_id": "abcdefghij0123456789",
    });
    assert_eq!(
        request_from_device(&device()).unwrap(),
        parse_update_request(&body).unwrap()
    );

    let on_builtin = Device {
        version_name: Some("builtin".into()),
        default_channel: Some(String::new()),
        ..device()
    };
    let req = request_from_device(&on_builtin).unwrap();
    assert_eq!(req.version_name, "1.4.0");
    assert_eq!(req.default_channel, None);

    let bare = Device {
        platform: "symbian".into(),
        plugin_version: None,
        version_build: Some("not a version".into()),
        ..device()
    };
    let missing = request_from_device(&bare).unwrap_err();
    assert_eq!(
        missing.missing,
        vec!["platform", "version_build", "plugin_version"]
    );
    assert_eq!(
        missing.to_string(),
        "the device has not reported platform, version_build, plugin_version"
    );
}

#[test]
fn rules_are_listed_in_the_order_they_are_declared() {
    let mut sorted = Rule::ALL.to_vec();
    sorted.sort();
    assert_eq!(sorted, Rule::ALL);
    let names: HashSet<&str> = Rule::ALL.iter().map(|r| r.as_str()).collect();
    assert_eq!(names.len(), Rule::ALL.len());
}
