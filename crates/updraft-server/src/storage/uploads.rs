//! Resumable uploads (`/api/v1/uploads`) and small blobs (`/api/v1/blobs`).
//!
//! Two modes share the handlers and differ in where a session and its bytes
//! live ([`UploadMode`]):
//!
//! - **Local** (blobs on this node's disk): a session is
//!   `<data_dir>/uploads/<id>.json` (what is expected) plus a partial file in
//!   the staging directory (what arrived). The partial's length is the
//!   offset: every acknowledged PATCH is fsynced first, so an answered offset
//!   survives a kill, and a restarted server reads the offset back from the
//!   file. A completed upload is hashed and moved into the blob store.
//! - **Shared** (blobs in an object store, possibly several nodes behind a
//!   load balancer): the session is a database row and every PATCH body
//!   becomes a part object in the bucket, so any node can take the next
//!   PATCH. A PATCH is acknowledged once its part is in the bucket and the
//!   conditional update of the row (`received` must still be the offset the
//!   PATCH started at) committed; the loser of two PATCHes for one offset
//!   deletes its part and gets the offset mismatch answer. The node that
//!   receives the last byte assembles the parts and stores the blob.

use super::{blob_failure, parse_sha256, require_uploader};
use crate::api::JsonBody;
use crate::api::Path as UrlPath;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;
use crate::storage::now_ms;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use updraft_core::model::Millis;
use updraft_store::blob::{BlobError, BlobStore};
use updraft_store::{Store, UploadPart, UploadSession};

/// Longest wait for a session another request is writing to.
const SESSION_BUSY_WAIT: Duration = Duration::from_secs(30);
/// Most hashes one `POST /api/v1/blobs/missing` may ask about.
pub const MAX_MISSING_QUERY: usize = 10_000;

/// What is stored in `<id>.json`.
#[derive(Serialize, Deserialize)]
struct SessionRecord {
    upload_id: String,
    sha256: String,
    size: u64,
    created_at: Millis,
    complete: bool,
}

struct Session {
    upload_id: String,
    sha256: String,
    size: u64,
    created_at: Millis,
    /// The offset last made durable (fsynced), what status answers report.
    durable_offset: AtomicU64,
    complete: AtomicBool,
    /// Last write or creation; expiry counts from here.
    last_activity: AtomicI64,
    /// Held by the request writing to the partial file.
    writer: Arc<tokio::sync::Mutex<()>>,
}

impl Session {
    fn expires_at(&self, expiry: Duration) -> Millis {
        self.last_activity
            .load(Ordering::Acquire)
            .saturating_add(i64::try_from(expiry.as_millis()).unwrap_or(i64::MAX))
    }

    fn status(&self, expiry: Duration) -> UploadStatus {
        UploadStatus {
            upload_id: self.upload_id.clone(),
            offset: self.durable_offset.load(Ordering::Acquire),
            size: self.size,
            sha256: self.sha256.clone(),
            complete: self.complete.load(Ordering::Acquire),
            expires_at: crate::api::views::rfc3339(self.expires_at(expiry)),
        }
    }

    fn record(&self) -> SessionRecord {
        SessionRecord {
            upload_id: self.upload_id.clone(),
            sha256: self.sha256.clone(),
            size: self.size,
            created_at: self.created_at,
            complete: self.complete.load(Ordering::Acquire),
        }
    }
}

/// Every upload session, loaded from disk at start-up.
pub struct UploadSessions {
    dir: PathBuf,
    staging: PathBuf,
    expiry: Duration,
    sessions: Mutex<HashMap<String, Arc<Session>>>,
    /// Serialises "find or create" so one (sha256, size) gets one session.
    create_lock: tokio::sync::Mutex<()>,
}

fn file_mtime_ms(path: &Path) -> Option<Millis> {
    let modified = std::fs::metadata(path).ok()?.modified().ok()?;
    let since = modified.duration_since(std::time::UNIX_EPOCH).ok()?;
    i64::try_from(since.as_millis()).ok()
}

/// Writes a small file so that it is either the old or the new content.
async fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("json.tmp");
    let mut file = tokio::fs::File::create(&tmp).await?;
    file.write_all(bytes).await?;
    file.sync_all().await?;
    drop(file);
    tokio::fs::rename(&tmp, path).await?;
    if let Some(dir) = path.parent() {
        tokio::fs::File::open(dir).await?.sync_all().await?;
    }
    Ok(())
}

async fn remove_if_present(path: &Path) -> std::io::Result<()> {
    match tokio::fs::remove_file(path).await {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => Err(err),
        _ => Ok(()),
    }
}

fn io_failure(err: std::io::Error) -> ApiError {
    tracing::error!(error = %err, "upload storage failed");
    ApiError::internal("the upload could not be stored")
}

