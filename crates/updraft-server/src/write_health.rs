//! Whether writes work: free space on the data directory's file system
//! against a watermark, and a small write committed every few seconds.
//!
//! Below the watermark, stats and management writes are refused with 503 +
//! `Retry-After` before SQLite (or the upload spool) runs out of room, so a
//! full disk never fails a commit half-way; the device keeps the batch and
//! resends it. `/readyz` answers 503 while the disk is low or the last probe
//! failed, and both recover by themselves at the next check once there is
//! room again. Checked in the background, never per request.

use crate::metrics::Metrics;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use updraft_store::SettingStore;

/// A probe that has not committed within this is a failed probe.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// What a refusal for low disk space asks clients to wait (`Retry-After`).
pub const LOW_DISK_RETRY_AFTER_SECS: u64 = 30;

/// What the write paths are told while writes are refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LowDisk {
    pub free_bytes: u64,
    pub min_free_bytes: u64,
}

impl LowDisk {
    pub fn message(&self) -> String {
        format!(
            "the server's disk is almost full ({} MiB free, {} MiB required); nothing was changed, retry later",
            self.free_bytes / (1024 * 1024),
            self.min_free_bytes / (1024 * 1024)
        )
    }
}

/// Why `/readyz` says not ready.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NotReady {
    LowDisk(LowDisk),
    WritesFailing(String),
}

impl NotReady {
    pub fn code(&self) -> &'static str {
        match self {
            NotReady::LowDisk(_) => "low_disk_space",
            NotReady::WritesFailing(_) => "writes_failing",
        }
    }

    pub fn message(&self) -> String {
        match self {
            NotReady::LowDisk(low) => low.message(),
            NotReady::WritesFailing(err) => format!("the last write probe failed: {err}"),
        }
    }
}

/// The decision, over plain numbers: writes are refused below the watermark.
/// `None` free space (not measurable here) never refuses.
pub fn low_disk(free_bytes: Option<u64>, min_free_bytes: u64) -> Option<LowDisk> {
    let free_bytes = free_bytes?;
    (free_bytes < min_free_bytes).then_some(LowDisk {
        free_bytes,
        min_free_bytes,
    })
}

pub struct WriteHealth {
    data_dir: PathBuf,
    min_free_bytes: u64,
    /// `u64::MAX` until measured (or where it cannot be).
    free_bytes: AtomicU64,
    disk_low: AtomicBool,
    probe_error: Mutex<Option<String>>,
}

impl WriteHealth {
    /// Measures the free space once, so a server started on a full disk
    /// refuses writes from its first request.
    pub fn new(data_dir: &Path, min_free_disk_mb: u64) -> WriteHealth {
        let health = WriteHealth {
            data_dir: data_dir.to_path_buf(),
            min_free_bytes: min_free_disk_mb.saturating_mul(1024 * 1024),
            free_bytes: AtomicU64::new(u64::MAX),
            disk_low: AtomicBool::new(false),
            probe_error: Mutex::new(None),
        };
        health.check_disk();
        health
    }

    /// `Some` while writes are refused.
    pub fn refusal(&self) -> Option<LowDisk> {
        if !self.disk_low.load(Ordering::Acquire) {
            return None;
        }
        Some(LowDisk {
            free_bytes: self.free_bytes.load(Ordering::Acquire),
            min_free_bytes: self.min_free_bytes,
        })
    }

    pub fn readiness(&self) -> Result<(), NotReady> {
        if let Some(low) = self.refusal() {
            return Err(NotReady::LowDisk(low));
        }
        match self.probe_error.lock() {
            Ok(guard) => match guard.as_ref() {
                Some(err) => Err(NotReady::WritesFailing(err.clone())),
                None => Ok(()),
            },
            Err(_) => Err(NotReady::WritesFailing("health state unavailable".into())),
        }
    }

    /// Free bytes for an unprivileged writer, when measurable.
    pub fn free_bytes(&self) -> Option<u64> {
        Some(self.free_bytes.load(Ordering::Acquire)).filter(|b| *b != u64::MAX)
    }

