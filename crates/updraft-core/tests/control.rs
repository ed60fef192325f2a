//! The rollout control loop's pure decision (release-overview.md "Auto-pause",
//! "Ramp"; `updraft_core::control`).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is its failure report

use updraft_core::control::{
    evaluate, health_windows, two_sided_z, wilson_lower_bound, ControlAction, ControlInput,
    ControlOutcome,
};
use updraft_core::model::{
    AutoPauseAction, AutoPausePolicy, AutoUpdatePolicy, Channel, Health, Millis, RampPlan, Rollout,
    Targeting,
};

const MINUTE: Millis = 60_000;
const START: Millis = 1_700_000_000_000;

fn close(actual: f64, expected: f64, tolerance: f64) -> bool {
    (actual - expected).abs() <= tolerance
}

// ---------- statistics ----------

#[test]
fn two_sided_z_matches_normal_quantiles() {
    // Reference values: Python statistics.NormalDist().inv_cdf((1 + c) / 2).
    let cases = [
        (0.90, 1.644_853_626_951_471_5),
        (0.95, 1.959_963_984_540_053_6),
        (0.99, 2.575_829_303_548_9),
        (0.999, 3.290_526_731_491_925_5),
        (0.50, 0.674_489_750_196_081_7),
    ];
    for (confidence, z) in cases {
        let got = two_sided_z(confidence).unwrap();
        assert!(close(got, z, 1e-7), "{confidence}: {got} vs {z}");
    }
    for bad in [0.0, 1.0, -0.5, 1.5, f64::NAN] {
        assert_eq!(two_sided_z(bad), None, "{bad}");
    }
}

#[test]
fn wilson_lower_bound_known_values() {
    // Reference values computed independently (Python, exact quantiles).
    let cases = [
        (10, 100, 0.95, 0.055_229_137),
        (30, 100, 0.95, 0.218_948_853),
        (4, 100, 0.95, 0.015_663_304),
        (5, 100, 0.95, 0.021_543_679),
        (3, 20, 0.95, 0.052_368_746),
        (50, 1_000, 0.99, 0.035_025_076),
        (9, 100, 0.90, 0.053_112_782),
        (100, 100, 0.95, 0.963_006_502),
        (1, 1, 0.95, 0.206_549_314),
        (0, 100, 0.95, 0.0),
    ];
    for (failures, attempts, confidence, expected) in cases {
        let got = wilson_lower_bound(failures, attempts, confidence).unwrap();
        assert!(
            close(got, expected, 1e-6),
            "{failures}/{attempts} at {confidence}: {got} vs {expected}"
        );
    }
    assert_eq!(wilson_lower_bound(0, 0, 0.95), None);
    assert_eq!(wilson_lower_bound(3, 10, 1.0), None);
}

// ---------- fixtures ----------

fn channel(auto_pause: AutoPausePolicy, ramp: RampPlan) -> Channel {
    Channel {
        id: 1,
        app_id: "com.example.app".into(),
        name: "production".into(),
        bundle_id: Some(10),
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
        rollout: None,
        auto_pause,
        ramp,
        created_at: 0,
        updated_at: 0,
    }
}

fn auto_pause_on(action: AutoPauseAction) -> AutoPausePolicy {
    AutoPausePolicy {
        enabled: true,
        action,
        ..AutoPausePolicy::default()
    }
}

fn ramp_on() -> RampPlan {
    RampPlan {
        enabled: true,
        ..RampPlan::default()
    }
}

fn rollout(percentage_bps: u32) -> Rollout {
    Rollout {
        bundle_id: 20,
        percentage_bps,
        paused_at: None,
        rollout_id: "rollout-1".into(),
        started_at: START,
        step_started_at: START,
        targeting: Targeting::default(),
        auto_pause_triggered_at: None,
    }
}

fn health(installs: i64, failures: i64) -> Health {
    Health { installs, failures }
}

fn run(
    channel: &Channel,
    rollout: &Rollout,
    now: Millis,
    window: Health,
    step: Health,
) -> Option<ControlOutcome> {
    evaluate(&ControlInput {
        channel,
        rollout,
        now,
        window_health: window,
        step_health: step,
    })
}

/// (action, reason, from, to, attempts, failures)
fn summary(outcome: &ControlOutcome) -> (ControlAction, &'static str, u32, u32, i64, i64) {
    (
        outcome.action,
        outcome.reason,
        outcome.from_bps,
        outcome.to_bps,
        outcome.attempts,
        outcome.failures,
    )
}

// ---------- ramp ----------

