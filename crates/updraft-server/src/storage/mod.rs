//! Bundles stored by Updraft, as services that own what they use:
//!
//! - [`publish::PublishService`]: resumable uploads (one [`uploads::UploadBackend`]
//!   per kind of blob store), small blobs, and the checks and commit of a
//!   bundle made of stored blobs;
//! - [`downloads::DownloadService`]: device downloads (optionally signed
//!   URLs, redirects or a CDN) and their counts;
//! - [`gc::GcService`]: unreferenced blobs and expired upload sessions.
//!
//! Their HTTP handlers live with the others (`api::uploads`, `api::gc`,
//! `device_downloads`); every time they read comes from the injected clock.

pub mod downloads;
pub mod gc;
pub mod publish;
pub mod signing;
pub mod uploads;

use crate::error::ApiError;
use crate::error::ErrorCode;
use serde_json::Value;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use updraft_core::model::Clock;
pub(crate) use updraft_store::blob::system_time;
use updraft_store::blob::{open_blob_store, sweep_staging, BlobError, BlobStore};

/// How devices get bundle bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DownloadMode {
    /// Updraft streams every byte (any storage).
    #[default]
    Stream,
    /// `/dl/…` answers 302 to a presigned object-store URL (S3 storage only).
    Redirect,
    /// Update answers link straight to a public CDN in front of the bucket
    /// (S3 storage only); Updraft serves no bytes.
    Cdn,
}

impl DownloadMode {
    pub const NAMES: &'static str = "stream, redirect or cdn";

    pub fn parse(text: &str) -> Option<DownloadMode> {
        match text.trim().to_ascii_lowercase().as_str() {
            "stream" => Some(DownloadMode::Stream),
            "redirect" => Some(DownloadMode::Redirect),
            "cdn" => Some(DownloadMode::Cdn),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            DownloadMode::Stream => "stream",
            DownloadMode::Redirect => "redirect",
            DownloadMode::Cdn => "cdn",
        }
    }
}

/// In settings: `stream`, `redirect` or `cdn`.
impl serde::Serialize for DownloadMode {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for DownloadMode {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        let text = <String as serde::Deserialize>::deserialize(deserializer)?;
        Self::parse(&text).ok_or_else(|| {
            D::Error::custom(format!(
                "download mode must be {}, got {text:?}",
                Self::NAMES
            ))
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("blob storage: {0}")]
    Blob(#[from] BlobError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// How devices get bundle bytes (see [`DownloadMode`]).
#[derive(Clone, Debug)]
pub struct Delivery {
    pub mode: DownloadMode,
    /// `cdn` mode: links are this base (no trailing slash) + the object key.
    pub cdn_base_url: Option<String>,
    /// `redirect` mode: how long a presigned URL stays valid.
    pub presigned_ttl: Duration,
}

/// Opens the blob store at `storage_url` (`None`: local files under
/// `data_dir`; else an S3-compatible bucket configured by `options`; staging
/// is always under `data_dir`), checks it can be used, and removes staging
/// leftovers older than `stale_after` now; local blobs are dated by `clock`.
pub async fn open_blobs(
    storage_url: Option<&str>,
    options: &[(String, String)],
    data_dir: &Path,
    stale_after: Duration,
    clock: Arc<dyn Clock>,
) -> Result<Arc<dyn BlobStore>, StorageError> {
    let now = system_time(clock.now());
    let blobs = open_blob_store(storage_url, options, data_dir, clock)?;
    let swept = sweep_staging(blobs.staging_dir(), stale_after, now)?;
    if swept > 0 {
        tracing::info!(files = swept, "removed stale staging files");
    }
    blobs.check().await?;
    Ok(blobs)
}

/// Replaces each download link of an `/updates` answer — its `url` and every
/// manifest entry's `download_url` — for which `rewrite` has a new one.
pub(crate) fn rewrite_download_links(
    body: &mut Value,
    mut rewrite: impl FnMut(&str) -> Option<String>,
) {
    let mut apply = |url: &mut String| {
        if let Some(new) = rewrite(url) {
            *url = new;
        }
    };
    if let Some(Value::String(url)) = body.get_mut("url") {
        apply(url);
    }
    if let Some(Value::Array(files)) = body.get_mut("manifest") {
        for file in files {
            if let Some(Value::String(url)) = file.get_mut("download_url") {
                apply(url);
            }
        }
    }
}

/// A client-supplied SHA-256: 64 hex characters, any case, returned lowercase.
pub fn parse_sha256(field: &str, value: &str) -> Result<String, ApiError> {
    updraft_core::validate::normalize_hex(value.trim(), 64).ok_or_else(|| {
        ApiError::bad_request(
            ErrorCode::InvalidSha256,
            format!("{field} must be a SHA-256 as 64 hex characters"),
        )
    })
}

pub(crate) fn blob_failure(err: BlobError) -> ApiError {
    tracing::error!(error = %err, "blob storage failed");
    ApiError::internal("the blob storage could not complete the request")
}

/// Percent-encodes one URL path segment (everything but RFC 3986 unreserved).
pub fn encode_segment(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The device URL path of a stored bundle zip.
pub fn zip_path(app_id: &str, version: &str, sha256: &str) -> String {
    format!(
        "/dl/{}/{}/{sha256}.zip",
        encode_segment(app_id),
        encode_segment(version)
    )
}

/// The device URL path of a stored manifest file.
pub fn file_path(app_id: &str, version: &str, sha256: &str) -> String {
    format!(
        "/dl/{}/{}/{sha256}",
        encode_segment(app_id),
        encode_segment(version)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn download_paths_encode_their_segments() {
        let sha = "a".repeat(64);
        assert_eq!(
            zip_path("com.example.app", "1.0.0+build.5", &sha),
            format!("/dl/com.example.app/1.0.0%2Bbuild.5/{sha}.zip")
        );
        assert_eq!(
            file_path("com.example.app", "2.0.0-beta.1", &sha),
            format!("/dl/com.example.app/2.0.0-beta.1/{sha}")
        );
        assert_eq!(encode_segment("a b/ü"), "a%20b%2F%C3%BC");
    }
}
