//! Channels: which bundle each group of devices gets, and under which rules.
//! Release changes (stable bundle, rollout) go through `release_changes`;
//! a request's changes are written together or not at all.

use super::views::{
    AutoPauseSettings, ChannelList, ChannelSettings, ChannelView, CreateChannel, RampSettings,
    TargetingSpec,
};
use super::{existing_app, refresh_release, validate, Caller, JsonBody};
use crate::api::Path;
use crate::error::{ApiError, ErrorCode};
use crate::release_changes::{
    bundle_names, existing_channel, resolve_bundle, Actor, Commit, Plan, ReleaseChange,
    RolloutRequest,
};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use updraft_core::guards::{closest_names, did_you_mean};
use updraft_core::model::{
    AutoPauseAction, AutoPausePolicy, AutoUpdatePolicy, Channel, ChannelPatch, Platform, RampPlan,
    Role, Targeting, VersionRange,
};
use updraft_core::rollout::{RolloutChange, FULL_BPS};
use updraft_store::NewChannel;

/// Longest auto-pause cooldown: a week.
const MAX_COOLDOWN_MINUTES: u32 = 10_080;

pub(super) async fn view(state: &AppState, channel: Channel) -> Result<ChannelView, ApiError> {
    let names = bundle_names(state, &channel.app_id, [&channel]).await?;
    Ok(ChannelView::new(channel, &names))
}

/// 404 `channel_not_found` for a channel that does not exist, with the
/// closest existing names in `suggestions` (a typo, most likely).
pub(crate) async fn unknown_channel(
    state: &AppState,
    app_id: &str,
    name: &str,
) -> Result<ApiError, ApiError> {
    let channels = state.store.list_channels(app_id).await?;
    let suggestions = closest_names(name, channels.iter().map(|c| c.name.as_str()));
    Ok(ApiError::not_found(
        ErrorCode::ChannelNotFound,
        format!(
            "channel {name} of {app_id} does not exist{}; create it first or ask for it with create_channel",
            did_you_mean(&suggestions)
        ),
    )
    .with("suggestions", suggestions))
}

fn invalid_targeting(code: ErrorCode, message: String) -> ApiError {
    ApiError::bad_request(code, message)
}

fn version_range(field: &str, text: Option<&str>) -> Result<Option<VersionRange>, ApiError> {
    match text.map(str::trim).filter(|t| !t.is_empty()) {
        None => Ok(None),
        Some(text) => VersionRange::parse(text).map(Some).map_err(|e| {
            invalid_targeting(ErrorCode::InvalidVersionRange, format!("{field}: {e}"))
        }),
    }
}

/// Checks targeting rules as sent and turns them into the stored form.
pub(crate) fn parse_targeting(spec: TargetingSpec) -> Result<Targeting, ApiError> {
    let mut platforms = Vec::new();
    for name in spec.platforms.iter().flatten() {
        let platform = Platform::parse(name.trim()).ok_or_else(|| {
            invalid_targeting(
                ErrorCode::InvalidPlatform,
                format!("platform must be ios, android or electron, got {name:?}"),
            )
        })?;
        if !platforms.contains(&platform) {
            platforms.push(platform);
        }
    }
    let lower = |values: Vec<String>| -> Vec<String> {
        values
            .into_iter()
            .map(|v| v.trim().to_ascii_lowercase())
            .collect()
    };
    Ok(Targeting {
        platforms,
        os_version: version_range("os_version", spec.os_version.as_deref())?,
        native_version: version_range("native_version", spec.native_version.as_deref())?,
        plugin_version: version_range("plugin_version", spec.plugin_version.as_deref())?,
        install_sources: lower(spec.install_sources.unwrap_or_default()),
        custom_ids: spec
            .custom_ids
            .into_iter()
            .flatten()
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .collect(),
        custom_id_prefix: spec
            .custom_id_prefix
            .map(|p| p.trim().to_string())
            .filter(|p| !p.is_empty()),
        device_ids: lower(spec.device_ids.unwrap_or_default())
            .into_iter()
            .filter(|v| !v.is_empty())
            .collect(),
    })
}

fn invalid_auto_pause(message: String) -> ApiError {
    ApiError::bad_request(ErrorCode::InvalidAutoPause, message)
}

