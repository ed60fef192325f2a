//! API keys, for admins (the first key comes from `updraft apikey create`,
//! which works on the data directory without a server).

use super::views::{ApiKeyList, ApiKeyView, CreateApiKey, CreatedApiKey, MAX_KEY_DAYS};
use super::{Caller, JsonBody};
use crate::api::Path;
use crate::audit;
use crate::error::{ApiError, ErrorCode};
use crate::state::AppState;
use axum::extract::State;
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
    responses((status = 201, body = CreatedApiKey), (status = 400, body = super::views::ErrorView),
              (status = 409, body = super::views::ErrorView, description = "a key with this name already exists")))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<CreateApiKey>,
) -> Result<(StatusCode, Json<CreatedApiKey>), ApiError> {
    caller.require(Role::Admin, None)?;
    let name = body.name.trim();
    if name.is_empty() || body.name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidBody,
            "name must be 1 to 100 characters, without control characters",
        ));
    }
    let role = match body.role.as_deref() {
        None => Role::Admin,
        Some(role) => Role::parse(role).ok_or_else(|| {
            ApiError::bad_request(
                ErrorCode::InvalidRole,
                format!("role must be admin, publisher or viewer, got {role:?}"),
            )
        })?,
    };
    if let Some(app_id) = body.app_id.as_deref() {
        if !is_valid_app_id(app_id) {
            return Err(ApiError::bad_request(
                ErrorCode::InvalidAppId,
                format!("app id {app_id:?} is not a reverse domain"),
            ));
        }
    }
    if let Some(days) = body.expires_in_days {
        if !(1..=MAX_KEY_DAYS).contains(&days) {
            return Err(ApiError::bad_request(
                ErrorCode::InvalidExpiry,
                format!("expires_in_days must be between 1 and {MAX_KEY_DAYS}, got {days}"),
            ));
        }
    }
    let now = state.clock.now();
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
    // The view has the key's shown prefix, never its secret.
    let created = ApiKeyView::from(key);
    state
        .audit
        .log(
            &caller,
            created.app_id.as_deref(),
            "apikey.create",
            &created.name,
            None,
            audit::view(&created),
        )
        .await;
    Ok((
        StatusCode::CREATED,
        Json(CreatedApiKey {
            apikey: created,
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
    let before = key_by_id_or_name(&state, &id).await?;
    let revoked = state.store.revoke_api_key(&id, state.clock.now()).await?;
    // Revoking a revoked key changes nothing: nothing to record.
    if before.as_ref().is_none_or(|k| k.revoked_at.is_none()) {
        let before = before.map(ApiKeyView::from);
        let after = ApiKeyView::from(revoked);
        state
            .audit
            .log(
                &caller,
                after.app_id.as_deref(),
                "apikey.revoke",
                &after.name,
                before.as_ref().and_then(audit::view),
                audit::view(&after),
            )
            .await;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// The key `revoke_api_key` will find: by id first, then by name.
async fn key_by_id_or_name(
    state: &AppState,
    id_or_name: &str,
) -> Result<Option<updraft_core::model::ApiKey>, ApiError> {
    let keys = state.store.list_api_keys().await?;
    let by_id = id_or_name
        .parse::<i64>()
        .ok()
        .and_then(|id| keys.iter().find(|k| k.id == id));
    Ok(by_id
        .or_else(|| keys.iter().find(|k| k.name == id_or_name))
        .cloned())
}
