//! Rollout buckets, targeting and rollout changes (release-overview.md
//! "Rollout selection"; `updraft_core::rollout`).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is its failure report

use semver::Version;
use updraft_core::model::{
    AutoUpdatePolicy, Channel, ChannelPatch, Platform, Rollout, Targeting, VersionRange,
};
use updraft_core::request::UpdateRequest;
use updraft_core::rollout::{
    apply_change, device_bucket, selects_rollout, targeting_matches, DeviceFacts, RolloutChange,
    RolloutError, RolloutErrorCode,
};

const DEVICE: &str = "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0";
const SAMPLE: usize = 100_000;

/// Distinct UUID-shaped device ids, as devices send them (lower-case).
fn device_ids(count: usize) -> Vec<String> {
    (0..count as u64)
        .map(|i| {
            format!(
                "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
                i.wrapping_mul(2_654_435_761) & 0xffff_ffff,
                i & 0xffff,
                (i >> 4) & 0xfff,
                (i >> 8) & 0xfff,
                i
            )
        })
        .collect()
}

fn rollout(rollout_id: &str, percentage_bps: u32) -> Rollout {
    Rollout {
        bundle_id: 20,
        percentage_bps,
        paused_at: None,
        rollout_id: rollout_id.into(),
        started_at: 1_000,
        step_started_at: 1_000,
        targeting: Targeting::default(),
        auto_pause_triggered_at: None,
    }
}

fn versions() -> (Version, Version) {
    (Version::new(1, 4, 0), Version::new(8, 51, 14))
}

fn facts<'a>(device_id: &'a str, build: &'a Version, plugin: &'a Version) -> DeviceFacts<'a> {
    DeviceFacts {
        platform: Platform::Android,
        device_id,
        custom_id: "",
        version_os: "14",
        version_build: build,
        plugin_version: plugin,
        install_source: Some("google_play"),
    }
}

// ---------- buckets ----------

#[test]
fn bucket_is_sha256_of_rollout_and_device_first_8_bytes_mod_10000() {
    // Expected values computed independently (Python hashlib) from
    // SHA-256("<rollout_id>:<device_id>"), first 8 bytes big-endian, mod 10000.
    assert_eq!(device_bucket("rollout-1", DEVICE), 9539);
    assert_eq!(
        device_bucket("7f3a9c", "6e2c0c9a-3f5b-4c8e-9a43-1f0f4b2d7c11"),
        5084
    );
    // Longer than the hashing buffer: chunks are hashed in order.
    assert_eq!(device_bucket("r", &"x".repeat(100)), 5062);
}

#[test]
fn bucket_ignores_the_device_ids_case() {
    assert_eq!(
        device_bucket("rollout-1", &DEVICE.to_uppercase()),
        device_bucket("rollout-1", DEVICE)
    );
    assert_eq!(device_bucket("r", &"X".repeat(100)), 5062);
}

/// Share of the sample selected at `percentage_bps`, in percent.
fn selected_share(ids: &[String], rollout: &Rollout) -> f64 {
    let (build, plugin) = versions();
    let selected = ids
        .iter()
        .filter(|id| selects_rollout(rollout, "2.0.0", &facts(id, &build, &plugin), "1.0.0"))
        .count();
    selected as f64 * 100.0 / ids.len() as f64
}

#[test]
fn selected_share_matches_the_percentage_within_half_a_point() {
    // Binomial standard deviation of the share over n = 100,000 devices:
    // sqrt(p(1-p)/n) = 0.158 pp at 50 %, 0.137 pp at 25 %, 0.069 pp at 5 %,
    // 0.031 pp at 1 % and 99 %. ±0.5 pp is over 3 SD everywhere, and the ids
    // are fixed, so a pass is not luck that can change between runs.
    let ids = device_ids(SAMPLE);
    for percent in [1u32, 5, 25, 50, 99] {
        let share = selected_share(&ids, &rollout("5d1c7b4e-rollout", percent * 100));
        assert!(
            (share - f64::from(percent)).abs() <= 0.5,
            "{percent}%: selected {share:.3}%"
        );
    }
    assert_eq!(selected_share(&ids, &rollout("5d1c7b4e-rollout", 0)), 0.0);
    assert_eq!(
        selected_share(&ids, &rollout("5d1c7b4e-rollout", 10_000)),
        100.0
    );
}