/// `current` with the given fields changed, checked as a whole.
pub(crate) fn merge_auto_pause(
    current: &AutoPausePolicy,
    s: AutoPauseSettings,
) -> Result<AutoPausePolicy, ApiError> {
    let mut policy = current.clone();
    if let Some(v) = s.enabled {
        policy.enabled = v;
    }
    if let Some(v) = s.window_minutes {
        policy.window_minutes = v;
    }
    if let Some(v) = s.failure_rate_bps {
        policy.failure_rate_bps = v;
    }
    if let Some(v) = s.confidence {
        policy.confidence = v;
    }
    if let Some(v) = s.min_attempts {
        policy.min_attempts = v;
    }
    if let Some(v) = s.min_failures {
        policy.min_failures = v;
    }
    if let Some(action) = s.action.as_deref() {
        policy.action = AutoPauseAction::parse(action).ok_or_else(|| {
            invalid_auto_pause(format!(
                "auto_pause.action must be pause, rollback or notify, got {action:?}"
            ))
        })?;
    }
    if let Some(v) = s.cooldown_minutes {
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

/// `current` with the given fields changed, checked as a whole.
pub(crate) fn merge_ramp(current: &RampPlan, s: RampSettings) -> Result<RampPlan, ApiError> {
    let mut ramp = current.clone();
    if let Some(v) = s.enabled {
        ramp.enabled = v;
    }
    if let Some(v) = s.steps_bps {
        ramp.steps_bps = v;
    }
    if let Some(v) = s.min_dwell_minutes {
        ramp.min_dwell_minutes = v;
    }
    if let Some(v) = s.min_attempts {
        ramp.min_attempts = v;
    }
    if let Some(v) = s.promote_at_end {
        ramp.promote_at_end = v;
    }
    let steps = &ramp.steps_bps;
    let in_range = steps.iter().all(|s| (1..=FULL_BPS).contains(s));
    let increasing = steps.windows(2).all(|w| w[0] < w[1]);
    if steps.last() != Some(&FULL_BPS) || !in_range || !increasing {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidRamp,
            format!(
                "ramp.steps_bps must be strictly increasing, each 1..={FULL_BPS}, the last {FULL_BPS}; got {steps:?}"
            ),
        ));
    }
    Ok(ramp)
}

fn percentage(bps: i64) -> Result<u32, ApiError> {
    u32::try_from(bps)
        .ok()
        .filter(|bps| *bps <= FULL_BPS)
        .ok_or_else(|| {
            ApiError::bad_request(
                ErrorCode::InvalidPercentage,
                format!(
                    "rollout percentage must be between 0 and {FULL_BPS} basis points, got {bps}"
                ),
            )
        })
}

fn rollout_action(action: &str) -> Result<RolloutRequest, ApiError> {
    match action {
        "pause" => Ok(RolloutRequest::Pause),
        "resume" => Ok(RolloutRequest::Resume),
        "promote" => Ok(RolloutRequest::Promote),
        "rollback" => Ok(RolloutRequest::Rollback),
        other => Err(ApiError::bad_request(
            ErrorCode::InvalidRolloutAction,
            format!("rollout_action must be pause, resume, promote or rollback, got {other:?}"),
        )),
    }
}

/// The settings of a request checked and split: what goes straight into the
/// channel, and the release changes in the order they apply.
struct CheckedSettings {
    patch: ChannelPatch,
    releases: Vec<ReleaseChange>,
    rollout_targeting: Option<Targeting>,
    accept_incompatible: bool,
}

impl CheckedSettings {
    fn is_empty(&self) -> bool {
        self.patch == ChannelPatch::default()
            && self.releases.is_empty()
            && self.rollout_targeting.is_none()
    }
}

