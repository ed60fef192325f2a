//! Webhooks: where signed event notifications go, and their delivery log.
//! Admins only; an app-scoped key manages only its app's webhooks.

use super::views::ErrorView;
use super::{existing_app, ApiQuery, Caller, JsonBody};
use crate::api::Path;
use crate::error::{ApiError, ErrorCode};
use crate::state::AppState;
use crate::webhooks::{self, events, WebhookToCreate};
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use updraft_core::model::{Role, Webhook};
use updraft_store::{Entity, StoreError};

pub use updraft_api::webhooks::{
    CreateWebhook, DeliveryList, DeliveryView, WebhookList, WebhookView,
};

#[derive(Deserialize)]
pub struct ListQuery {
    app_id: Option<String>,
}

#[derive(Deserialize)]
pub struct DeliveriesQuery {
    limit: Option<i64>,
}

/// Ids are numbers; anything else names no webhook.
fn parse_id(text: &str) -> Result<i64, ApiError> {
    text.parse().map_err(|_| {
        ApiError::not_found(
            ErrorCode::WebhookNotFound,
            format!("webhook {text} does not exist"),
        )
    })
}

fn not_found(id: i64) -> ApiError {
    ApiError::not_found(
        ErrorCode::WebhookNotFound,
        format!("webhook {id} does not exist"),
    )
}

/// The webhook, or 404 — also for webhooks the key may not see (another
/// app's, or a global one for an app-scoped key).
async fn visible_webhook(state: &AppState, caller: &Caller, id: i64) -> Result<Webhook, ApiError> {
    let hook = state.webhooks.get(id).await?.ok_or_else(|| not_found(id))?;
    let visible = match (&hook.app_id, caller.apps()) {
        (_, None) => true,
        (Some(app), Some(_)) => caller.can_see(app),
        (None, Some(_)) => false,
    };
    if !visible {
        return Err(not_found(id));
    }
    caller.require(Role::Admin, hook.app_id.as_deref())?;
    Ok(hook)
}

fn store_error(id: i64, err: StoreError) -> ApiError {
    match err {
        StoreError::NotFound(Entity::Webhook) => not_found(id),
        other => other.into(),
    }
}

#[utoipa::path(get, path = "/api/v1/webhooks", tag = "webhooks", operation_id = "list_webhooks",
    params(("app_id" = Option<String>, Query, pattern = r"^([A-Za-z0-9]+(\.[A-Za-z0-9_-]+)+)?$", max_length = 255, description = "this app's webhooks and the global ones (empty or absent: the key's app, or all)")),
    responses((status = 200, body = WebhookList), (status = 403, body = ErrorView)))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Json<WebhookList>, ApiError> {
    let app_id = super::validate::app_id_filter(query.app_id)?.or_else(|| caller.sole_app());
    caller.require(Role::Admin, app_id.as_deref())?;
    let hooks = state.webhooks.list(app_id.as_deref()).await?;
    let scoped = caller.apps().is_some();
    Ok(Json(WebhookList {
        webhooks: hooks
            .into_iter()
            // A scoped caller does not see the global webhooks.
            .filter(|h| !scoped || h.app_id.as_deref().is_some_and(|app| caller.can_see(app)))
            .map(|hook| state.webhooks.masked(hook))
            .collect(),
    }))
}

fn checked_events(given: Option<Vec<String>>) -> Result<Vec<String>, ApiError> {
    let mut wanted: Vec<String> = Vec::new();
    for event in given.unwrap_or_default() {
        let event = event.trim().to_string();
        if !events::ALL.contains(&event.as_str()) {
            return Err(ApiError::bad_request(
                ErrorCode::InvalidEvent,
                format!(
                    "unknown event type {event:?}; known: {}",
                    events::ALL.join(", ")
                ),
            ));
        }
        if !wanted.contains(&event) {
            wanted.push(event);
        }
    }
    Ok(wanted)
}