#[test]
fn raising_the_percentage_never_deselects_a_device() {
    let ids = device_ids(SAMPLE);
    let (build, plugin) = versions();
    let steps = [100u32, 500, 2_500, 5_000, 10_000];
    let mut previously_selected = vec![false; ids.len()];
    for step in steps {
        let r = rollout("ramp-rollout", step);
        let mut newly = 0;
        for (id, was) in ids.iter().zip(previously_selected.iter_mut()) {
            let now = selects_rollout(&r, "2.0.0", &facts(id, &build, &plugin), "1.0.0");
            assert!(now || !*was, "{id} deselected at {step} bps");
            if now && !*was {
                newly += 1;
            }
            *was = now;
        }
        assert!(newly > 0, "raising to {step} bps added no device");
    }
    assert!(previously_selected.iter().all(|s| *s));
}

#[test]
fn different_rollouts_bucket_devices_independently() {
    let ids = device_ids(SAMPLE);
    let (mut both, mut same_bucket) = (0usize, 0usize);
    for id in &ids {
        let (a, b) = (
            device_bucket("rollout-a", id),
            device_bucket("rollout-b", id),
        );
        if a < 5_000 && b < 5_000 {
            both += 1;
        }
        if a == b {
            same_bucket += 1;
        }
    }
    // Independent halves overlap on a quarter (SD 0.137 pp); equal buckets
    // happen with probability 1/10000 (about 10 of 100,000).
    let both_share = both as f64 * 100.0 / ids.len() as f64;
    assert!((both_share - 25.0).abs() <= 0.5, "{both_share:.3}%");
    assert!(same_bucket < 40, "{same_bucket} devices share their bucket");
}

// ---------- selection rules ----------

#[test]
fn device_already_on_the_rollout_bundle_keeps_it_even_when_paused_or_untargeted() {
    let (build, plugin) = versions();
    let device = facts(DEVICE, &build, &plugin);
    let mut r = rollout("rollout-1", 0);
    r.paused_at = Some(5_000);
    r.targeting.platforms = vec![Platform::Ios];
    assert!(selects_rollout(&r, "2.0.0", &device, "2.0.0"));
    assert!(!selects_rollout(&r, "2.0.0", &device, "1.0.0"));
}

#[test]
fn paused_zero_and_untargeted_rollouts_select_no_new_device() {
    let (build, plugin) = versions();
    let device = facts(DEVICE, &build, &plugin);
    // DEVICE's bucket in rollout-1 is 9539: 100 % selects it, 95.39 % does not.
    let full = rollout("rollout-1", 10_000);
    assert!(selects_rollout(&full, "2.0.0", &device, "1.0.0"));
    assert!(selects_rollout(
        &rollout("rollout-1", 9_540),
        "2.0.0",
        &device,
        "1.0.0"
    ));
    assert!(!selects_rollout(
        &rollout("rollout-1", 9_539),
        "2.0.0",
        &device,
        "1.0.0"
    ));
    let paused = Rollout {
        paused_at: Some(2_000),
        ..full.clone()
    };
    assert!(!selects_rollout(&paused, "2.0.0", &device, "1.0.0"));
    let zero = rollout("rollout-1", 0);
    assert!(!selects_rollout(&zero, "2.0.0", &device, "1.0.0"));
    let mut untargeted = full.clone();
    untargeted.targeting.platforms = vec![Platform::Ios];
    assert!(!selects_rollout(&untargeted, "2.0.0", &device, "1.0.0"));
    untargeted.targeting.platforms = vec![Platform::Ios, Platform::Android];
    assert!(selects_rollout(&untargeted, "2.0.0", &device, "1.0.0"));
}

// ---------- targeting ----------

