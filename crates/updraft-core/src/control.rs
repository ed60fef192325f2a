//! The rollout control loop's decision for one rollout, without I/O:
//! auto-pause (Wilson lower bound of the failure rate over a window) and the
//! ramp (advance a step when it has been healthy long enough).
//!
//! The server fetches the two health windows (`health_windows`), calls
//! `evaluate`, and applies and records the outcome.

use crate::model::{AutoPauseAction, Channel, Health, Millis, Rollout};

const MINUTE_MS: Millis = 60_000;

/// The standard normal quantile (inverse CDF) by Acklam's rational
/// approximation: relative error below 1.2e-9 on (0, 1). `None` outside (0, 1).
fn normal_quantile(p: f64) -> Option<f64> {
    if !(p > 0.0 && p < 1.0) {
        return None;
    }
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    const P_LOW: f64 = 0.024_25;

    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    let x = if p < P_LOW {
        tail((-2.0 * p.ln()).sqrt())
    } else if p <= 1.0 - P_LOW {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    } else {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    };
    Some(x)
}

/// The two-sided z for a confidence level: 0.95 → 1.95996.
pub fn two_sided_z(confidence: f64) -> Option<f64> {
    if !(confidence > 0.0 && confidence < 1.0) {
        return None;
    }
    normal_quantile((1.0 + confidence) / 2.0)
}

/// Wilson score interval lower bound; None when attempts == 0 (or the
/// confidence is not strictly between 0 and 1). Failures are clamped to
/// `0..=attempts`.
pub fn wilson_lower_bound(failures: i64, attempts: i64, confidence: f64) -> Option<f64> {
    if attempts <= 0 {
        return None;
    }
    let z = two_sided_z(confidence)?;
    let n = attempts as f64;
    let p = failures.clamp(0, attempts) as f64 / n;
    let z2 = z * z;
    let centre = p + z2 / (2.0 * n);
    let spread = z * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    Some(((centre - spread) / (1.0 + z2 / n)).clamp(0.0, 1.0))
}

/// The two health windows the loop must fetch: (auto-pause window start, ramp step start), both in ms.
/// The window never reaches back before the rollout started; both end at `now`.
pub fn health_windows(channel: &Channel, rollout: &Rollout, now: Millis) -> (Millis, Millis) {
    let window = Millis::from(channel.auto_pause.window_minutes).saturating_mul(MINUTE_MS);
    let window_start = now.saturating_sub(window).max(rollout.started_at);
    // Health is counted per minute of arrival: a step counts from the first
    // whole minute it ran for, so the attempts of the step before it (in the
    // minute the percentage changed) are never counted for it again.
    let step_start = ceil_to_minute(rollout.step_started_at.max(rollout.started_at));
    (window_start, step_start)
}

fn ceil_to_minute(at: Millis) -> Millis {
    at.saturating_add(MINUTE_MS - 1).div_euclid(MINUTE_MS) * MINUTE_MS
}

pub struct ControlInput<'a> {
    pub channel: &'a Channel,
    pub rollout: &'a Rollout,
    pub now: Millis,
    /// Health since the first value of `health_windows`.
    pub window_health: Health,
    /// Health since the second value of `health_windows`.
    pub step_health: Health,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ControlAction {
    Hold,
    Advance { to_bps: u32 },
    Promote,
    Pause,
    Rollback,
    Notify,
}

impl ControlAction {
    /// The `RolloutDecision.action` word.
    pub fn decision_action(self) -> &'static str {
        match self {
            ControlAction::Hold => "held",
            ControlAction::Advance { .. } => "advanced",
            ControlAction::Promote => "promoted",
            ControlAction::Pause => "paused",
            ControlAction::Rollback => "rolled_back",
            ControlAction::Notify => "notified",
        }
    }
}

/// Stable reason codes of `ControlOutcome.reason`.
pub mod reasons {
    pub const HEALTHY: &str = "healthy";
    pub const DWELL_NOT_REACHED: &str = "dwell_not_reached";
    pub const NOT_ENOUGH_ATTEMPTS: &str = "not_enough_attempts";
    /// Enough attempts, but fewer failures than the policy's minimum.
    pub const NOT_ENOUGH_FAILURES: &str = "not_enough_failures";
    pub const FAILURE_RATE_ABOVE_THRESHOLD: &str = "failure_rate_above_threshold";
    pub const AUTO_PAUSE_TRIGGERED: &str = "auto_pause_triggered";
    pub const COOLDOWN: &str = "cooldown";
    pub const PAUSED: &str = "paused";
    pub const RAMP_COMPLETE: &str = "ramp_complete";
    /// A rollout at 0 % with a ramp: no device can have tried it yet, so the
    /// first step is taken at once.
    pub const RAMP_START: &str = "ramp_start";
}

