//! Background writers that keep database work off the request path:
//! - the device registry coalesces sightings per device and flushes them in
//!   batches (a device checking in ten times a second costs one row write);
//! - stats are group-committed: concurrent requests' events share one
//!   transaction, and each request is answered only once its events are durable.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use updraft_core::model::{DeviceSighting, StatsEvent};
use updraft_store::{Store, StoreError, StoreResult};

const REGISTRY_SHARDS: usize = 32;

type DeviceKey = (String, String);

/// Pending device-registry writes, sharded so concurrent requests rarely share a lock.
pub struct RegistryWriter {
    store: Arc<dyn Store>,
    shards: Vec<Mutex<HashMap<DeviceKey, DeviceSighting>>>,
    hasher: RandomState,
}

/// Folds a newer sighting into an older one so that writing the result equals
/// writing both in order (see `DeviceSighting`'s field rules).
fn merge_sighting(older: DeviceSighting, newer: DeviceSighting) -> DeviceSighting {
    DeviceSighting {
        plugin_version: newer.plugin_version.or(older.plugin_version),
        version_os: newer.version_os.or(older.version_os),
        version_build: newer.version_build.or(older.version_build),
        version_code: newer.version_code.or(older.version_code),
        version_name: newer.version_name.or(older.version_name),
        custom_id: newer.custom_id.or(older.custom_id),
        key_id: newer.key_id.or(older.key_id),
        install_source: newer.install_source.or(older.install_source),
        last_offered_version: newer.last_offered_version.or(older.last_offered_version),
        last_update_outcome: newer.last_update_outcome.or(older.last_update_outcome),
        seen_at: newer.seen_at.max(older.seen_at),
        ..newer
    }
}

impl RegistryWriter {
    pub fn new(store: Arc<dyn Store>) -> Self {
        RegistryWriter {
            store,
            shards: (0..REGISTRY_SHARDS)
                .map(|_| Mutex::new(HashMap::new()))
                .collect(),
            hasher: RandomState::new(),
        }
    }

    /// Queues a sighting; it reaches the database at the next flush.
    pub fn note(&self, sighting: DeviceSighting) {
        self.fold_in(sighting, true);
    }

    /// Merges a sighting with what is pending for the same device; `is_newer`
    /// says which of the two happened last.
    fn fold_in(&self, sighting: DeviceSighting, is_newer: bool) {
        let key = (sighting.app_id.clone(), sighting.device_id.clone());
        let shard = (self.hasher.hash_one(&key) as usize) % REGISTRY_SHARDS;
        let mut pending = match self.shards[shard].lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        let merged = match (pending.remove(&key), is_newer) {
            (Some(pending_one), true) => merge_sighting(pending_one, sighting),
            (Some(pending_one), false) => merge_sighting(sighting, pending_one),
            (None, _) => sighting,
        };
        pending.insert(key, merged);
    }

    pub fn pending(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().map(|g| g.len()).unwrap_or(0))
            .sum()
    }

    /// Writes everything pending in one transaction. On failure the sightings
    /// are put back (under any newer ones) for the next attempt.
    pub async fn flush(&self) -> StoreResult<usize> {
        let mut batch = Vec::new();
        for shard in &self.shards {
            let mut pending = match shard.lock() {
                Ok(guard) => guard,
                Err(poisoned) => poisoned.into_inner(),
            };
            batch.extend(pending.drain().map(|(_, s)| s));
        }
        if batch.is_empty() {
            return Ok(0);
        }
        match self.store.upsert_devices(&batch).await {
            Ok(()) => Ok(batch.len()),
            Err(err) => {
                for older in batch {
                    self.fold_in(older, false);
                }
                Err(err)
            }
        }
    }

    /// Flushes every `interval` until `stop` fires, then once more.
    pub fn spawn_flusher(
        self: &Arc<Self>,
        interval: Duration,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) -> JoinHandle<()> {
        let writer = Arc::clone(self);
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = ticker.tick() => {}
                    _ = stop.changed() => break,
                }
                if let Err(err) = writer.flush().await {
                    tracing::warn!(error = %err, "device registry flush failed; will retry");
                }
            }
            if let Err(err) = writer.flush().await {
                tracing::error!(error = %err, "final device registry flush failed");
            }
        })
    }
}