fn range(text: &str) -> Option<VersionRange> {
    Some(VersionRange::parse(text).unwrap())
}

#[test]
fn empty_targeting_matches_every_device() {
    let (build, plugin) = versions();
    let mut device = facts(DEVICE, &build, &plugin);
    device.version_os = "";
    device.install_source = None;
    assert!(targeting_matches(&Targeting::default(), &device));
}

#[test]
fn platforms_criterion() {
    let (build, plugin) = versions();
    let device = facts(DEVICE, &build, &plugin);
    let only = |platforms: Vec<Platform>| Targeting {
        platforms,
        ..Targeting::default()
    };
    assert!(targeting_matches(&only(vec![Platform::Android]), &device));
    assert!(targeting_matches(
        &only(vec![Platform::Electron, Platform::Android]),
        &device
    ));
    assert!(!targeting_matches(&only(vec![Platform::Ios]), &device));
}

#[test]
fn os_version_criterion_reads_lenient_versions() {
    let (build, plugin) = versions();
    let cases = [
        (">=14", "14", true),
        (">=14", "13", false),
        (">=17.2", "17.2", true),
        (">=17.2", "17.1.2", false),
        ("<17.2", "17.1.2", true),
        ("^10.15", "10.15.7", true),
        (">=6.0.1", "6.0.1.2", true),
        (">=6.0.2", "6.0.1.2", false),
        (">=14", " 14 ", true),
        (">=14", "", false),
        (">=14", "unknown", false),
    ];
    for (req, os, expected) in cases {
        let targeting = Targeting {
            os_version: range(req),
            ..Targeting::default()
        };
        let mut device = facts(DEVICE, &build, &plugin);
        device.version_os = os;
        assert_eq!(
            targeting_matches(&targeting, &device),
            expected,
            "{req} vs {os:?}"
        );
    }
}

#[test]
fn native_and_plugin_version_criteria() {
    let cases = [
        (">=1.4", "1.4.0", true),
        (">=1.4", "1.3.9", false),
        ("^1", "1.9.0", true),
        ("^1", "2.0.0", false),
        // Prereleases count by precedence.
        (">=1.4", "1.5.0-beta.1", true),
        (">=1.4", "1.4.0-beta.1", false),
        ("<1.4", "1.4.0-beta.1", true),
        (">=1.4.0-beta.2", "1.4.0-beta.3", true),
        (">=1.4.0-beta.2", "1.4.0-beta.1", false),
    ];
    for (req, version, expected) in cases {
        let version = Version::parse(version).unwrap();
        let other = Version::new(8, 51, 14);
        let native = Targeting {
            native_version: range(req),
            ..Targeting::default()
        };
        let device = facts(DEVICE, &version, &other);
        assert_eq!(
            targeting_matches(&native, &device),
            expected,
            "native {req} vs {version}"
        );
        let plugin = Targeting {
            plugin_version: range(req),
            ..Targeting::default()
        };
        let device = facts(DEVICE, &other, &version);
        assert_eq!(
            targeting_matches(&plugin, &device),
            expected,
            "plugin {req} vs {version}"
        );
    }
}

#[test]
fn install_sources_criterion_with_empty_for_none() {
    let (build, plugin) = versions();
    let sources = |list: &[&str]| Targeting {
        install_sources: list.iter().map(|s| s.to_string()).collect(),
        ..Targeting::default()
    };
    let mut device = facts(DEVICE, &build, &plugin);
    assert!(targeting_matches(&sources(&["google_play"]), &device));
    assert!(!targeting_matches(&sources(&["testflight"]), &device));
    assert!(!targeting_matches(&sources(&[""]), &device));
    device.install_source = None;
    assert!(targeting_matches(&sources(&["", "testflight"]), &device));
    assert!(!targeting_matches(&sources(&["google_play"]), &device));
}

