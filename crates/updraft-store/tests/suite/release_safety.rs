//! Release safety: the new channel fields, channel updates with their
//! history / decision / schedule / audit in one transaction, rollout health
//! from the per-minute rollups, decisions, schedules, and what deletes take along.

use super::{event, new_bundle, new_channel, record_stats, update_channel, APP, OTHER_APP};
use updraft_core::model::{
    AutoPauseAction, AutoPausePolicy, ChangeContext, Channel, ChannelPatch, Health, NativePackage,
    Platform, RampPlan, Rollout, RolloutDecision, ScheduleStatus, ScheduledAction, StatsEvent,
    Targeting, VersionRange,
};
use updraft_store::{
    AuditQuery, ChannelUpdate, Entity, NewAuditEntry, NewSchedule, StatsIngest, Store, StoreError,
};

/// 2026-01-01T00:00:00Z, a whole minute.
const T0: i64 = 1_767_225_600_000;
const MINUTE: i64 = 60_000;

fn range(text: &str) -> Option<VersionRange> {
    Some(VersionRange::parse(text).unwrap())
}

fn full_targeting() -> Targeting {
    Targeting {
        platforms: vec![Platform::Ios, Platform::Android],
        os_version: range(">=14"),
        native_version: range("^1.2.0"),
        plugin_version: range(">=6.0.0, <8"),
        install_sources: vec!["appstore".to_string(), "".to_string()],
        custom_ids: vec!["qa-1".to_string()],
        custom_id_prefix: Some("staff-".to_string()),
        device_ids: vec!["00000000-0000-0000-0000-000000000001".to_string()],
    }
}

fn rollout(bundle_id: i64, percentage_bps: u32, rollout_id: &str, at: i64) -> Rollout {
    Rollout {
        bundle_id,
        percentage_bps,
        paused_at: None,
        rollout_id: rollout_id.to_string(),
        started_at: at,
        step_started_at: at,
        targeting: Targeting::default(),
        auto_pause_triggered_at: None,
    }
}

fn change(at: i64, actor: &str, reason: &str) -> ChangeContext {
    ChangeContext {
        at,
        actor: actor.to_string(),
        reason: reason.to_string(),
    }
}

fn update(app_id: &str, channel: &str, patch: ChannelPatch, at: i64) -> ChannelUpdate {
    ChannelUpdate {
        app_id: app_id.to_string(),
        name: channel.to_string(),
        patch,
        change: change(at, "key:ci", "set"),
        expect_rollout_id: None,
        decision: None,
        completes_schedule: None,
        audit: None,
    }
}

fn decision(
    app_id: &str,
    channel: &str,
    rollout_id: &str,
    action: &str,
    at: i64,
) -> RolloutDecision {
    RolloutDecision {
        id: 0,
        app_id: app_id.to_string(),
        channel: channel.to_string(),
        rollout_id: rollout_id.to_string(),
        bundle: "1.1.0".to_string(),
        at,
        action: action.to_string(),
        reason: "healthy".to_string(),
        message: format!("{action} at {at}"),
        from_bps: 100,
        to_bps: 500,
        attempts: 240,
        failures: 3,
        failure_rate: Some(0.0125),
        wilson_lower_bound: Some(0.004_27),
        threshold_bps: 500,
    }
}

fn audit_entry(app_id: &str, action: &str, at: i64) -> NewAuditEntry {
    NewAuditEntry {
        at,
        actor: "key:ci".to_string(),
        api_key_id: Some(7),
        app_id: Some(app_id.to_string()),
        action: action.to_string(),
        target: "production".to_string(),
        before: Some(serde_json::json!({"bundle": "1.0.0"})),
        after: Some(serde_json::json!({"bundle": "1.1.0"})),
    }
}

fn schedule(app_id: &str, channel: &str, run_at: i64, action: ScheduledAction) -> NewSchedule {
    NewSchedule {
        app_id: app_id.to_string(),
        channel: channel.to_string(),
        run_at,
        action,
        accept_incompatible: false,
        created_by: "key:ci".to_string(),
        created_at: 1,
    }
}

fn set_bundle(name: &str) -> ScheduledAction {
    ScheduledAction::SetBundle {
        bundle: name.to_string(),
    }
}

/// How many history rows, decisions and audit entries the app has.
async fn counts<S: Store>(s: &S, app_id: &str, channel: &str) -> (usize, usize, usize) {
    (
        s.channel_history(app_id, channel, 1000)
            .await
            .unwrap()
            .len(),
        s.list_rollout_decisions(app_id, None, 1000)
            .await
            .unwrap()
            .len(),
        s.list_audit(&AuditQuery {
            app_id: Some(app_id.to_string()),
            limit: 1000,
            ..AuditQuery::default()
        })
        .await
        .unwrap()
        .len(),
    )
}

