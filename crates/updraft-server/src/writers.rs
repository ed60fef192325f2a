//! Background writers that keep database work off the request path:
//! - the device registry coalesces sightings per device and flushes them in
//!   batches (a device checking in ten times a second costs one row write);
//! - stats are group-committed: concurrent requests' events share one
//!   transaction, and each request is answered only once its events are durable.

use crate::releases::ReleaseCache;
use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use updraft_core::analytics::attribute_channel;
use updraft_core::model::{DeviceSighting, StatsEvent};
use updraft_store::{StatsIngest, Store, StoreError, StoreResult};

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
        metrics: Arc<crate::metrics::Metrics>,
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
                    metrics.record_database_error(crate::metrics::db_operation::REGISTRY_FLUSH);
                    tracing::warn!(error = %err, "device registry flush failed; will retry");
                }
            }
            if let Err(err) = writer.flush().await {
                metrics.record_database_error(crate::metrics::db_operation::REGISTRY_FLUSH);
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
    channels: Vec<Option<String>>,
    sightings: Vec<DeviceSighting>,
    done: oneshot::Sender<StoreResult<()>>,
}

/// Group-commits stats from concurrent requests: the writer takes every job
/// queued while the previous commit ran (natural batching, capped at
/// [`MAX_EVENTS_PER_COMMIT`]) and writes them, their rollups and the device
/// rows in one transaction; each request is answered after that commit.
pub struct StatsWriter {
    queue: mpsc::Sender<StatsJob>,
    releases: Arc<ReleaseCache>,
}

/// Most events written in one transaction (a job is never split).
const MAX_EVENTS_PER_COMMIT: usize = 20_000;

/// One commit's device sightings, one per device (later ones folded in), in
/// first-seen order.
fn coalesce_sightings(sightings: Vec<DeviceSighting>) -> Vec<DeviceSighting> {
    let mut position: HashMap<DeviceKey, usize> = HashMap::with_capacity(sightings.len());
    let mut merged: Vec<Option<DeviceSighting>> = Vec::with_capacity(sightings.len());
    for sighting in sightings {
        // A plugin's batch is one device: fold runs of it without hashing.
        if let Some(slot) = merged.last_mut() {
            let same_device = slot.as_ref().is_some_and(|last| {
                last.device_id == sighting.device_id && last.app_id == sighting.app_id
            });
            if same_device {
                if let Some(older) = slot.take() {
                    *slot = Some(merge_sighting(older, sighting));
                }
                continue;
            }
        }
        let key = (sighting.app_id.clone(), sighting.device_id.clone());
        match position.get(&key) {
            Some(&at) => {
                if let Some(older) = merged[at].take() {
                    merged[at] = Some(merge_sighting(older, sighting));
                }
            }
            None => {
                position.insert(key, merged.len());
                merged.push(Some(sighting));
            }
        }
    }
    merged.into_iter().flatten().collect()
}

impl StatsWriter {
    /// `capacity` = requests that may wait for a commit before new ones get
    /// 429; events older than `event_retention_days` count as events but not
    /// as active devices (their per-device day rows are pruned).
    pub fn spawn(
        store: Arc<dyn Store>,
        releases: Arc<ReleaseCache>,
        capacity: usize,
        event_retention_days: u32,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> (StatsWriter, JoinHandle<()>) {
        let (queue, mut jobs) = mpsc::channel::<StatsJob>(capacity.max(1));
        let retention_ms = i64::from(event_retention_days.max(1)) * 86_400_000;
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
                let mut channels: Vec<Option<String>> = Vec::with_capacity(count);
                let mut sightings: Vec<DeviceSighting> = Vec::with_capacity(count);
                for job in &mut batch {
                    // Keep `channels` parallel to `events` whatever a job holds.
                    job.channels.resize(job.events.len(), None);
                    events.append(&mut job.events);
                    channels.append(&mut job.channels);
                    sightings.append(&mut job.sightings);
                }
                let sightings = coalesce_sightings(sightings);
                let result = store
                    .ingest_stats(StatsIngest {
                        events: &events,
                        channels: &channels,
                        sightings: &sightings,
                        active_devices_since: crate::device::now_ms() - retention_ms,
                    })
                    .await;
                if let Err(err) = &result {
                    tracing::error!(error = %err, events = events.len(), "stats commit failed");
                } else {
                    metrics.record_stats_commit();
                }
                for job in batch {
                    let answer = match &result {
                        Ok(()) => Ok(()),
                        Err(err) => Err(StoreError::Backend(err.to_string())),
                    };
                    // The requester may have gone away; the events are stored regardless.
                    let _ = job.done.send(answer);
                }
                // Freeing a commit's strings (about ten per event) is CPU the
                // next commit need not wait for: do it on another thread.
                tokio::task::spawn_blocking(move || drop((events, channels, sightings)));
            }
        });
        (StatsWriter { queue, releases }, handle)
    }

    /// Resolves once the events are durable. `sightings` are parallel to
    /// `events` (one per event, as `/stats` parses them): their
    /// `defaultChannel` attributes each event to a channel.
    pub async fn submit(
        &self,
        events: Vec<StatsEvent>,
        sightings: Vec<DeviceSighting>,
    ) -> Result<(), StatsSubmitError> {
        let channels = match events.first() {
            Some(first) => {
                let release = self.releases.get(&first.app_id);
                events
                    .iter()
                    .enumerate()
                    .map(|(i, event)| {
                        let default_channel = sightings
                            .get(i)
                            .filter(|s| s.device_id == event.device_id)
                            .and_then(|s| s.default_channel.as_deref());
                        attribute_channel(
                            &release,
                            &event.device_id,
                            &event.platform,
                            default_channel,
                        )
                        .map(str::to_string)
                    })
                    .collect()
            }
            None => Vec::new(),
        };
        let (done, committed) = oneshot::channel();
        self.queue
            .try_send(StatsJob {
                events,
                channels,
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
    fn a_commit_writes_one_sighting_per_device() {
        let mut other = sighting(15);
        other.device_id = "00000000-0000-4000-8000-000000000002".into();
        let mut later = sighting(30);
        later.custom_id = None;
        later.version_name = Some("1.1.0".into());
        let merged = coalesce_sightings(vec![sighting(10), other.clone(), later]);
        assert_eq!(merged.len(), 2);
        assert_eq!(merged[0].version_name.as_deref(), Some("1.1.0"));
        assert_eq!(merged[0].custom_id.as_deref(), Some("alice"));
        assert_eq!(merged[0].seen_at, 30);
        assert_eq!(merged[1], other);
    }

    #[test]
    fn merge_never_moves_last_seen_backwards() {
        let merged = merge_sighting(sighting(50), sighting(40));
        assert_eq!(merged.seen_at, 50);
    }
}