fn not_found(upload_id: &str) -> ApiError {
    ApiError::not_found(
        "upload_not_found",
        format!("upload {upload_id} does not exist or has expired; start a new one"),
    )
}

impl UploadSessions {
    /// Loads the sessions in `dir` (created if needed); partial files live in `staging`.
    pub fn open(dir: &Path, staging: &Path, expiry: Duration) -> std::io::Result<UploadSessions> {
        std::fs::create_dir_all(dir)?;
        let mut sessions = HashMap::new();
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            let record: Option<SessionRecord> = std::fs::read(&path)
                .ok()
                .and_then(|bytes| serde_json::from_slice(&bytes).ok());
            let Some(record) = record.filter(|r| is_upload_id(&r.upload_id)) else {
                tracing::warn!(path = %path.display(), "ignoring an unreadable upload session");
                continue;
            };
            let partial = staging.join(format!("upload-{}.part", record.upload_id));
            let offset = if record.complete {
                record.size
            } else {
                std::fs::metadata(&partial).map(|m| m.len()).unwrap_or(0)
            };
            let last_activity = file_mtime_ms(&partial)
                .unwrap_or(record.created_at)
                .max(record.created_at);
            let session = Session {
                upload_id: record.upload_id.clone(),
                sha256: record.sha256,
                size: record.size,
                created_at: record.created_at,
                durable_offset: AtomicU64::new(offset.min(record.size)),
                complete: AtomicBool::new(record.complete),
                last_activity: AtomicI64::new(last_activity),
                writer: Arc::new(tokio::sync::Mutex::new(())),
            };
            sessions.insert(record.upload_id, Arc::new(session));
        }
        Ok(UploadSessions {
            dir: dir.to_path_buf(),
            staging: staging.to_path_buf(),
            expiry,
            sessions: Mutex::new(sessions),
            create_lock: tokio::sync::Mutex::new(()),
        })
    }

    fn record_path(&self, upload_id: &str) -> PathBuf {
        self.dir.join(format!("{upload_id}.json"))
    }

    fn partial_path(&self, upload_id: &str) -> PathBuf {
        self.staging.join(format!("upload-{upload_id}.part"))
    }

    fn lock_map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Session>>> {
        // A panic while holding this lock cannot leave the map inconsistent.
        self.sessions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn live(&self, upload_id: &str, now: Millis) -> Option<Arc<Session>> {
        let session = self.lock_map().get(upload_id).cloned()?;
        (session.expires_at(self.expiry) > now).then_some(session)
    }

    async fn persist(&self, session: &Session) -> std::io::Result<()> {
        let bytes = serde_json::to_vec(&session.record()).map_err(std::io::Error::other)?;
        write_atomically(&self.record_path(&session.upload_id), &bytes).await
    }

    async fn discard(&self, session: &Session) -> std::io::Result<()> {
        self.lock_map().remove(&session.upload_id);
        remove_if_present(&self.record_path(&session.upload_id)).await?;
        remove_if_present(&self.partial_path(&session.upload_id)).await
    }

    /// Removes expired sessions nobody is writing to; returns how many.
    pub async fn sweep_expired(&self, now: Millis) -> usize {
        let expired: Vec<Arc<Session>> = self
            .lock_map()
            .values()
            .filter(|s| s.expires_at(self.expiry) <= now)
            .cloned()
            .collect();
        let mut removed = 0;
        for session in expired {
            let Ok(_writer) = session.writer.try_lock() else {
                continue;
            };
            match self.discard(&session).await {
                Ok(()) => removed += 1,
                Err(err) => tracing::warn!(error = %err, "could not remove an expired upload"),
            }
        }
        removed
    }

    /// How many sessions exist (expired ones not yet swept included).
    pub fn len(&self) -> usize {
        self.lock_map().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Where sessions and their bytes live; chosen by the blob store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum UploadMode {
    /// This node's data directory (blobs on local disk: one node).
    Local,
    /// The database and the shared bucket (any node may take any request).
    Shared,
}

impl UploadMode {
    fn of(state: &AppState) -> UploadMode {
        if state.storage.blobs.is_shared() {
            UploadMode::Shared
        } else {
            UploadMode::Local
        }
    }
}

fn new_upload_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

fn claimed_offset(headers: &HeaderMap) -> Result<u64, ApiError> {
    headers
        .get("upload-offset")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| {
            ApiError::bad_request(
                "invalid_upload_offset",
                "send the Upload-Offset header: the byte offset this body starts at",
            )
        })
}

fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
}

fn checksum_mismatch(expected: String, actual: String) -> ApiError {
    ApiError::unprocessable(
        "checksum_mismatch",
        format!("the uploaded bytes hash to {actual}, not {expected}; the upload was discarded, start again"),
    )
    .with("expected", expected)
    .with("actual", actual)
}

pub use updraft_api::uploads::{
    CreateUpload, MissingBlobs, MissingBlobsQuery, StoredBlob, UploadStatus,
};