/// APP with bundles 1.0.0, 1.1.0, 2.0.0 (ids returned in that order) and
/// OTHER_APP with 3.0.0 (its id last).
async fn setup<S: Store>(s: &S) -> [i64; 4] {
    s.create_app(APP, "Example", 1).await.unwrap();
    s.create_app(OTHER_APP, "Other", 1).await.unwrap();
    let mut ids = [0; 4];
    for (i, name) in ["1.0.0", "1.1.0", "2.0.0"].iter().enumerate() {
        ids[i] = s.create_bundle(new_bundle(APP, name), 2).await.unwrap().id;
    }
    ids[3] = s
        .create_bundle(new_bundle(OTHER_APP, "3.0.0"), 2)
        .await
        .unwrap()
        .id;
    ids
}

pub async fn suite_release_fields_round_trip<S: Store>(s: &S) {
    let [stable, candidate, _, _] = setup(s).await;

    let mut with_packages = new_bundle(APP, "4.0.0");
    let packages = vec![
        NativePackage {
            name: "@capacitor/camera".to_string(),
            version: "6.0.1".to_string(),
            requested_version: Some("^6.0.0".to_string()),
        },
        NativePackage {
            name: "@capgo/capacitor-updater".to_string(),
            version: "7.2.0".to_string(),
            requested_version: None,
        },
    ];
    with_packages.native_packages = Some(packages.clone());
    let created = s.create_bundle(with_packages, 3).await.unwrap();
    assert_eq!(created.native_packages, Some(packages.clone()));
    let mut empty = new_bundle(APP, "4.0.1");
    empty.native_packages = Some(Vec::new());
    s.create_bundle(empty, 3).await.unwrap();
    assert_eq!(
        s.get_bundle(APP, "4.0.0")
            .await
            .unwrap()
            .unwrap()
            .native_packages,
        Some(packages)
    );
    assert_eq!(
        s.get_bundle(APP, "4.0.1")
            .await
            .unwrap()
            .unwrap()
            .native_packages,
        Some(Vec::new()),
        "an empty scan is known, not unknown"
    );
    assert_eq!(
        s.get_bundle(APP, "1.0.0")
            .await
            .unwrap()
            .unwrap()
            .native_packages,
        None
    );

    let mut running = rollout(candidate, 2_500, "r-1", 50);
    running.paused_at = Some(70);
    running.step_started_at = 60;
    running.targeting = Targeting {
        platforms: vec![Platform::Electron],
        custom_id_prefix: Some("beta-".to_string()),
        ..Targeting::default()
    };
    running.auto_pause_triggered_at = Some(65);
    let policy = AutoPausePolicy {
        enabled: true,
        window_minutes: 15,
        failure_rate_bps: 250,
        confidence: 0.99,
        min_attempts: 40,
        min_failures: 3,
        action: AutoPauseAction::Rollback,
        cooldown_minutes: 5,
    };
    let ramp = RampPlan {
        enabled: true,
        steps_bps: vec![200, 1_000, 10_000],
        min_dwell_minutes: 30,
        min_attempts: 50,
        promote_at_end: false,
    };
    let created = s
        .create_channel(
            new_channel(
                APP,
                "production",
                ChannelPatch {
                    bundle_id: Some(Some(stable)),
                    targeting: Some(full_targeting()),
                    rollout: Some(Some(running.clone())),
                    auto_pause: Some(policy.clone()),
                    ramp: Some(ramp.clone()),
                    ..ChannelPatch::default()
                },
            ),
            100,
        )
        .await
        .unwrap();
    assert_eq!(created.targeting, full_targeting());
    assert_eq!(created.rollout, Some(running.clone()));
    assert_eq!(created.auto_pause, policy);
    assert_eq!(created.ramp, ramp);
    let fetched = s.get_channel(APP, "production").await.unwrap().unwrap();
    assert_eq!(fetched, created);
    assert_eq!(s.list_channels(APP).await.unwrap(), vec![created.clone()]);

    // A channel created without them reads the defaults.
    let plain = s
        .create_channel(new_channel(APP, "beta", ChannelPatch::default()), 100)
        .await
        .unwrap();
    assert_eq!(plain.targeting, Targeting::default());
    assert_eq!(plain.rollout, None);
    assert_eq!(plain.auto_pause, AutoPausePolicy::default());
    assert_eq!(plain.ramp, RampPlan::default());

    // The release carries the rollout bundle, also once it is deleted.
    s.delete_bundle(APP, "1.1.0", 120).await.unwrap();
    let release = s.load_release(APP).await.unwrap();
    assert_eq!(release.channel_by_id(created.id), Some(&created));
    let rollout_bundle = release.bundle(candidate).expect("rollout bundle loaded");
    assert_eq!(rollout_bundle.name, "1.1.0");
    assert!(rollout_bundle.deleted);
    assert_eq!(release.bundle(stable).unwrap().name, "1.0.0");
    assert_eq!(release.bundles.len(), 2);

    // Each field can be changed alone and put back to its default.
    let reset = update_channel(
        s,
        APP,
        "production",
        ChannelPatch {
            targeting: Some(Targeting::default()),
            rollout: Some(None),
            ..ChannelPatch::default()
        },
        130,
    )
    .await
    .unwrap();
    assert_eq!(reset.targeting, Targeting::default());
    assert_eq!(reset.rollout, None);
    assert_eq!(reset.auto_pause, policy, "untouched");
    assert_eq!(reset.ramp, ramp, "untouched");
    assert_eq!(reset.bundle_id, Some(stable));
    assert_eq!(reset.updated_at, 130);
    assert_eq!(
        s.get_channel(APP, "production").await.unwrap().unwrap(),
        reset
    );
    assert_eq!(s.load_release(APP).await.unwrap().bundles.len(), 1);
}

