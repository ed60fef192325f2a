//! Channels: which bundle each group of devices gets, and under which rules.
//! Release changes (stable bundle, rollout) go through `release_changes`;
//! a request's changes are written together or not at all.

use super::views::{
    AutoPauseSettings, ChannelList, ChannelSettings, ChannelUpdateView, ChannelView, CreateChannel,
    NoChangeView, RampSettings, TargetingSpec,
};
use super::{existing_app, validate, Caller, JsonBody};
use crate::api::Path;
use crate::error::ApiError;
use crate::error::ErrorCode;
use crate::release_changes::{ChannelChanges, ReleaseChange, RolloutRequest};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use updraft_core::model::{
    AutoPausePolicy, AutoUpdatePolicy, Channel, ChannelPatch, Platform, RampPlan, Role, Targeting,
    VersionRange,
};
use updraft_core::policy::{self, AutoPauseChange, RampChange};
use updraft_core::rollout;

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

/// The auto-pause fields of a request, checked against `current` (in `core`).
fn merge_auto_pause(
    current: &AutoPausePolicy,
    s: AutoPauseSettings,
) -> Result<AutoPausePolicy, ApiError> {
    policy::merge_auto_pause(
        current,
        AutoPauseChange {
            enabled: s.enabled,
            window_minutes: s.window_minutes,
            failure_rate_bps: s.failure_rate_bps,
            confidence: s.confidence,
            min_attempts: s.min_attempts,
            min_failures: s.min_failures,
            action: s.action,
            cooldown_minutes: s.cooldown_minutes,
        },
    )
    .map_err(ApiError::from)
}

/// The ramp fields of a request, checked against `current` (in `core`).
fn merge_ramp(current: &RampPlan, s: RampSettings) -> Result<RampPlan, ApiError> {
    policy::merge_ramp(
        current,
        RampChange {
            enabled: s.enabled,
            steps_bps: s.steps_bps,
            min_dwell_minutes: s.min_dwell_minutes,
            min_attempts: s.min_attempts,
            promote_at_end: s.promote_at_end,
        },
    )
    .map_err(ApiError::from)
}

fn percentage(bps: i64) -> Result<u32, ApiError> {
    Ok(rollout::percentage_bps(bps)?)
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

/// Checks everything that can be checked without the store; nothing is
/// written on any error.
fn check_settings(
    current: Option<&Channel>,
    s: ChannelSettings,
) -> Result<ChannelChanges, ApiError> {
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
    Ok(ChannelChanges {
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

#[utoipa::path(get, path = "/api/v1/apps/{app_id}/channels", tag = "channels", operation_id = "list_channels",
    responses((status = 200, body = ChannelList), (status = 404, body = super::views::ErrorView)))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(app_id): Path<String>,
) -> Result<Json<ChannelList>, ApiError> {
    caller.require(Role::Viewer, Some(&app_id))?;
    existing_app(&state, &caller, &app_id).await?;
    Ok(Json(ChannelList {
        channels: state.release_changes.channel_views(&app_id).await?,
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
    let changes = check_settings(None, settings)?;
    let service = &state.release_changes;
    let channel = service
        .create_channel(&caller, &app_id, name, changes)
        .await?;
    Ok((StatusCode::CREATED, Json(service.view(channel).await?)))
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
    let service = &state.release_changes;
    let channel = service.existing_channel(&app_id, &name).await?;
    Ok(Json(service.view(channel).await?))
}

#[utoipa::path(patch, path = "/api/v1/apps/{app_id}/channels/{name}", tag = "channels", operation_id = "update_channels", request_body = ChannelSettings,
    responses((status = 200, body = ChannelUpdateView), (status = 400, body = super::views::ErrorView), (status = 404, body = super::views::ErrorView), (status = 409, body = super::views::ErrorView)))]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path((app_id, name)): Path<(String, String)>,
    JsonBody(settings): JsonBody<ChannelSettings>,
) -> Result<Json<ChannelUpdateView>, ApiError> {
    caller.require(Role::Publisher, Some(&app_id))?;
    existing_app(&state, &caller, &app_id).await?;
    let service = &state.release_changes;
    let current = service.existing_channel(&app_id, &name).await?;
    let accept_unencrypted = settings.accept_unencrypted.unwrap_or(false);
    let changes = check_settings(Some(&current), settings)?;
    let (channel, unchanged) = service
        .update_channel(&caller, current, changes, accept_unencrypted)
        .await?;
    Ok(Json(ChannelUpdateView {
        channel: service.view(channel).await?,
        changed: unchanged.is_none(),
        unchanged: unchanged.map(|no_change| NoChangeView {
            code: no_change.code.to_string(),
            message: no_change.message,
        }),
    }))
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
    state
        .release_changes
        .delete_channel(&caller, &app_id, &name)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_refusals_are_400_with_their_code() {
        // The rules themselves are tested in `updraft_core::policy`.
        let err = merge_ramp(
            &RampPlan::default(),
            RampSettings {
                steps_bps: Some(vec![]),
                ..RampSettings::default()
            },
        )
        .err();
        assert_eq!(
            err.map(|e| (e.status.as_u16(), e.code)),
            Some((400, ErrorCode::InvalidRamp))
        );
        let err = merge_auto_pause(
            &AutoPausePolicy::default(),
            AutoPauseSettings {
                window_minutes: Some(0),
                ..AutoPauseSettings::default()
            },
        )
        .err();
        assert_eq!(
            err.map(|e| (e.status.as_u16(), e.code)),
            Some((400, ErrorCode::InvalidAutoPause))
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
