//! The management API under `/api/v1`: what a team's CI and people use.
//! Authenticated with API keys (stored hashed), with roles and optional app scope.

mod analytics;
mod analytics_views;
mod apikeys;
mod apps;
mod audit;
mod bundles;
mod channels;
pub mod compat;
mod devices;
mod gc;
mod openapi;
mod releases;
pub mod session;
mod uploads;
pub(crate) use crate::validate;
pub mod views;
mod webhooks;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::error::ErrorCode;
use crate::state::AppState;
use axum::body::Body;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::routing::get;
use axum::Router;
use serde::de::DeserializeOwned;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Every management operation but the resumable-upload ones: the router and
/// the OpenAPI document are both made from this one list (each handler's
/// `#[utoipa::path]` gives its method and path).
fn operations() -> OpenApiRouter<AppState> {
    OpenApiRouter::default()
        .routes(routes!(apps::list, apps::create))
        .routes(routes!(apps::show, apps::update, apps::delete))
        .routes(routes!(bundles::list, bundles::create))
        .routes(routes!(bundles::show, bundles::update, bundles::delete))
        .routes(routes!(channels::list, channels::create))
        .routes(routes!(channels::show, channels::update, channels::delete))
        .routes(routes!(compat::show, compat::check_packages))
        .routes(routes!(releases::history))
        .routes(routes!(releases::rollback))
        .routes(routes!(releases::decisions))
        .routes(routes!(releases::list_schedules, releases::create_schedule))
        .routes(routes!(releases::cancel_schedule))
        .routes(routes!(devices::list))
        .routes(routes!(devices::show))
        .routes(routes!(devices::explain))
        .routes(routes!(devices::set_override, devices::unset_override))
        .routes(routes!(devices::list_overrides))
        .routes(routes!(analytics::stats))
        .routes(routes!(analytics::export))
        .routes(routes!(uploads::create))
        .routes(routes!(uploads::missing))
        .routes(routes!(uploads::put_blob))
        .routes(routes!(gc::run))
        .routes(routes!(apikeys::list, apikeys::create))
        .routes(routes!(apikeys::revoke))
        .routes(routes!(apikeys::whoami))
        .routes(routes!(audit::list))
        .routes(routes!(webhooks::list, webhooks::create))
        .routes(routes!(webhooks::show, webhooks::delete))
        .routes(routes!(webhooks::test))
        .routes(routes!(webhooks::deliveries))
        .routes(routes!(session::sign_in, session::show, session::sign_out))
        .routes(routes!(session::sign_out_everywhere))
        .routes(routes!(session::change_password))
        .routes(routes!(session::totp_enrol, session::totp_disable))
        .routes(routes!(session::totp_confirm))
        .routes(routes!(session::list_users, session::create_user))
        .routes(routes!(session::update_user))
}

/// The resumable-upload operations, whose bodies are limited by the upload
/// size rather than the management body limit.
fn upload_operations() -> OpenApiRouter<AppState> {
    OpenApiRouter::default().routes(routes!(uploads::show, uploads::append))
}

/// The OpenAPI document of the management API (`/api/v1/openapi.json`).
pub fn document() -> utoipa::openapi::OpenApi {
    openapi::document(operations().merge(upload_operations()).into_openapi())
}

pub fn routes() -> Router<AppState> {
    // Serialized once: the document is the same for the life of the process.
    let document = axum::body::Bytes::from(serde_json::to_vec(&document()).unwrap_or_default());
    let (router, _) = operations().split_for_parts();
    router
        .route(
            "/api/v1/openapi.json",
            get(move || {
                let document = document.clone();
                async move {
                    (
                        [(
                            axum::http::header::CONTENT_TYPE,
                            axum::http::HeaderValue::from_static("application/json"),
                        )],
                        document,
                    )
                }
            }),
        )
        // Key creation and webhook answers carry secrets, and the rest is an
        // operator's data: no browser or proxy cache keeps any of it.
        .layer(axum::middleware::map_response(no_store))
}

async fn no_store(mut response: axum::response::Response) -> axum::response::Response {
    response.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    response
}

/// The resumable-upload routes (see [`upload_operations`]).
pub fn upload_routes() -> Router<AppState> {
    upload_operations().split_for_parts().0
}

