//! Publishing: files go up (resumable uploads through the [`UploadBackend`]
//! of the blob store in use, small blobs in one request), then a bundle made
//! of stored blobs is checked and its row written.
//!
//! Plain zips are inspected the way the plugin will unpack them. Encrypted
//! zips are end-to-end encrypted: the server cannot look inside, so it only
//! checks the blob exists (the CLI validates before encrypting).

use super::uploads::{
    ByteStream, MissingBlobs, StoredBlob, UploadBackend, UploadStarted, UploadStatus,
    MAX_MISSING_QUERY,
};
use super::{blob_failure, file_path, parse_sha256, zip_path};
use crate::error::ApiError;
use crate::error::ErrorCode;
use axum::http::StatusCode;
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::io::AsyncWriteExt;
use tokio::sync::RwLock;
use updraft_api::management::ManifestEntryInput;
use updraft_bundle::names::{normalize_entry_name, CaseFolds};
use updraft_bundle::ZipLimits;
use updraft_core::model::{Bundle, Clock, ManifestFile};
use updraft_core::validate::normalize_hex;
use updraft_store::blob::{BlobError, BlobStore};
use updraft_store::{BundleStore, Entity, NewBundle, StoreError};

/// Most entries one manifest may list.
pub const MAX_MANIFEST_ENTRIES: usize = 50_000;

/// The stored zip of a bundle, checked.
struct CheckedZip {
    pub zip_sha256: String,
    pub storage_path: String,
    pub size: i64,
}

fn blob_missing(missing: Vec<String>) -> ApiError {
    ApiError::unprocessable(
        ErrorCode::BlobMissing,
        format!(
            "{} blob(s) are not stored; upload them first: {}",
            missing.len(),
            missing.join(", ")
        ),
    )
    .with("missing", missing)
}

/// A file in the staging directory, removed when dropped.
struct StagedCopy(PathBuf);

impl Drop for StagedCopy {
    fn drop(&mut self) {
        if let Err(err) = std::fs::remove_file(&self.0) {
            if err.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(error = %err, path = %self.0.display(), "a validation copy could not be removed");
            }
        }
    }
}

/// Streams a blob into a new staging file (for validators that need a file).
async fn copy_to_staging(blobs: &dyn BlobStore, sha256: &str) -> Result<StagedCopy, ApiError> {
    let copy = StagedCopy(
        blobs
            .staging_dir()
            .join(format!("validate-{:032x}.zip", rand::random::<u128>())),
    );
    let reader = blobs
        .open(sha256)
        .await
        .map_err(blob_failure)?
        .ok_or_else(|| blob_missing(vec![sha256.to_string()]))?;
    let size = reader.size;
    let copied = async {
        let mut source = reader.range(0, size).await?;
        let mut file = tokio::fs::File::create(&copy.0).await?;
        let written = tokio::io::copy(&mut source, &mut file).await?;
        file.flush().await?;
        if written != size {
            return Err(std::io::Error::other(format!(
                "copied {written} of {size} bytes"
            )));
        }
        Ok(())
    }
    .await;
    copied.map_err(|err: std::io::Error| {
        tracing::error!(error = %err, sha256, "a stored zip could not be copied for validation");
        ApiError::internal("the stored zip could not be read")
    })?;
    Ok(copy)
}

fn size_i64(size: u64) -> i64 {
    i64::try_from(size).unwrap_or(i64::MAX)
}

/// Uploads and publishing, over the blob store and the bundle rows.
pub struct PublishService {
    uploads: Arc<dyn UploadBackend>,
    blobs: Arc<dyn BlobStore>,
    bundles: Arc<dyn BundleStore>,
    clock: Arc<dyn Clock>,
    /// Held shared from a publish's blob checks to its row commit; gc holds
    /// it exclusively while deleting (see [`super::gc::GcService`]).
    gc_lock: Arc<RwLock<()>>,
    /// Largest file one upload session may declare.
    max_upload_size: u64,
    /// Largest blob sent whole in one `PUT /api/v1/blobs/{sha256}`.
    blob_body_limit: usize,
    /// Limits applied when validating uploaded plain zips.
    zip_limits: ZipLimits,
    /// Bytes of live bundles an app may store; `None` = no quota.
    app_storage_quota: Option<u64>,
}

/// What [`PublishService::publish`] needs besides the new bundle's row.
pub struct PublishFiles<'a> {
    /// The stored zip the bundle is made of, as the client named it.
    pub zip_sha256: Option<&'a str>,
    /// The delta files (an empty list = none).
    pub manifest: &'a [ManifestEntryInput],
}

