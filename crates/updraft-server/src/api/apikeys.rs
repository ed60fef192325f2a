//! API keys, for admins (the work is [`crate::apikeys::ApiKeyService`]'s),
//! and `whoami`, for any key.

use super::views::{ApiKeyList, ApiKeyView, CreateApiKey, CreatedApiKey, Whoami};
use super::{Caller, JsonBody};
use crate::api::Path;
use crate::apikeys::ApiKeyService;
use crate::auth::Principal;
use crate::error::{ApiError, ErrorCode};
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use std::sync::Arc;
use updraft_core::model::Role;

#[utoipa::path(get, path = "/api/v1/apikeys", tag = "apikeys", operation_id = "list_apikeys",
    responses((status = 200, body = ApiKeyList), (status = 403, body = super::views::ErrorView)))]
pub async fn list(
    State(keys): State<Arc<ApiKeyService>>,
    caller: Caller,
) -> Result<Json<ApiKeyList>, ApiError> {
    caller.require(Role::Admin, None)?;
    Ok(Json(ApiKeyList {
        apikeys: keys
            .list()
            .await?
            .into_iter()
            .map(ApiKeyView::from)
            .collect(),
    }))
}

#[utoipa::path(post, path = "/api/v1/apikeys", tag = "apikeys", operation_id = "create_apikeys", request_body = CreateApiKey,
    responses((status = 201, body = CreatedApiKey), (status = 400, body = super::views::ErrorView),
              (status = 409, body = super::views::ErrorView, description = "a key with this name already exists")))]
pub async fn create(
    State(keys): State<Arc<ApiKeyService>>,
    caller: Caller,
    JsonBody(body): JsonBody<CreateApiKey>,
) -> Result<(StatusCode, Json<CreatedApiKey>), ApiError> {
    caller.require(Role::Admin, None)?;
    let created = keys.create(&caller, &body).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

#[utoipa::path(delete, path = "/api/v1/apikeys/{id}", tag = "apikeys", operation_id = "revoke_apikeys",
    responses((status = 204), (status = 404, body = super::views::ErrorView)))]
pub async fn revoke(
    State(keys): State<Arc<ApiKeyService>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require(Role::Admin, None)?;
    keys.revoke(&caller, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The calling key itself: any valid key may ask (no role or scope needed),
/// and learns nothing about other keys.
#[utoipa::path(get, path = "/api/v1/whoami", tag = "apikeys", operation_id = "whoami",
    responses((status = 200, body = Whoami, description = "the key the request was made with")))]
pub async fn whoami(caller: Caller) -> Result<Json<Whoami>, ApiError> {
    match caller.principal {
        Principal::Key(key) => Ok(Json(Whoami {
            apikey: ApiKeyView::from(key),
        })),
        // A console session is not a key: `GET /api/v1/session` describes it.
        Principal::User(_) => Err(ApiError::bad_request(
            ErrorCode::InvalidQuery,
            "whoami describes the API key of a request; a signed-in user is described by GET /api/v1/session",
        )),
    }
}