#[test]
fn identity_criterion_custom_ids_prefix_and_device_ids() {
    let (build, plugin) = versions();
    let mut device = facts(DEVICE, &build, &plugin);
    device.custom_id = "qa-anna";
    let custom_ids = Targeting {
        custom_ids: vec!["qa-anna".into(), "qa-bob".into()],
        ..Targeting::default()
    };
    let prefix = Targeting {
        custom_id_prefix: Some("qa-".into()),
        ..Targeting::default()
    };
    let device_ids = Targeting {
        device_ids: vec![DEVICE.into()],
        ..Targeting::default()
    };
    assert!(targeting_matches(&custom_ids, &device));
    assert!(targeting_matches(&prefix, &device));
    assert!(targeting_matches(&device_ids, &device));

    let mut other = facts("11111111-2222-4333-8444-555555555555", &build, &plugin);
    other.custom_id = "customer-7";
    assert!(!targeting_matches(&custom_ids, &other));
    assert!(!targeting_matches(&prefix, &other));
    assert!(!targeting_matches(&device_ids, &other));

    // The three lists form one criterion: any of them admits the device.
    let combined = Targeting {
        custom_ids: vec!["customer-7".into()],
        device_ids: vec![DEVICE.into()],
        ..Targeting::default()
    };
    assert!(targeting_matches(&combined, &device));
    assert!(targeting_matches(&combined, &other));
}

#[test]
fn ios_devices_without_custom_id_match_only_by_device_id() {
    let (build, plugin) = versions();
    let mut ios = facts(DEVICE, &build, &plugin);
    ios.platform = Platform::Ios;
    ios.custom_id = "";
    let empty_entry = Targeting {
        custom_ids: vec!["".into()],
        ..Targeting::default()
    };
    assert!(!targeting_matches(&empty_entry, &ios));
    let prefix = Targeting {
        custom_id_prefix: Some("qa-".into()),
        ..Targeting::default()
    };
    assert!(!targeting_matches(&prefix, &ios));
    let upper_device = Targeting {
        custom_id_prefix: Some("qa-".into()),
        device_ids: vec![DEVICE.to_uppercase()],
        ..Targeting::default()
    };
    assert!(targeting_matches(&upper_device, &ios));
}

#[test]
fn every_set_criterion_must_match() {
    let (build, plugin) = versions();
    let device = facts(DEVICE, &build, &plugin);
    let mut targeting = Targeting {
        platforms: vec![Platform::Android],
        os_version: range(">=14"),
        native_version: range(">=1.4"),
        plugin_version: range(">=8"),
        install_sources: vec!["google_play".into()],
        device_ids: vec![DEVICE.into()],
        ..Targeting::default()
    };
    assert!(targeting_matches(&targeting, &device));
    targeting.plugin_version = range(">=9");
    assert!(!targeting_matches(&targeting, &device));
}

#[test]
fn facts_come_from_the_parsed_request() {
    let req = UpdateRequest {
        platform: Platform::Ios,
        device_id: DEVICE.into(),
        app_id: "com.example.app".into(),
        custom_id: "qa-anna".into(),
        version_build: Version::new(2, 1, 0),
        version_code: None,
        version_os: Some("17.2".into()),
        version_name: "2.0.0".into(),
        plugin_version: Version::new(7, 3, 0),
        is_emulator: false,
        is_prod: true,
        install_source: Some("testflight".into()),
        default_channel: None,
        key_id: None,
    };
    let facts = DeviceFacts::from_request(&req);
    assert_eq!(facts.platform, Platform::Ios);
    assert_eq!(facts.device_id, DEVICE);
    assert_eq!(facts.custom_id, "qa-anna");
    assert_eq!(facts.version_os, "17.2");
    assert_eq!(facts.version_build, &Version::new(2, 1, 0));
    assert_eq!(facts.plugin_version, &Version::new(7, 3, 0));
    assert_eq!(facts.install_source, Some("testflight"));
    let without_os = UpdateRequest {
        version_os: None,
        install_source: None,
        ..req.clone()
    };
    let facts = DeviceFacts::from_request(&without_os);
    assert_eq!((facts.version_os, facts.install_source), ("", None));
}

