//! Checks of a channel's auto-pause policy and ramp plan as changed through
//! the API: the given fields replace the current ones, then the result is
//! checked as a whole (so a change is refused or stored complete).

use crate::model::{AutoPauseAction, AutoPausePolicy, RampPlan};
use crate::rollout::FULL_BPS;

/// Longest auto-pause cooldown: a week.
pub const MAX_COOLDOWN_MINUTES: u32 = 10_080;

/// Which part of a change is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PolicyErrorCode {
    /// The auto-pause policy.
    InvalidAutoPause,
    /// The ramp plan.
    InvalidRamp,
}

impl PolicyErrorCode {
    pub const ALL: &'static [PolicyErrorCode] = &[
        PolicyErrorCode::InvalidAutoPause,
        PolicyErrorCode::InvalidRamp,
    ];

    /// The code as the management API names it.
    pub fn as_str(self) -> &'static str {
        match self {
            PolicyErrorCode::InvalidAutoPause => "invalid_auto_pause",
            PolicyErrorCode::InvalidRamp => "invalid_ramp",
        }
    }
}

impl std::fmt::Display for PolicyErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refused policy, and why.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{message}")]
pub struct PolicyError {
    pub code: PolicyErrorCode,
    pub message: String,
}

fn invalid_auto_pause(message: String) -> PolicyError {
    PolicyError {
        code: PolicyErrorCode::InvalidAutoPause,
        message,
    }
}

/// The auto-pause fields a request changes (`None` = unchanged).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AutoPauseChange {
    pub enabled: Option<bool>,
    pub window_minutes: Option<u32>,
    pub failure_rate_bps: Option<u32>,
    pub confidence: Option<f64>,
    pub min_attempts: Option<u32>,
    pub min_failures: Option<u32>,
    /// `pause`, `rollback` or `notify`.
    pub action: Option<String>,
    pub cooldown_minutes: Option<u32>,
}

/// The ramp fields a request changes (`None` = unchanged).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RampChange {
    pub enabled: Option<bool>,
    pub steps_bps: Option<Vec<u32>>,
    pub min_dwell_minutes: Option<u32>,
    pub min_attempts: Option<u32>,
    pub promote_at_end: Option<bool>,
}

/// `current` with the given fields changed, checked as a whole.
pub fn merge_auto_pause(
    current: &AutoPausePolicy,
    change: AutoPauseChange,
) -> Result<AutoPausePolicy, PolicyError> {
    let mut policy = current.clone();
    if let Some(v) = change.enabled {
        policy.enabled = v;
    }
    if let Some(v) = change.window_minutes {
        policy.window_minutes = v;
    }
    if let Some(v) = change.failure_rate_bps {
        policy.failure_rate_bps = v;
    }
    if let Some(v) = change.confidence {
        policy.confidence = v;
    }
    if let Some(v) = change.min_attempts {
        policy.min_attempts = v;
    }
    if let Some(v) = change.min_failures {
        policy.min_failures = v;
    }
    if let Some(action) = change.action.as_deref() {
        policy.action = AutoPauseAction::parse(action).ok_or_else(|| {
            invalid_auto_pause(format!(
                "auto_pause.action must be pause, rollback or notify, got {action:?}"
            ))
        })?;
    }
    if let Some(v) = change.cooldown_minutes {
        policy.cooldown_minutes = v;
    }
    if !(policy.confidence > 0.0 && policy.confidence < 1.0) {
        return Err(invalid_auto_pause(format!(
            "auto_pause.confidence must be strictly between 0 and 1, got {}",
            policy.confidence
        )));
    }
    if policy.window_minutes < 1 {
        return Err(invalid_auto_pause(
            "auto_pause.window_minutes must be at least 1".to_string(),
        ));
    }
    if policy.action == AutoPauseAction::Notify && policy.cooldown_minutes == 0 {
        // A pause or rollback changes the rollout, so it cannot repeat; an
        // alert changes nothing and would go out at every pass.
        return Err(invalid_auto_pause(
            "auto_pause.cooldown_minutes must be at least 1 with action notify".to_string(),
        ));
    }
    if policy.cooldown_minutes > MAX_COOLDOWN_MINUTES {
        return Err(invalid_auto_pause(format!(
            "auto_pause.cooldown_minutes must be at most {MAX_COOLDOWN_MINUTES} (a week), got {}",
            policy.cooldown_minutes
        )));
    }
    if policy.failure_rate_bps > FULL_BPS {
        return Err(invalid_auto_pause(format!(
            "auto_pause.failure_rate_bps must be at most {FULL_BPS}, got {}",
            policy.failure_rate_bps
        )));
    }
    Ok(policy)
}

