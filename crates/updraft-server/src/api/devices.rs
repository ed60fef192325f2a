//! Devices: the registry (what each device last reported) and per-device
//! channel overrides.

use super::views::{DeviceDetail, DeviceList, DeviceView, OverrideList, OverrideView, SetOverride};
use super::{existing_app, validate, ApiQuery, Caller, JsonBody};
use crate::api::Path;
use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::Deserialize;
use updraft_core::model::Role;
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
    Ok(Json(state.devices.show(&app_id, &device_id).await?))
}

#[utoipa::path(get, path = "/api/v1/apps/{app_id}/devices/{device_id}/explain", tag = "devices", operation_id = "explain_devices",
    responses((status = 200, body = updraft_api::DeviceExplanation), (status = 404, body = super::views::ErrorView),
              (status = 409, body = super::views::ErrorView, description = "device_incomplete: the registry lacks a field the update check needs")))]
pub async fn explain(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path((app_id, device_id)): Path<(String, String)>,
) -> Result<Json<updraft_api::DeviceExplanation>, ApiError> {
    caller.require(Role::Viewer, Some(&app_id))?;
    existing_app(&state, &caller, &app_id).await?;
    let device_id = validate::device_id(&device_id)?;
    let base_url = state.base_url(&headers);
    Ok(Json(
        state
            .devices
            .explain(&app_id, &device_id, &base_url)
            .await?,
    ))
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
    Ok(Json(
        state
            .devices
            .set_override(&caller, &app_id, &device_id, &body.channel)
            .await?,
    ))
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