fn is_upload_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

fn status_response(status: StatusCode, upload: UploadStatus) -> Response {
    let offset = upload.offset;
    let mut response = (status, Json(upload)).into_response();
    if let Ok(value) = HeaderValue::from_str(&offset.to_string()) {
        response.headers_mut().insert("upload-offset", value);
    }
    response
}

/// Moves a fully received partial into the blob store.
async fn finish(state: &AppState, session: &Session) -> Result<(), ApiError> {
    let storage = &state.storage;
    let partial = storage.uploads.partial_path(&session.upload_id);
    match storage
        .blobs
        .put_file(&partial, Some(&session.sha256))
        .await
    {
        Ok(_) => {
            session.complete.store(true, Ordering::Release);
            session
                .durable_offset
                .store(session.size, Ordering::Release);
            storage.uploads.persist(session).await.map_err(io_failure)?;
            Ok(())
        }
        Err(BlobError::Mismatch { expected, actual }) => {
            storage.uploads.discard(session).await.map_err(io_failure)?;
            Err(checksum_mismatch(expected, actual))
        }
        Err(err) => Err(blob_failure(err)),
    }
}

#[utoipa::path(post, path = "/api/v1/uploads", tag = "uploads", operation_id = "create_upload", request_body = CreateUpload,
    responses((status = 201, body = UploadStatus, description = "new session"),
        (status = 200, body = UploadStatus, description = "resumed session, or the blob is already stored (complete)"),
        (status = 400, body = crate::api::views::ErrorView), (status = 413, body = crate::api::views::ErrorView)))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<CreateUpload>,
) -> Result<Response, ApiError> {
    require_uploader(&caller)?;
    let sha256 = parse_sha256("sha256", &body.sha256)?;
    if body.size == 0 {
        return Err(ApiError::bad_request(
            "invalid_size",
            "size must be at least 1 byte",
        ));
    }
    let max = state.config.max_upload_size;
    if body.size > max {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "upload_too_large",
            format!("uploads are limited to {max} bytes"),
        )
        .with("max_size", max));
    }
    match UploadMode::of(&state) {
        UploadMode::Local => create_local(&state, sha256, body.size).await,
        UploadMode::Shared => shared::create(&state, sha256, body.size).await,
    }
}

async fn create_local(state: &AppState, sha256: String, size: u64) -> Result<Response, ApiError> {
    let storage = &state.storage;
    let uploads = &storage.uploads;
    let _creating = uploads.create_lock.lock().await;
    let now = now_ms();
    let existing_blob = storage.blobs.stat(&sha256).await.map_err(blob_failure)?;
    let make_session = |complete: bool| Session {
        upload_id: new_upload_id(),
        sha256: sha256.clone(),
        size,
        created_at: now,
        durable_offset: AtomicU64::new(if complete { size } else { 0 }),
        complete: AtomicBool::new(complete),
        last_activity: AtomicI64::new(now),
        writer: Arc::new(tokio::sync::Mutex::new(())),
    };
    if existing_blob == Some(size) {
        // Restart the blob's gc grace period: a bundle is about to reference it.
        storage.blobs.touch(&sha256).await.map_err(blob_failure)?;
        let session = make_session(true);
        let status = session.status(uploads.expiry);
        uploads.persist(&session).await.map_err(io_failure)?;
        uploads
            .lock_map()
            .insert(session.upload_id.clone(), Arc::new(session));
        return Ok(status_response(StatusCode::OK, status));
    }
    let resumable = uploads
        .lock_map()
        .values()
        .filter(|s| {
            s.sha256 == sha256
                && s.size == size
                && !s.complete.load(Ordering::Acquire)
                && s.expires_at(uploads.expiry) > now
        })
        .max_by_key(|s| s.durable_offset.load(Ordering::Acquire))
        .cloned();
    if let Some(session) = resumable {
        if session.durable_offset.load(Ordering::Acquire) == session.size {
            // Every byte arrived but the server stopped before finishing.
            if let Ok(_writer) = session.writer.try_lock() {
                finish(state, &session).await?;
            }
        }
        return Ok(status_response(
            StatusCode::OK,
            session.status(uploads.expiry),
        ));
    }
    let session = make_session(false);
    tokio::fs::File::create(uploads.partial_path(&session.upload_id))
        .await
        .map_err(io_failure)?;
    uploads.persist(&session).await.map_err(io_failure)?;
    let status = session.status(uploads.expiry);
    uploads
        .lock_map()
        .insert(session.upload_id.clone(), Arc::new(session));
    Ok(status_response(StatusCode::CREATED, status))
}

#[utoipa::path(get, path = "/api/v1/uploads/{upload_id}", tag = "uploads", operation_id = "show_upload",
    params(("upload_id" = String, Path, description = "the id POST /api/v1/uploads returned")),
    responses((status = 200, body = UploadStatus), (status = 404, body = crate::api::views::ErrorView)))]
