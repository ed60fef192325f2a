//! Upload sessions on this node's disk (blobs on local disk: one node).

use super::{
    append_body, checksum_mismatch, expiry_ms, interrupted, io_failure, is_upload_id,
    new_upload_id, not_found, offset_mismatch, overflow, remove_if_present, require_offset,
    ByteStream, Streamed, UploadBackend, UploadStarted, UploadStatus, UploadSweep,
};
use crate::error::ApiError;
use crate::error::ErrorCode;
use crate::storage::blob_failure;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use updraft_core::model::{Clock, Millis};
use updraft_store::blob::{BlobError, BlobStore};

/// Longest wait for a session another request is writing to.
const SESSION_BUSY_WAIT: Duration = Duration::from_secs(30);

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
            .saturating_add(expiry_ms(expiry))
    }

    fn status(&self, expiry: Duration) -> UploadStatus {
        UploadStatus {
            upload_id: self.upload_id.clone(),
            offset: self.durable_offset.load(Ordering::Acquire),
            size: self.size,
            sha256: self.sha256.clone(),
            complete: self.complete.load(Ordering::Acquire),
            expires_at: updraft_core::analytics::rfc3339(self.expires_at(expiry)),
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

/// Every upload session of this node, loaded from disk at start-up.
pub struct LocalUploads {
    dir: PathBuf,
    staging: PathBuf,
    expiry: Duration,
    sessions: Mutex<HashMap<String, Arc<Session>>>,
    /// Serialises "find or create" so one (sha256, size) gets one session.
    create_lock: tokio::sync::Mutex<()>,
    blobs: Arc<dyn BlobStore>,
    clock: Arc<dyn Clock>,
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

impl LocalUploads {
    /// Loads the sessions in `dir` (created if needed); partial files live in
    /// the staging directory of `blobs`, where completed uploads go.
    pub fn open(
        dir: &Path,
        blobs: Arc<dyn BlobStore>,
        expiry: Duration,
        clock: Arc<dyn Clock>,
    ) -> std::io::Result<LocalUploads> {
        let staging = blobs.staging_dir().to_path_buf();
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
        Ok(LocalUploads {
            dir: dir.to_path_buf(),
            staging,
            expiry,
            sessions: Mutex::new(sessions),
            create_lock: tokio::sync::Mutex::new(()),
            blobs,
            clock,
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

    fn live(&self, upload_id: &str) -> Option<Arc<Session>> {
        let now = self.clock.now();
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

    /// Moves a fully received partial into the blob store.
    async fn finish(&self, session: &Session) -> Result<(), ApiError> {
        let partial = self.partial_path(&session.upload_id);
        match self.blobs.put_file(&partial, Some(&session.sha256)).await {
            Ok(_) => {
                session.complete.store(true, Ordering::Release);
                session
                    .durable_offset
                    .store(session.size, Ordering::Release);
                self.persist(session).await.map_err(io_failure)?;
                Ok(())
            }
            Err(BlobError::Mismatch { expected, actual }) => {
                self.discard(session).await.map_err(io_failure)?;
                Err(checksum_mismatch(expected, actual))
            }
            Err(err) => Err(blob_failure(err)),
        }
    }

    /// Appends `body` at `current` (the durable offset), fsyncs, records the
    /// new offset, and finishes the upload when it is whole. Runs holding the
    /// writer lock.
    async fn write_body(
        &self,
        session: &Session,
        current: u64,
        body: ByteStream,
    ) -> Result<(), ApiError> {
        let upload_id = session.upload_id.as_str();
        let room = session.size - current;
        let partial = self.partial_path(upload_id);
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
        session
            .last_activity
            .store(self.clock.now(), Ordering::Release);
        if let Some(reason) = broken {
            tracing::info!(upload_id, offset, %reason, "upload body broke off; the bytes received are kept");
            return Err(interrupted(offset));
        }
        if offset == session.size {
            self.finish(session).await?;
        }
        Ok(())
    }
}

#[async_trait]
impl UploadBackend for LocalUploads {
    async fn start(&self, sha256: String, size: u64) -> Result<UploadStarted, ApiError> {
        let _creating = self.create_lock.lock().await;
        let now = self.clock.now();
        let existing_blob = self.blobs.stat(&sha256).await.map_err(blob_failure)?;
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
            self.blobs.touch(&sha256).await.map_err(blob_failure)?;
            let session = make_session(true);
            let status = session.status(self.expiry);
            self.persist(&session).await.map_err(io_failure)?;
            self.lock_map()
                .insert(session.upload_id.clone(), Arc::new(session));
            return Ok(UploadStarted {
                status,
                created: false,
            });
        }
        let resumable = self
            .lock_map()
            .values()
            .filter(|s| {
                s.sha256 == sha256
                    && s.size == size
                    && !s.complete.load(Ordering::Acquire)
                    && s.expires_at(self.expiry) > now
            })
            .max_by_key(|s| s.durable_offset.load(Ordering::Acquire))
            .cloned();
        if let Some(session) = resumable {
            if session.durable_offset.load(Ordering::Acquire) == session.size {
                // Every byte arrived but the server stopped before finishing.
                if let Ok(_writer) = session.writer.try_lock() {
                    self.finish(&session).await?;
                }
            }
            return Ok(UploadStarted {
                status: session.status(self.expiry),
                created: false,
            });
        }
        let session = make_session(false);
        tokio::fs::File::create(self.partial_path(&session.upload_id))
            .await
            .map_err(io_failure)?;
        self.persist(&session).await.map_err(io_failure)?;
        let status = session.status(self.expiry);
        self.lock_map()
            .insert(session.upload_id.clone(), Arc::new(session));
        Ok(UploadStarted {
            status,
            created: true,
        })
    }

    async fn status(&self, upload_id: &str) -> Result<UploadStatus, ApiError> {
        let session = self.live(upload_id).ok_or_else(|| not_found(upload_id))?;
        Ok(session.status(self.expiry))
    }

    async fn append(
        self: Arc<Self>,
        upload_id: &str,
        offset: Option<u64>,
        declared_len: Option<u64>,
        body: ByteStream,
    ) -> Result<UploadStatus, ApiError> {
        let session = self.live(upload_id).ok_or_else(|| not_found(upload_id))?;
        let claimed = require_offset(offset)?;
        let writer =
            tokio::time::timeout(SESSION_BUSY_WAIT, Arc::clone(&session.writer).lock_owned())
                .await
                .map_err(|_| {
                    ApiError::conflict(
                        ErrorCode::UploadBusy,
                        "another request is still writing to this upload; retry shortly",
                    )
                    .with("offset", session.durable_offset.load(Ordering::Acquire))
                })?;
        // The session may have been swept or discarded while we waited.
        if self.live(upload_id).is_none() {
            return Err(not_found(upload_id));
        }
        let current = session.durable_offset.load(Ordering::Acquire);
        if claimed != current {
            return Err(offset_mismatch(current));
        }
        if session.complete.load(Ordering::Acquire) {
            return Ok(session.status(self.expiry));
        }
        if declared_len.is_some_and(|len| len > session.size - current) {
            return Err(overflow(session.size, current));
        }
        // The writing runs in its own task: when the client goes away hyper
        // drops the request, but the bytes received must still be fsynced and
        // counted.
        let uploads = Arc::clone(&self);
        let task_session = Arc::clone(&session);
        let written = tokio::spawn(async move {
            let _writer = writer;
            uploads.write_body(&task_session, current, body).await
        })
        .await
        .map_err(|e| ApiError::internal(format!("the upload writer stopped: {e}")))?;
        written?;
        Ok(session.status(self.expiry))
    }

    async fn sweep(&self, now: Millis) -> Result<UploadSweep, ApiError> {
        let expired: Vec<Arc<Session>> = self
            .lock_map()
            .values()
            .filter(|s| s.expires_at(self.expiry) <= now)
            .cloned()
            .collect();
        let mut report = UploadSweep::default();
        for session in expired {
            let Ok(_writer) = session.writer.try_lock() else {
                continue;
            };
            match self.discard(&session).await {
                Ok(()) => report.expired_sessions += 1,
                Err(err) => tracing::warn!(error = %err, "could not remove an expired upload"),
            }
        }
        Ok(report)
    }
}
