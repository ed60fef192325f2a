//! Checks a bundle made of stored blobs before its row is written.
//!
//! Plain zips are inspected the way the plugin will unpack them. Encrypted
//! zips are end-to-end encrypted: the server cannot look inside, so it only
//! checks the blob exists (the CLI validates before encrypting).

use super::{blob_failure, file_path, parse_sha256, zip_path};
use crate::api::views::ManifestEntryInput;
use crate::error::{ApiError, ErrorCode};
use crate::state::AppState;
use std::collections::HashSet;
use std::path::PathBuf;
use tokio::io::AsyncWriteExt;
use updraft_bundle::names::{normalize_entry_name, CaseFolds};
use updraft_core::model::ManifestFile;
use updraft_core::validate::normalize_hex;
use updraft_store::blob::BlobStore;

/// Most entries one manifest may list.
pub const MAX_MANIFEST_ENTRIES: usize = 50_000;

/// The stored zip of a bundle, checked.
pub struct CheckedZip {
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

/// Checks the bundle zip `zip_sha256`: stored, and for a plain bundle a valid
/// plugin bundle whose SHA-256 is `checksum`.
pub async fn check_zip(
    state: &AppState,
    app_id: &str,
    version: &str,
    zip_sha256: &str,
    encrypted: bool,
    checksum: Option<&str>,
) -> Result<CheckedZip, ApiError> {
    let zip_sha256 = parse_sha256("zip_sha256", zip_sha256)?;
    let blobs = &state.storage.blobs;
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
        let limits = state.config.zip_limits;
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
pub async fn check_manifest(
    state: &AppState,
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
        match state
            .storage
            .blobs
            .stat(&blob)
            .await
            .map_err(blob_failure)?
        {
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