pub async fn show(
    State(state): State<AppState>,
    caller: Caller,
    UrlPath(upload_id): UrlPath<String>,
) -> Result<Response, ApiError> {
    require_uploader(&caller)?;
    let uploads = &state.storage.uploads;
    if UploadMode::of(&state) == UploadMode::Shared {
        let session = shared::live(&state, &upload_id).await?;
        return Ok(status_response(
            StatusCode::OK,
            shared::status(&session, uploads.expiry),
        ));
    }
    let session = uploads
        .live(&upload_id, now_ms())
        .ok_or_else(|| not_found(&upload_id))?;
    Ok(status_response(
        StatusCode::OK,
        session.status(uploads.expiry),
    ))
}

fn offset_mismatch(current: u64) -> ApiError {
    ApiError::conflict(
        "upload_offset_mismatch",
        format!("the upload is at offset {current}; resend from there"),
    )
    .with("offset", current)
}

fn overflow(size: u64, offset: u64) -> ApiError {
    ApiError::bad_request(
        "upload_overflow",
        format!(
            "the body goes past the declared size ({size} bytes, {} left); nothing was appended",
            size - offset
        ),
    )
}

/// What streaming a body into the partial file ended with.
enum Streamed {
    /// The whole body was appended.
    Done(u64),
    /// The client broke off after this many bytes (kept).
    Broken(u64, String),
    /// The body went past the declared size.
    Overflow,
}

async fn append_body(
    file: &mut tokio::fs::File,
    body: Body,
    room: u64,
) -> std::io::Result<Streamed> {
    let mut stream = body.into_data_stream();
    let mut written = 0u64;
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(bytes) => {
                let len = bytes.len() as u64;
                if written + len > room {
                    return Ok(Streamed::Overflow);
                }
                file.write_all(&bytes).await?;
                written += len;
            }
            Err(err) => return Ok(Streamed::Broken(written, err.to_string())),
        }
    }
    Ok(Streamed::Done(written))
}

#[utoipa::path(patch, path = "/api/v1/uploads/{upload_id}", tag = "uploads", operation_id = "append_upload",
    params(("upload_id" = String, Path, description = "the id POST /api/v1/uploads returned"),
        ("Upload-Offset" = u64, Header, description = "the offset this body starts at; must equal the session's offset")),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "the next bytes of the file (any content type is accepted; the CLI sends application/offset+octet-stream)"),
    responses((status = 200, body = UploadStatus), (status = 400, body = crate::api::views::ErrorView),
        (status = 404, body = crate::api::views::ErrorView), (status = 409, body = crate::api::views::ErrorView),
        (status = 422, body = crate::api::views::ErrorView)))]
pub async fn append(
    State(state): State<AppState>,
    caller: Caller,
    UrlPath(upload_id): UrlPath<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    require_uploader(&caller)?;
    if UploadMode::of(&state) == UploadMode::Shared {
        return shared::append(state, upload_id, headers, body).await;
    }
    let uploads = &state.storage.uploads;
    let session = uploads
        .live(&upload_id, now_ms())
        .ok_or_else(|| not_found(&upload_id))?;
    let claimed = claimed_offset(&headers)?;
    let writer = tokio::time::timeout(SESSION_BUSY_WAIT, Arc::clone(&session.writer).lock_owned())
        .await
        .map_err(|_| {
            ApiError::conflict(
                "upload_busy",
                "another request is still writing to this upload; retry shortly",
            )
            .with("offset", session.durable_offset.load(Ordering::Acquire))
        })?;
    // The session may have been swept or discarded while we waited.
    if uploads.live(&upload_id, now_ms()).is_none() {
        return Err(not_found(&upload_id));
    }
    let current = session.durable_offset.load(Ordering::Acquire);
    if claimed != current {
        return Err(offset_mismatch(current));
    }
    if session.complete.load(Ordering::Acquire) {
        return Ok(status_response(
            StatusCode::OK,
            session.status(uploads.expiry),
        ));
    }
    let declared = declared_length(&headers);
    if declared.is_some_and(|len| len > session.size - current) {
        return Err(overflow(session.size, current));
    }
    // The writing runs in its own task: when the client goes away hyper drops
    // this handler, but the bytes received must still be fsynced and counted.
    let task_state = state.clone();
    let task_session = Arc::clone(&session);
    let written = tokio::spawn(async move {
        let _writer = writer;
        write_body(&task_state, &task_session, current, body).await
    })
    .await
    .map_err(|e| ApiError::internal(format!("the upload writer stopped: {e}")))?;
    written?;
    Ok(status_response(
        StatusCode::OK,
        session.status(uploads.expiry),
    ))
}

