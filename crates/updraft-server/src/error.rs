//! Every error the HTTP layer answers with, mapped to a response in one place.

use crate::metrics::DatabaseFailure;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
pub use updraft_api::ErrorCode;
use updraft_api::ErrorView;
use updraft_core::decision::RefusalKind;
use updraft_core::error::DeviceError;
use updraft_core::policy::{PolicyError, PolicyErrorCode};
use updraft_core::rollout::{RolloutError, RolloutErrorCode};
use updraft_store::{Entity, StoreError};

/// What a 503 caused by the database asks clients to wait.
pub const DATABASE_RETRY_AFTER_SECS: u64 = 5;

/// A management-API error: a status, a stable machine-readable code and a sentence.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub status: StatusCode,
    pub code: ErrorCode,
    pub message: String,
    /// The database failed (not the request): counted in the metrics.
    database_failure: bool,
    /// Extra top-level fields of the error body (e.g. `offset`, `missing`).
    pub details: serde_json::Map<String, serde_json::Value>,
    /// Sent as a numeric `Retry-After` header.
    pub retry_after_secs: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            database_failure: false,
            details: serde_json::Map::new(),
            retry_after_secs: None,
        }
    }

    /// 503 with a `Retry-After`: the request may succeed later as it is.
    pub fn unavailable(code: ErrorCode, message: impl Into<String>, retry_after_secs: u64) -> Self {
        ApiError {
            retry_after_secs: Some(retry_after_secs),
            ..Self::new(StatusCode::SERVICE_UNAVAILABLE, code, message)
        }
    }

    /// Adds a field to the error body next to `error` and `message`.
    pub fn with(mut self, key: &str, value: impl Into<serde_json::Value>) -> Self {
        self.details.insert(key.to_string(), value.into());
        self
    }

    /// 422: the request is well-formed but its content is refused.
    pub fn unprocessable(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }

    pub fn bad_request(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn not_found(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }

    pub fn conflict(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized, message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, ErrorCode::Forbidden, message)
    }

    /// 408: the request body stopped coming (under the minimum transfer rate).
    pub fn body_timeout() -> Self {
        Self::new(
            StatusCode::REQUEST_TIMEOUT,
            ErrorCode::BodyTimeout,
            "the request body arrived slower than the minimum transfer rate",
        )
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::InternalError,
            message,
        )
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound(what) => {
                let code = match what {
                    Entity::App => ErrorCode::AppNotFound,
                    Entity::Bundle => ErrorCode::BundleNotFound,
                    Entity::Channel => ErrorCode::ChannelNotFound,
                    Entity::ApiKey => ErrorCode::ApikeyNotFound,
                    Entity::User => ErrorCode::UserNotFound,
                    Entity::Schedule | Entity::Webhook | Entity::Delivery => ErrorCode::NotFound,
                };
                ApiError::not_found(code, format!("{what} not found"))
            }
            StoreError::AlreadyExists(what) => {
                let code = match what {
                    Entity::App => ErrorCode::AppAlreadyExists,
                    Entity::Bundle => ErrorCode::BundleAlreadyExists,
                    Entity::Channel => ErrorCode::ChannelAlreadyExists,
                    Entity::ApiKey => ErrorCode::ApikeyAlreadyExists,
                    Entity::User => ErrorCode::UserAlreadyExists,
                    Entity::Schedule | Entity::Webhook | Entity::Delivery => ErrorCode::AlreadyExists,
                };
                ApiError::conflict(code, format!("{what} already exists"))
            }
            StoreError::DeletedNameReused => ApiError::conflict(
                ErrorCode::BundleVersionDeleted,
                "this version belonged to a deleted bundle and cannot be reused; publish a new version",
            ),
            StoreError::Invalid(message) => ApiError::bad_request(ErrorCode::InvalidBody, message),
            StoreError::Conflict(message) => ApiError::conflict(ErrorCode::Conflict, message),
            StoreError::Backend(detail) => {
                tracing::error!(error = %detail, "storage error");
                ApiError {
                    database_failure: true,
                    ..ApiError::internal("the database could not complete the request")
                }
            }
            StoreError::Unavailable(detail) => {
                tracing::error!(error = %detail, "storage unavailable");
                ApiError {
                    database_failure: true,
                    ..ApiError::unavailable(
                        ErrorCode::DatabaseUnavailable,
                        "the database cannot take this request now (nothing was changed); retry shortly",
                        DATABASE_RETRY_AFTER_SECS,
                    )
                }
            }
        }
    }
}

/// A refused rollout change: 400 when the request is wrong whatever the
/// channel's state, 409 when that state refuses it.
impl From<RolloutError> for ApiError {
    fn from(err: RolloutError) -> Self {
        let (status, code) = match err.code {
            RolloutErrorCode::InvalidPercentage => {
                (StatusCode::BAD_REQUEST, ErrorCode::InvalidPercentage)
            }
            RolloutErrorCode::RolloutSameAsStable => {
                (StatusCode::CONFLICT, ErrorCode::RolloutSameAsStable)
            }
            RolloutErrorCode::NoRollout => (StatusCode::CONFLICT, ErrorCode::NoRollout),
        };
        ApiError::new(status, code, err.message)
    }
}

