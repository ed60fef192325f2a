//! Request extractors shared by the management API and the device
//! downloads, answering refusals with the JSON error body.

use crate::error::ApiError;
use crate::error::ErrorCode;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

/// Path parameters, refused with this API's JSON error (`invalid_path`,
/// e.g. for `%ff`, which decodes to no UTF-8) rather than axum's plain-text one.
pub struct Path<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(value)| Path(value))
            .map_err(|rejection| {
                ApiError::new(
                    rejection.status(),
                    ErrorCode::InvalidPath,
                    rejection.body_text(),
                )
            })
    }
}