/// `current` with the given fields changed, checked as a whole: the steps
/// strictly increase, each within 1..=10000, and end at 10000.
pub fn merge_ramp(current: &RampPlan, change: RampChange) -> Result<RampPlan, PolicyError> {
    let mut ramp = current.clone();
    if let Some(v) = change.enabled {
        ramp.enabled = v;
    }
    if let Some(v) = change.steps_bps {
        ramp.steps_bps = v;
    }
    if let Some(v) = change.min_dwell_minutes {
        ramp.min_dwell_minutes = v;
    }
    if let Some(v) = change.min_attempts {
        ramp.min_attempts = v;
    }
    if let Some(v) = change.promote_at_end {
        ramp.promote_at_end = v;
    }
    let steps = &ramp.steps_bps;
    let in_range = steps.iter().all(|s| (1..=FULL_BPS).contains(s));
    let increasing = steps.windows(2).all(|w| w[0] < w[1]);
    if steps.last() != Some(&FULL_BPS) || !in_range || !increasing {
        return Err(PolicyError {
            code: PolicyErrorCode::InvalidRamp,
            message: format!(
                "ramp.steps_bps must be strictly increasing, each 1..={FULL_BPS}, the last {FULL_BPS}; got {steps:?}"
            ),
        });
    }
    Ok(ramp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ramp_steps_must_increase_to_full() {
        let base = RampPlan::default();
        for bad in [
            vec![],
            vec![100, 500],
            vec![500, 100, 10_000],
            vec![0, 10_000],
            vec![100, 100, 10_000],
            vec![100, 20_000],
        ] {
            let err = merge_ramp(
                &base,
                RampChange {
                    steps_bps: Some(bad.clone()),
                    ..RampChange::default()
                },
            )
            .err()
            .map(|e| e.code);
            assert_eq!(err, Some(PolicyErrorCode::InvalidRamp), "{bad:?}");
        }
        let ok = merge_ramp(
            &base,
            RampChange {
                steps_bps: Some(vec![100, 500, 2500, 10_000]),
                min_dwell_minutes: Some(30),
                ..RampChange::default()
            },
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(ok.min_dwell_minutes, 30);
        assert_eq!(ok.min_attempts, base.min_attempts);
        assert_eq!(ok.steps_bps, vec![100, 500, 2500, 10_000]);
    }

    #[test]
    fn auto_pause_bounds() {
        let base = AutoPausePolicy::default();
        let code = |s: AutoPauseChange| merge_auto_pause(&base, s).err().map(|e| e.code);
        for confidence in [0.0, 1.0, -0.5, 1.5] {
            assert_eq!(
                code(AutoPauseChange {
                    confidence: Some(confidence),
                    ..AutoPauseChange::default()
                }),
                Some(PolicyErrorCode::InvalidAutoPause)
            );
        }
        assert_eq!(
            code(AutoPauseChange {
                window_minutes: Some(0),
                ..AutoPauseChange::default()
            }),
            Some(PolicyErrorCode::InvalidAutoPause)
        );
        assert_eq!(
            code(AutoPauseChange {
                cooldown_minutes: Some(10_081),
                ..AutoPauseChange::default()
            }),
            Some(PolicyErrorCode::InvalidAutoPause)
        );
        assert_eq!(
            code(AutoPauseChange {
                failure_rate_bps: Some(10_001),
                ..AutoPauseChange::default()
            }),
            Some(PolicyErrorCode::InvalidAutoPause)
        );
        assert_eq!(
            code(AutoPauseChange {
                action: Some("explode".into()),
                ..AutoPauseChange::default()
            }),
            Some(PolicyErrorCode::InvalidAutoPause)
        );
        let merged = merge_auto_pause(
            &base,
            AutoPauseChange {
                action: Some("notify".into()),
                cooldown_minutes: Some(10_080),
                ..AutoPauseChange::default()
            },
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(merged.action, AutoPauseAction::Notify);
        assert_eq!(merged.window_minutes, base.window_minutes);
        // An alert changes nothing, so without a cooldown it would repeat at every pass.
        assert_eq!(
            code(AutoPauseChange {
                action: Some("notify".into()),
                cooldown_minutes: Some(0),
                ..AutoPauseChange::default()
            }),
            Some(PolicyErrorCode::InvalidAutoPause)
        );
    }

    #[test]
    fn policy_error_codes_keep_their_wire_strings() {
        let wire: Vec<_> = PolicyErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(wire, ["invalid_auto_pause", "invalid_ramp"]);
    }

    #[test]
    fn unchanged_fields_keep_the_current_policy() {
        let current = AutoPausePolicy {
            window_minutes: 7,
            ..AutoPausePolicy::default()
        };
        let merged = merge_auto_pause(
            &current,
            AutoPauseChange {
                enabled: Some(!current.enabled),
                ..AutoPauseChange::default()
            },
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(merged.window_minutes, 7);
        assert_eq!(merged.enabled, !current.enabled);
    }
}
