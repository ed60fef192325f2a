//! Resumable uploads (`/api/v1/uploads`) and small blobs (`/api/v1/blobs`):
//! the HTTP side of [`crate::storage::publish::PublishService`].

use super::{JsonBody, Path};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::error::ErrorCode;
use crate::storage::parse_sha256;
use crate::storage::publish::PublishService;
use crate::storage::uploads::{
    CreateUpload, MissingBlobs, MissingBlobsQuery, StoredBlob, UploadStarted, UploadStatus,
};
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::TryStreamExt;
use std::sync::Arc;

fn status_response(status: StatusCode, upload: UploadStatus) -> Response {
    let offset = upload.offset;
    let mut response = (status, Json(upload)).into_response();
    if let Ok(value) = HeaderValue::from_str(&offset.to_string()) {
        response.headers_mut().insert("upload-offset", value);
    }
    response
}

/// The `Upload-Offset` header, `None` when missing or not a number.
fn claimed_offset(headers: &HeaderMap) -> Option<u64> {
    headers
        .get("upload-offset")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
}

#[utoipa::path(post, path = "/api/v1/uploads", tag = "uploads", operation_id = "create_upload", request_body = CreateUpload,
    responses((status = 201, body = UploadStatus, description = "new session"),
        (status = 200, body = UploadStatus, description = "resumed session, or the blob is already stored (complete)"),
        (status = 400, body = crate::api::views::ErrorView), (status = 413, body = crate::api::views::ErrorView)))]
pub async fn create(
    State(publish): State<Arc<PublishService>>,
    caller: Caller,
    JsonBody(body): JsonBody<CreateUpload>,
) -> Result<Response, ApiError> {
    caller.require_uploader()?;
    let UploadStarted { status, created } = publish.start_upload(&body.sha256, body.size).await?;
    let code = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(status_response(code, status))
}

#[utoipa::path(get, path = "/api/v1/uploads/{upload_id}", tag = "uploads", operation_id = "show_upload",
    params(("upload_id" = String, Path, description = "the id POST /api/v1/uploads returned")),
    responses((status = 200, body = UploadStatus), (status = 404, body = crate::api::views::ErrorView)))]
pub async fn show(
    State(publish): State<Arc<PublishService>>,
    caller: Caller,
    Path(upload_id): Path<String>,
) -> Result<Response, ApiError> {
    caller.require_uploader()?;
    let status = publish.upload_status(&upload_id).await?;
    Ok(status_response(StatusCode::OK, status))
}

#[utoipa::path(patch, path = "/api/v1/uploads/{upload_id}", tag = "uploads", operation_id = "append_upload",
    params(("upload_id" = String, Path, description = "the id POST /api/v1/uploads returned"),
        ("Upload-Offset" = u64, Header, description = "the offset this body starts at; must equal the session's offset")),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "the next bytes of the file (any content type is accepted; the CLI sends application/offset+octet-stream)"),
    responses((status = 200, body = UploadStatus), (status = 400, body = crate::api::views::ErrorView),
        (status = 404, body = crate::api::views::ErrorView), (status = 409, body = crate::api::views::ErrorView),
        (status = 422, body = crate::api::views::ErrorView)))]
pub async fn append(
    State(publish): State<Arc<PublishService>>,
    caller: Caller,
    Path(upload_id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    caller.require_uploader()?;
    let stream = Box::pin(body.into_data_stream().map_err(std::io::Error::other));
    let status = publish
        .append_upload(
            &upload_id,
            claimed_offset(&headers),
            declared_length(&headers),
            stream,
        )
        .await?;
    Ok(status_response(StatusCode::OK, status))
}

#[utoipa::path(put, path = "/api/v1/blobs/{sha256}", tag = "uploads", operation_id = "put_blob",
    params(("sha256" = String, Path, description = "lowercase hex SHA-256 of the body")),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "the whole file (up to the management body limit)"),
    responses((status = 201, body = StoredBlob), (status = 200, body = StoredBlob, description = "already stored"),
        (status = 413, body = crate::api::views::ErrorView), (status = 422, body = crate::api::views::ErrorView)))]
pub async fn put_blob(
    State(publish): State<Arc<PublishService>>,
    caller: Caller,
    Path(sha256): Path<String>,
    body: Body,
) -> Result<(StatusCode, Json<StoredBlob>), ApiError> {
    caller.require_uploader()?;
    // Checked before the body is read: a bad name costs no transfer.
    let sha256 = parse_sha256("the path's SHA-256", &sha256)?;
    let limit = publish.blob_body_limit();
    let bytes = axum::body::to_bytes(body, limit).await.map_err(|err| {
        if crate::listener::is_body_too_slow(&err) {
            return ApiError::body_timeout();
        }
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::BodyTooLarge,
            format!("a blob sent in one request is limited to {limit} bytes; use /api/v1/uploads"),
        )
    })?;
    let (stored, existed) = publish.put_blob(&sha256, &bytes).await?;
    let status = if existed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(stored)))
}

#[utoipa::path(post, path = "/api/v1/blobs/missing", tag = "uploads", operation_id = "missing_blobs", request_body = MissingBlobsQuery,
    responses((status = 200, body = MissingBlobs), (status = 400, body = crate::api::views::ErrorView)))]
pub async fn missing(
    State(publish): State<Arc<PublishService>>,
    caller: Caller,
    JsonBody(body): JsonBody<MissingBlobsQuery>,
) -> Result<Json<MissingBlobs>, ApiError> {
    caller.require_uploader()?;
    let missing = publish
        .missing_blobs(caller.apps().as_deref(), &body.sha256)
        .await?;
    Ok(Json(missing))
}
