//! Invariants of the `/updates` decision over generated apps and devices
//! (issue 19, point 9), through the public API only: `answer_update` on an
//! `UpdateRequest` and a `ReleaseConfig`. The rule-by-rule examples live in
//! `tests/decision.rs`; these say what must hold for every input.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is its failure report

use proptest::prelude::*;
use semver::Version;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;
use updraft_core::decision::{answer_update, UpdateAnswer};
use updraft_core::model::{
    App, AutoUpdatePolicy, Bundle, Channel, DeviceOverride, OverrideSource, Platform,
    ReleaseConfig, Rollout,
};
use updraft_core::request::UpdateRequest;

const BASE: &str = "http://127.0.0.1:8080";
const APP: &str = "com.example.app";
const SHA: &str = "9f2c3885ee49aa00112233445566778899aabbccddeeff00112233445566aa77";
const KINDS: [&str; 3] = ["up_to_date", "blocked", "failed"];

// ---------- generated inputs ----------

/// Small versions so that equal, older and newer ones all come up often.
fn version() -> impl Strategy<Value = Version> {
    (
        0u64..3,
        0u64..3,
        0u64..3,
        prop::option::weighted(0.15, 0u64..3),
    )
        .prop_map(|(major, minor, patch, pre)| {
            let mut v = Version::new(major, minor, patch);
            if let Some(n) = pre {
                v.pre = semver::Prerelease::new(&format!("beta.{n}")).unwrap();
            }
            v
        })
}

fn policy() -> impl Strategy<Value = AutoUpdatePolicy> {
    prop_oneof![
        Just(AutoUpdatePolicy::Major),
        Just(AutoUpdatePolicy::Minor),
        Just(AutoUpdatePolicy::Patch),
        Just(AutoUpdatePolicy::Metadata),
        Just(AutoUpdatePolicy::None),
    ]
}

fn platform() -> impl Strategy<Value = Platform> {
    prop_oneof![
        Just(Platform::Ios),
        Just(Platform::Android),
        Just(Platform::Electron)
    ]
}

fn device_id() -> impl Strategy<Value = String> {
    "[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"
}

fn bundle(id: i64, name: String, min_update_version: Option<String>) -> Bundle {
    Bundle {
        id,
        app_id: APP.into(),
        checksum: Some(SHA.into()),
        encrypted_checksum: None,
        session_key: None,
        key_id: None,
        external_url: None,
        storage_path: Some(format!("/files/{APP}/{name}.zip")),
        zip_sha256: None,
        size: None,
        manifest: Vec::new(),
        min_update_version,
        link: None,
        comment: None,
        native_packages: None,
        deleted: false,
        created_at: 0,
        deleted_at: None,
        name,
    }
}

/// The knobs of one channel that the checks of §1.5 read.
#[derive(Clone, Debug)]
struct ChannelKnobs {
    public: bool,
    platforms: (bool, bool, bool),
    allow: (bool, bool, bool, bool),
    policy: AutoUpdatePolicy,
    under_native: bool,
    self_set: bool,
}

