//! API keys, for admins (the first key comes from `updraft apikey create`,
//! which works on the data directory without a server).

use super::views::{ApiKeyList, ApiKeyView, CreateApiKey, CreatedApiKey};
use super::{Caller, JsonBody};
use crate::device::now_ms;
use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use updraft_core::model::Role;
use updraft_core::validate::is_valid_app_id;
use updraft_store::NewApiKey;

const DAY_MS: i64 = 24 * 60 * 60 * 1000;

#[utoipa::path(get, path = "/api/v1/apikeys", tag = "apikeys", operation_id = "list_apikeys",
    responses((status = 200, body = ApiKeyList), (status = 403, body = super::views::ErrorView)))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<ApiKeyList>, ApiError> {
    caller.require(Role::Admin, None)?;
    let keys = state.store.list_api_keys().await?;
    Ok(Json(ApiKeyList {
        apikeys: keys.into_iter().map(ApiKeyView::from).collect(),
    }))
}

#[utoipa::path(post, path = "/api/v1/apikeys", tag = "apikeys", operation_id = "create_apikeys", request_body = CreateApiKey,
    responses((status = 201, body = CreatedApiKey), (status = 400, body = super::views::ErrorView)))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<CreateApiKey>,
) -> Result<(StatusCode, Json<CreatedApiKey>), ApiError> {
    caller.require(Role::Admin, None)?;
    let name = body.name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(ApiError::bad_request(
            "invalid_body",
            "name must be 1 to 100 characters",
        ));
    }
    let role = match body.role.as_deref() {
        None => Role::Admin,
        Some(role) => Role::parse(role).ok_or_else(|| {
            ApiError::bad_request(
                "invalid_role",
                format!("role must be admin, publisher or viewer, got {role:?}"),
            )
        })?,
    };
    if let Some(app_id) = body.app_id.as_deref() {
        if !is_valid_app_id(app_id) {
            return Err(ApiError::bad_request(
                "invalid_app_id",
                format!("app id {app_id:?} is not a reverse domain"),
            ));
        }
    }
    let now = now_ms();
    let expires_at = body
        .expires_in_days
        .map(|days| now + i64::from(days) * DAY_MS);
    let (key, secret) = state
        .store
        .create_api_key(
            NewApiKey {
                name: name.to_string(),
                role,
                app_id: body.app_id.clone(),
                expires_at,
            },
            now,
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedApiKey {
            apikey: key.into(),
            key: secret,
        }),
    ))
}

#[utoipa::path(delete, path = "/api/v1/apikeys/{id}", tag = "apikeys", operation_id = "revoke_apikeys",
    responses((status = 204), (status = 404, body = super::views::ErrorView)))]
pub async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require(Role::Admin, None)?;
    state.store.revoke_api_key(&id, now_ms()).await?;
    Ok(StatusCode::NO_CONTENT)
}