#[test]
fn a_rollout_at_zero_takes_the_first_ramp_step_at_once() {
    let ch = channel(AutoPausePolicy::default(), ramp_on());
    let r = rollout(0);
    let outcome = run(&ch, &r, START, health(0, 0), health(0, 0)).unwrap();
    assert_eq!(
        summary(&outcome),
        (
            ControlAction::Advance { to_bps: 100 },
            "ramp_start",
            0,
            100,
            0,
            0
        )
    );
}

#[test]
fn healthy_ramp_advances_step_by_step_then_promotes() {
    let ch = channel(auto_pause_on(AutoPauseAction::Pause), ramp_on());
    let mut r = rollout(100);
    let mut now = START;
    let mut path = Vec::new();
    for _ in 0..4 {
        now += 60 * MINUTE;
        let outcome = run(&ch, &r, now, health(400, 3), health(198, 2)).unwrap();
        path.push(summary(&outcome));
        match outcome.action {
            ControlAction::Advance { to_bps } => {
                r.percentage_bps = to_bps;
                r.step_started_at = now;
            }
            _ => break,
        }
    }
    assert_eq!(
        path,
        vec![
            (
                ControlAction::Advance { to_bps: 500 },
                "healthy",
                100,
                500,
                200,
                2
            ),
            (
                ControlAction::Advance { to_bps: 2_500 },
                "healthy",
                500,
                2_500,
                200,
                2
            ),
            (
                ControlAction::Advance { to_bps: 10_000 },
                "healthy",
                2_500,
                10_000,
                200,
                2
            ),
            (
                ControlAction::Promote,
                "ramp_complete",
                10_000,
                10_000,
                200,
                2
            ),
        ]
    );
}

#[test]
fn ramp_outcome_carries_the_step_figures() {
    let ch = channel(auto_pause_on(AutoPauseAction::Pause), ramp_on());
    let outcome = run(
        &ch,
        &rollout(100),
        START + 60 * MINUTE,
        health(1_000, 20),
        health(196, 4),
    )
    .unwrap();
    assert_eq!(outcome.attempts, 200);
    assert_eq!(outcome.failures, 4);
    assert_eq!(outcome.failure_rate, Some(0.02));
    let expected_bound = wilson_lower_bound(4, 200, 0.95).unwrap();
    assert_eq!(outcome.wilson_lower_bound, Some(expected_bound));
    assert_eq!(outcome.threshold_bps, 500);
    assert!(outcome.message.contains("1%"), "{}", outcome.message);
    assert!(outcome.message.contains("5%"), "{}", outcome.message);
}

#[test]
fn ramp_holds_table() {
    let ramp = ramp_on();
    let ramp_only = channel(AutoPausePolicy::default(), ramp.clone());
    let dwell = START + 60 * MINUTE;
    // (case, now, step health, expected reason)
    let cases = [
        (
            "dwell not reached",
            START + 59 * MINUTE,
            health(500, 0),
            "dwell_not_reached",
        ),
        (
            "not enough attempts",
            dwell,
            health(98, 1),
            "not_enough_attempts",
        ),
        (
            "failure rate above threshold",
            dwell,
            health(94, 6),
            "failure_rate_above_threshold",
        ),
        (
            "failure rate at the threshold is not under it",
            dwell,
            health(95, 5),
            "failure_rate_above_threshold",
        ),
    ];
    for (case, now, step, reason) in cases {
        let outcome = run(&ramp_only, &rollout(500), now, health(0, 0), step).unwrap();
        assert_eq!(
            (
                outcome.action,
                outcome.reason,
                outcome.from_bps,
                outcome.to_bps
            ),
            (ControlAction::Hold, reason, 500, 500),
            "{case}"
        );
    }
    // Just under the threshold advances.
    let outcome = run(
        &ramp_only,
        &rollout(500),
        dwell,
        health(0, 0),
        health(96, 4),
    )
    .unwrap();
    assert_eq!(outcome.action, ControlAction::Advance { to_bps: 2_500 });
}

#[test]
fn ramp_step_is_the_first_step_above_the_current_percentage() {
    let ch = channel(AutoPausePolicy::default(), ramp_on());
    let outcome = run(
        &ch,
        &rollout(1_000),
        START + 60 * MINUTE,
        health(0, 0),
        health(300, 0),
    )
    .unwrap();
    assert_eq!(outcome.action, ControlAction::Advance { to_bps: 2_500 });
}