/// A refused auto-pause policy or ramp plan: always the request's fault.
impl From<PolicyError> for ApiError {
    fn from(err: PolicyError) -> Self {
        let code = match err.code {
            PolicyErrorCode::InvalidAutoPause => ErrorCode::InvalidAutoPause,
            PolicyErrorCode::InvalidRamp => ErrorCode::InvalidRamp,
        };
        ApiError::bad_request(code, err.message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let retry_after = (self.status == StatusCode::TOO_MANY_REQUESTS)
            .then(|| {
                self.details
                    .get("retry_after_seconds")
                    .and_then(|v| v.as_u64())
            })
            .flatten();
        let body = ErrorView {
            error: self.code,
            message: self.message,
            details: self.details,
        }
        .to_json();
        let mut response = close_if_body_unread((self.status, axum::Json(body)).into_response());
        if let Some(seconds) = self.retry_after_secs.or(retry_after) {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if self.database_failure {
            response.extensions_mut().insert(DatabaseFailure);
        }
        response
    }
}

/// A 413 leaves the rest of the request body unread, so the connection cannot
/// carry another request: say so, or a client reusing it meets a broken pipe.
fn close_if_body_unread(mut response: Response) -> Response {
    if matches!(
        response.status(),
        StatusCode::PAYLOAD_TOO_LARGE | StatusCode::REQUEST_TIMEOUT
    ) {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// A device-route answer: the reference service's envelopes, with their status.
pub struct DeviceResponse(pub DeviceError);

impl DeviceResponse {
    /// An `/updates` refusal before any decision: malformed input is
    /// `failed` (the plugin files an error without `kind` as a failure anyway,
    /// but every refusal says so outright); a rate limit (429) is `blocked`,
    /// so the device neither counts a failure nor sends `download_fail`,
    /// and backs off for `Retry-After` (wire protocol §2.1, §2.6).
    pub fn update_check(err: DeviceError) -> Response {
        let kind = if err.status == 429 {
            RefusalKind::Blocked
        } else {
            RefusalKind::Failed
        };
        DeviceResponse(err).render(Some(kind.as_str()))
    }

    fn render(self, kind: Option<&str>) -> Response {
        let status = StatusCode::from_u16(self.0.status).unwrap_or(StatusCode::BAD_REQUEST);
        let mut body = self.0.to_json();
        if let (Some(kind), Some(fields)) = (kind, body.as_object_mut()) {
            fields.insert("kind".into(), serde_json::Value::String(kind.into()));
        }
        let mut response = close_if_body_unread((status, axum::Json(body)).into_response());
        if status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::SERVICE_UNAVAILABLE {
            if let Some(seconds) = self
                .0
                .extra
                .get("retryAfterSeconds")
                .and_then(|v| v.as_u64())
            {
                if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
                    response.headers_mut().insert(header::RETRY_AFTER, value);
                }
            }
        }
        response
    }
}

impl IntoResponse for DeviceResponse {
    fn into_response(self) -> Response {
        self.render(None)
    }
}

impl From<DeviceError> for DeviceResponse {
    fn from(err: DeviceError) -> Self {
        DeviceResponse(err)
    }
}

/// JSON with an explicit status, for the device routes whose status the decision chooses.
pub fn json_with_status(status: u16, body: serde_json::Value) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    (status, axum::Json(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_errors_keep_their_wire_codes() {
        let cases = [
            (Entity::App, "app_not_found", "app_already_exists"),
            (Entity::Bundle, "bundle_not_found", "bundle_already_exists"),
            (
                Entity::Channel,
                "channel_not_found",
                "channel_already_exists",
            ),
            (Entity::ApiKey, "apikey_not_found", "apikey_already_exists"),
            (Entity::Schedule, "not_found", "already_exists"),
            (Entity::Webhook, "not_found", "already_exists"),
            (Entity::Delivery, "not_found", "already_exists"),
            (Entity::User, "user_not_found", "user_already_exists"),
        ];
        for (entity, missing, taken) in cases {
            let not_found = ApiError::from(StoreError::NotFound(entity));
            assert_eq!(
                (not_found.status, not_found.code.as_str()),
                (StatusCode::NOT_FOUND, missing)
            );
            assert_eq!(not_found.message, format!("{} not found", entity.as_str()));
            let exists = ApiError::from(StoreError::AlreadyExists(entity));
            assert_eq!(
                (exists.status, exists.code.as_str()),
                (StatusCode::CONFLICT, taken)
            );
        }
    }

    /// What the metrics middleware counts as a database error: a backend
    /// failure, not a row that is missing or taken.
    #[test]
    fn only_backend_failures_mark_the_response_as_a_database_failure() {
        let marked = |err: StoreError| {
            ApiError::from(err)
                .into_response()
                .extensions()
                .get::<DatabaseFailure>()
                .is_some()
        };
        assert!(marked(StoreError::Backend("disk I/O error".into())));
        assert!(!marked(StoreError::NotFound(Entity::App)));
        assert!(!marked(StoreError::AlreadyExists(Entity::Channel)));
    }

    #[test]
    fn rule_errors_keep_their_wire_codes_and_statuses() {
        for &code in RolloutErrorCode::ALL {
            let err = ApiError::from(RolloutError {
                code,
                message: "why".into(),
            });
            let status = match code {
                RolloutErrorCode::InvalidPercentage => StatusCode::BAD_REQUEST,
                RolloutErrorCode::RolloutSameAsStable | RolloutErrorCode::NoRollout => {
                    StatusCode::CONFLICT
                }
            };
            assert_eq!((err.status, err.code.as_str()), (status, code.as_str()));
            assert_eq!(err.message, "why");
        }
        for &code in PolicyErrorCode::ALL {
            let err = ApiError::from(PolicyError {
                code,
                message: "why".into(),
            });
            assert_eq!(
                (err.status, err.code.as_str()),
                (StatusCode::BAD_REQUEST, code.as_str())
            );
        }
    }
}