/// Where the limits of [`PublishService`] come from.
pub struct PublishLimits {
    pub max_upload_size: u64,
    /// The management body limit, which bounds a blob sent in one request.
    pub blob_body_limit: usize,
    pub zip_limits: ZipLimits,
    pub app_storage_quota: Option<u64>,
}

impl PublishService {
    pub fn new(
        uploads: Arc<dyn UploadBackend>,
        blobs: Arc<dyn BlobStore>,
        bundles: Arc<dyn BundleStore>,
        clock: Arc<dyn Clock>,
        gc_lock: Arc<RwLock<()>>,
        limits: PublishLimits,
    ) -> PublishService {
        PublishService {
            uploads,
            blobs,
            bundles,
            clock,
            gc_lock,
            max_upload_size: limits.max_upload_size,
            blob_body_limit: limits.blob_body_limit,
            zip_limits: limits.zip_limits,
            app_storage_quota: limits.app_storage_quota,
        }
    }

    /// Most bytes a blob sent whole in one request may have.
    pub fn blob_body_limit(&self) -> usize {
        self.blob_body_limit
    }

    /// The blob store uploads go to.
    pub fn blobs(&self) -> &Arc<dyn BlobStore> {
        &self.blobs
    }

    /// `POST /api/v1/uploads`: a session for a file of `size` bytes hashing
    /// to `sha256` (new, resumed, or complete when the blob is stored).
    pub async fn start_upload(&self, sha256: &str, size: u64) -> Result<UploadStarted, ApiError> {
        let sha256 = parse_sha256("sha256", sha256)?;
        if size == 0 {
            return Err(ApiError::bad_request(
                ErrorCode::InvalidSize,
                "size must be at least 1 byte",
            ));
        }
        let max = self.max_upload_size;
        if size > max {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrorCode::UploadTooLarge,
                format!("uploads are limited to {max} bytes"),
            )
            .with("max_size", max));
        }
        self.uploads.start(sha256, size).await
    }

    /// Where the live upload `upload_id` stands.
    pub async fn upload_status(&self, upload_id: &str) -> Result<UploadStatus, ApiError> {
        self.uploads.status(upload_id).await
    }

    /// Appends the next bytes of an upload (see [`UploadBackend::append`]).
    pub async fn append_upload(
        &self,
        upload_id: &str,
        offset: Option<u64>,
        declared_len: Option<u64>,
        body: ByteStream,
    ) -> Result<UploadStatus, ApiError> {
        Arc::clone(&self.uploads)
            .append(upload_id, offset, declared_len, body)
            .await
    }

    /// `PUT /api/v1/blobs/{sha256}`: stores a small file sent whole;
    /// `sha256` is lowercase (see [`parse_sha256`]). The flag says whether it
    /// was stored already.
    pub async fn put_blob(
        &self,
        sha256: &str,
        bytes: &[u8],
    ) -> Result<(StoredBlob, bool), ApiError> {
        let existed = self
            .blobs
            .stat(sha256)
            .await
            .map_err(blob_failure)?
            .is_some();
        match self.blobs.put_bytes(bytes, Some(sha256)).await {
            Ok(info) => Ok((
                StoredBlob {
                    sha256: info.sha256,
                    size: info.size,
                },
                existed,
            )),
            Err(BlobError::Mismatch { expected, actual }) => Err(ApiError::unprocessable(
                ErrorCode::ChecksumMismatch,
                format!("the body hashes to {actual}, not {expected}"),
            )
            .with("expected", expected)
            .with("actual", actual)),
            Err(err) => Err(blob_failure(err)),
        }
    }

    /// `POST /api/v1/blobs/missing`: which of `hashes` are not stored, as a
    /// key scoped to `app_scope` (when it is) may learn; those present are
    /// touched, so gc keeps them until a bundle references them.
    pub async fn missing_blobs(
        &self,
        app_scope: Option<&[String]>,
        hashes: &[String],
    ) -> Result<MissingBlobs, ApiError> {
        if hashes.len() > MAX_MISSING_QUERY {
            return Err(ApiError::bad_request(
                ErrorCode::TooManyHashes,
                format!("ask about at most {MAX_MISSING_QUERY} hashes per request"),
            ));
        }
        let hashes = hashes
            .iter()
            .map(|h| parse_sha256("every sha256 entry", h))
            .collect::<Result<Vec<_>, _>>()?;
        // Blobs are shared by every app (content-addressed), so a key scoped to
        // one app only learns about the blobs its own app's bundles reference:
        // whether another app holds a file is none of its business. It may then
        // upload a file that is already stored; the upload answers as usual.
        let visible = match app_scope {
            Some(apps) => {
                let mut visible = HashSet::new();
                for app_id in apps {
                    visible.extend(self.bundles.app_blobs(app_id, &hashes).await?);
                }
                Some(visible)
            }
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
            if !self.blobs.touch(&sha).await.map_err(blob_failure)? {
                missing.push(sha);
            }
        }
        Ok(MissingBlobs { missing })
    }

    /// Refuses a version of `app_id` that exists (409 `bundle_already_exists`)
    /// or existed (a deleted bundle's name) before the expensive checks;
    /// the insert still enforces it against races.
    pub async fn version_free(&self, app_id: &str, version: &str) -> Result<(), ApiError> {
        match self.bundles.get_bundle(app_id, version).await? {
            Some(existing) if existing.deleted => Err(StoreError::DeletedNameReused.into()),
            Some(_) => Err(StoreError::AlreadyExists(Entity::Bundle).into()),
            None => Ok(()),
        }
    }

    /// Checks the stored files of `new` (its zip, its manifest) and the app's
    /// storage quota, then writes its row at the clock's now. gc cannot
    /// delete a blob between these checks and the commit.
    pub async fn publish(
        &self,
        mut new: NewBundle,
        files: PublishFiles<'_>,
    ) -> Result<Bundle, ApiError> {
        let app_id = new.app_id.clone();
        let _publishing = self.gc_lock.read().await;
        let encrypted = new.session_key.is_some();
        if let Some(sha) = files.zip_sha256 {
            let zip = self
                .check_zip(&app_id, &new.name, sha, encrypted, new.checksum.as_deref())
                .await?;
            new.zip_sha256 = Some(zip.zip_sha256);
            new.storage_path = Some(zip.storage_path);
            new.size = Some(zip.size);
        }
        if !files.manifest.is_empty() {
            new.manifest = self
                .check_manifest(&app_id, &new.name, files.manifest, encrypted)
                .await?;
        }
        if let Some(quota) = self.app_storage_quota {
            self.check_storage_quota(&app_id, &new, quota).await?;
        }
        Ok(self.bundles.create_bundle(new, self.clock.now()).await?)
    }

    /// The app's storage quota: the distinct files of its live bundles, plus
    /// those of `new` not already among them, must fit in `quota` bytes.
    /// Checked before the bundle is recorded; a refused bundle's uploaded
    /// files are left to gc.
    async fn check_storage_quota(
        &self,
        app_id: &str,
        new: &NewBundle,
        quota: u64,
    ) -> Result<(), ApiError> {
        let mut blobs = self.bundles.app_live_blobs(app_id).await?;
        let used: i64 = blobs.values().sum();
        let mut added = 0i64;
        let new_files = new
            .zip_sha256
            .iter()
            .map(|sha| (sha.clone(), new.size.unwrap_or(0)))
            .chain(
                new.manifest
                    .iter()
                    .filter_map(|f| f.blob_sha256.clone().map(|sha| (sha, f.size.unwrap_or(0)))),
            );
        for (sha, size) in new_files {
            if blobs.insert(sha, size).is_none() {
                added = added.saturating_add(size);
            }
        }
        let used = u64::try_from(used).unwrap_or(0);
        let added = u64::try_from(added).unwrap_or(0);
        if used.saturating_add(added) > quota {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrorCode::StorageQuotaExceeded,
                format!(
                    "this bundle adds {added} bytes to the {used} the app's live bundles use; \
                     the app's storage quota is {quota} bytes (delete old bundles or raise \
                     app_storage_quota_bytes)"
                ),
            )
            .with("used_bytes", used)
            .with("added_bytes", added)
            .with("quota_bytes", quota));
        }
        Ok(())
    }

    /// Checks the bundle zip `zip_sha256`: stored, and for a plain bundle a valid
    /// plugin bundle whose SHA-256 is `checksum`.
    async fn check_zip(
        &self,
        app_id: &str,
        version: &str,
        zip_sha256: &str,
        encrypted: bool,
        checksum: Option<&str>,
    ) -> Result<CheckedZip, ApiError> {
        let zip_sha256 = parse_sha256("zip_sha256", zip_sha256)?;
        let blobs = &self.blobs;
        let size = blobs
            .stat(&zip_sha256)
            .await
            .map_err(blob_failure)?
            .ok_or_else(|| blob_missing(vec![zip_sha256.clone()]))?;
        if !encrypted {
            if checksum != Some(zip_sha256.as_str()) {
                return Err(ApiError::unprocessable(
                    ErrorCode::ChecksumMismatch,
                    "for a plain bundle, checksum must be the zip's SHA-256 (zip_sha256)",
                ));
            }
            // A remote store's zip is validated from a local copy, removed after.
            let (path, _copy) = match blobs.local_path(&zip_sha256) {
                Some(path) => (path, None),
                None => {
                    let copy = copy_to_staging(blobs.as_ref(), &zip_sha256).await?;
                    (copy.0.clone(), Some(copy))
                }
            };
            let limits = self.zip_limits;
            let inspected =
                tokio::task::spawn_blocking(move || updraft_bundle::inspect_zip(&path, &limits))
                    .await
                    .map_err(|e| ApiError::internal(format!("zip validation stopped: {e}")))?;
            if let Err(err) = inspected {
                if let updraft_bundle::BundleError::Io(io) = &err {
                    tracing::error!(error = %io, "zip validation could not read the blob");
                    return Err(ApiError::internal("the stored zip could not be read"));
                }
                return Err(ApiError::unprocessable(
                    ErrorCode::from_wire(err.code()),
                    err.to_string(),
                ));
            }
        }
        Ok(CheckedZip {
            storage_path: zip_path(app_id, version, &zip_sha256),
            zip_sha256,
            size: size_i64(size),
        })
    }

    /// Checks a manifest of stored files and turns it into stored entries.
    async fn check_manifest(
        &self,
        app_id: &str,
        version: &str,
        entries: &[ManifestEntryInput],
        encrypted: bool,
    ) -> Result<Vec<ManifestFile>, ApiError> {
        if entries.len() > MAX_MANIFEST_ENTRIES {
            return Err(ApiError::bad_request(
                ErrorCode::TooManyManifestEntries,
                format!("a manifest lists at most {MAX_MANIFEST_ENTRIES} files"),
            ));
        }
        let hash_len = if encrypted { 512 } else { 64 };
        let mut targets = HashSet::new();
        let mut case_folds = CaseFolds::default();
        let mut checked = Vec::with_capacity(entries.len());
        for entry in entries {
            let blob = parse_sha256(
                &format!("blob_sha256 of {:?}", entry.file_name),
                &entry.blob_sha256,
            )?;
            let file_hash = normalize_hex(entry.file_hash.trim(), hash_len).ok_or_else(|| {
                ApiError::bad_request(
                    ErrorCode::InvalidFileHash,
                    format!(
                        "file_hash of {:?} must be {hash_len} hex characters ({})",
                        entry.file_name,
                        if encrypted {
                            "RSA-encrypted SHA-256, as the bundle has a session_key"
                        } else {
                            "SHA-256 of the final content"
                        }
                    ),
                )
            })?;
            let compressed = entry.file_name.ends_with(".br");
            let target_name = entry
                .file_name
                .strip_suffix(".br")
                .unwrap_or(&entry.file_name);
            let target = normalize_entry_name(target_name).map_err(|err| {
                ApiError::unprocessable(
                    ErrorCode::from_wire(err.code()),
                    format!("manifest entry {:?}: {err}", entry.file_name),
                )
            })?;
            let exact_repeat = targets.contains(&target);
            if !exact_repeat {
                case_folds.insert(&target).map_err(|err| {
                    ApiError::unprocessable(
                        ErrorCode::from_wire(err.code()),
                        format!("manifest: {err}"),
                    )
                })?;
            }
            if !targets.insert(target.clone()) {
                return Err(ApiError::unprocessable(
                    ErrorCode::DuplicateManifestEntry,
                    format!(
                        "manifest entry {:?} names a file another entry already names",
                        entry.file_name
                    ),
                ));
            }
            if !encrypted && !compressed && blob != file_hash {
                return Err(ApiError::unprocessable(
                ErrorCode::ChecksumMismatch,
                format!("manifest entry {:?}: an uncompressed plain file's blob_sha256 must equal its file_hash", entry.file_name),
            ));
            }
            checked.push((entry, blob, file_hash));
        }
        if !entries.is_empty() && !targets.contains("index.html") {
            return Err(ApiError::unprocessable(
                ErrorCode::MissingIndexHtml,
                "the manifest must list index.html at the bundle root",
            ));
        }
        let mut missing = Vec::new();
        let mut files = Vec::with_capacity(checked.len());
        for (entry, blob, file_hash) in checked {
            match self.blobs.stat(&blob).await.map_err(blob_failure)? {
                None => {
                    if !missing.contains(&blob) {
                        missing.push(blob);
                    }
                }
                Some(size) => {
                    if entry.size.is_some_and(|given| given != size_i64(size)) {
                        return Err(ApiError::unprocessable(
                            ErrorCode::SizeMismatch,
                            format!(
                                "manifest entry {:?}: its blob holds {size} bytes",
                                entry.file_name
                            ),
                        ));
                    }
                    files.push(ManifestFile {
                        file_name: entry.file_name.clone(),
                        file_hash,
                        location: file_path(app_id, version, &blob),
                        size: Some(size_i64(size)),
                        blob_sha256: Some(blob),
                    });
                }
            }
        }
        if !missing.is_empty() {
            return Err(blob_missing(missing));
        }
        Ok(files)
    }
}
