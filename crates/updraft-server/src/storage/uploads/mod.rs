//! Resumable uploads: where a session and its bytes live is one
//! [`UploadBackend`], chosen by the blob store.
//!
//! - [`local::LocalUploads`] (blobs on this node's disk): a session is
//!   `<data_dir>/uploads/<id>.json` (what is expected) plus a partial file in
//!   the staging directory (what arrived). The partial's length is the
//!   offset: every acknowledged PATCH is fsynced first, so an answered offset
//!   survives a kill, and a restarted server reads the offset back from the
//!   file. A completed upload is hashed and moved into the blob store.
//! - [`shared::SharedUploads`] (blobs in an object store, possibly several
//!   nodes behind a load balancer): the session is a database row and every
//!   PATCH body becomes a part object in the bucket, so any node can take the
//!   next PATCH. A PATCH is acknowledged once its part is in the bucket and
//!   the conditional update of the row (`received` must still be the offset
//!   the PATCH started at) committed; the loser of two PATCHes for one offset
//!   deletes its part and gets the offset mismatch answer. The node that
//!   receives the last byte assembles the parts and stores the blob.
//!
//! Both read the time from the injected clock: a session expires
//! `upload_expiry_secs` after its last write on that clock.

pub mod local;
pub mod shared;

use crate::error::ApiError;
use crate::error::ErrorCode;
use async_trait::async_trait;
use axum::body::Bytes;
use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use updraft_core::model::Millis;

/// Most hashes one `POST /api/v1/blobs/missing` may ask about.
pub const MAX_MISSING_QUERY: usize = 10_000;

/// The bytes of one PATCH as they arrive; an error is the client breaking off.
pub type ByteStream = BoxStream<'static, Result<Bytes, std::io::Error>>;

pub use updraft_api::uploads::{
    CreateUpload, MissingBlobs, MissingBlobsQuery, StoredBlob, UploadStatus,
};

/// The session a create request got.
pub struct UploadStarted {
    pub status: UploadStatus,
    /// A new session (not resumed, not already complete).
    pub created: bool,
}

/// What one sweep of upload sessions removed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct UploadSweep {
    pub expired_sessions: u64,
    /// Part objects no session needs any more (left by a node that stopped
    /// between storing a part and recording it, or by a failed delete).
    pub orphaned_parts: u64,
}

/// One place upload sessions and their bytes live.
#[async_trait]
pub trait UploadBackend: Send + Sync {
    /// The session for `sha256` (lowercase) of `size` bytes: a fresh
    /// complete one when the blob is stored already (its gc grace period
    /// restarted), else the live incomplete one (finished first if every
    /// byte arrived), else a new one.
    async fn start(&self, sha256: String, size: u64) -> Result<UploadStarted, ApiError>;

    /// The live session `upload_id`, else `upload_not_found`.
    async fn status(&self, upload_id: &str) -> Result<UploadStatus, ApiError>;

    /// Appends `body` at `offset` (the `Upload-Offset` sent; `None` when
    /// missing or unreadable, refused once the session is found), of
    /// `declared_len` bytes when the request said so. Acknowledged bytes are
    /// durable; the last byte stores the blob (hash checked). The writing
    /// runs in its own task, so a client going away does not lose what
    /// arrived.
    async fn append(
        self: Arc<Self>,
        upload_id: &str,
        offset: Option<u64>,
        declared_len: Option<u64>,
        body: ByteStream,
    ) -> Result<UploadStatus, ApiError>;

    /// Removes sessions expired at `now` nobody is writing to (and, when
    /// parts live in a bucket, parts no incomplete session owns).
    async fn sweep(&self, now: Millis) -> Result<UploadSweep, ApiError>;
}

fn expiry_ms(expiry: Duration) -> Millis {
    i64::try_from(expiry.as_millis()).unwrap_or(i64::MAX)
}

fn new_upload_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

fn is_upload_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())
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
        ErrorCode::UploadNotFound,
        format!("upload {upload_id} does not exist or has expired; start a new one"),
    )
}

fn require_offset(offset: Option<u64>) -> Result<u64, ApiError> {
    offset.ok_or_else(|| {
        ApiError::bad_request(
            ErrorCode::InvalidUploadOffset,
            "send the Upload-Offset header: the byte offset this body starts at",
        )
    })
}

fn checksum_mismatch(expected: String, actual: String) -> ApiError {
    ApiError::unprocessable(
        ErrorCode::ChecksumMismatch,
        format!("the uploaded bytes hash to {actual}, not {expected}; the upload was discarded, start again"),
    )
    .with("expected", expected)
    .with("actual", actual)
}

fn offset_mismatch(current: u64) -> ApiError {
    ApiError::conflict(
        ErrorCode::UploadOffsetMismatch,
        format!("the upload is at offset {current}; resend from there"),
    )
    .with("offset", current)
}

fn overflow(size: u64, offset: u64) -> ApiError {
    ApiError::bad_request(
        ErrorCode::UploadOverflow,
        format!(
            "the body goes past the declared size ({size} bytes, {} left); nothing was appended",
            size - offset
        ),
    )
}

fn interrupted(offset: u64) -> ApiError {
    ApiError::bad_request(
        ErrorCode::UploadInterrupted,
        format!("the body broke off at offset {offset}; resume from there"),
    )
    .with("offset", offset)
}

/// What streaming a body into a file ended with.
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
    mut body: ByteStream,
    room: u64,
) -> std::io::Result<Streamed> {
    let mut written = 0u64;
    while let Some(chunk) = body.next().await {
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