fn knobs() -> impl Strategy<Value = ChannelKnobs> {
    (
        prop::bool::weighted(0.8),
        (
            prop::bool::weighted(0.9),
            prop::bool::weighted(0.9),
            prop::bool::weighted(0.9),
        ),
        (
            prop::bool::weighted(0.9),
            prop::bool::weighted(0.9),
            prop::bool::weighted(0.9),
            prop::bool::weighted(0.9),
        ),
        policy(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |(public, platforms, allow, policy, under_native, self_set)| ChannelKnobs {
                public,
                platforms,
                allow,
                policy,
                under_native,
                self_set,
            },
        )
}

fn channel(id: i64, name: &str, bundle_id: Option<i64>, k: &ChannelKnobs) -> Channel {
    Channel {
        id,
        app_id: APP.into(),
        name: name.into(),
        bundle_id,
        public: k.public,
        ios: k.platforms.0,
        android: k.platforms.1,
        electron: k.platforms.2,
        allow_device_self_set: k.self_set,
        allow_emulator: k.allow.0,
        allow_device: k.allow.1,
        allow_dev: k.allow.2,
        allow_prod: k.allow.3,
        disable_auto_update: k.policy,
        disable_auto_update_under_native: k.under_native,
        targeting: Default::default(),
        rollout: None,
        auto_pause: Default::default(),
        ramp: Default::default(),
        created_at: 0,
        updated_at: 0,
    }
}

fn rollout(bundle_id: i64, percentage_bps: u32, rollout_id: String) -> Rollout {
    Rollout {
        bundle_id,
        percentage_bps,
        paused_at: None,
        rollout_id,
        started_at: 0,
        step_started_at: 0,
        targeting: Default::default(),
        auto_pause_triggered_at: None,
    }
}

/// A generated channel: its knobs, the index of its stable bundle, and maybe
/// a rollout (bundle index, percentage in basis points).
type GeneratedChannel = (ChannelKnobs, usize, Option<(usize, u32)>);

/// A generated app: up to three bundles, one or two channels (each maybe on a
/// rollout), maybe an override for the device, maybe no app at all.
#[derive(Clone, Debug)]
struct Scenario {
    with_app: bool,
    bundles: Vec<(Version, Option<Version>, bool)>,
    channels: Vec<GeneratedChannel>,
    override_to: Option<usize>,
    rollout_id: String,
}

fn scenario() -> impl Strategy<Value = Scenario> {
    (
        prop::bool::weighted(0.95),
        prop::collection::vec(
            (
                version(),
                prop::option::weighted(0.2, version()),
                prop::bool::weighted(0.1),
            ),
            1..4,
        ),
        prop::collection::vec(
            (
                knobs(),
                0usize..4,
                prop::option::weighted(0.5, (0usize..4, 0u32..=10_000)),
            ),
            1..3,
        ),
        prop::option::weighted(0.2, 0usize..2),
        "[a-z0-9]{1,12}",
    )
        .prop_map(
            |(with_app, bundles, channels, override_to, rollout_id)| Scenario {
                with_app,
                bundles,
                channels,
                override_to,
                rollout_id,
            },
        )
}

impl Scenario {
    fn release(&self, device: &str) -> ReleaseConfig {
        let mut bundles = HashMap::new();
        for (i, (name, min, deleted)) in self.bundles.iter().enumerate() {
            let mut b = bundle(
                10 + i as i64,
                name.to_string(),
                min.as_ref().map(Version::to_string),
            );
            b.deleted = *deleted;
            bundles.insert(b.id, Arc::new(b));
        }
        // An index past the bundles means "no bundle" (a channel may point at none).
        let bundle_id = |index: usize| (index < self.bundles.len()).then_some(10 + index as i64);
        let names = ["alpha", "production"];
        let mut channels: Vec<Channel> = self
            .channels
            .iter()
            .enumerate()
            .map(|(i, (k, target, roll))| {
                let mut c = channel(1 + i as i64, names[i % 2], bundle_id(*target), k);
                c.rollout = roll.and_then(|(target, bps)| {
                    bundle_id(target).map(|id| rollout(id, bps, self.rollout_id.clone()))
                });
                c
            })
            .collect();
        channels.sort_by(|a, b| (&a.name, a.id).cmp(&(&b.name, b.id)));
        let mut overrides = HashMap::new();
        if let Some(index) = self.override_to.filter(|i| *i < channels.len()) {
            overrides.insert(
                device.to_string(),
                DeviceOverride {
                    app_id: APP.into(),
                    device_id: device.to_string(),
                    channel_id: 1 + index as i64,
                    source: OverrideSource::Admin,
                    created_at: 0,
                },
            );
        }
        ReleaseConfig {
            app: self.with_app.then(|| App {
                app_id: APP.into(),
                name: "Example".into(),
                expose_metadata: false,
                created_at: 0,
            }),
            channels,
            bundles,
            overrides,
        }
    }
}

#[derive(Clone, Debug)]
struct Device {
    platform: Platform,
    device_id: String,
    native: Version,
    running: Version,
    plugin: Version,
    is_emulator: bool,
    is_prod: bool,
    default_channel: Option<String>,
}

fn device() -> impl Strategy<Value = Device> {
    (
        platform(),
        device_id(),
        version(),
        version(),
        prop_oneof![
            Just(Version::new(5, 10, 0)),
            Just(Version::new(6, 2, 0)),
            Just(Version::new(8, 51, 14))
        ],
        prop::bool::weighted(0.1),
        prop::bool::weighted(0.9),
        prop::option::weighted(
            0.2,
            prop_oneof![Just("alpha".to_string()), Just("nope".to_string())],
        ),
    )
        .prop_map(
            |(
                platform,
                device_id,
                native,
                running,
                plugin,
                is_emulator,
                is_prod,
                default_channel,
            )| {
                Device {
                    platform,
                    device_id,
                    native,
                    running,
                    plugin,
                    is_emulator,
                    is_prod,
                    default_channel,
                }
            },
        )
}

impl Device {
    fn request(&self) -> UpdateRequest<'static> {
        UpdateRequest {
            platform: self.platform,
            device_id: self.device_id.clone().into(),
            app_id: APP.into(),
            custom_id: "".into(),
            version_build: self.native.clone(),
            version_code: Some("10".into()),
            version_os: Some("14".into()),
            version_name: self.running.to_string().into(),
            plugin_version: self.plugin.clone(),
            is_emulator: self.is_emulator,
            is_prod: self.is_prod,
            install_source: None,
            default_channel: self.default_channel.clone().map(Into::into),
            key_id: None,
        }
    }
}

fn offered(answer: &UpdateAnswer) -> Option<&str> {
    (answer.outcome == "get").then(|| answer.body["version"].as_str().unwrap_or(""))
}

// ---------- properties ----------

