//! Apps: registered once, everything else hangs off them.

use super::views::{AppList, AppView, CreateApp, UpdateApp};
use super::{existing_app, refresh_release, Caller, JsonBody};
use crate::api::Path;
use crate::audit;
use crate::error::{ApiError, ErrorCode};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use updraft_core::model::Role;
use updraft_core::validate::is_valid_app_id;

#[utoipa::path(get, path = "/api/v1/apps", tag = "apps", operation_id = "list_apps",
    responses((status = 200, body = AppList), (status = 401, body = super::views::ErrorView)))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<AppList>, ApiError> {
    caller.require(Role::Viewer, caller.key.app_id.as_deref())?;
    let apps = state.store.list_apps().await?;
    Ok(Json(AppList {
        apps: apps
            .into_iter()
            .filter(|a| caller.can_see(&a.app_id))
            .map(AppView::from)
            .collect(),
    }))
}

#[utoipa::path(post, path = "/api/v1/apps", tag = "apps", operation_id = "create_apps", request_body = CreateApp,
    responses((status = 201, body = AppView), (status = 400, body = super::views::ErrorView), (status = 409, body = super::views::ErrorView)))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<CreateApp>,
) -> Result<(StatusCode, Json<AppView>), ApiError> {
    caller.require(Role::Admin, None)?;
    if !is_valid_app_id(&body.app_id) {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidAppId,
            format!(
                "app id {:?} must be a reverse domain like com.example.app",
                body.app_id
            ),
        ));
    }
    let name = body.name.unwrap_or_else(|| body.app_id.clone());
    let mut app = state
        .store
        .create_app(&body.app_id, name.trim(), state.clock.now())
        .await?;
    if let Some(expose) = body.expose_metadata {
        app = state
            .store
            .update_app(&app.app_id, None, Some(expose))
            .await?;
    }
    refresh_release(&state, &app.app_id).await;
    let created = AppView::from(app);
    state
        .audit
        .log(
            &caller,
            Some(&created.app_id),
            "app.create",
            &created.app_id,
            None,
            audit::view(&created),
        )
        .await;
    Ok((StatusCode::CREATED, Json(created)))
}

#[utoipa::path(get, path = "/api/v1/apps/{app_id}", tag = "apps", operation_id = "show_apps",
    responses((status = 200, body = AppView), (status = 404, body = super::views::ErrorView)))]
pub async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(app_id): Path<String>,
) -> Result<Json<AppView>, ApiError> {
    caller.require(Role::Viewer, Some(&app_id))?;
    Ok(Json(existing_app(&state, &caller, &app_id).await?.into()))
}

#[utoipa::path(patch, path = "/api/v1/apps/{app_id}", tag = "apps", operation_id = "update_apps", request_body = UpdateApp,
    responses((status = 200, body = AppView), (status = 404, body = super::views::ErrorView)))]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(app_id): Path<String>,
    JsonBody(body): JsonBody<UpdateApp>,
) -> Result<Json<AppView>, ApiError> {
    caller.require(Role::Admin, Some(&app_id))?;
    let before = audit::view(&AppView::from(
        existing_app(&state, &caller, &app_id).await?,
    ));
    let app = state
        .store
        .update_app(
            &app_id,
            body.name.as_deref().map(str::trim),
            body.expose_metadata,
        )
        .await?;
    refresh_release(&state, &app_id).await;
    let updated = AppView::from(app);
    state
        .audit
        .log(
            &caller,
            Some(&app_id),
            "app.update",
            &app_id,
            before,
            audit::view(&updated),
        )
        .await;
    Ok(Json(updated))
}

#[utoipa::path(delete, path = "/api/v1/apps/{app_id}", tag = "apps", operation_id = "delete_apps",
    responses((status = 204), (status = 404, body = super::views::ErrorView)))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(app_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require(Role::Admin, Some(&app_id))?;
    let before = audit::view(&AppView::from(
        existing_app(&state, &caller, &app_id).await?,
    ));
    state.store.delete_app(&app_id).await?;
    // Its device rows are gone: a device seen again is written anew.
    state.registry.forget_all();
    // Keys limited to this app would otherwise come back to life if the id is reused.
    let now = state.clock.now();
    for key in state.store.list_api_keys().await? {
        if key.app_id.as_deref() == Some(app_id.as_str()) && key.revoked_at.is_none() {
            state.store.revoke_api_key(&key.id.to_string(), now).await?;
        }
    }
    refresh_release(&state, &app_id).await;
    state
        .audit
        .log(&caller, Some(&app_id), "app.delete", &app_id, before, None)
        .await;
    Ok(StatusCode::NO_CONTENT)
}
