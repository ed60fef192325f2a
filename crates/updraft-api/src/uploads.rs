//! Resumable uploads, stored blobs and garbage collection.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct CreateUpload {
    /// Total size in bytes (1 up to the server's maximum upload size).
    pub size: u64,
    /// SHA-256 of the whole file, 64 hex characters.
    pub sha256: String,
}

/// Where an upload stands. `offset` is durable: the bytes before it survived any crash.
#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
pub struct UploadStatus {
    pub upload_id: String,
    pub offset: u64,
    pub size: u64,
    pub sha256: String,
    /// The file is in the blob store; nothing more to send.
    pub complete: bool,
    /// When the session is dropped unless written to again (RFC 3339).
    pub expires_at: String,
}

#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct MissingBlobsQuery {
    /// SHA-256 hashes (64 hex), at most 10,000.
    pub sha256: Vec<String>,
}

#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
pub struct MissingBlobs {
    /// The asked hashes the server does not hold, lowercase, in the order asked.
    pub missing: Vec<String>,
}

#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
pub struct StoredBlob {
    pub sha256: String,
    pub size: u64,
}

#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct GcReport {
    pub deleted_blobs: u64,
    pub freed_bytes: u64,
    /// Blobs left in place: referenced, or unreferenced but within the grace period.
    pub kept_blobs: u64,
    pub expired_uploads: u64,
}