/// Checks everything that can be checked without the store; nothing is
/// written on any error.
fn check_settings(
    current: Option<&Channel>,
    s: ChannelSettings,
) -> Result<CheckedSettings, ApiError> {
    let disable_auto_update = match s.disable_auto_update.as_deref() {
        None => None,
        Some(policy) => Some(AutoUpdatePolicy::parse(policy).ok_or_else(|| {
            ApiError::bad_request(
                ErrorCode::InvalidBody,
                format!("disable_auto_update must be major, minor, patch, metadata or none, got {policy:?}"),
            )
        })?),
    };
    let targeting = s.targeting.map(parse_targeting).transpose()?;
    let rollout_targeting = s.rollout_targeting.map(parse_targeting).transpose()?;
    let defaults_auto_pause = AutoPausePolicy::default();
    let defaults_ramp = RampPlan::default();
    let auto_pause = s
        .auto_pause
        .map(|a| merge_auto_pause(current.map_or(&defaults_auto_pause, |c| &c.auto_pause), a))
        .transpose()?;
    let ramp = s
        .ramp
        .map(|r| merge_ramp(current.map_or(&defaults_ramp, |c| &c.ramp), r))
        .transpose()?;
    let percentage_bps = s.rollout_percentage_bps.map(percentage).transpose()?;
    let action = s
        .rollout_action
        .as_deref()
        .map(rollout_action)
        .transpose()?;
    let mut releases = Vec::new();
    if let Some(version) = s.bundle {
        releases.push(ReleaseChange::SetBundle { version });
    }
    match (s.rollout_bundle, percentage_bps) {
        (Some(version), percentage_bps) => {
            releases.push(ReleaseChange::Rollout(RolloutRequest::Start {
                version,
                // Without a percentage a new rollout starts at 0 (reaching nobody yet).
                percentage_bps: percentage_bps.unwrap_or(0),
            }))
        }
        (None, Some(bps)) => {
            releases.push(ReleaseChange::Rollout(RolloutRequest::SetPercentage(bps)))
        }
        (None, None) => {}
    }
    if let Some(action) = action {
        releases.push(ReleaseChange::Rollout(action));
    }
    Ok(CheckedSettings {
        patch: ChannelPatch {
            public: s.public,
            ios: s.ios,
            android: s.android,
            electron: s.electron,
            allow_device_self_set: s.allow_device_self_set,
            allow_emulator: s.allow_emulator,
            allow_device: s.allow_device,
            allow_dev: s.allow_dev,
            allow_prod: s.allow_prod,
            disable_auto_update,
            disable_auto_update_under_native: s.disable_auto_update_under_native,
            targeting,
            auto_pause,
            ramp,
            ..ChannelPatch::default()
        },
        releases,
        rollout_targeting,
        accept_incompatible: s.accept_incompatible.unwrap_or(false),
    })
}

/// Builds the whole change on `plan`: settings, then release changes, then
/// the rollout's targeting (so that it applies to a rollout started here too).
async fn plan_settings(
    state: &AppState,
    plan: &mut Plan,
    checked: CheckedSettings,
) -> Result<(), ApiError> {
    plan.add_settings(checked.patch);
    for change in checked.releases {
        plan.add_release(state, change, checked.accept_incompatible)
            .await?;
    }
    if let Some(targeting) = checked.rollout_targeting {
        plan.add_rollout_change(
            RolloutChange::SetTargeting(targeting),
            state.clock.now(),
            "rollout_targeting",
            None,
        )?;
    }
    Ok(())
}

#[utoipa::path(get, path = "/api/v1/apps/{app_id}/channels", tag = "channels", operation_id = "list_channels",
    responses((status = 200, body = ChannelList), (status = 404, body = super::views::ErrorView)))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(app_id): Path<String>,
) -> Result<Json<ChannelList>, ApiError> {
    caller.require(Role::Viewer, Some(&app_id))?;
    existing_app(&state, &caller, &app_id).await?;
    let channels = state.store.list_channels(&app_id).await?;
    let names = bundle_names(&state, &app_id, &channels).await?;
    Ok(Json(ChannelList {
        channels: channels
            .into_iter()
            .map(|c| ChannelView::new(c, &names))
            .collect(),
    }))
}