#[utoipa::path(post, path = "/api/v1/webhooks", tag = "webhooks", operation_id = "create_webhooks", request_body = CreateWebhook,
    responses((status = 201, body = WebhookView, description = "the secret is shown whole, this once"),
        (status = 400, body = ErrorView), (status = 404, body = ErrorView)))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<CreateWebhook>,
) -> Result<(StatusCode, Json<WebhookView>), ApiError> {
    let app_id = body
        .app_id
        .as_deref()
        .map(str::trim)
        .filter(|a| !a.is_empty());
    caller.require(Role::Admin, app_id)?;
    if let Some(app_id) = app_id {
        existing_app(&state, &caller, app_id).await?;
    }
    let url = body.url.trim();
    if url.len() > 2048 || !webhooks::is_valid_url(url) {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidUrl,
            format!("url must be an http:// or https:// URL, got {url:?}"),
        ));
    }
    let events = checked_events(body.events)?;
    let secret = match body.secret.as_deref().map(str::trim) {
        None | Some("") => webhooks::generate_secret(),
        Some(given) if webhooks::secret_key(given).is_some() => given.to_string(),
        Some(_) => {
            return Err(ApiError::bad_request(
                ErrorCode::InvalidSecret,
                "secret must be whsec_ followed by the base64 of 24 to 64 random bytes",
            ))
        }
    };
    let hook = state
        .webhooks
        .create(
            &caller,
            WebhookToCreate {
                app_id: app_id.map(str::to_string),
                url: url.to_string(),
                secret: secret.clone(),
                events,
                enabled: body.enabled.unwrap_or(true),
            },
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(WebhookView::with_secret(hook, secret)),
    ))
}

#[utoipa::path(get, path = "/api/v1/webhooks/{id}", tag = "webhooks", operation_id = "show_webhooks",
    responses((status = 200, body = WebhookView), (status = 404, body = ErrorView)))]
pub async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<WebhookView>, ApiError> {
    let id = parse_id(&id)?;
    let hook = visible_webhook(&state, &caller, id).await?;
    Ok(Json(state.webhooks.masked(hook)))
}

#[utoipa::path(delete, path = "/api/v1/webhooks/{id}", tag = "webhooks", operation_id = "delete_webhooks",
    responses((status = 204), (status = 404, body = ErrorView)))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = parse_id(&id)?;
    let hook = visible_webhook(&state, &caller, id).await?;
    state
        .webhooks
        .delete(&caller, hook)
        .await
        .map_err(|e| store_error(id, e))?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/v1/webhooks/{id}/test", tag = "webhooks", operation_id = "test_webhooks",
    responses((status = 202, body = DeliveryView, description = "a webhook.test event is queued"), (status = 404, body = ErrorView)))]
pub async fn test(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<DeliveryView>), ApiError> {
    let id = parse_id(&id)?;
    visible_webhook(&state, &caller, id).await?;
    let delivery = state
        .webhooks
        .send_test(id)
        .await
        .map_err(|e| store_error(id, e))?;
    Ok((StatusCode::ACCEPTED, Json(delivery.into())))
}

#[utoipa::path(get, path = "/api/v1/webhooks/{id}/deliveries", tag = "webhooks", operation_id = "list_webhook_deliveries",
    params(("limit" = Option<i64>, Query, description = "newest first; default 50, at most 500")),
    responses((status = 200, body = DeliveryList), (status = 404, body = ErrorView)))]
pub async fn deliveries(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<DeliveriesQuery>,
) -> Result<Json<DeliveryList>, ApiError> {
    let id = parse_id(&id)?;
    visible_webhook(&state, &caller, id).await?;
    let limit = super::validate::page_limit(query.limit, 50, 500)?;
    let deliveries = state.webhooks.deliveries(id, limit).await?;
    Ok(Json(DeliveryList {
        deliveries: deliveries.into_iter().map(DeliveryView::from).collect(),
    }))
}
