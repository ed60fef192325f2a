//! Garbage collection: deletes blobs no live bundle references once they are
//! older than the grace period, and sweeps expired upload sessions.

use super::uploads::UploadBackend;
use super::{blob_failure, system_time};
use crate::error::ApiError;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::RwLock;
use updraft_core::model::Clock;
use updraft_store::blob::BlobStore;
use updraft_store::BundleStore;

pub use updraft_api::uploads::GcReport;

/// Collects unreferenced blobs and expired upload sessions.
pub struct GcService {
    blobs: Arc<dyn BlobStore>,
    bundles: Arc<dyn BundleStore>,
    uploads: Arc<dyn UploadBackend>,
    /// Taken exclusively while deleting: no publish may be between its blob
    /// checks and its commit (see [`super::publish::PublishService`]).
    gc_lock: Arc<RwLock<()>>,
    clock: Arc<dyn Clock>,
    /// Unreferenced blobs younger than this are kept (an upload or publish may be under way).
    grace: Duration,
}

impl GcService {
    pub fn new(
        blobs: Arc<dyn BlobStore>,
        bundles: Arc<dyn BundleStore>,
        uploads: Arc<dyn UploadBackend>,
        gc_lock: Arc<RwLock<()>>,
        clock: Arc<dyn Clock>,
        grace: Duration,
    ) -> GcService {
        GcService {
            blobs,
            bundles,
            uploads,
            gc_lock,
            clock,
            grace,
        }
    }

    /// One collection pass at the clock's now.
    pub async fn collect(&self) -> Result<GcReport, ApiError> {
        let now = self.clock.now();
        let swept = self.uploads.sweep(now).await?;
        if swept.orphaned_parts > 0 {
            tracing::info!(
                parts = swept.orphaned_parts,
                "gc removed orphaned upload parts"
            );
        }
        // Exclusive: no publish may be between its blob checks and its commit.
        let _exclusive = self.gc_lock.write().await;
        let referenced = self.bundles.referenced_blobs().await?;
        let blobs = self.blobs.list().await.map_err(blob_failure)?;
        let grace = i64::try_from(self.grace.as_millis()).unwrap_or(i64::MAX);
        let cutoff = system_time(now.saturating_sub(grace));
        let mut report = GcReport {
            expired_uploads: swept.expired_sessions,
            ..GcReport::default()
        };
        for blob in blobs {
            if referenced.contains(&blob.sha256) || blob.modified > cutoff {
                report.kept_blobs += 1;
                continue;
            }
            match self.blobs.delete(&blob.sha256).await {
                Ok(true) => {
                    report.deleted_blobs += 1;
                    report.freed_bytes += blob.size;
                }
                Ok(false) => {}
                Err(err) => {
                    tracing::warn!(error = %err, sha256 = blob.sha256, "gc could not delete a blob");
                    report.kept_blobs += 1;
                }
            }
        }
        Ok(report)
    }

    /// Runs gc every `every` (the first pass one interval after start).
    pub fn spawn_periodic(self: Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(every);
            ticker.tick().await;
            loop {
                ticker.tick().await;
                match self.collect().await {
                    Ok(report) if report.deleted_blobs > 0 || report.expired_uploads > 0 => {
                        tracing::info!(?report, "periodic gc");
                    }
                    Ok(_) => {}
                    Err(err) => tracing::warn!(error = %err, "periodic gc failed"),
                }
            }
        })
    }
}
