//! Channels: which bundle each group of devices gets, and under which rules.

use super::views::{ChannelList, ChannelSettings, ChannelView, CreateChannel};
use super::{existing_app, refresh_release, validate, Caller, JsonBody};
use crate::device::now_ms;
use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use std::collections::HashMap;
use updraft_core::model::{AutoUpdatePolicy, Channel, ChannelPatch, Role, BUILTIN};
use updraft_store::NewChannel;

async fn bundle_names(state: &AppState, app_id: &str) -> Result<HashMap<i64, String>, ApiError> {
    Ok(state
        .store
        .list_bundles(app_id, true)
        .await?
        .into_iter()
        .map(|b| (b.id, b.name))
        .collect())
}

async fn view(state: &AppState, channel: Channel) -> Result<ChannelView, ApiError> {
    let names = bundle_names(state, &channel.app_id).await?;
    Ok(ChannelView::new(channel, &names))
}

/// Resolves names (bundle version, policy) into a storable patch.
async fn patch_from_settings(
    state: &AppState,
    app_id: &str,
    s: ChannelSettings,
) -> Result<ChannelPatch, ApiError> {
    let bundle_id = match s.bundle.as_deref() {
        None => None,
        Some(BUILTIN) => Some(None),
        Some(version) => {
            let bundle = state
                .store
                .get_bundle(app_id, version)
                .await?
                .ok_or_else(|| {
                    ApiError::not_found(
                        "bundle_not_found",
                        format!("bundle {version} of {app_id} does not exist"),
                    )
                })?;
            if bundle.deleted {
                return Err(ApiError::conflict(
                    "bundle_deleted",
                    format!("bundle {version} is deleted and cannot be served"),
                ));
            }
            Some(Some(bundle.id))
        }
    };
    let disable_auto_update = match s.disable_auto_update.as_deref() {
        None => None,
        Some(policy) => Some(AutoUpdatePolicy::parse(policy).ok_or_else(|| {
            ApiError::bad_request(
                "invalid_body",
                format!("disable_auto_update must be major, minor, patch, metadata or none, got {policy:?}"),
            )
        })?),
    };
    Ok(ChannelPatch {
        bundle_id,
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
        ..ChannelPatch::default()
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
    let names = bundle_names(&state, &app_id).await?;
    let channels = state.store.list_channels(&app_id).await?;
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
                "invalid_body",
                "name (a string) is required",
            ))
        }
    };
    validate::channel_name(&name)?;
    let settings: ChannelSettings = serde_json::from_value(serde_json::Value::Object(body))
        .map_err(|e| ApiError::bad_request("invalid_body", e.to_string()))?;
    let settings = patch_from_settings(&state, &app_id, settings).await?;
    let channel = state
        .store
        .create_channel(
            NewChannel {
                app_id: app_id.clone(),
                name,
                settings,
            },
            now_ms(),
        )
        .await?;
    refresh_release(&state, &app_id).await;
    Ok((StatusCode::CREATED, Json(view(&state, channel).await?)))
}

async fn existing_channel(state: &AppState, app_id: &str, name: &str) -> Result<Channel, ApiError> {
    state.store.get_channel(app_id, name).await?.ok_or_else(|| {
        ApiError::not_found(
            "channel_not_found",
            format!("channel {name} of {app_id} does not exist"),
        )
    })
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
    responses((status = 200, body = ChannelView), (status = 404, body = super::views::ErrorView)))]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path((app_id, name)): Path<(String, String)>,
    JsonBody(settings): JsonBody<ChannelSettings>,
) -> Result<Json<ChannelView>, ApiError> {
    caller.require(Role::Publisher, Some(&app_id))?;
    existing_app(&state, &caller, &app_id).await?;
    existing_channel(&state, &app_id, &name).await?;
    let patch = patch_from_settings(&state, &app_id, settings).await?;
    let channel = state
        .store
        .update_channel(&app_id, &name, patch, now_ms())
        .await?;
    refresh_release(&state, &app_id).await;
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
    existing_channel(&state, &app_id, &name).await?;
    state.store.delete_channel(&app_id, &name).await?;
    refresh_release(&state, &app_id).await;
    Ok(StatusCode::NO_CONTENT)
}