#[derive(Clone, Debug, PartialEq)]
pub struct ControlOutcome {
    pub action: ControlAction,
    pub reason: &'static str,
    /// A sentence for people, with the numbers.
    pub message: String,
    pub from_bps: u32,
    /// Equal to `from_bps` unless the action advances.
    pub to_bps: u32,
    /// Of the window the decision looked at: the auto-pause window for
    /// auto-pause outcomes, the current step for ramp outcomes.
    pub attempts: i64,
    pub failures: i64,
    pub failure_rate: Option<f64>,
    pub wilson_lower_bound: Option<f64>,
    pub threshold_bps: u32,
}

fn percent(bps: u32) -> String {
    let text = format!("{:.2}", f64::from(bps) / 100.0);
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("{text}%")
}

fn rate_text(rate: Option<f64>) -> String {
    match rate {
        Some(rate) => format!("{:.2}%", rate * 100.0),
        None => "n/a".to_string(),
    }
}

/// Builds outcomes with the figures of one health window.
struct Figures<'a> {
    input: &'a ControlInput<'a>,
    health: Health,
}

impl Figures<'_> {
    fn failure_rate(&self) -> Option<f64> {
        let attempts = self.health.attempts();
        (attempts > 0).then(|| self.health.failures.clamp(0, attempts) as f64 / attempts as f64)
    }

    fn wilson(&self) -> Option<f64> {
        wilson_lower_bound(
            self.health.failures,
            self.health.attempts(),
            self.input.channel.auto_pause.confidence,
        )
    }

    fn outcome(
        &self,
        action: ControlAction,
        reason: &'static str,
        detail: String,
    ) -> ControlOutcome {
        let from_bps = self.input.rollout.percentage_bps;
        let to_bps = match action {
            ControlAction::Advance { to_bps } => to_bps,
            _ => from_bps,
        };
        let failure_rate = self.failure_rate();
        let wilson_lower_bound = self.wilson();
        let threshold_bps = self.input.channel.auto_pause.failure_rate_bps;
        let message = format!(
            "{detail} ({} failures in {} attempts, failure rate {}, Wilson lower bound {}, threshold {})",
            self.health.failures,
            self.health.attempts(),
            rate_text(failure_rate),
            rate_text(wilson_lower_bound),
            percent(threshold_bps),
        );
        ControlOutcome {
            action,
            reason,
            message,
            from_bps,
            to_bps,
            attempts: self.health.attempts(),
            failures: self.health.failures,
            failure_rate,
            wilson_lower_bound,
            threshold_bps,
        }
    }
}

/// Auto-pause on the window's health: `Some` when it acts, alerts, or is held
/// back by its cooldown; `None` when the rollout is healthy enough.
fn auto_pause(input: &ControlInput<'_>) -> Option<ControlOutcome> {
    let policy = &input.channel.auto_pause;
    let figures = Figures {
        input,
        health: input.window_health,
    };
    let attempts = input.window_health.attempts();
    let threshold = f64::from(policy.failure_rate_bps) / 10_000.0;
    let triggered = attempts >= i64::from(policy.min_attempts)
        && input.window_health.failures >= i64::from(policy.min_failures)
        && figures.wilson().is_some_and(|bound| bound > threshold);
    if !triggered {
        return None;
    }
    let cooldown = Millis::from(policy.cooldown_minutes).saturating_mul(MINUTE_MS);
    if let Some(last) = input.rollout.auto_pause_triggered_at {
        if input.now.saturating_sub(last) < cooldown {
            return Some(figures.outcome(
                ControlAction::Hold,
                reasons::COOLDOWN,
                format!(
                    "Failure rate above the threshold, but auto-pause acted less than {} minutes ago",
                    policy.cooldown_minutes
                ),
            ));
        }
    }
    let (action, detail) = match policy.action {
        AutoPauseAction::Pause => (ControlAction::Pause, "Auto-pause: rollout paused"),
        AutoPauseAction::Rollback => (
            ControlAction::Rollback,
            "Auto-pause: rollout rolled back, devices return to the stable bundle",
        ),
        AutoPauseAction::Notify => (
            ControlAction::Notify,
            "Auto-pause alert: rollout failure rate above the threshold",
        ),
    };
    Some(figures.outcome(action, reasons::AUTO_PAUSE_TRIGGERED, detail.to_string()))
}