#[test]
fn last_step_without_promote_at_end_holds_as_complete() {
    let ramp = RampPlan {
        promote_at_end: false,
        ..ramp_on()
    };
    let ch = channel(AutoPausePolicy::default(), ramp);
    let outcome = run(
        &ch,
        &rollout(10_000),
        START + 600 * MINUTE,
        health(0, 0),
        health(900, 0),
    )
    .unwrap();
    assert_eq!(
        (outcome.action, outcome.reason),
        (ControlAction::Hold, "ramp_complete")
    );
    // With promote_at_end, the last step still waits for dwell and attempts.
    let promoting = channel(AutoPausePolicy::default(), ramp_on());
    let early = run(
        &promoting,
        &rollout(10_000),
        START + 10 * MINUTE,
        health(0, 0),
        health(900, 0),
    )
    .unwrap();
    assert_eq!(
        (early.action, early.reason),
        (ControlAction::Hold, "dwell_not_reached")
    );
}

// ---------- auto-pause ----------

#[test]
fn auto_pause_triggers_its_action_with_the_wilson_numbers() {
    let r = rollout(2_500);
    let now = START + 90 * MINUTE;
    for (policy_action, action) in [
        (AutoPauseAction::Pause, ControlAction::Pause),
        (AutoPauseAction::Rollback, ControlAction::Rollback),
        (AutoPauseAction::Notify, ControlAction::Notify),
    ] {
        let ch = channel(auto_pause_on(policy_action), ramp_on());
        let outcome = run(&ch, &r, now, health(90, 10), health(500, 0)).unwrap();
        assert_eq!(
            summary(&outcome),
            (action, "auto_pause_triggered", 2_500, 2_500, 100, 10),
            "{policy_action:?}"
        );
        assert_eq!(outcome.failure_rate, Some(0.1));
        assert!(close(outcome.wilson_lower_bound.unwrap(), 0.055_229, 1e-6));
        assert_eq!(outcome.threshold_bps, 500);
        assert!(outcome.message.contains("10 failures in 100 attempts"));
    }
}

#[test]
fn auto_pause_needs_the_bound_above_the_threshold() {
    // 8/100: point rate 8 % but the Wilson bound is 4.1 % < 5 %.
    let watch_only = channel(auto_pause_on(AutoPauseAction::Pause), RampPlan::default());
    let outcome = run(
        &watch_only,
        &rollout(500),
        START + MINUTE,
        health(92, 8),
        health(92, 8),
    )
    .unwrap();
    assert_eq!(
        (outcome.action, outcome.reason),
        (ControlAction::Hold, "healthy")
    );
    assert!(close(outcome.wilson_lower_bound.unwrap(), 0.041_093, 1e-6));
    // With the ramp on, the same step health holds the ramp instead.
    let with_ramp = channel(auto_pause_on(AutoPauseAction::Pause), ramp_on());
    let outcome = run(
        &with_ramp,
        &rollout(500),
        START + 60 * MINUTE,
        health(92, 8),
        health(92, 8),
    )
    .unwrap();
    assert_eq!(
        (outcome.action, outcome.reason),
        (ControlAction::Hold, "failure_rate_above_threshold")
    );
}

#[test]
fn auto_pause_minimums_hold() {
    let strict = AutoPausePolicy {
        failure_rate_bps: 100,
        ..auto_pause_on(AutoPauseAction::Pause)
    };
    let ch = channel(strict, RampPlan::default());
    let r = rollout(500);
    // 4/100: bound 1.57 % > 1 %, but fewer than min_failures (5).
    let outcome = run(&ch, &r, START + MINUTE, health(96, 4), health(0, 0)).unwrap();
    assert_eq!(
        (outcome.action, outcome.reason),
        (ControlAction::Hold, "not_enough_failures")
    );
    // 5/100: bound 2.15 % > 1 % → acts.
    let outcome = run(&ch, &r, START + MINUTE, health(95, 5), health(0, 0)).unwrap();
    assert_eq!(outcome.action, ControlAction::Pause);
    // 30/99: a 30 % failure rate, but fewer than min_attempts (100).
    let outcome = run(&ch, &r, START + MINUTE, health(69, 30), health(0, 0)).unwrap();
    assert_eq!(
        (outcome.action, outcome.reason, outcome.attempts),
        (ControlAction::Hold, "not_enough_attempts", 99)
    );
}