/// Why stats could not be accepted.
#[derive(Debug, thiserror::Error)]
pub enum StatsSubmitError {
    /// The ingest queue is full: the device should retry later.
    #[error("the stats ingest queue is full")]
    Busy,
    /// The writer stopped (shutdown).
    #[error("the stats writer is not running")]
    Stopped,
    #[error(transparent)]
    Store(#[from] StoreError),
}

struct StatsJob {
    events: Vec<StatsEvent>,
    sightings: Vec<DeviceSighting>,
    done: oneshot::Sender<StoreResult<()>>,
}

/// Group-commits stats from concurrent requests.
pub struct StatsWriter {
    queue: mpsc::Sender<StatsJob>,
}

/// Most events written in one transaction.
const MAX_EVENTS_PER_COMMIT: usize = 20_000;

impl StatsWriter {
    /// `capacity` = requests that may wait for a commit before new ones get 429.
    pub fn spawn(store: Arc<dyn Store>, capacity: usize) -> (StatsWriter, JoinHandle<()>) {
        let (queue, mut jobs) = mpsc::channel::<StatsJob>(capacity.max(1));
        let handle = tokio::spawn(async move {
            while let Some(first) = jobs.recv().await {
                let mut batch = vec![first];
                let mut count = batch[0].events.len();
                while count < MAX_EVENTS_PER_COMMIT {
                    match jobs.try_recv() {
                        Ok(job) => {
                            count += job.events.len();
                            batch.push(job);
                        }
                        Err(_) => break,
                    }
                }
                let mut events: Vec<StatsEvent> = Vec::with_capacity(count);
                let mut sightings: Vec<DeviceSighting> = Vec::with_capacity(count);
                for job in &mut batch {
                    events.append(&mut job.events);
                    sightings.append(&mut job.sightings);
                }
                let result = store.record_stats(&events, &sightings).await;
                if let Err(err) = &result {
                    tracing::error!(error = %err, events = events.len(), "stats commit failed");
                }
                for job in batch {
                    let answer = match &result {
                        Ok(()) => Ok(()),
                        Err(err) => Err(StoreError::Backend(err.to_string())),
                    };
                    // The requester may have gone away; the events are stored regardless.
                    let _ = job.done.send(answer);
                }
            }
        });
        (StatsWriter { queue }, handle)
    }

    /// Resolves once the events are durable.
    pub async fn submit(
        &self,
        events: Vec<StatsEvent>,
        sightings: Vec<DeviceSighting>,
    ) -> Result<(), StatsSubmitError> {
        let (done, committed) = oneshot::channel();
        self.queue
            .try_send(StatsJob {
                events,
                sightings,
                done,
            })
            .map_err(|err| match err {
                mpsc::error::TrySendError::Full(_) => StatsSubmitError::Busy,
                mpsc::error::TrySendError::Closed(_) => StatsSubmitError::Stopped,
            })?;
        committed.await.map_err(|_| StatsSubmitError::Stopped)??;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sighting(seen_at: i64) -> DeviceSighting {
        DeviceSighting {
            app_id: "com.example.app".into(),
            device_id: "00000000-0000-4000-8000-000000000001".into(),
            platform: "android".into(),
            plugin_version: Some("8.0.0".into()),
            version_os: None,
            version_build: Some("1.0.0".into()),
            version_code: None,
            version_name: Some("1.0.0".into()),
            custom_id: Some("alice".into()),
            is_prod: true,
            is_emulator: false,
            default_channel: Some("beta".into()),
            key_id: None,
            install_source: None,
            last_offered_version: Some("1.1.0".into()),
            last_update_outcome: Some("get".into()),
            seen_at,
        }
    }

    #[test]
    fn merge_keeps_older_values_the_newer_sighting_does_not_carry() {
        let older = sighting(10);
        let mut newer = sighting(20);
        newer.custom_id = None;
        newer.version_name = None;
        newer.default_channel = None;
        newer.last_offered_version = Some("1.2.0".into());
        let merged = merge_sighting(older, newer);
        assert_eq!(merged.custom_id.as_deref(), Some("alice"));
        assert_eq!(merged.version_name.as_deref(), Some("1.0.0"));
        // default_channel is overwritten, as the registry does.
        assert_eq!(merged.default_channel, None);
        assert_eq!(merged.last_offered_version.as_deref(), Some("1.2.0"));
        assert_eq!(merged.seen_at, 20);
    }

    #[test]
    fn merge_never_moves_last_seen_backwards() {
        let merged = merge_sighting(sighting(50), sighting(40));
        assert_eq!(merged.seen_at, 50);
    }
}