/// Appends `body` at `current` (the durable offset), fsyncs, records the new
/// offset, and finishes the upload when it is whole. Runs holding the writer lock.
async fn write_body(
    state: &AppState,
    session: &Session,
    current: u64,
    body: Body,
) -> Result<(), ApiError> {
    let upload_id = session.upload_id.as_str();
    let room = session.size - current;
    let partial = state.storage.uploads.partial_path(upload_id);
    let mut file = tokio::fs::OpenOptions::new()
        .write(true)
        .open(&partial)
        .await
        .map_err(io_failure)?;
    // Start exactly at the durable offset, dropping any tail a crash left unacknowledged.
    file.set_len(current).await.map_err(io_failure)?;
    use tokio::io::AsyncSeekExt;
    file.seek(std::io::SeekFrom::Start(current))
        .await
        .map_err(io_failure)?;
    let streamed = append_body(&mut file, body, room)
        .await
        .map_err(io_failure)?;
    let (written, broken) = match streamed {
        Streamed::Done(written) => (written, None),
        Streamed::Broken(written, reason) => (written, Some(reason)),
        Streamed::Overflow => {
            file.set_len(current).await.map_err(io_failure)?;
            file.sync_all().await.map_err(io_failure)?;
            return Err(overflow(session.size, current));
        }
    };
    // Acknowledged bytes must survive a crash.
    file.flush().await.map_err(io_failure)?;
    file.sync_data().await.map_err(io_failure)?;
    drop(file);
    let offset = current + written;
    session.durable_offset.store(offset, Ordering::Release);
    session.last_activity.store(now_ms(), Ordering::Release);
    if let Some(reason) = broken {
        tracing::info!(upload_id, offset, %reason, "upload body broke off; the bytes received are kept");
        return Err(ApiError::bad_request(
            "upload_interrupted",
            format!("the body broke off at offset {offset}; resume from there"),
        )
        .with("offset", offset));
    }
    if offset == session.size {
        finish(state, session).await?;
    }
    Ok(())
}

#[utoipa::path(put, path = "/api/v1/blobs/{sha256}", tag = "uploads", operation_id = "put_blob",
    params(("sha256" = String, Path, description = "lowercase hex SHA-256 of the body")),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "the whole file (up to the management body limit)"),
    responses((status = 201, body = StoredBlob), (status = 200, body = StoredBlob, description = "already stored"),
        (status = 413, body = crate::api::views::ErrorView), (status = 422, body = crate::api::views::ErrorView)))]
pub async fn put_blob(
    State(state): State<AppState>,
    caller: Caller,
    UrlPath(sha256): UrlPath<String>,
    body: Body,
) -> Result<(StatusCode, Json<StoredBlob>), ApiError> {
    require_uploader(&caller)?;
    let sha256 = parse_sha256("the path's SHA-256", &sha256)?;
    let limit = state.config.api_body_limit;
    let bytes = axum::body::to_bytes(body, limit).await.map_err(|err| {
        if crate::listener::is_body_too_slow(&err) {
            return ApiError::body_timeout();
        }
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("a blob sent in one request is limited to {limit} bytes; use /api/v1/uploads"),
        )
    })?;
    let blobs = &state.storage.blobs;
    let existed = blobs.stat(&sha256).await.map_err(blob_failure)?.is_some();
    match blobs.put_bytes(&bytes, Some(&sha256)).await {
        Ok(info) => {
            let status = if existed {
                StatusCode::OK
            } else {
                StatusCode::CREATED
            };
            Ok((
                status,
                Json(StoredBlob {
                    sha256: info.sha256,
                    size: info.size,
                }),
            ))
        }
        Err(BlobError::Mismatch { expected, actual }) => Err(ApiError::unprocessable(
            "checksum_mismatch",
            format!("the body hashes to {actual}, not {expected}"),
        )
        .with("expected", expected)
        .with("actual", actual)),
        Err(err) => Err(blob_failure(err)),
    }
}

#[utoipa::path(post, path = "/api/v1/blobs/missing", tag = "uploads", operation_id = "missing_blobs", request_body = MissingBlobsQuery,
    responses((status = 200, body = MissingBlobs), (status = 400, body = crate::api::views::ErrorView)))]
