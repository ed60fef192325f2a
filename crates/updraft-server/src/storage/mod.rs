//! Bundles stored by Updraft: the blob store handle, resumable uploads,
//! publishing checks, device downloads (with optional signed URLs), download
//! counters and garbage collection.

pub mod downloads;
pub mod gc;
pub mod publish;
pub mod signing;
pub mod uploads;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::{DownloadMode, ServerConfig};
use downloads::DownloadCounter;
use serde_json::Value;
use signing::UrlSigner;
use std::sync::Arc;
use std::time::Duration;
use updraft_core::model::Role;
use updraft_store::blob::{open_blob_store, sweep_staging, BlobError, BlobStore};
use uploads::UploadSessions;

/// The time for storage code that does not take the injected clock yet
/// (the storage services will; until then, the system clock).
pub(crate) fn now_ms() -> updraft_core::model::Millis {
    use updraft_core::model::Clock;
    updraft_core::model::SystemClock.now()
}

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("blob storage: {0}")]
    Blob(#[from] BlobError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Everything about stored bundles the handlers share.
pub struct Storage {
    pub blobs: Arc<dyn BlobStore>,
    pub uploads: UploadSessions,
    pub downloads: DownloadCounter,
    /// Set when download URLs must be signed (by the server, with the key
    /// from the database: [`UrlSigner::from_store`]).
    pub signer: Option<UrlSigner>,
    /// Publishing holds it shared from its blob checks to the row commit; gc
    /// holds it exclusively while deleting, so it never removes a blob a
    /// bundle is being committed with.
    pub gc_lock: tokio::sync::RwLock<()>,
    /// Unreferenced blobs younger than this are kept (an upload or publish may be under way).
    pub grace: Duration,
    /// How devices get the bytes.
    pub delivery: Delivery,
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

impl Storage {
    /// Opens the blob store the config names (local files under `data_dir`,
    /// or an S3-compatible bucket) and the upload sessions under `data_dir`
    /// (staging is always local), removing staging leftovers older than the
    /// session expiry.
    pub fn open(config: &ServerConfig) -> Result<Storage, StorageError> {
        let expiry = Duration::from_secs(config.upload_expiry_secs);
        let blobs = open_blob_store(
            config.storage_url.as_deref(),
            &config.storage_options,
            &config.data_dir,
        )?;
        let swept = sweep_staging(blobs.staging_dir(), expiry)?;
        if swept > 0 {
            tracing::info!(files = swept, "removed stale staging files");
        }
        let uploads = UploadSessions::open(
            &config.data_dir.join("uploads"),
            blobs.staging_dir(),
            expiry,
        )?;
        Ok(Storage {
            blobs,
            uploads,
            downloads: DownloadCounter::default(),
            signer: None,
            gc_lock: tokio::sync::RwLock::new(()),
            grace: expiry,
            delivery: Delivery {
                mode: config.download_mode,
                cdn_base_url: config
                    .cdn_base_url
                    .as_ref()
                    .map(|url| url.trim_end_matches('/').to_string()),
                presigned_ttl: Duration::from_secs(config.presigned_url_ttl_secs),
            },
        })
    }

    /// Finishes the download links of an `/updates` answer: signs them when
    /// signed URLs are on, and in `cdn` mode points those that name a stored
    /// blob at the CDN. In `cdn` mode devices never reach Updraft for bytes,
    /// so download counting is left to the CDN's logs.
    pub fn finish_answer_links(&self, body: &mut Value, base_url: &str) {
        if let Some(signer) = &self.signer {
            signer.sign_answer(body, base_url);
        }
        if let (DownloadMode::Cdn, Some(cdn_base_url)) =
            (self.delivery.mode, &self.delivery.cdn_base_url)
        {
            downloads::link_answer_to_cdn(body, base_url, cdn_base_url, self.blobs.as_ref());
        }
    }
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

/// `GET`/`HEAD /dl/{app_id}/{version}/{file}`: device downloads (no auth, no CORS).
pub fn download_routes() -> axum::Router<crate::state::AppState> {
    axum::Router::new().route(
        "/dl/{app_id}/{version}/{file}",
        axum::routing::get(downloads::download),
    )
}

/// Uploading needs the publisher role; app-scoped keys may upload too (blobs
/// belong to no app until a bundle of theirs references them).
pub(crate) fn require_uploader(caller: &Caller) -> Result<(), ApiError> {
    if caller.key.role < Role::Publisher {
        return Err(ApiError::forbidden(format!(
            "this API key's role ({}) cannot upload; it needs publisher",
            caller.key.role.as_str()
        )));
    }
    Ok(())
}

/// A client-supplied SHA-256: 64 hex characters, any case, returned lowercase.
pub(crate) fn parse_sha256(field: &str, value: &str) -> Result<String, ApiError> {
    updraft_core::validate::normalize_hex(value.trim(), 64).ok_or_else(|| {
        ApiError::bad_request(
            "invalid_sha256",
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
