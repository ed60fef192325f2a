//! Upload sessions in the database, bytes as part objects in the shared
//! bucket: any node may take any request.

use super::{
    append_body, checksum_mismatch, expiry_ms, interrupted, io_failure, is_upload_id,
    new_upload_id, not_found, offset_mismatch, overflow, remove_if_present, require_offset,
    ByteStream, Streamed, UploadBackend, UploadStarted, UploadStatus, UploadSweep,
};
use crate::error::ApiError;
use crate::storage::{blob_failure, system_time};
use async_trait::async_trait;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use updraft_core::model::{Clock, Millis};
use updraft_store::blob::{BlobError, BlobStore};
use updraft_store::{UploadPart, UploadSession, UploadStore};

/// Expired sessions removed per database round trip.
const SWEEP_BATCH: i64 = 100;

fn stored_size(value: u64) -> Result<i64, ApiError> {
    i64::try_from(value).map_err(|_| ApiError::internal("the upload size does not fit"))
}

fn unsigned(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

fn is_live(session: &UploadSession, expiry: Duration, now: Millis) -> bool {
    session.last_activity.saturating_add(expiry_ms(expiry)) > now
}

fn status(session: &UploadSession, expiry: Duration) -> UploadStatus {
    UploadStatus {
        upload_id: session.upload_id.clone(),
        offset: unsigned(session.received),
        size: unsigned(session.size),
        sha256: session.sha256.clone(),
        complete: session.complete,
        expires_at: updraft_core::analytics::rfc3339(
            session.last_activity.saturating_add(expiry_ms(expiry)),
        ),
    }
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

/// Sessions as database rows, their bytes as scratch objects of the bucket.
pub struct SharedUploads {
    sessions: Arc<dyn UploadStore>,
    blobs: Arc<dyn BlobStore>,
    clock: Arc<dyn Clock>,
    expiry: Duration,
}

impl SharedUploads {
    pub fn new(
        sessions: Arc<dyn UploadStore>,
        blobs: Arc<dyn BlobStore>,
        expiry: Duration,
        clock: Arc<dyn Clock>,
    ) -> SharedUploads {
        SharedUploads {
            sessions,
            blobs,
            clock,
            expiry,
        }
    }

    /// The session if it exists and has not expired, else `upload_not_found`.
    async fn live(&self, upload_id: &str) -> Result<UploadSession, ApiError> {
        if !is_upload_id(upload_id) {
            return Err(not_found(upload_id));
        }
        self.sessions
            .get_upload(upload_id)
            .await?
            .filter(|s| is_live(s, self.expiry, self.clock.now()))
            .ok_or_else(|| not_found(upload_id))
    }

    /// Stores `body` (starting at the session's offset) as a part object and
    /// advances the session if nobody else did first; finishes a whole upload.
    async fn write_part(
        &self,
        session: UploadSession,
        body: ByteStream,
    ) -> Result<UploadSession, ApiError> {
        let upload_id = session.upload_id.clone();
        let start = unsigned(session.received);
        let size = unsigned(session.size);
        let suffix = format!("{:016x}", rand::random::<u64>());
        let staged = self
            .blobs
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
            current = self
                .store_part(current, &staged, start, written, &suffix)
                .await?;
        } else {
            remove_staged(&staged).await;
        }
        if let Some(reason) = broken {
            let offset = unsigned(current.received);
            tracing::info!(upload_id, offset, %reason, "upload body broke off; the bytes received are kept");
            return Err(interrupted(offset));
        }
        if current.received == current.size && !current.complete {
            current = self.finish(current).await?;
        }
        Ok(current)
    }

    /// Puts the staged bytes in the bucket, then records them: durable once
    /// this returns. Losing the race for the offset answers the mismatch.
    async fn store_part(
        &self,
        session: UploadSession,
        staged: &Path,
        start: u64,
        written: u64,
        suffix: &str,
    ) -> Result<UploadSession, ApiError> {
        let blobs = self.blobs.as_ref();
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
        let advanced = self
            .sessions
            .append_upload_part(upload_id, &part, self.clock.now())
            .await;
        match advanced {
            Ok(Some(advanced)) => Ok(advanced),
            Ok(None) => {
                delete_parts(blobs, std::slice::from_ref(&part)).await;
                // Another request won this offset, or the session went away.
                let now = self.live(upload_id).await?;
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

    /// Assembles a fully received upload, stores it as a blob (hash checked),
    /// marks the session complete and deletes the parts.
    async fn finish(&self, session: UploadSession) -> Result<UploadSession, ApiError> {
        let blobs = self.blobs.as_ref();
        let store = self.sessions.as_ref();
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
                if let Some(parts) = store.complete_upload(upload_id, self.clock.now()).await? {
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
}

#[async_trait]
impl UploadBackend for SharedUploads {
    async fn start(&self, sha256: String, size: u64) -> Result<UploadStarted, ApiError> {
        let expiry = self.expiry;
        let now = self.clock.now();
        let stored = stored_size(size)?;
        let existing_blob = self.blobs.stat(&sha256).await.map_err(blob_failure)?;
        let complete = existing_blob == Some(size);
        if complete {
            // Restart the blob's gc grace period: a bundle is about to reference it.
            self.blobs.touch(&sha256).await.map_err(blob_failure)?;
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
        let (mut session, created) = self
            .sessions
            .find_or_create_upload(candidate, live_after)
            .await?;
        if complete || created {
            return Ok(UploadStarted {
                status: status(&session, expiry),
                created: created && !complete,
            });
        }
        if session.received == session.size && !session.complete {
            // Every byte arrived but the node that got the last one did not finish.
            session = self.finish(session).await?;
        }
        Ok(UploadStarted {
            status: status(&session, expiry),
            created: false,
        })
    }

    async fn status(&self, upload_id: &str) -> Result<UploadStatus, ApiError> {
        let session = self.live(upload_id).await?;
        Ok(status(&session, self.expiry))
    }

    async fn append(
        self: Arc<Self>,
        upload_id: &str,
        offset: Option<u64>,
        declared_len: Option<u64>,
        body: ByteStream,
    ) -> Result<UploadStatus, ApiError> {
        let expiry = self.expiry;
        let session = self.live(upload_id).await?;
        let claimed = require_offset(offset)?;
        let current = unsigned(session.received);
        if claimed != current {
            return Err(offset_mismatch(current));
        }
        if session.complete {
            return Ok(status(&session, expiry));
        }
        let size = unsigned(session.size);
        if declared_len.is_some_and(|len| len > size - current) {
            return Err(overflow(size, current));
        }
        // Its own task: when the client goes away hyper drops the request,
        // but the bytes received must still be stored and counted.
        let uploads = Arc::clone(&self);
        let written = tokio::spawn(async move { uploads.write_part(session, body).await })
            .await
            .map_err(|e| ApiError::internal(format!("the upload writer stopped: {e}")))??;
        Ok(status(&written, expiry))
    }

    /// Removes expired sessions with their part objects, and part objects
    /// older than the session expiry that no incomplete session owns. Runs
    /// on the cluster leader (gc).
    async fn sweep(&self, now: Millis) -> Result<UploadSweep, ApiError> {
        let blobs = self.blobs.as_ref();
        let store = self.sessions.as_ref();
        let before = now.saturating_sub(expiry_ms(self.expiry));
        let mut report = UploadSweep::default();
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
        let cutoff = system_time(before);
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