pub async fn missing(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<MissingBlobsQuery>,
) -> Result<Json<MissingBlobs>, ApiError> {
    require_uploader(&caller)?;
    if body.sha256.len() > MAX_MISSING_QUERY {
        return Err(ApiError::bad_request(
            "too_many_hashes",
            format!("ask about at most {MAX_MISSING_QUERY} hashes per request"),
        ));
    }
    let hashes = body
        .sha256
        .iter()
        .map(|h| parse_sha256("every sha256 entry", h))
        .collect::<Result<Vec<_>, _>>()?;
    // Blobs are shared by every app (content-addressed), so a key scoped to
    // one app only learns about the blobs its own app's bundles reference:
    // whether another app holds a file is none of its business. It may then
    // upload a file that is already stored; the upload answers as usual.
    let visible = match &caller.key.app_id {
        Some(app_id) => Some(state.store.app_blobs(app_id, &hashes).await?),
        None => None,
    };
    let mut seen = HashSet::new();
    let mut missing = Vec::new();
    for sha in hashes {
        if !seen.insert(sha.clone()) {
            continue;
        }
        if visible.as_ref().is_some_and(|v| !v.contains(&sha)) {
            missing.push(sha);
            continue;
        }
        // Present blobs are touched: a bundle is about to reference them, and
        // gc must not take them in between.
        if !state
            .storage
            .blobs
            .touch(&sha)
            .await
            .map_err(blob_failure)?
        {
            missing.push(sha);
        }
    }
    Ok(Json(MissingBlobs { missing }))
}

/// What one sweep of shared upload sessions removed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SharedSweep {
    pub expired_sessions: u64,
    /// Part objects no session needs any more (left by a node that stopped
    /// between storing a part and recording it, or by a failed delete).
    pub orphaned_parts: u64,
}

/// Removes expired shared sessions with their part objects, and part objects
/// older than the session expiry that no incomplete session owns. Runs on the
/// cluster leader (gc); a no-op unless uploads are shared.
pub async fn sweep_shared(
    storage: &super::Storage,
    store: &dyn Store,
    now: Millis,
) -> Result<SharedSweep, ApiError> {
    if !storage.blobs.is_shared() {
        return Ok(SharedSweep::default());
    }
    shared::sweep(storage, store, now).await
}

/// The shared mode: sessions in the database, bytes as part objects in the bucket.
mod shared {
    use super::*;
    use tokio::io::AsyncWriteExt;

    /// Expired sessions removed per database round trip.
    const SWEEP_BATCH: i64 = 100;

    fn expiry_ms(expiry: Duration) -> Millis {
        i64::try_from(expiry.as_millis()).unwrap_or(i64::MAX)
    }

    fn stored_size(value: u64) -> Result<i64, ApiError> {
        i64::try_from(value).map_err(|_| ApiError::internal("the upload size does not fit"))
    }

    fn unsigned(value: i64) -> u64 {
        u64::try_from(value).unwrap_or(0)
    }

    fn is_live(session: &UploadSession, expiry: Duration, now: Millis) -> bool {
        session.last_activity.saturating_add(expiry_ms(expiry)) > now
    }

    pub(super) fn status(session: &UploadSession, expiry: Duration) -> UploadStatus {
        UploadStatus {
            upload_id: session.upload_id.clone(),
            offset: unsigned(session.received),
            size: unsigned(session.size),
            sha256: session.sha256.clone(),
            complete: session.complete,
            expires_at: crate::api::views::rfc3339(
                session.last_activity.saturating_add(expiry_ms(expiry)),
            ),
        }
    }

    /// The session if it exists and has not expired, else `upload_not_found`.
    pub(super) async fn live(state: &AppState, upload_id: &str) -> Result<UploadSession, ApiError> {
        if !is_upload_id(upload_id) {
            return Err(not_found(upload_id));
        }
        state
            .store
            .get_upload(upload_id)
            .await?
            .filter(|s| is_live(s, state.storage.uploads.expiry, now_ms()))
            .ok_or_else(|| not_found(upload_id))
    }

    pub(super) async fn create(
        state: &AppState,
        sha256: String,
        size: u64,
    ) -> Result<Response, ApiError> {
        let storage = &state.storage;
        let expiry = storage.uploads.expiry;
        let now = now_ms();
        let stored = stored_size(size)?;
        let existing_blob = storage.blobs.stat(&sha256).await.map_err(blob_failure)?;
        let complete = existing_blob == Some(size);
        if complete {
            // Restart the blob's gc grace period: a bundle is about to reference it.
            storage.blobs.touch(&sha256).await.map_err(blob_failure)?;
        }
        let candidate = UploadSession {
            upload_id: new_upload_id(),
            sha256,
            size: stored,
            received: if complete { stored } else { 0 },
            complete,
            created_at: now,
            last_activity: now,
        };
        // A stored blob gets a fresh, complete session whatever else exists
        // (no session is live after Millis::MAX), as in the local mode.
        let live_after = if complete {
            Millis::MAX
        } else {
            now.saturating_sub(expiry_ms(expiry))
        };
        let (mut session, created) = state
            .store
            .find_or_create_upload(candidate, live_after)
            .await?;
        if complete {
            return Ok(status_response(StatusCode::OK, status(&session, expiry)));
        }
        if created {
            return Ok(status_response(
                StatusCode::CREATED,
                status(&session, expiry),
            ));
        }
        if session.received == session.size && !session.complete {
            // Every byte arrived but the node that got the last one did not finish.
            session = finish(state, session).await?;
        }
        Ok(status_response(StatusCode::OK, status(&session, expiry)))
    }

