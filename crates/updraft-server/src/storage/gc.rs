//! Garbage collection: deletes blobs no live bundle references once they are
//! older than the grace period, and sweeps expired upload sessions.

use super::Storage;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;
use crate::storage::now_ms;
use axum::extract::State;
use axum::Json;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use updraft_core::model::Role;
use updraft_store::Store;

pub use updraft_api::uploads::GcReport;

/// One collection pass.
pub async fn collect(storage: &Storage, store: &dyn Store) -> Result<GcReport, ApiError> {
    let now = now_ms();
    let shared = super::uploads::sweep_shared(storage, store, now).await?;
    if shared.orphaned_parts > 0 {
        tracing::info!(
            parts = shared.orphaned_parts,
            "gc removed orphaned upload parts"
        );
    }
    let expired_uploads = storage.uploads.sweep_expired(now).await as u64 + shared.expired_sessions;
    // Exclusive: no publish may be between its blob checks and its commit.
    let _exclusive = storage.gc_lock.write().await;
    let referenced = store.referenced_blobs().await?;
    let blobs = storage.blobs.list().await.map_err(super::blob_failure)?;
    let cutoff = SystemTime::now()
        .checked_sub(storage.grace)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let mut report = GcReport {
        expired_uploads,
        ..GcReport::default()
    };
    for blob in blobs {
        if referenced.contains(&blob.sha256) || blob.modified > cutoff {
            report.kept_blobs += 1;
            continue;
        }
        match storage.blobs.delete(&blob.sha256).await {
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

#[utoipa::path(post, path = "/api/v1/gc", tag = "uploads", operation_id = "run_gc",
    responses((status = 200, body = GcReport), (status = 403, body = crate::api::views::ErrorView)))]
pub async fn run(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<GcReport>, ApiError> {
    caller.require(Role::Admin, None)?;
    let report = collect(&state.storage, state.store.as_ref()).await?;
    tracing::info!(?report, "gc ran on request");
    Ok(Json(report))
}

/// Runs gc every `every` (the first pass one interval after start).
pub fn spawn_periodic(
    storage: Arc<Storage>,
    store: Arc<dyn Store>,
    every: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(every);
        ticker.tick().await;
        loop {
            ticker.tick().await;
            match collect(&storage, store.as_ref()).await {
                Ok(report) if report.deleted_blobs > 0 || report.expired_uploads > 0 => {
                    tracing::info!(?report, "periodic gc");
                }
                Ok(_) => {}
                Err(err) => tracing::warn!(error = %err, "periodic gc failed"),
            }
        }
    })
}
