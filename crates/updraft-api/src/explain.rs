//! `GET /api/v1/apps/{app_id}/devices/{device_id}/explain`: why a registered
//! device gets what `/updates` answers it (`updraft device explain`).

use crate::management::{DeviceView, OverrideView};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use updraft_core::decision::{Explanation, Remedy, Step, StepOutcome};
use updraft_core::model::{Device, ReleaseConfig};
use utoipa::ToSchema;

/// The update decision for a registered device, rule by rule.
#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
pub struct DeviceExplanation {
    /// What the decision was made from: the device as it last reported.
    pub device: DeviceView,
    pub channel_override: Option<OverrideView>,
    /// The channel the device resolves to; null when it has none.
    pub channel: Option<String>,
    /// How: `override`, `default_channel` (the one it asks for) or `public`.
    pub channel_source: Option<String>,
    /// Why that channel (or none), for people.
    pub channel_reason: String,
    /// What the rules ran against: a bundle version or `builtin` (the
    /// rollout's bundle when the device is selected for it).
    pub target: Option<String>,
    /// Every rule of the decision, in the order it applies them.
    pub rules: Vec<ExplainedRule>,
    /// What `/updates` answers the device now.
    pub answer: ExplainedAnswer,
    /// What would change a refusal (empty when a bundle is offered).
    pub remedies: Vec<ExplainedRemedy>,
}

#[derive(Serialize, Deserialize, ToSchema, Debug, Clone, PartialEq)]
pub struct ExplainedRule {
    /// Stable rule name (`platform`, `version_policy`, …).
    pub rule: String,
    /// `ok`, `refused`, `skipped` (does not apply) or `not_reached`.
    pub outcome: String,
    /// The refusal code, when this rule refused.
    pub error: Option<String>,
    pub detail: String,
}

#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
pub struct ExplainedAnswer {
    /// `get`, or the refusal code the plugin receives.
    pub outcome: String,
    /// For a refusal: `up_to_date`, `blocked` or `failed` (how the plugin reads it).
    pub kind: Option<String>,
    /// The bundle offered (`builtin` for a revert).
    pub version: Option<String>,
    /// The refusal's sentence.
    pub message: Option<String>,
    /// The `/updates` body (before per-request download links are signed).
    #[schema(value_type = Object)]
    pub body: Value,
}

#[derive(Serialize, Deserialize, ToSchema, Debug, Clone, PartialEq)]
pub struct ExplainedRemedy {
    pub summary: String,
    /// The `updraft …` command that does it, when one does.
    pub command: Option<String>,
}

impl DeviceExplanation {
    pub fn new(
        device: Device,
        release: &ReleaseConfig,
        channel_override: Option<OverrideView>,
        explanation: Explanation,
    ) -> Self {
        let answer = &explanation.answer;
        let text = |key: &str| {
            answer
                .body
                .get(key)
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        let refused = answer.outcome.kind().is_some();
        DeviceExplanation {
            device: DeviceView::new(device, release),
            channel_override,
            channel: explanation.channel,
            channel_source: explanation.source.map(|s| s.as_str().to_string()),
            channel_reason: explanation.channel_reason,
            target: explanation.target,
            rules: explanation
                .steps
                .into_iter()
                .map(ExplainedRule::from)
                .collect(),
            answer: ExplainedAnswer {
                outcome: answer.outcome.as_str().to_string(),
                kind: answer.outcome.kind().map(|k| k.as_str().to_string()),
                version: answer.offered_version.clone(),
                message: if refused { text("message") } else { None },
                body: answer.body.clone(),
            },
            remedies: explanation
                .remedies
                .into_iter()
                .map(ExplainedRemedy::from)
                .collect(),
        }
    }
}

impl From<Step> for ExplainedRule {
    fn from(step: Step) -> Self {
        ExplainedRule {
            rule: step.rule.as_str().to_string(),
            outcome: step.outcome.as_str().to_string(),
            error: match step.outcome {
                StepOutcome::Refused(why) => Some(why.code().to_string()),
                _ => None,
            },
            detail: step.detail,
        }
    }
}

impl From<Remedy> for ExplainedRemedy {
    fn from(remedy: Remedy) -> Self {
        ExplainedRemedy {
            summary: remedy.summary,
            command: remedy.command,
        }
    }
}