// ---------- apply_change ----------

const NOW: i64 = 50_000;

fn channel(bundle_id: Option<i64>, rollout: Option<Rollout>) -> Channel {
    Channel {
        id: 1,
        app_id: "com.example.app".into(),
        name: "production".into(),
        bundle_id,
        public: true,
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
        targeting: Targeting::default(),
        rollout,
        auto_pause: Default::default(),
        ramp: Default::default(),
        created_at: 0,
        updated_at: 0,
    }
}

fn existing() -> Rollout {
    Rollout {
        bundle_id: 20,
        percentage_bps: 500,
        paused_at: None,
        rollout_id: "old-id".into(),
        started_at: 1_000,
        step_started_at: 2_000,
        targeting: Targeting {
            platforms: vec![Platform::Ios],
            ..Targeting::default()
        },
        auto_pause_triggered_at: Some(1_500),
    }
}

fn new_id() -> String {
    "new-id".to_string()
}

fn no_id() -> String {
    panic!("this change must not start a new rollout")
}

fn rollout_patch(rollout: Option<Rollout>) -> ChannelPatch {
    ChannelPatch {
        rollout: Some(rollout),
        ..ChannelPatch::default()
    }
}

fn change(
    channel: &Channel,
    change: RolloutChange,
    id: fn() -> String,
) -> Result<ChannelPatch, RolloutError> {
    apply_change(channel, change, NOW, id)
}

fn code(result: Result<ChannelPatch, RolloutError>) -> RolloutErrorCode {
    result.unwrap_err().code
}

#[test]
fn start_without_a_rollout_creates_one() {
    let patch = change(
        &channel(Some(10), None),
        RolloutChange::Start {
            bundle_id: 20,
            percentage_bps: 100,
        },
        new_id,
    )
    .unwrap();
    assert_eq!(
        patch,
        rollout_patch(Some(Rollout {
            bundle_id: 20,
            percentage_bps: 100,
            paused_at: None,
            rollout_id: "new-id".into(),
            started_at: NOW,
            step_started_at: NOW,
            targeting: Targeting::default(),
            auto_pause_triggered_at: None,
        }))
    );
}

#[test]
fn start_of_another_bundle_replaces_the_rollout_and_keeps_its_targeting() {
    let mut paused = existing();
    paused.paused_at = Some(3_000);
    let patch = change(
        &channel(Some(10), Some(paused)),
        RolloutChange::Start {
            bundle_id: 30,
            percentage_bps: 0,
        },
        new_id,
    )
    .unwrap();
    assert_eq!(
        patch,
        rollout_patch(Some(Rollout {
            bundle_id: 30,
            percentage_bps: 0,
            paused_at: None,
            rollout_id: "new-id".into(),
            started_at: NOW,
            step_started_at: NOW,
            targeting: existing().targeting,
            auto_pause_triggered_at: None,
        }))
    );
}

#[test]
fn start_of_the_current_rollout_bundle_sets_its_percentage() {
    let ch = channel(Some(10), Some(existing()));
    let raised = change(
        &ch,
        RolloutChange::Start {
            bundle_id: 20,
            percentage_bps: 2_500,
        },
        no_id,
    )
    .unwrap();
    assert_eq!(
        raised,
        rollout_patch(Some(Rollout {
            percentage_bps: 2_500,
            step_started_at: NOW,
            ..existing()
        }))
    );
    let same = change(
        &ch,
        RolloutChange::Start {
            bundle_id: 20,
            percentage_bps: 500,
        },
        no_id,
    )
    .unwrap();
    assert_eq!(same, rollout_patch(Some(existing())));
}