    pub(super) async fn append(
        state: AppState,
        upload_id: String,
        headers: HeaderMap,
        body: Body,
    ) -> Result<Response, ApiError> {
        let expiry = state.storage.uploads.expiry;
        let session = live(&state, &upload_id).await?;
        let claimed = claimed_offset(&headers)?;
        let current = unsigned(session.received);
        if claimed != current {
            return Err(offset_mismatch(current));
        }
        if session.complete {
            return Ok(status_response(StatusCode::OK, status(&session, expiry)));
        }
        let size = unsigned(session.size);
        if declared_length(&headers).is_some_and(|len| len > size - current) {
            return Err(overflow(size, current));
        }
        // Its own task: when the client goes away hyper drops this handler,
        // but the bytes received must still be stored and counted.
        let task_state = state.clone();
        let written = tokio::spawn(async move { write_part(&task_state, session, body).await })
            .await
            .map_err(|e| ApiError::internal(format!("the upload writer stopped: {e}")))??;
        Ok(status_response(StatusCode::OK, status(&written, expiry)))
    }

    async fn remove_staged(path: &Path) {
        if let Err(err) = remove_if_present(path).await {
            tracing::warn!(error = %err, path = %path.display(), "could not remove a staged upload file");
        }
    }

    async fn delete_parts(blobs: &dyn BlobStore, parts: &[UploadPart]) {
        for part in parts {
            // A part left behind is an orphan the next gc sweep removes.
            if let Err(err) = blobs.delete_scratch(&part.name).await {
                tracing::warn!(error = %err, part = part.name, "could not delete an upload part");
            }
        }
    }

    /// Stores `body` (starting at the session's offset) as a part object and
    /// advances the session if nobody else did first; finishes a whole upload.
    async fn write_part(
        state: &AppState,
        session: UploadSession,
        body: Body,
    ) -> Result<UploadSession, ApiError> {
        let blobs = state.storage.blobs.as_ref();
        let upload_id = session.upload_id.clone();
        let start = unsigned(session.received);
        let size = unsigned(session.size);
        let suffix = format!("{:016x}", rand::random::<u64>());
        let staged = blobs
            .staging_dir()
            .join(format!("upload-{upload_id}-{start}-{suffix}.part"));
        let mut file = tokio::fs::File::create(&staged).await.map_err(io_failure)?;
        let streamed = append_body(&mut file, body, size - start).await;
        let flushed = file.flush().await;
        drop(file);
        let (written, broken) = match (streamed, flushed) {
            (Ok(Streamed::Done(written)), Ok(())) => (written, None),
            (Ok(Streamed::Broken(written, reason)), Ok(())) => (written, Some(reason)),
            (Ok(Streamed::Overflow), _) => {
                remove_staged(&staged).await;
                return Err(overflow(size, start));
            }
            (Err(err), _) | (_, Err(err)) => {
                remove_staged(&staged).await;
                return Err(io_failure(err));
            }
        };
        let mut current = session;
        if written > 0 {
            current = store_part(state, current, &staged, start, written, &suffix).await?;
        } else {
            remove_staged(&staged).await;
        }
        if let Some(reason) = broken {
            let offset = unsigned(current.received);
            tracing::info!(upload_id, offset, %reason, "upload body broke off; the bytes received are kept");
            return Err(ApiError::bad_request(
                "upload_interrupted",
                format!("the body broke off at offset {offset}; resume from there"),
            )
            .with("offset", offset));
        }
        if current.received == current.size && !current.complete {
            current = finish(state, current).await?;
        }
        Ok(current)
    }

    /// Puts the staged bytes in the bucket, then records them: durable once
    /// this returns. Losing the race for the offset answers the mismatch.
    async fn store_part(
        state: &AppState,
        session: UploadSession,
        staged: &Path,
        start: u64,
        written: u64,
        suffix: &str,
    ) -> Result<UploadSession, ApiError> {
        let blobs = state.storage.blobs.as_ref();
        let upload_id = session.upload_id.as_str();
        let part = UploadPart {
            start: stored_size(start)?,
            len: stored_size(written)?,
            name: format!("{upload_id}/{start}-{suffix}"),
        };
        if let Err(err) = blobs.put_scratch(&part.name, staged).await {
            remove_staged(staged).await;
            return Err(blob_failure(err));
        }
        let advanced = state
            .store
            .append_upload_part(upload_id, &part, now_ms())
            .await;
        match advanced {
            Ok(Some(advanced)) => Ok(advanced),
            Ok(None) => {
                delete_parts(blobs, std::slice::from_ref(&part)).await;
                // Another request won this offset, or the session went away.
                let now = live(state, upload_id).await?;
                if now.complete {
                    return Err(offset_mismatch(unsigned(now.size)));
                }
                Err(offset_mismatch(unsigned(now.received)))
            }
            Err(err) => {
                delete_parts(blobs, std::slice::from_ref(&part)).await;
                Err(err.into())
            }
        }
    }