#[test]
fn auto_pause_cooldown_holds_then_acts_again() {
    let ch = channel(auto_pause_on(AutoPauseAction::Notify), ramp_on());
    let now = START + 300 * MINUTE;
    let mut r = rollout(500);
    r.auto_pause_triggered_at = Some(now - 59 * MINUTE);
    let outcome = run(&ch, &r, now, health(70, 30), health(500, 0)).unwrap();
    assert_eq!(
        summary(&outcome),
        (ControlAction::Hold, "cooldown", 500, 500, 100, 30)
    );
    assert!(close(outcome.wilson_lower_bound.unwrap(), 0.218_949, 1e-6));
    r.auto_pause_triggered_at = Some(now - 60 * MINUTE);
    let outcome = run(&ch, &r, now, health(70, 30), health(500, 0)).unwrap();
    assert_eq!(
        (outcome.action, outcome.reason),
        (ControlAction::Notify, "auto_pause_triggered")
    );
}

#[test]
fn auto_pause_acts_before_the_ramp() {
    let ch = channel(auto_pause_on(AutoPauseAction::Rollback), ramp_on());
    // The step looks healthy, the window does not: the window wins.
    let outcome = run(
        &ch,
        &rollout(100),
        START + 120 * MINUTE,
        health(80, 20),
        health(500, 1),
    )
    .unwrap();
    assert_eq!(outcome.action, ControlAction::Rollback);
}

// ---------- paused and disabled ----------

#[test]
fn paused_rollout_reports_only_that_the_ramp_waits() {
    let mut r = rollout(500);
    r.paused_at = Some(START + 5 * MINUTE);
    let both = channel(auto_pause_on(AutoPauseAction::Pause), ramp_on());
    let outcome = run(
        &both,
        &r,
        START + 600 * MINUTE,
        health(50, 50),
        health(50, 50),
    )
    .unwrap();
    assert_eq!(
        summary(&outcome),
        (ControlAction::Hold, "paused", 500, 500, 100, 50)
    );
    let auto_pause_only = channel(auto_pause_on(AutoPauseAction::Pause), RampPlan::default());
    assert_eq!(
        run(
            &auto_pause_only,
            &r,
            START + 600 * MINUTE,
            health(50, 50),
            health(50, 50)
        ),
        None
    );
}

#[test]
fn nothing_to_decide_when_both_are_off() {
    let ch = channel(AutoPausePolicy::default(), RampPlan::default());
    assert_eq!(
        run(
            &ch,
            &rollout(500),
            START + 600 * MINUTE,
            health(0, 100),
            health(0, 100)
        ),
        None
    );
}

#[test]
fn decision_action_words() {
    let words = [
        (ControlAction::Hold, "held"),
        (ControlAction::Advance { to_bps: 500 }, "advanced"),
        (ControlAction::Promote, "promoted"),
        (ControlAction::Pause, "paused"),
        (ControlAction::Rollback, "rolled_back"),
        (ControlAction::Notify, "notified"),
    ];
    for (action, word) in words {
        assert_eq!(action.decision_action(), word);
    }
}

// ---------- health windows ----------

#[test]
fn health_windows_start_no_earlier_than_the_rollout() {
    let ch = channel(auto_pause_on(AutoPauseAction::Pause), ramp_on());
    let mut r = rollout(500);
    r.step_started_at = START + 30 * MINUTE;
    // START is 20 s into a minute: the step counts from the next whole minute,
    // so attempts of the step before (in the minute it changed) never count twice.
    let step_counted_from = START + 30 * MINUTE + 40_000;
    assert_eq!(step_counted_from % MINUTE, 0);
    // 20 minutes in: the 60-minute window is cut at the rollout's start.
    assert_eq!(
        health_windows(&ch, &r, START + 40 * MINUTE),
        (START, step_counted_from)
    );
    // Later, the window slides.
    assert_eq!(
        health_windows(&ch, &r, START + 200 * MINUTE),
        (START + 140 * MINUTE, step_counted_from)
    );
    // A step that started on a minute boundary counts from there.
    r.step_started_at = step_counted_from;
    assert_eq!(
        health_windows(&ch, &r, START + 200 * MINUTE).1,
        step_counted_from
    );
}

#[test]
fn an_auto_pause_hold_names_what_is_missing() {
    let mut policy = auto_pause_on(AutoPauseAction::Pause);
    policy.min_attempts = 10;
    policy.min_failures = 50;
    let ch = channel(policy, RampPlan::default());
    let r = rollout(500);
    // 19 failures in 119 attempts: far above 5 %, but fewer than 50 failures.
    let outcome = run(&ch, &r, START + MINUTE, health(100, 19), health(100, 19)).unwrap();
    assert_eq!(
        summary(&outcome),
        (
            ControlAction::Hold,
            "not_enough_failures",
            500,
            500,
            119,
            19
        )
    );
    assert!(
        outcome.message.contains("19 of 50 failures"),
        "{}",
        outcome.message
    );
}
