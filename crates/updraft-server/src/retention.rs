//! Raw stats events are kept for a configurable number of days (by arrival);
//! the rollups built from them are kept for good. A background task deletes
//! what is older in small batches, pausing between them so ingest (which
//! shares SQLite's single write lock) never waits long.

use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use updraft_core::analytics::{day_of, MILLIS_PER_DAY};
use updraft_core::model::Millis;
use updraft_store::{Store, StoreResult};

/// Rows deleted per statement: a few milliseconds of write lock.
const BATCH_ROWS: i64 = 5_000;
const PAUSE_BETWEEN_BATCHES: Duration = Duration::from_millis(20);

/// What one retention pass removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RetentionPass {
    pub events: u64,
    pub device_days: u64,
}

/// Deletes raw events received more than `retention_days` before `now`, and
/// the per-device day rows of days before that.
pub async fn run_once(
    store: &dyn Store,
    now: Millis,
    retention_days: u32,
) -> StoreResult<RetentionPass> {
    let cutoff = now - i64::from(retention_days.max(1)) * MILLIS_PER_DAY;
    let cutoff_day = day_of(cutoff);
    let mut pass = RetentionPass::default();
    loop {
        let deleted = store
            .delete_events_received_before(cutoff, BATCH_ROWS)
            .await?;
        pass.events += deleted;
        if deleted == 0 {
            break;
        }
        tokio::time::sleep(PAUSE_BETWEEN_BATCHES).await;
    }
    loop {
        let deleted = store
            .delete_device_days_before(&cutoff_day, BATCH_ROWS)
            .await?;
        pass.device_days += deleted;
        if deleted == 0 {
            break;
        }
        tokio::time::sleep(PAUSE_BETWEEN_BATCHES).await;
    }
    Ok(pass)
}

/// Runs a pass at start and then every `every`.
pub fn spawn(store: Arc<dyn Store>, retention_days: u32, every: Duration) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(every.max(Duration::from_secs(1)));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            match run_once(store.as_ref(), crate::device::now_ms(), retention_days).await {
                Ok(pass) if pass != RetentionPass::default() => tracing::info!(
                    events = pass.events,
                    device_days = pass.device_days,
                    retention_days,
                    "old raw stats deleted"
                ),
                Ok(_) => {}
                Err(err) => tracing::warn!(error = %err, "stats retention pass failed; will retry"),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use updraft_core::model::StatsEvent;
    use updraft_store::{AnalyticsStore, EventExportQuery, SqliteStore, StatsIngest};

    fn event(device: &str, received_at: Millis) -> StatsEvent {
        StatsEvent {
            app_id: "com.example.app".into(),
            device_id: device.into(),
            action: "ping".into(),
            version_name: "1.0.0".into(),
            old_version_name: None,
            platform: "ios".into(),
            plugin_version: None,
            version_build: None,
            is_prod: true,
            is_emulator: false,
            metadata: None,
            timestamp: received_at,
            received_at,
        }
    }

    #[tokio::test]
    async fn a_pass_deletes_what_is_older_than_the_retention() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).await.unwrap();
        let now = 1_767_225_600_000;
        let events: Vec<StatsEvent> = (0..12_000)
            .map(|i| event(&format!("old-{}", i % 10), now - 31 * MILLIS_PER_DAY + i))
            .chain((0..5).map(|i| event("recent", now - 29 * MILLIS_PER_DAY + i)))
            .collect();
        store
            .ingest_stats(StatsIngest {
                events: &events,
                ..StatsIngest::default()
            })
            .await
            .unwrap();
        let pass = run_once(&store, now, 30).await.unwrap();
        assert_eq!(
            pass,
            RetentionPass {
                events: 12_000,
                device_days: 10
            }
        );
        let left = store
            .export_events(&EventExportQuery {
                app_id: "com.example.app".into(),
                limit: 100,
                ..EventExportQuery::default()
            })
            .await
            .unwrap();
        assert_eq!(left.len(), 5);
        assert_eq!(
            run_once(&store, now, 30).await.unwrap(),
            RetentionPass::default()
        );
    }
}
