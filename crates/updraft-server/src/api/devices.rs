//! Devices: the registry (what each device last reported) and per-device
//! channel overrides.

use super::views::{
    DeviceDetail, DeviceList, DeviceView, EventView, OverrideList, OverrideView, SetOverride,
};
use super::{existing_app, refresh_release, validate, ApiQuery, Caller, JsonBody};
use crate::api::Path;
use crate::audit;
use crate::error::{ApiError, ErrorCode};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use updraft_core::model::{OverrideSource, ReleaseConfig, Role};
use updraft_store::DeviceQuery;

#[derive(Deserialize)]
pub struct ListQuery {
    search: Option<String>,
    custom_id: Option<String>,
    bundle: Option<String>,
    limit: Option<i64>,
    offset: Option<i64>,
}

#[utoipa::path(get, path = "/api/v1/apps/{app_id}/devices", tag = "devices", operation_id = "list_devices",
    params(("search" = Option<String>, Query, description = "substring of device id or custom id"),
           ("custom_id" = Option<String>, Query), ("bundle" = Option<String>, Query, description = "current bundle"),
           ("limit" = Option<i64>, Query), ("offset" = Option<i64>, Query)),
    responses((status = 200, body = DeviceList), (status = 404, body = super::views::ErrorView)))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(app_id): Path<String>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<DeviceList>, ApiError> {
    caller.require(Role::Viewer, Some(&app_id))?;
    existing_app(&state, &caller, &app_id).await?;
    let query = DeviceQuery {
        search: q.search.filter(|s| !s.is_empty()),
        custom_id: q.custom_id.filter(|s| !s.is_empty()),
        version_name: q.bundle.filter(|s| !s.is_empty()),
        limit: super::validate::page_limit(q.limit, 50, 1000)?,
        offset: super::validate::page_offset(q.offset)?,
    };
    let page = state.devices.list(&app_id, &query).await?;
    let release = state.releases.get(&app_id);
    Ok(Json(DeviceList {
        devices: page
            .devices
            .into_iter()
            .map(|device| DeviceView::new(device, &release))
            .collect(),
        total: page.total,
    }))
}

#[utoipa::path(get, path = "/api/v1/apps/{app_id}/devices/{device_id}", tag = "devices", operation_id = "show_devices",
    responses((status = 200, body = DeviceDetail), (status = 404, body = super::views::ErrorView)))]
pub async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path((app_id, device_id)): Path<(String, String)>,
) -> Result<Json<DeviceDetail>, ApiError> {
    caller.require(Role::Viewer, Some(&app_id))?;
    existing_app(&state, &caller, &app_id).await?;
    let device_id = validate::device_id(&device_id)?;
    // Flush first so a device seen a moment ago is there.
    if let Err(err) = state.registry.flush().await {
        tracing::warn!(error = %err, "registry flush before device lookup failed");
    }
    let device = state
        .store
        .get_device(&app_id, &device_id)
        .await?
        .ok_or_else(|| {
            ApiError::not_found(
                ErrorCode::DeviceNotFound,
                format!("device {device_id} has not been seen for {app_id}"),
            )
        })?;
    // The in-memory release holds every override: no need to read them all.
    let release = state.releases.get(&app_id);
    let channel_override = current_override(&release, &device_id);
    let recent_events = state
        .store
        .list_events(&app_id, Some(&device_id), 50)
        .await?
        .into_iter()
        .map(EventView::from)
        .collect();
    Ok(Json(DeviceDetail {
        device: DeviceView::new(device, &release),
        channel_override,
        recent_events,
    }))
}

/// A device's override as the in-memory release holds it (every override of
/// the app, kept current after each change).
fn current_override(release: &ReleaseConfig, device_id: &str) -> Option<OverrideView> {
    let existing = release.overrides.get(device_id)?;
    let name = release
        .channel_by_id(existing.channel_id)
        .map(|c| c.name.clone())
        .unwrap_or_default();
    Some(OverrideView::new(existing.clone(), name))
}

/// [`current_override`] as the audit log's `before`.
fn override_before(state: &AppState, app_id: &str, device_id: &str) -> Option<serde_json::Value> {
    current_override(&state.releases.get(app_id), device_id).and_then(|o| audit::view(&o))
}

#[utoipa::path(put, path = "/api/v1/apps/{app_id}/devices/{device_id}/channel", tag = "devices", operation_id = "set_override_devices", request_body = SetOverride,
    responses((status = 200, body = OverrideView), (status = 404, body = super::views::ErrorView)))]
pub async fn set_override(
    State(state): State<AppState>,
    caller: Caller,
    Path((app_id, device_id)): Path<(String, String)>,
    JsonBody(body): JsonBody<SetOverride>,
) -> Result<Json<OverrideView>, ApiError> {
    caller.require(Role::Publisher, Some(&app_id))?;
    existing_app(&state, &caller, &app_id).await?;
    let device_id = validate::device_id(&device_id)?;
    let channel = state
        .store
        .get_channel(&app_id, &body.channel)
        .await?
        .ok_or_else(|| {
            ApiError::not_found(
                ErrorCode::ChannelNotFound,
                format!("channel {} of {app_id} does not exist", body.channel),
            )
        })?;
    let before = override_before(&state, &app_id, &device_id);
    let stored = state
        .store
        .set_override(
            &app_id,
            &device_id,
            channel.id,
            OverrideSource::Admin,
            state.clock.now(),
        )
        .await?;
    refresh_release(&state, &app_id).await;
    let view = OverrideView::new(stored, channel.name);
    state
        .audit
        .log(
            &caller,
            Some(&app_id),
            "device.override.set",
            &device_id,
            before,
            audit::view(&view),
        )
        .await;
    Ok(Json(view))
}

#[utoipa::path(delete, path = "/api/v1/apps/{app_id}/devices/{device_id}/channel", tag = "devices", operation_id = "unset_override_devices",
    responses((status = 204), (status = 404, body = super::views::ErrorView)))]
pub async fn unset_override(
    State(state): State<AppState>,
    caller: Caller,
    Path((app_id, device_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    caller.require(Role::Publisher, Some(&app_id))?;
    existing_app(&state, &caller, &app_id).await?;
    let device_id = validate::device_id(&device_id)?;
    state
        .devices
        .unset_override(&caller, &app_id, &device_id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/apps/{app_id}/overrides", tag = "devices", operation_id = "list_overrides_devices",
    responses((status = 200, body = OverrideList), (status = 404, body = super::views::ErrorView)))]
pub async fn list_overrides(
    State(state): State<AppState>,
    caller: Caller,
    Path(app_id): Path<String>,
) -> Result<Json<OverrideList>, ApiError> {
    caller.require(Role::Viewer, Some(&app_id))?;
    existing_app(&state, &caller, &app_id).await?;
    Ok(Json(OverrideList {
        overrides: state.devices.overrides(&app_id).await?,
    }))
}