#[test]
fn start_errors() {
    let ch = channel(Some(10), Some(existing()));
    assert_eq!(
        code(change(
            &ch,
            RolloutChange::Start {
                bundle_id: 30,
                percentage_bps: 10_001
            },
            new_id
        )),
        RolloutErrorCode::InvalidPercentage
    );
    let same_as_stable = change(
        &ch,
        RolloutChange::Start {
            bundle_id: 10,
            percentage_bps: 100,
        },
        new_id,
    )
    .unwrap_err();
    assert_eq!(same_as_stable.code, RolloutErrorCode::RolloutSameAsStable);
    assert!(same_as_stable.message.contains("production"));
    // A builtin channel can roll out any bundle.
    assert!(change(
        &channel(None, None),
        RolloutChange::Start {
            bundle_id: 10,
            percentage_bps: 10_000
        },
        new_id
    )
    .is_ok());
}

#[test]
fn set_percentage_restarts_the_step_only_when_it_changes() {
    let ch = channel(Some(10), Some(existing()));
    assert_eq!(
        change(&ch, RolloutChange::SetPercentage(10_000), no_id).unwrap(),
        rollout_patch(Some(Rollout {
            percentage_bps: 10_000,
            step_started_at: NOW,
            ..existing()
        }))
    );
    assert_eq!(
        change(&ch, RolloutChange::SetPercentage(500), no_id).unwrap(),
        rollout_patch(Some(existing()))
    );
    assert_eq!(
        code(change(&ch, RolloutChange::SetPercentage(10_001), no_id)),
        RolloutErrorCode::InvalidPercentage
    );
    assert_eq!(
        code(change(
            &channel(Some(10), None),
            RolloutChange::SetPercentage(100),
            no_id
        )),
        RolloutErrorCode::NoRollout
    );
}

#[test]
fn set_targeting_replaces_the_rollouts_targeting() {
    let ch = channel(Some(10), Some(existing()));
    let targeting = Targeting {
        custom_ids: vec!["qa-anna".into()],
        ..Targeting::default()
    };
    assert_eq!(
        change(&ch, RolloutChange::SetTargeting(targeting.clone()), no_id).unwrap(),
        rollout_patch(Some(Rollout {
            targeting: targeting.clone(),
            ..existing()
        }))
    );
    assert_eq!(
        code(change(
            &channel(Some(10), None),
            RolloutChange::SetTargeting(targeting),
            no_id
        )),
        RolloutErrorCode::NoRollout
    );
}

#[test]
fn pause_and_resume_are_idempotent() {
    let running = channel(Some(10), Some(existing()));
    let paused_rollout = Rollout {
        paused_at: Some(NOW),
        ..existing()
    };
    assert_eq!(
        change(&running, RolloutChange::Pause, no_id).unwrap(),
        rollout_patch(Some(paused_rollout.clone()))
    );
    let earlier_pause = Rollout {
        paused_at: Some(4_000),
        ..existing()
    };
    let paused = channel(Some(10), Some(earlier_pause.clone()));
    assert_eq!(
        change(&paused, RolloutChange::Pause, no_id).unwrap(),
        rollout_patch(Some(earlier_pause))
    );
    assert_eq!(
        change(&paused, RolloutChange::Resume, no_id).unwrap(),
        rollout_patch(Some(existing()))
    );
    assert_eq!(
        change(&running, RolloutChange::Resume, no_id).unwrap(),
        rollout_patch(Some(existing()))
    );
    for c in [RolloutChange::Pause, RolloutChange::Resume] {
        assert_eq!(
            code(change(&channel(Some(10), None), c, no_id)),
            RolloutErrorCode::NoRollout
        );
    }
}

#[test]
fn promote_makes_the_rollout_bundle_stable_and_rollback_drops_it() {
    let ch = channel(Some(10), Some(existing()));
    assert_eq!(
        change(&ch, RolloutChange::Promote, no_id).unwrap(),
        ChannelPatch {
            bundle_id: Some(Some(20)),
            rollout: Some(None),
            ..ChannelPatch::default()
        }
    );
    assert_eq!(
        change(&ch, RolloutChange::Rollback, no_id).unwrap(),
        rollout_patch(None)
    );
    for c in [RolloutChange::Promote, RolloutChange::Rollback] {
        assert_eq!(
            code(change(&channel(Some(10), None), c, no_id)),
            RolloutErrorCode::NoRollout
        );
    }
}