    /// Copies the parts, in order, into one staged file.
    async fn assemble(
        blobs: &dyn BlobStore,
        parts: &[UploadPart],
        size: i64,
        staged: &Path,
    ) -> Result<(), ApiError> {
        let mut expected_start = 0;
        let mut file = tokio::fs::File::create(staged).await.map_err(io_failure)?;
        for part in parts {
            let reader = blobs
                .open_scratch(&part.name)
                .await
                .map_err(blob_failure)?
                .filter(|reader| part.start == expected_start && reader.size == unsigned(part.len))
                .ok_or_else(|| {
                    tracing::error!(
                        part = part.name,
                        "an upload part is missing or has the wrong size"
                    );
                    ApiError::internal("a part of the upload is missing")
                })?;
            let mut source = reader
                .range(0, unsigned(part.len))
                .await
                .map_err(io_failure)?;
            tokio::io::copy(&mut source, &mut file)
                .await
                .map_err(io_failure)?;
            expected_start += part.len;
        }
        if expected_start != size {
            tracing::error!(
                received = expected_start,
                size,
                "the upload parts do not cover the file"
            );
            return Err(ApiError::internal("a part of the upload is missing"));
        }
        file.flush().await.map_err(io_failure)?;
        Ok(())
    }

    /// Assembles a fully received upload, stores it as a blob (hash checked),
    /// marks the session complete and deletes the parts.
    async fn finish(state: &AppState, session: UploadSession) -> Result<UploadSession, ApiError> {
        let blobs = state.storage.blobs.as_ref();
        let store = state.store.as_ref();
        let upload_id = session.upload_id.as_str();
        let parts = store.list_upload_parts(upload_id).await?;
        let staged = blobs.staging_dir().join(format!(
            "upload-{upload_id}-whole-{:016x}.part",
            rand::random::<u64>()
        ));
        if let Err(err) = assemble(blobs, &parts, session.size, &staged).await {
            remove_staged(&staged).await;
            // Another node may have finished (and deleted the parts) meanwhile.
            return match store.get_upload(upload_id).await? {
                Some(done) if done.complete => Ok(done),
                _ => Err(err),
            };
        }
        match blobs.put_file(&staged, Some(&session.sha256)).await {
            Ok(_) => {
                if let Some(parts) = store.complete_upload(upload_id, now_ms()).await? {
                    delete_parts(blobs, &parts).await;
                }
                store
                    .get_upload(upload_id)
                    .await?
                    .ok_or_else(|| not_found(upload_id))
            }
            Err(BlobError::Mismatch { expected, actual }) => {
                let parts = store.delete_upload(upload_id).await?;
                delete_parts(blobs, &parts).await;
                Err(checksum_mismatch(expected, actual))
            }
            Err(err) => {
                remove_staged(&staged).await;
                Err(blob_failure(err))
            }
        }
    }

    pub(super) async fn sweep(
        storage: &super::super::Storage,
        store: &dyn Store,
        now: Millis,
    ) -> Result<SharedSweep, ApiError> {
        let blobs = storage.blobs.as_ref();
        let expiry = storage.uploads.expiry;
        let before = now.saturating_sub(expiry_ms(expiry));
        let mut report = SharedSweep::default();
        loop {
            let expired = store.expired_uploads(before, SWEEP_BATCH).await?;
            for session in &expired {
                let parts = store.delete_upload(&session.upload_id).await?;
                delete_parts(blobs, &parts).await;
                report.expired_sessions += 1;
            }
            if (expired.len() as i64) < SWEEP_BATCH {
                break;
            }
        }
        let cutoff = std::time::SystemTime::now()
            .checked_sub(expiry)
            .unwrap_or(std::time::SystemTime::UNIX_EPOCH);
        let mut owners: HashMap<String, bool> = HashMap::new();
        for entry in blobs.list_scratch().await.map_err(blob_failure)? {
            if entry.modified > cutoff {
                continue;
            }
            let owner = entry.name.split('/').next().unwrap_or_default().to_string();
            let needed = match owners.get(&owner) {
                Some(needed) => *needed,
                None => {
                    let needed = store
                        .get_upload(&owner)
                        .await?
                        .is_some_and(|session| !session.complete);
                    owners.insert(owner, needed);
                    needed
                }
            };
            if needed {
                continue;
            }
            match blobs.delete_scratch(&entry.name).await {
                Ok(()) => report.orphaned_parts += 1,
                Err(err) => {
                    tracing::warn!(error = %err, part = entry.name, "gc could not delete an upload part")
                }
            }
        }
        Ok(report)
    }
}