#[utoipa::path(post, path = "/api/v1/apps/{app_id}/channels", tag = "channels", operation_id = "create_channels", request_body = CreateChannel,
    responses((status = 201, body = ChannelView), (status = 400, body = super::views::ErrorView), (status = 409, body = super::views::ErrorView)))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Path(app_id): Path<String>,
    JsonBody(mut body): JsonBody<serde_json::Map<String, serde_json::Value>>,
) -> Result<(StatusCode, Json<ChannelView>), ApiError> {
    caller.require(Role::Publisher, Some(&app_id))?;
    existing_app(&state, &caller, &app_id).await?;
    let name = match body.remove("name") {
        Some(serde_json::Value::String(name)) => name,
        _ => {
            return Err(ApiError::bad_request(
                ErrorCode::InvalidBody,
                "name (a string) is required",
            ))
        }
    };
    validate::channel_name(&name)?;
    let settings: ChannelSettings = serde_json::from_value(serde_json::Value::Object(body))
        .map_err(|e| ApiError::bad_request(ErrorCode::InvalidBody, e.to_string()))?;
    let checked = check_settings(None, settings)?;
    // Refuse unknown or deleted bundles before the channel exists.
    for change in &checked.releases {
        match change {
            ReleaseChange::SetBundle { version }
            | ReleaseChange::Rollout(RolloutRequest::Start { version, .. }) => {
                resolve_bundle(&state, &app_id, version).await?;
            }
            ReleaseChange::Rollout(_) => {}
        }
    }
    let settings = checked.patch.clone();
    let now = state.clock.now();
    let channel = state
        .store
        .create_channel(
            NewChannel {
                app_id: app_id.clone(),
                name,
                settings,
            },
            now,
        )
        .await?;
    let created = view(&state, channel.clone()).await?;
    crate::audit::record(
        &state,
        crate::audit::entry(
            &state,
            &caller,
            Some(&app_id),
            "channel.create",
            &channel.name,
            None,
            serde_json::to_value(&created).ok(),
        ),
    )
    .await;
    let has_release = !checked.releases.is_empty() || checked.rollout_targeting.is_some();
    let channel = if has_release {
        let mut plan = Plan::new(&state, channel).await?;
        let release_only = CheckedSettings {
            patch: ChannelPatch::default(),
            ..checked
        };
        plan_settings(&state, &mut plan, release_only).await?;
        plan.commit(&state, &Actor::Key(&caller), Commit::default())
            .await?
    } else {
        refresh_release(&state, &app_id).await;
        channel
    };
    Ok((StatusCode::CREATED, Json(view(&state, channel).await?)))
}

#[utoipa::path(get, path = "/api/v1/apps/{app_id}/channels/{name}", tag = "channels", operation_id = "show_channels",
    responses((status = 200, body = ChannelView), (status = 404, body = super::views::ErrorView)))]
pub async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path((app_id, name)): Path<(String, String)>,
) -> Result<Json<ChannelView>, ApiError> {
    caller.require(Role::Viewer, Some(&app_id))?;
    existing_app(&state, &caller, &app_id).await?;
    let channel = existing_channel(&state, &app_id, &name).await?;
    Ok(Json(view(&state, channel).await?))
}

#[utoipa::path(patch, path = "/api/v1/apps/{app_id}/channels/{name}", tag = "channels", operation_id = "update_channels", request_body = ChannelSettings,
    responses((status = 200, body = ChannelView), (status = 400, body = super::views::ErrorView), (status = 404, body = super::views::ErrorView), (status = 409, body = super::views::ErrorView)))]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path((app_id, name)): Path<(String, String)>,
    JsonBody(settings): JsonBody<ChannelSettings>,
) -> Result<Json<ChannelView>, ApiError> {
    caller.require(Role::Publisher, Some(&app_id))?;
    existing_app(&state, &caller, &app_id).await?;
    let current = existing_channel(&state, &app_id, &name).await?;
    let accept_unencrypted = settings.accept_unencrypted.unwrap_or(false);
    let checked = check_settings(Some(&current), settings)?;
    if checked.is_empty() {
        return Ok(Json(view(&state, current).await?));
    }
    let mut plan = Plan::new(&state, current).await?;
    plan_settings(&state, &mut plan, checked).await?;
    if !accept_unencrypted {
        plan.refuse_encryption_downgrade(&state).await?;
    }
    let channel = plan
        .commit(&state, &Actor::Key(&caller), Commit::default())
        .await?;
    Ok(Json(view(&state, channel).await?))
}