pub async fn suite_channel_history<S: Store>(s: &S) {
    let [stable, candidate, next, _] = setup(s).await;
    s.create_channel(
        new_channel(
            APP,
            "production",
            ChannelPatch {
                bundle_id: Some(Some(stable)),
                ..ChannelPatch::default()
            },
        ),
        100,
    )
    .await
    .unwrap();
    s.create_channel(new_channel(APP, "beta", ChannelPatch::default()), 100)
        .await
        .unwrap();
    assert!(
        s.channel_history(APP, "beta", 10).await.unwrap().is_empty(),
        "a channel created on builtin has no history"
    );
    let first = s.channel_history(APP, "production", 10).await.unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(
        (
            first[0].bundle.as_str(),
            first[0].actor.as_str(),
            first[0].reason.as_str(),
            first[0].at
        ),
        ("1.0.0", "system", "create", 100)
    );
    assert_eq!(first[0].rollout_bundle, None);

    // Settings that do not change what devices get write no history.
    let mut settings = update(
        APP,
        "production",
        ChannelPatch {
            public: Some(true),
            targeting: Some(full_targeting()),
            auto_pause: Some(AutoPausePolicy {
                enabled: true,
                ..AutoPausePolicy::default()
            }),
            bundle_id: Some(Some(stable)),
            ..ChannelPatch::default()
        },
        110,
    );
    settings.audit = Some(audit_entry(APP, "channel.update", 110));
    s.apply_channel_update(settings).await.unwrap();
    assert_eq!(counts(s, APP, "production").await, (1, 0, 1));

    let steps: Vec<(ChannelPatch, &str)> = vec![
        (
            ChannelPatch {
                rollout: Some(Some(rollout(candidate, 100, "r-1", 200))),
                ..ChannelPatch::default()
            },
            "rollout_start",
        ),
        (
            ChannelPatch {
                rollout: Some(Some(rollout(candidate, 500, "r-1", 200))),
                ..ChannelPatch::default()
            },
            "ramp",
        ),
        (
            ChannelPatch {
                rollout: Some(Some(Rollout {
                    paused_at: Some(400),
                    ..rollout(candidate, 500, "r-1", 200)
                })),
                ..ChannelPatch::default()
            },
            "pause",
        ),
    ];
    for (i, (patch, reason)) in steps.into_iter().enumerate() {
        let at = 200 + 100 * i as i64;
        let mut step = update(APP, "production", patch, at);
        step.change = change(at, "control-loop", reason);
        s.apply_channel_update(step).await.unwrap();
    }
    // Only the rollout's targeting or step time: no history.
    let mut quiet = rollout(candidate, 500, "r-1", 200);
    quiet.paused_at = Some(400);
    quiet.step_started_at = 450;
    quiet.targeting = full_targeting();
    s.apply_channel_update(update(
        APP,
        "production",
        ChannelPatch {
            rollout: Some(Some(quiet)),
            ..ChannelPatch::default()
        },
        450,
    ))
    .await
    .unwrap();
    // Promote: the rollout bundle becomes stable, the rollout ends.
    let mut promote = update(
        APP,
        "production",
        ChannelPatch {
            bundle_id: Some(Some(candidate)),
            rollout: Some(None),
            ..ChannelPatch::default()
        },
        500,
    );
    promote.change = change(500, "key:ci", "promote");
    s.apply_channel_update(promote).await.unwrap();
    // Back to builtin through the plain update path.
    update_channel(
        s,
        APP,
        "production",
        ChannelPatch {
            bundle_id: Some(None),
            ..ChannelPatch::default()
        },
        600,
    )
    .await
    .unwrap();

    let history = s.channel_history(APP, "production", 100).await.unwrap();
    let summary: Vec<_> = history
        .iter()
        .map(|h| {
            (
                h.bundle.as_str(),
                h.rollout_bundle.as_deref(),
                h.rollout_percentage_bps,
                h.rollout_paused,
                h.at,
                h.actor.as_str(),
                h.reason.as_str(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            ("builtin", None, None, false, 600, "system", "update"),
            ("1.1.0", None, None, false, 500, "key:ci", "promote"),
            (
                "1.0.0",
                Some("1.1.0"),
                Some(500),
                true,
                400,
                "control-loop",
                "pause"
            ),
            (
                "1.0.0",
                Some("1.1.0"),
                Some(500),
                false,
                300,
                "control-loop",
                "ramp"
            ),
            (
                "1.0.0",
                Some("1.1.0"),
                Some(100),
                false,
                200,
                "control-loop",
                "rollout_start"
            ),
            ("1.0.0", None, None, false, 100, "system", "create"),
        ]
    );
    assert!(history.windows(2).all(|w| w[0].id > w[1].id));
    assert!(history
        .iter()
        .all(|h| h.app_id == APP && h.channel == "production"));
    let newest_two = s.channel_history(APP, "production", 2).await.unwrap();
    assert_eq!(newest_two, history[..2].to_vec());
    assert!(s.channel_history(APP, "beta", 10).await.unwrap().is_empty());
    assert!(s
        .channel_history(OTHER_APP, "production", 10)
        .await
        .unwrap()
        .is_empty());

    // A new rollout of another bundle is a release change too.
    s.apply_channel_update(update(
        APP,
        "production",
        ChannelPatch {
            rollout: Some(Some(rollout(next, 0, "r-2", 700))),
            ..ChannelPatch::default()
        },
        700,
    ))
    .await
    .unwrap();
    let newest = &s.channel_history(APP, "production", 1).await.unwrap()[0];
    assert_eq!(
        (
            newest.bundle.as_str(),
            newest.rollout_bundle.as_deref(),
            newest.rollout_percentage_bps
        ),
        ("builtin", Some("2.0.0"), Some(0))
    );
}

pub async fn suite_channel_update_is_atomic<S: Store>(s: &S) {
    let [stable, candidate, next, foreign] = setup(s).await;
    s.create_channel(
        new_channel(
            APP,
            "production",
            ChannelPatch {
                bundle_id: Some(Some(stable)),
                ..ChannelPatch::default()
            },
        ),
        100,
    )
    .await
    .unwrap();
    let pending = s
        .create_schedule(schedule(
            APP,
            "production",
            150,
            ScheduledAction::StartRollout {
                bundle: "1.1.0".to_string(),
                percentage_bps: 100,
            },
        ))
        .await
        .unwrap();

    // The schedule starts a rollout, with its decision and audit entry.
    let mut start = update(
        APP,
        "production",
        ChannelPatch {
            rollout: Some(Some(rollout(candidate, 100, "r-1", 200))),
            ..ChannelPatch::default()
        },
        200,
    );
    start.change = change(200, &format!("schedule:{}", pending.id), "schedule");
    start.expect_rollout_id = Some(None);
    start.decision = Some(decision(APP, "production", "r-1", "advanced", 200));
    start.completes_schedule = Some(pending.id);
    start.audit = Some(audit_entry(APP, "channel.release", 200));
    let started = s.apply_channel_update(start.clone()).await.unwrap();
    assert_eq!(started.rollout, Some(rollout(candidate, 100, "r-1", 200)));
    assert_eq!(counts(s, APP, "production").await, (2, 1, 1));
    let done = s.get_schedule(APP, pending.id).await.unwrap().unwrap();
    assert_eq!(done.status, ScheduleStatus::Done);
    assert_eq!(done.executed_at, Some(200));
    let stored = &s.list_rollout_decisions(APP, None, 10).await.unwrap()[0];
    assert!(stored.id > 0);
    assert_eq!(
        RolloutDecision {
            id: 0,
            ..stored.clone()
        },
        decision(APP, "production", "r-1", "advanced", 200)
    );
    let audited = &s.list_audit(&AuditQuery::default()).await.unwrap()[0];
    assert_eq!(audited.action, "channel.release");
    assert_eq!(audited.after, Some(serde_json::json!({"bundle": "1.1.0"})));

    // Each refusal leaves the channel and every table as they were.
    let before = s.get_channel(APP, "production").await.unwrap().unwrap();
    let before_counts = counts(s, APP, "production").await;
    let refusals: Vec<(ChannelUpdate, &str)> = {
        let mut stale = start.clone();
        stale.completes_schedule = None;
        stale.patch = ChannelPatch {
            rollout: Some(None),
            bundle_id: Some(Some(next)),
            ..ChannelPatch::default()
        };
        stale.expect_rollout_id = Some(Some("r-0".to_string()));
        let mut no_rollout_expected = stale.clone();
        no_rollout_expected.expect_rollout_id = Some(None);
        let mut schedule_again = start.clone();
        schedule_again.expect_rollout_id = None;
        schedule_again.patch = ChannelPatch {
            bundle_id: Some(Some(next)),
            ..ChannelPatch::default()
        };
        let mut unknown_schedule = schedule_again.clone();
        unknown_schedule.completes_schedule = Some(pending.id + 1000);
        let mut foreign_rollout = start.clone();
        foreign_rollout.expect_rollout_id = None;
        foreign_rollout.completes_schedule = None;
        foreign_rollout.patch = ChannelPatch {
            rollout: Some(Some(rollout(foreign, 100, "r-9", 300))),
            ..ChannelPatch::default()
        };
        let mut foreign_stable = foreign_rollout.clone();
        foreign_stable.patch = ChannelPatch {
            bundle_id: Some(Some(foreign)),
            ..ChannelPatch::default()
        };
        let mut too_much = foreign_rollout.clone();
        too_much.patch = ChannelPatch {
            rollout: Some(Some(rollout(next, 10_001, "r-9", 300))),
            ..ChannelPatch::default()
        };
        vec![
            (stale, "conflict"),
            (no_rollout_expected, "conflict"),
            (schedule_again, "conflict"),
            (unknown_schedule, "conflict"),
            (foreign_rollout, "invalid"),
            (foreign_stable, "invalid"),
            (too_much, "invalid"),
        ]
    };
    for (i, (refused, kind)) in refusals.into_iter().enumerate() {
        let result = s.apply_channel_update(refused).await;
        match kind {
            "conflict" => assert!(
                matches!(result, Err(StoreError::Conflict(_))),
                "refusal {i}: {result:?}"
            ),
            _ => assert!(
                matches!(result, Err(StoreError::Invalid(_))),
                "refusal {i}: {result:?}"
            ),
        }
        assert_eq!(
            s.get_channel(APP, "production").await.unwrap().unwrap(),
            before,
            "refusal {i} changed the channel"
        );
        assert_eq!(
            counts(s, APP, "production").await,
            before_counts,
            "refusal {i} wrote something"
        );
    }
    assert!(matches!(
        s.apply_channel_update(update(APP, "nightly", ChannelPatch::default(), 300))
            .await,
        Err(StoreError::NotFound(Entity::Channel))
    ));

    // A new rollout cannot use a deleted bundle, but the running one can
    // still be paused after its bundle was deleted.
    s.delete_bundle(APP, "2.0.0", 310).await.unwrap();
    assert!(matches!(
        s.apply_channel_update(update(
            APP,
            "production",
            ChannelPatch {
                rollout: Some(Some(rollout(next, 100, "r-2", 320))),
                ..ChannelPatch::default()
            },
            320
        ))
        .await,
        Err(StoreError::Invalid(_))
    ));
    s.delete_bundle(APP, "1.1.0", 330).await.unwrap();
    let mut pause = update(
        APP,
        "production",
        ChannelPatch {
            rollout: Some(Some(Rollout {
                paused_at: Some(340),
                ..rollout(candidate, 100, "r-1", 200)
            })),
            ..ChannelPatch::default()
        },
        340,
    );
    pause.expect_rollout_id = Some(Some("r-1".to_string()));
    let paused = s.apply_channel_update(pause).await.unwrap();
    assert_eq!(paused.rollout.unwrap().paused_at, Some(340));
}

fn arriving(device: &str, action: &str, version_name: &str, received_at: i64) -> StatsEvent {
    let mut e = event(APP, device, action, received_at - 3_600_000);
    e.version_name = version_name.to_string();
    e.received_at = received_at;
    e
}

pub async fn suite_rollout_health<S: Store>(s: &S) {
    s.create_app(APP, "Example", 1).await.unwrap();
    let prod = Some("production".to_string());
    let events = vec![
        arriving("d1", "set", "1.1.0", T0 + 10_000),
        arriving("d2", "update_fail", "1.1.0", T0 + MINUTE - 1),
        arriving(
            "d3",
            "download_manifest_file_fail",
            "1.1.0:assets/a.js",
            T0 + MINUTE,
        ),
        arriving("d4", "set", "1.1.0", T0 + 2 * MINUTE + 5_000),
        // Not counted: other actions, another bundle, another channel.
        arriving("d5", "get", "1.1.0", T0 + 10_000),
        // Ends in _fail but is no plugin action: its rollup is "other".
        arriving("d6", "custom_thing_fail", "1.1.0", T0 + 10_000),
        arriving("d7", "set", "1.0.0", T0 + 10_000),
        arriving("d8", "set", "1.1.0", T0 + 10_000),
        arriving("d9", "checksum_fail", "1.1.0", T0 + 10_000),
    ];
    let channels = vec![
        prod.clone(),
        prod.clone(),
        prod.clone(),
        prod.clone(),
        prod.clone(),
        prod.clone(),
        prod.clone(),
        Some("beta".to_string()),
        None,
    ];
    s.ingest_stats(StatsIngest {
        events: &events,
        channels: &channels,
        sightings: &[],
        active_devices_since: 0,
        max_bundles_per_day: 0,
    })
    .await
    .unwrap();
    let health = |since: i64, until: i64| {
        let s = &s;
        async move {
            s.rollout_health(APP, "production", "1.1.0", since, until)
                .await
                .unwrap()
        }
    };
    let h = |installs, failures| Health { installs, failures };
    assert_eq!(health(T0, T0 + 3 * MINUTE).await, h(2, 2));
    // The minute `since` falls in counts whole.
    assert_eq!(health(T0 + 30_000, T0 + 3 * MINUTE).await, h(2, 2));
    assert_eq!(health(T0 + MINUTE - 1, T0 + 3 * MINUTE).await, h(2, 2));
    assert_eq!(health(T0 + MINUTE, T0 + 3 * MINUTE).await, h(1, 1));
    // A minute starting at or after `until` does not.
    assert_eq!(health(T0, T0 + MINUTE).await, h(1, 1));
    assert_eq!(health(T0, T0 + MINUTE + 1).await, h(1, 2));
    assert_eq!(health(T0 + MINUTE, T0 + 2 * MINUTE).await, h(0, 1));
    assert_eq!(health(T0 + 3 * MINUTE, T0 + 60 * MINUTE).await, h(0, 0));
    assert_eq!(
        s.rollout_health(APP, "beta", "1.1.0", T0, T0 + 3 * MINUTE)
            .await
            .unwrap(),
        h(1, 0)
    );
    assert_eq!(
        s.rollout_health(APP, "production", "1.0.0", T0, T0 + 3 * MINUTE)
            .await
            .unwrap(),
        h(1, 0)
    );
    assert_eq!(
        s.rollout_health(APP, "", "1.1.0", T0, T0 + 3 * MINUTE)
            .await
            .unwrap(),
        h(0, 1),
        "unattributed events count under ''"
    );
    assert_eq!(
        s.rollout_health(OTHER_APP, "production", "1.1.0", T0, T0 + 3 * MINUTE)
            .await
            .unwrap(),
        h(0, 0)
    );

    // Later commits add to the same minute; record_stats counts too (channel '').
    s.ingest_stats(StatsIngest {
        events: &[
            arriving("d1", "set", "1.1.0", T0 + 20_000),
            arriving("d2", "set", "1.1.0", T0 + 20_000),
        ],
        channels: &[prod.clone(), prod.clone()],
        sightings: &[],
        active_devices_since: 0,
        max_bundles_per_day: 0,
    })
    .await
    .unwrap();
    assert_eq!(health(T0, T0 + MINUTE).await, h(3, 1));
    record_stats(s, &[arriving("d1", "set", "1.1.0", T0 + 20_000)], &[])
        .await
        .unwrap();
    assert_eq!(
        s.rollout_health(APP, "", "1.1.0", T0, T0 + MINUTE)
            .await
            .unwrap(),
        h(1, 1)
    );

    // Retention drops whole minutes before the cut: minute 0 here.
    // Minute 0 has four keys: production/1.1.0, production/1.0.0, beta/1.1.0, ''/1.1.0.
    let deleted = s.delete_health_before(T0 + MINUTE + 1, 1000).await.unwrap();
    assert_eq!(deleted, 4);
    assert_eq!(health(T0, T0 + 3 * MINUTE).await, h(1, 1));
    assert_eq!(
        s.delete_health_before(T0 + MINUTE + 1, 1000).await.unwrap(),
        0
    );
    assert_eq!(s.delete_health_before(T0 + 3 * MINUTE, 1).await.unwrap(), 1);
    assert_eq!(s.delete_health_before(T0 + 3 * MINUTE, 1).await.unwrap(), 1);
    assert_eq!(health(T0, T0 + 3 * MINUTE).await, h(0, 0));
}

pub async fn suite_rollout_decisions<S: Store>(s: &S) {
    s.create_app(APP, "Example", 1).await.unwrap();
    let first = s
        .record_rollout_decision(decision(APP, "production", "r-1", "held", 10))
        .await
        .unwrap();
    assert!(first.id > 0);
    assert_eq!(
        RolloutDecision {
            id: 0,
            ..first.clone()
        },
        decision(APP, "production", "r-1", "held", 10)
    );
    let mut unknown_rates = decision(APP, "beta", "r-2", "notified", 20);
    unknown_rates.failure_rate = None;
    unknown_rates.wilson_lower_bound = None;
    let second = s.record_rollout_decision(unknown_rates).await.unwrap();
    let third = s
        .record_rollout_decision(decision(APP, "production", "r-1", "advanced", 30))
        .await
        .unwrap();
    s.record_rollout_decision(decision(OTHER_APP, "production", "r-1", "held", 40))
        .await
        .unwrap();
    assert!(second.id > first.id && third.id > second.id);
    assert_eq!(second.failure_rate, None);
    assert_eq!(second.wilson_lower_bound, None);

    assert_eq!(
        s.list_rollout_decisions(APP, None, 10).await.unwrap(),
        vec![third.clone(), second.clone(), first.clone()]
    );
    assert_eq!(
        s.list_rollout_decisions(APP, Some("production"), 10)
            .await
            .unwrap(),
        vec![third.clone(), first]
    );
    assert_eq!(
        s.list_rollout_decisions(APP, Some("production"), 1)
            .await
            .unwrap(),
        vec![third]
    );
    assert!(s
        .list_rollout_decisions(APP, Some("nightly"), 10)
        .await
        .unwrap()
        .is_empty());
}

pub async fn suite_schedules<S: Store>(s: &S) {
    setup(s).await;
    for (app, name) in [
        (APP, "production"),
        (APP, "beta"),
        (OTHER_APP, "production"),
    ] {
        s.create_channel(new_channel(app, name, ChannelPatch::default()), 5)
            .await
            .unwrap();
    }
    let late = s
        .create_schedule(schedule(APP, "production", 300, set_bundle("1.1.0")))
        .await
        .unwrap();
    let early = s
        .create_schedule(schedule(
            APP,
            "beta",
            100,
            ScheduledAction::StartRollout {
                bundle: "2.0.0".to_string(),
                percentage_bps: 250,
            },
        ))
        .await
        .unwrap();
    let middle = s
        .create_schedule(NewSchedule {
            accept_incompatible: true,
            ..schedule(APP, "production", 200, set_bundle("2.0.0"))
        })
        .await
        .unwrap();
    let other = s
        .create_schedule(schedule(OTHER_APP, "production", 150, set_bundle("3.0.0")))
        .await
        .unwrap();
    assert_eq!(early.status, ScheduleStatus::Pending);
    assert_eq!(
        early.action,
        ScheduledAction::StartRollout {
            bundle: "2.0.0".to_string(),
            percentage_bps: 250
        }
    );
    assert!(middle.accept_incompatible && !late.accept_incompatible);
    assert_eq!((early.executed_at, early.result.clone()), (None, None));
    assert_eq!(
        (early.created_by.as_str(), early.created_at, early.run_at),
        ("key:ci", 1, 100)
    );
    assert!(matches!(
        s.create_schedule(schedule(APP, "nightly", 100, set_bundle("1.1.0")))
            .await,
        Err(StoreError::NotFound(Entity::Channel))
    ));

    assert_eq!(
        s.list_schedules(APP, None).await.unwrap(),
        vec![early.clone(), middle.clone(), late.clone()]
    );
    assert_eq!(
        s.list_schedules(APP, Some("production")).await.unwrap(),
        vec![middle.clone(), late.clone()]
    );
    assert_eq!(
        s.get_schedule(APP, late.id).await.unwrap(),
        Some(late.clone())
    );
    assert_eq!(s.get_schedule(OTHER_APP, late.id).await.unwrap(), None);

    // Due: every app, oldest run_at first, nothing in the future.
    let due_ids = |due: Vec<updraft_core::model::ScheduledRelease>| {
        due.into_iter().map(|d| d.id).collect::<Vec<_>>()
    };
    assert_eq!(
        due_ids(s.due_schedules(200, 10).await.unwrap()),
        vec![early.id, other.id, middle.id]
    );
    assert_eq!(
        due_ids(s.due_schedules(200, 2).await.unwrap()),
        vec![early.id, other.id]
    );
    assert!(s.due_schedules(99, 10).await.unwrap().is_empty());

    // Cancel: pending only, own app only.
    let cancelled = s.cancel_schedule(APP, middle.id, 180).await.unwrap();
    assert_eq!(cancelled.status, ScheduleStatus::Cancelled);
    assert_eq!(cancelled.executed_at, Some(180));
    assert!(matches!(
        s.cancel_schedule(APP, middle.id, 181).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        s.cancel_schedule(OTHER_APP, late.id, 181).await,
        Err(StoreError::NotFound(Entity::Schedule))
    ));
    assert!(matches!(
        s.cancel_schedule(APP, other.id + 1000, 181).await,
        Err(StoreError::NotFound(Entity::Schedule))
    ));

    // Finish: once.
    assert!(s
        .finish_schedule(
            early.id,
            ScheduleStatus::Failed,
            "bundle 2.0.0 is deleted",
            210
        )
        .await
        .unwrap());
    assert!(!s
        .finish_schedule(early.id, ScheduleStatus::Done, "again", 211)
        .await
        .unwrap());
    assert!(!s
        .finish_schedule(middle.id, ScheduleStatus::Done, "cancelled one", 211)
        .await
        .unwrap());
    let failed = s.get_schedule(APP, early.id).await.unwrap().unwrap();
    assert_eq!(failed.status, ScheduleStatus::Failed);
    assert_eq!(failed.result.as_deref(), Some("bundle 2.0.0 is deleted"));
    assert_eq!(failed.executed_at, Some(210));
    assert_eq!(
        due_ids(s.due_schedules(1_000, 10).await.unwrap()),
        vec![other.id, late.id]
    );
    assert_eq!(
        s.get_schedule(APP, middle.id)
            .await
            .unwrap()
            .unwrap()
            .status,
        ScheduleStatus::Cancelled,
        "finishing a cancelled schedule changed nothing"
    );
}

/// Fills one channel of `app_id` with a history row, a decision, health and
/// a schedule, plus an audit entry of the app.
async fn fill<S: Store>(s: &S, app_id: &str, channel: &str, bundle_id: i64) {
    s.create_channel(
        new_channel(
            app_id,
            channel,
            ChannelPatch {
                bundle_id: Some(Some(bundle_id)),
                ..ChannelPatch::default()
            },
        ),
        10,
    )
    .await
    .unwrap();
    s.record_rollout_decision(decision(app_id, channel, "r-1", "held", 11))
        .await
        .unwrap();
    let mut e = arriving("d1", "set", "1.0.0", T0);
    e.app_id = app_id.to_string();
    s.ingest_stats(StatsIngest {
        events: &[e],
        channels: &[Some(channel.to_string())],
        sightings: &[],
        active_devices_since: 0,
        max_bundles_per_day: 0,
    })
    .await
    .unwrap();
    s.create_schedule(schedule(app_id, channel, 500, set_bundle("1.0.0")))
        .await
        .unwrap();
    s.record_audit(audit_entry(app_id, "channel.create", 12))
        .await
        .unwrap();
}

/// (history, decisions, health installs, schedules) of one channel.
async fn channel_rows<S: Store>(s: &S, app_id: &str, channel: &str) -> (usize, usize, i64, usize) {
    (
        s.channel_history(app_id, channel, 100).await.unwrap().len(),
        s.list_rollout_decisions(app_id, Some(channel), 100)
            .await
            .unwrap()
            .len(),
        s.rollout_health(app_id, channel, "1.0.0", T0, T0 + MINUTE)
            .await
            .unwrap()
            .installs,
        s.list_schedules(app_id, Some(channel)).await.unwrap().len(),
    )
}

pub async fn suite_deletes_take_release_rows<S: Store>(s: &S) {
    let [stable, _, _, foreign] = setup(s).await;
    fill(s, APP, "production", stable).await;
    fill(s, APP, "beta", stable).await;
    fill(s, OTHER_APP, "production", foreign).await;
    for (app, channel) in [
        (APP, "production"),
        (APP, "beta"),
        (OTHER_APP, "production"),
    ] {
        assert_eq!(
            channel_rows(s, app, channel).await,
            (1, 1, 1, 1),
            "{app} {channel}"
        );
    }

    s.delete_channel(APP, "beta").await.unwrap();
    assert_eq!(channel_rows(s, APP, "beta").await, (0, 0, 0, 0));
    assert_eq!(channel_rows(s, APP, "production").await, (1, 1, 1, 1));

    s.delete_app(APP, 100).await.unwrap();
    assert_eq!(channel_rows(s, APP, "production").await, (0, 0, 0, 0));
    assert_eq!(channel_rows(s, OTHER_APP, "production").await, (1, 1, 1, 1));
    // The audit log keeps what happened to the deleted app.
    let kept = s
        .list_audit(&AuditQuery {
            app_id: Some(APP.to_string()),
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(kept.len(), 2);

    // The same names start clean.
    s.create_app(APP, "Again", 20).await.unwrap();
    let bundle = s.create_bundle(new_bundle(APP, "1.0.0"), 21).await.unwrap();
    s.create_channel(new_channel(APP, "production", ChannelPatch::default()), 22)
        .await
        .unwrap();
    assert_eq!(channel_rows(s, APP, "production").await, (0, 0, 0, 0));
    let channel: Channel = update_channel(
        s,
        APP,
        "production",
        ChannelPatch {
            bundle_id: Some(Some(bundle.id)),
            ..ChannelPatch::default()
        },
        23,
    )
    .await
    .unwrap();
    assert_eq!(channel.bundle_id, Some(bundle.id));
    assert_eq!(channel_rows(s, APP, "production").await, (1, 0, 0, 0));
}