    fn check_disk(&self) {
        let free = free_space(&self.data_dir);
        self.free_bytes
            .store(free.unwrap_or(u64::MAX), Ordering::Release);
        let low = low_disk(free, self.min_free_bytes);
        let was_low = self.disk_low.swap(low.is_some(), Ordering::AcqRel);
        match (&low, was_low) {
            (Some(low), false) => tracing::error!(
                free_mib = low.free_bytes / (1024 * 1024),
                min_free_mib = low.min_free_bytes / (1024 * 1024),
                data_dir = %self.data_dir.display(),
                "free disk space is below min_free_disk_mb: refusing writes (503) until there is room"
            ),
            (None, true) => tracing::warn!(
                data_dir = %self.data_dir.display(),
                "free disk space is back above min_free_disk_mb: accepting writes again"
            ),
            _ => {}
        }
    }

    fn record_probe(&self, outcome: Result<(), String>) {
        let Ok(mut guard) = self.probe_error.lock() else {
            return;
        };
        match (&outcome, guard.is_some()) {
            (Err(err), false) => tracing::error!(error = %err, "the write probe failed: not ready"),
            (Ok(()), true) => tracing::warn!("the write probe succeeds again: ready"),
            _ => {}
        }
        *guard = outcome.err();
    }

    /// One round: the disk, then (when the disk has room) a probe write.
    pub async fn check(&self, store: &dyn SettingStore, now: updraft_core::model::Millis) {
        self.check_disk();
        if self.disk_low.load(Ordering::Acquire) {
            // Refused anyway; a write now would eat the last of the room.
            return;
        }
        let outcome = match tokio::time::timeout(PROBE_TIMEOUT, store.probe_write(now)).await {
            Ok(result) => result.map_err(|e| e.to_string()),
            Err(_) => Err(format!("no commit within {} s", PROBE_TIMEOUT.as_secs())),
        };
        self.record_probe(outcome);
    }
}

#[cfg(unix)]
fn free_space(dir: &Path) -> Option<u64> {
    match rustix::fs::statvfs(dir) {
        Ok(st) => Some(st.f_bavail.saturating_mul(st.f_frsize)),
        Err(err) => {
            tracing::warn!(error = %err, dir = %dir.display(), "cannot measure free disk space");
            None
        }
    }
}

#[cfg(not(unix))]
fn free_space(_dir: &Path) -> Option<u64> {
    None
}

/// Checks every `every` until the task is aborted.
pub fn spawn(
    health: Arc<WriteHealth>,
    store: Arc<dyn SettingStore>,
    clock: Arc<dyn updraft_core::model::Clock>,
    metrics: Arc<Metrics>,
    every: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            health.check(store.as_ref(), clock.now()).await;
            metrics.set_write_health(health.free_bytes(), health.readiness().is_ok());
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_are_refused_only_below_the_watermark() {
        let mib = 1024 * 1024;
        assert_eq!(low_disk(Some(100 * mib), 64 * mib), None);
        assert_eq!(low_disk(Some(64 * mib), 64 * mib), None);
        assert_eq!(
            low_disk(Some(10 * mib), 64 * mib),
            Some(LowDisk {
                free_bytes: 10 * mib,
                min_free_bytes: 64 * mib
            })
        );
        assert_eq!(low_disk(None, 64 * mib), None, "unmeasurable never refuses");
        assert_eq!(low_disk(Some(0), 0), None, "a watermark of 0 turns it off");
    }

    #[test]
    fn a_huge_watermark_refuses_on_any_real_disk() {
        let dir = tempfile::tempdir().unwrap();
        let health = WriteHealth::new(dir.path(), u64::MAX / (1024 * 1024));
        assert!(health.refusal().is_some());
        assert_eq!(health.readiness().unwrap_err().code(), "low_disk_space");
        let health = WriteHealth::new(dir.path(), 0);
        assert!(health.refusal().is_none());
        assert!(health.free_bytes().is_some());
    }
}