proptest! {
    // Failures print their minimal input; the shrunk case belongs in
    // tests/decision.rs as an example, not in a regressions file.
    #![proptest_config(ProptestConfig {
        cases: 2_000,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// With `disable_auto_update_under_native` on every channel, no answer
    /// offers a bundle older than the native app (only "builtin" itself).
    #[test]
    fn never_a_bundle_under_native_when_downgrades_are_off(mut s in scenario(), d in device()) {
        for (knobs, _, _) in &mut s.channels {
            knobs.under_native = true;
        }
        let answer = answer_update(&d.request(), &s.release(&d.device_id), BASE);
        if let Some(version) = offered(&answer).filter(|v| *v != "builtin") {
            let version = Version::parse(version).expect("generated bundle names are semver");
            prop_assert!(
                version.cmp_precedence(&d.native).is_ge(),
                "offered {version} under native {} : {}", d.native, answer.body
            );
        }
    }

    /// A device selected for a rollout at p % is selected at every q > p.
    #[test]
    fn rollout_selection_is_monotonic_in_the_percentage(
        d in device(),
        rollout_id in "[a-z0-9]{1,12}",
        p in 0u32..=10_000,
        q in 0u32..=10_000,
    ) {
        let (low, high) = (p.min(q), p.max(q));
        // A channel that refuses nothing, stable on 1.0.0, rolling out 3.0.0:
        // a device running neither gets 3.0.0 exactly when it is selected.
        let open = ChannelKnobs {
            public: true,
            platforms: (true, true, true),
            allow: (true, true, true, true),
            policy: AutoUpdatePolicy::None,
            under_native: false,
            self_set: false,
        };
        let mut d = d;
        d.running = Version::new(2, 0, 0);
        d.native = Version::new(0, 1, 0);
        d.default_channel = None;
        let release_at = |bps: u32| {
            let mut c = channel(1, "production", Some(10), &open);
            c.rollout = Some(rollout(11, bps, rollout_id.clone()));
            ReleaseConfig {
                app: Some(App { app_id: APP.into(), name: "Example".into(), expose_metadata: false, created_at: 0 }),
                channels: vec![c],
                bundles: [bundle(10, "1.0.0".into(), None), bundle(11, "3.0.0".into(), None)]
                    .into_iter()
                    .map(|b| (b.id, Arc::new(b)))
                    .collect(),
                overrides: HashMap::new(),
            }
        };
        let req = d.request();
        let at_low = answer_update(&req, &release_at(low), BASE);
        let at_high = answer_update(&req, &release_at(high), BASE);
        prop_assert!(offered(&at_low).is_some() && offered(&at_high).is_some(),
            "{} / {}", at_low.body, at_high.body);
        if offered(&at_low) == Some("3.0.0") {
            prop_assert_eq!(offered(&at_high), Some("3.0.0"), "selected at {} bps, not at {} bps", low, high);
        }
        if low == 0 {
            prop_assert_eq!(offered(&at_low), Some("1.0.0"));
        }
        if high == 10_000 {
            prop_assert_eq!(offered(&at_high), Some("3.0.0"));
        }
    }

    /// The same request against the same configuration gets the same answer,
    /// also when the configuration's maps were built in another order.
    #[test]
    fn the_same_request_always_gets_the_same_answer(s in scenario(), d in device()) {
        let req = d.request();
        let release = s.release(&d.device_id);
        let first = answer_update(&req, &release, BASE);
        prop_assert_eq!(&answer_update(&req, &release, BASE), &first);
        // Fresh hash maps (a new random seed each): iteration order differs.
        let rebuilt = ReleaseConfig {
            app: release.app.clone(),
            channels: release.channels.clone(),
            bundles: release.bundles.iter().map(|(k, v)| (*k, Arc::clone(v))).collect(),
            overrides: release.overrides.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        };
        prop_assert_eq!(&answer_update(&req, &rebuilt, BASE), &first);
    }

    /// A success answer never carries `error`, `kind` or `message`; every
    /// refusal carries its code as `error`, a `message` and one of the three
    /// `kind`s the plugin knows.
    #[test]
    fn success_and_refusal_bodies_have_their_shapes(s in scenario(), d in device()) {
        let answer = answer_update(&d.request(), &s.release(&d.device_id), BASE);
        let body = answer.body.as_object().expect("the body is a JSON object");
        if answer.outcome == "get" {
            for field in ["error", "kind", "message"] {
                prop_assert!(!body.contains_key(field), "success with {field}: {}", answer.body);
            }
            prop_assert!(body.get("version").and_then(Value::as_str).is_some_and(|v| !v.is_empty()));
            prop_assert_eq!(answer.offered_version.as_deref(), body["version"].as_str());
        } else {
            prop_assert_eq!(body.get("error").and_then(Value::as_str), Some(answer.outcome.as_str()), "{}", answer.body);
            prop_assert!(body.get("message").and_then(Value::as_str).is_some(), "{}", answer.body);
            let kind = body.get("kind").and_then(Value::as_str);
            prop_assert!(kind.is_some_and(|k| KINDS.contains(&k)), "refusal kind {:?}: {}", kind, answer.body);
            prop_assert!(answer.offered_version.is_none());
        }
    }
}