/// Authenticates the request's API key (`Authorization: Bearer <key>` or
/// `X-Api-Key`) from the peer address (see [`crate::auth::AuthService`]),
/// or, without either header, a console session cookie: then a
/// state-changing method also needs the session's `X-CSRF-Token` (see
/// [`crate::accounts::AccountService::authenticate`]). A key never needs one.
impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer_token(parts);
        if token.is_none() {
            if let Some(cookie) = session::session_cookie(&parts.headers) {
                let csrf = parts
                    .headers
                    .get(session::CSRF_HEADER)
                    .and_then(|v| v.to_str().ok());
                let signed_in = state
                    .accounts
                    .authenticate(cookie, csrf, session::is_state_changing(&parts.method))
                    .await?;
                return Ok(Caller::user(signed_in.user));
            }
        }
        state.auth.authenticate(token, client_address(parts)).await
    }
}

fn bearer_token(parts: &Parts) -> Option<&str> {
    if let Some(value) = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let value = value.trim();
        return Some(
            value
                .strip_prefix("Bearer ")
                .or_else(|| value.strip_prefix("bearer "))
                .unwrap_or(value)
                .trim(),
        );
    }
    parts
        .headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

pub use crate::extract::Path;

/// The client's address: the peer's, or the one a trusted proxy names (see
/// `proxy`); `None` in in-process tests that call the router without a
/// listener.
fn client_address(parts: &Parts) -> Option<std::net::IpAddr> {
    crate::proxy::client_ip(&parts.extensions)
}

/// Query-string parameters, refused with this API's JSON error
/// (`invalid_query`) rather than axum's plain-text one.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(value)| ApiQuery(value))
            .map_err(|rejection| {
                ApiError::bad_request(ErrorCode::InvalidQuery, rejection.body_text())
            })
    }
}

/// A JSON body with the size cap and errors of this API.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let body: Body = request.into_body();
        let bytes = axum::body::to_bytes(body, state.config.api_body_limit)
            .await
            .map_err(|err| {
                if crate::listener::is_body_too_slow(&err) {
                    return ApiError::body_timeout();
                }
                ApiError::new(
                    axum::http::StatusCode::PAYLOAD_TOO_LARGE,
                    ErrorCode::BodyTooLarge,
                    format!(
                        "request body is larger than {} bytes",
                        state.config.api_body_limit
                    ),
                )
            })?;
        let mut value: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| {
            ApiError::bad_request(
                ErrorCode::InvalidJsonParseBody,
                format!("body is not valid JSON: {e}"),
            )
        })?;
        if !value.is_object() {
            return Err(ApiError::bad_request(
                ErrorCode::InvalidBody,
                "body must be a JSON object",
            ));
        }
        integral_floats_to_integers(&mut value);
        serde_json::from_value(value)
            .map(JsonBody)
            .map_err(|e| ApiError::bad_request(ErrorCode::InvalidBody, e.to_string()))
    }
}

/// JSON has one number type: `30.0` is the same number as `30`, and JSON
/// Schema calls both integers. Serde's integer fields refuse the first
/// spelling, so whole numbers written with a fraction become integers here
/// (only those a double holds exactly, |n| <= 2^53); others stay as they are.
fn integral_floats_to_integers(value: &mut serde_json::Value) {
    const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
    match value {
        serde_json::Value::Number(n) if n.is_f64() => {
            if let Some(f) = n.as_f64() {
                if f.fract() == 0.0 && f.abs() <= EXACT {
                    // In range by the check above, so the cast is exact.
                    *n = serde_json::Number::from(f as i64);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(integral_floats_to_integers),
        serde_json::Value::Object(map) => map.values_mut().for_each(integral_floats_to_integers),
        _ => {}
    }
}

/// Refreshes the in-memory release of an app after a change, logging failures
/// (the periodic reload catches up).
pub(crate) async fn refresh_release(state: &AppState, app_id: &str) {
    state.release_changes.refresh(app_id).await;
}

/// The app, or 404 — also for apps a scoped key may not see.
pub(crate) async fn existing_app(
    state: &AppState,
    caller: &Caller,
    app_id: &str,
) -> Result<updraft_core::model::App, ApiError> {
    state.apps.visible(caller, app_id).await
}

#[cfg(test)]
mod tests {
    use super::integral_floats_to_integers;
    use serde_json::json;

    #[test]
    fn whole_floats_become_integers_and_others_stay() {
        let mut value =
            json!({"size": 39916800.0, "a": [1.0, 2.5, -3.0], "big": 1e300, "s": "1.0"});
        integral_floats_to_integers(&mut value);
        assert_eq!(
            value,
            json!({"size": 39916800, "a": [1, 2.5, -3], "big": 1e300, "s": "1.0"})
        );
        assert!(value["size"].is_u64());
        let size: u64 = serde_json::from_value(value["size"].clone()).unwrap();
        assert_eq!(size, 39_916_800);
    }
}