/// The ramp on the current step's health.
fn ramp(input: &ControlInput<'_>) -> ControlOutcome {
    let plan = &input.channel.ramp;
    let rollout = input.rollout;
    let figures = Figures {
        input,
        health: input.step_health,
    };
    let current = rollout.percentage_bps;
    let next = plan.steps_bps.iter().copied().find(|step| *step > current);
    if let (0, Some(to_bps)) = (current, next) {
        return figures.outcome(
            ControlAction::Advance { to_bps },
            reasons::RAMP_START,
            format!("Starting the ramp at {}", percent(to_bps)),
        );
    }
    if next.is_none() && !plan.promote_at_end {
        return figures.outcome(
            ControlAction::Hold,
            reasons::RAMP_COMPLETE,
            format!(
                "Ramp complete at {}; promotion is left to people",
                percent(current)
            ),
        );
    }
    let dwell = Millis::from(plan.min_dwell_minutes).saturating_mul(MINUTE_MS);
    let on_step_for = input.now.saturating_sub(rollout.step_started_at);
    if on_step_for < dwell {
        return figures.outcome(
            ControlAction::Hold,
            reasons::DWELL_NOT_REACHED,
            format!(
                "Holding at {}: {} of {} minutes on this step",
                percent(current),
                on_step_for / MINUTE_MS,
                plan.min_dwell_minutes
            ),
        );
    }
    let attempts = input.step_health.attempts();
    if attempts < i64::from(plan.min_attempts) {
        return figures.outcome(
            ControlAction::Hold,
            reasons::NOT_ENOUGH_ATTEMPTS,
            format!(
                "Holding at {}: {attempts} of {} attempts needed on this step",
                percent(current),
                plan.min_attempts
            ),
        );
    }
    let threshold = f64::from(input.channel.auto_pause.failure_rate_bps) / 10_000.0;
    if figures.failure_rate().is_some_and(|rate| rate >= threshold) {
        return figures.outcome(
            ControlAction::Hold,
            reasons::FAILURE_RATE_ABOVE_THRESHOLD,
            format!(
                "Holding at {}: failure rate not under the threshold",
                percent(current)
            ),
        );
    }
    match next {
        Some(to_bps) => figures.outcome(
            ControlAction::Advance { to_bps },
            reasons::HEALTHY,
            format!("Advancing from {} to {}", percent(current), percent(to_bps)),
        ),
        None => figures.outcome(
            ControlAction::Promote,
            reasons::RAMP_COMPLETE,
            format!(
                "Ramp complete at {}: the rollout bundle becomes the stable one",
                percent(current)
            ),
        ),
    }
}

/// Auto-pause health when the ramp is off and auto-pause did not act.
fn auto_pause_hold(input: &ControlInput<'_>) -> ControlOutcome {
    let policy = &input.channel.auto_pause;
    let figures = Figures {
        input,
        health: input.window_health,
    };
    let attempts = input.window_health.attempts();
    let failures = input.window_health.failures;
    if attempts < i64::from(policy.min_attempts) {
        figures.outcome(
            ControlAction::Hold,
            reasons::NOT_ENOUGH_ATTEMPTS,
            format!(
                "Watching: {attempts} of {} attempts needed to judge the failure rate",
                policy.min_attempts
            ),
        )
    } else if failures < i64::from(policy.min_failures) {
        figures.outcome(
            ControlAction::Hold,
            reasons::NOT_ENOUGH_FAILURES,
            format!(
                "Watching: {failures} of {} failures needed before acting",
                policy.min_failures
            ),
        )
    } else {
        figures.outcome(
            ControlAction::Hold,
            reasons::HEALTHY,
            "Watching: the failure rate is not shown to be above the threshold".to_string(),
        )
    }
}

/// Pure: the loop's decision for one rollout. `None` when there is nothing to
/// decide (neither auto-pause nor ramp enabled, or the rollout is paused and
/// the ramp is off).
///
/// Order: auto-pause first (on a running rollout); then, if it did not act,
/// the ramp; a paused rollout only reports that the ramp waits.
pub fn evaluate(input: &ControlInput<'_>) -> Option<ControlOutcome> {
    let auto_pause_enabled = input.channel.auto_pause.enabled;
    let ramp_enabled = input.channel.ramp.enabled;
    if !auto_pause_enabled && !ramp_enabled {
        return None;
    }
    if input.rollout.paused_at.is_some() {
        if !ramp_enabled {
            return None;
        }
        let figures = Figures {
            input,
            health: input.step_health,
        };
        return Some(figures.outcome(
            ControlAction::Hold,
            reasons::PAUSED,
            format!(
                "Rollout paused at {}; the ramp waits until it is resumed",
                percent(input.rollout.percentage_bps)
            ),
        ));
    }
    if auto_pause_enabled {
        if let Some(outcome) = auto_pause(input) {
            return Some(outcome);
        }
    }
    if ramp_enabled {
        Some(ramp(input))
    } else {
        Some(auto_pause_hold(input))
    }
}
