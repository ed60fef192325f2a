//! Apps: registered once, everything else hangs off them (the work is
//! [`crate::apps::AppService`]'s).

use super::views::{AppList, AppView, CreateApp, UpdateApp};
use super::{Caller, JsonBody};
use crate::api::Path;
use crate::apps::AppService;
use crate::error::ApiError;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use std::sync::Arc;
use updraft_core::model::Role;

#[utoipa::path(get, path = "/api/v1/apps", tag = "apps", operation_id = "list_apps",
    responses((status = 200, body = AppList), (status = 401, body = super::views::ErrorView)))]
pub async fn list(
    State(apps): State<Arc<AppService>>,
    caller: Caller,
) -> Result<Json<AppList>, ApiError> {
    caller.require_role(Role::Viewer)?;
    Ok(Json(AppList {
        apps: apps
            .list(&caller)
            .await?
            .into_iter()
            .map(AppView::from)
            .collect(),
    }))
}

#[utoipa::path(post, path = "/api/v1/apps", tag = "apps", operation_id = "create_apps", request_body = CreateApp,
    responses((status = 201, body = AppView), (status = 400, body = super::views::ErrorView), (status = 409, body = super::views::ErrorView)))]
pub async fn create(
    State(apps): State<Arc<AppService>>,
    caller: Caller,
    JsonBody(body): JsonBody<CreateApp>,
) -> Result<(StatusCode, Json<AppView>), ApiError> {
    caller.require(Role::Admin, None)?;
    let created = apps
        .create(
            &caller,
            &body.app_id,
            body.name.as_deref(),
            body.expose_metadata,
        )
        .await?;
    Ok((StatusCode::CREATED, Json(created)))
}

#[utoipa::path(get, path = "/api/v1/apps/{app_id}", tag = "apps", operation_id = "show_apps",
    responses((status = 200, body = AppView), (status = 404, body = super::views::ErrorView)))]
pub async fn show(
    State(apps): State<Arc<AppService>>,
    caller: Caller,
    Path(app_id): Path<String>,
) -> Result<Json<AppView>, ApiError> {
    caller.require(Role::Viewer, Some(&app_id))?;
    Ok(Json(apps.visible(&caller, &app_id).await?.into()))
}

#[utoipa::path(patch, path = "/api/v1/apps/{app_id}", tag = "apps", operation_id = "update_apps", request_body = UpdateApp,
    responses((status = 200, body = AppView), (status = 404, body = super::views::ErrorView)))]
pub async fn update(
    State(apps): State<Arc<AppService>>,
    caller: Caller,
    Path(app_id): Path<String>,
    JsonBody(body): JsonBody<UpdateApp>,
) -> Result<Json<AppView>, ApiError> {
    caller.require(Role::Admin, Some(&app_id))?;
    let updated = apps
        .update(&caller, &app_id, body.name.as_deref(), body.expose_metadata)
        .await?;
    Ok(Json(updated))
}

#[utoipa::path(delete, path = "/api/v1/apps/{app_id}", tag = "apps", operation_id = "delete_apps",
    responses((status = 204), (status = 404, body = super::views::ErrorView)))]
pub async fn delete(
    State(apps): State<Arc<AppService>>,
    caller: Caller,
    Path(app_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require(Role::Admin, Some(&app_id))?;
    apps.delete(&caller, &app_id).await?;
    Ok(StatusCode::NO_CONTENT)
}