#[utoipa::path(delete, path = "/api/v1/apps/{app_id}/channels/{name}", tag = "channels", operation_id = "delete_channels",
    responses((status = 204), (status = 404, body = super::views::ErrorView)))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path((app_id, name)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    caller.require(Role::Publisher, Some(&app_id))?;
    existing_app(&state, &caller, &app_id).await?;
    let channel = existing_channel(&state, &app_id, &name).await?;
    let before = view(&state, channel).await?;
    state.store.delete_channel(&app_id, &name).await?;
    crate::audit::record(
        &state,
        crate::audit::entry(
            &state,
            &caller,
            Some(&app_id),
            "channel.delete",
            &name,
            serde_json::to_value(&before).ok(),
            None,
        ),
    )
    .await;
    refresh_release(&state, &app_id).await;
    Ok(StatusCode::NO_CONTENT)
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
                RampSettings {
                    steps_bps: Some(bad.clone()),
                    ..RampSettings::default()
                },
            )
            .err()
            .map(|e| e.code);
            assert_eq!(err, Some(ErrorCode::InvalidRamp), "{bad:?}");
        }
        let ok = merge_ramp(
            &base,
            RampSettings {
                steps_bps: Some(vec![100, 500, 2500, 10_000]),
                min_dwell_minutes: Some(30),
                ..RampSettings::default()
            },
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(ok.min_dwell_minutes, 30);
        assert_eq!(ok.min_attempts, base.min_attempts);
    }

    #[test]
    fn auto_pause_bounds() {
        let base = AutoPausePolicy::default();
        let code = |s: AutoPauseSettings| merge_auto_pause(&base, s).err().map(|e| e.code);
        for confidence in [0.0, 1.0, -0.5, 1.5] {
            assert_eq!(
                code(AutoPauseSettings {
                    confidence: Some(confidence),
                    ..AutoPauseSettings::default()
                }),
                Some(ErrorCode::InvalidAutoPause)
            );
        }
        assert_eq!(
            code(AutoPauseSettings {
                window_minutes: Some(0),
                ..AutoPauseSettings::default()
            }),
            Some(ErrorCode::InvalidAutoPause)
        );
        assert_eq!(
            code(AutoPauseSettings {
                cooldown_minutes: Some(10_081),
                ..AutoPauseSettings::default()
            }),
            Some(ErrorCode::InvalidAutoPause)
        );
        let merged = merge_auto_pause(
            &base,
            AutoPauseSettings {
                action: Some("notify".into()),
                cooldown_minutes: Some(10_080),
                ..AutoPauseSettings::default()
            },
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(merged.action, AutoPauseAction::Notify);
        assert_eq!(merged.window_minutes, base.window_minutes);
        // An alert changes nothing, so without a cooldown it would repeat at every pass.
        assert_eq!(
            code(AutoPauseSettings {
                action: Some("notify".into()),
                cooldown_minutes: Some(0),
                ..AutoPauseSettings::default()
            }),
            Some(ErrorCode::InvalidAutoPause)
        );
    }

    #[test]
    fn targeting_is_checked_and_normalised() {
        let bad_range = parse_targeting(TargetingSpec {
            os_version: Some(">=banana".into()),
            ..TargetingSpec::default()
        });
        assert_eq!(
            bad_range.err().map(|e| e.code),
            Some(ErrorCode::InvalidVersionRange)
        );
        let bad_platform = parse_targeting(TargetingSpec {
            platforms: Some(vec!["windows".into()]),
            ..TargetingSpec::default()
        });
        assert_eq!(
            bad_platform.err().map(|e| e.code),
            Some(ErrorCode::InvalidPlatform)
        );
        let t = parse_targeting(TargetingSpec {
            platforms: Some(vec!["ios".into(), "ios".into()]),
            native_version: Some(" >=1.4, <2 ".into()),
            device_ids: Some(vec!["ABC-1".into()]),
            install_sources: Some(vec!["Google_Play".into()]),
            ..TargetingSpec::default()
        })
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(t.platforms, vec![Platform::Ios]);
        assert_eq!(
            t.native_version.map(|r| r.text),
            Some(">=1.4, <2".to_string())
        );
        assert_eq!(t.device_ids, vec!["abc-1".to_string()]);
        assert_eq!(t.install_sources, vec!["google_play".to_string()]);
    }

    #[test]
    fn percentages_outside_0_to_10000_are_refused() {
        assert_eq!(
            percentage(-1).err().map(|e| e.code),
            Some(ErrorCode::InvalidPercentage)
        );
        assert_eq!(
            percentage(10_001).err().map(|e| e.code),
            Some(ErrorCode::InvalidPercentage)
        );
        assert_eq!(percentage(10_000).ok(), Some(10_000));
        assert_eq!(percentage(0).ok(), Some(0));
    }
}
