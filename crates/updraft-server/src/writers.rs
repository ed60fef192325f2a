//! Background writers that keep database work off the request path:
//! - the device registry coalesces sightings per device and flushes them in
//!   batches (a device checking in ten times a second costs one row write),
//!   and drops sightings that would rewrite a row unchanged within 60–90 s;
//! - stats are group-committed: concurrent requests' events share one
//!   transaction, and each request is answered only once its events are durable.

use crate::releases::ReleaseCache;
use hashbrown::HashTable;
use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use updraft_core::analytics::attribute_channel;
use updraft_core::model::{DeviceSighting, Millis, ObservedAt, StatsEvent};
use updraft_store::{AnalyticsStore, DeviceStore, StatsIngest, StoreError, StoreResult};

const REGISTRY_SHARDS: usize = 32;

/// A device row this node wrote less than this long ago is not written again
/// for a sighting that changes none of its fields: a device checking at every
/// app open costs one row write a minute, not one per check. Any changed
/// field is written at the next flush.
pub const UNCHANGED_REWRITE_AFTER_MS: Millis = 60_000;
/// ...plus up to this much more, spread by device: devices first seen
/// together (a release going out, a timezone waking up) do not all come due
/// for a rewrite in the same second. `last_seen` is at most the sum behind.
pub const UNCHANGED_REWRITE_SPREAD_MS: Millis = 30_000;

/// How long after writing a device's row an unchanged sighting is dropped.
fn rewrite_after(key: u64) -> Millis {
    UNCHANGED_REWRITE_AFTER_MS + (key % UNCHANGED_REWRITE_SPREAD_MS as u64) as Millis
}

/// Devices remembered per shard (24 bytes each, written or fenced, ~55 MB at most over all
/// shards); beyond that, sightings are simply written.
const REMEMBERED_PER_SHARD: usize = 1 << 16;

/// A device whose row this node wrote (or is writing): which fields, when.
/// Or, with [`FENCED`], that the stats writer wrote the row with what it
/// saw up to `seen_at`: a sighting observed no later than that may have lost
/// fields to those (the registry keeps each field's newest observation), so
/// writing it does not tell what the row holds.
struct Written {
    key: u64,
    fingerprint: u64,
    seen_at: Millis,
}

/// The fingerprint of no sighting (see [`RegistryWriter::fingerprint`]).
const FENCED: u64 = 0;

/// The oldest observation among the fields a sighting carries.
fn oldest_observation(sighting: &DeviceSighting) -> ObservedAt {
    let observed = &sighting.observed;
    let mut oldest = observed.facts;
    for (carried, at) in [
        (sighting.version_name.is_some(), observed.version_name),
        (
            sighting.last_offered_version.is_some(),
            observed.last_offered_version,
        ),
        (
            sighting.last_update_outcome.is_some(),
            observed.last_update_outcome,
        ),
    ] {
        if carried {
            oldest = oldest.min(at);
        }
    }
    oldest
}

#[derive(Default)]
struct Shard {
    /// Sightings waiting for the next flush, with their device key.
    pending: HashTable<(u64, DeviceSighting)>,
    /// Rows written recently enough (see [`rewrite_after`]) before `latest`.
    written: HashTable<Written>,
    /// The latest `seen_at` noted here: the window is measured against the
    /// server's clock as the sightings carry it, never the wall clock.
    latest: Millis,
}

/// A shard's tables stay consistent whatever panicked while one was held.
fn lock(shard: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    shard.lock().unwrap_or_else(PoisonError::into_inner)
}

fn same_device(a: &DeviceSighting, b: &DeviceSighting) -> bool {
    a.device_id == b.device_id && a.app_id == b.app_id
}

/// The fields of a [`DeviceSighting`] but its times, borrowed: what the
/// registry writer compares before it needs the owned sighting.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SightingFields<'a> {
    pub app_id: &'a str,
    pub device_id: &'a str,
    pub platform: &'a str,
    pub plugin_version: Option<&'a str>,
    pub version_os: Option<&'a str>,
    pub version_build: Option<&'a str>,
    pub version_code: Option<&'a str>,
    pub version_name: Option<&'a str>,
    pub custom_id: Option<&'a str>,
    pub is_prod: bool,
    pub is_emulator: bool,
    pub default_channel: Option<&'a str>,
    pub key_id: Option<&'a str>,
    pub install_source: Option<&'a str>,
    pub last_offered_version: Option<&'a str>,
    pub last_update_outcome: Option<&'a str>,
}

impl<'a> SightingFields<'a> {
    pub fn of(sighting: &'a DeviceSighting) -> Self {
        let DeviceSighting {
            app_id,
            device_id,
            platform,
            plugin_version,
            version_os,
            version_build,
            version_code,
            version_name,
            custom_id,
            is_prod,
            is_emulator,
            default_channel,
            key_id,
            install_source,
            last_offered_version,
            last_update_outcome,
            seen_at: _,
            observed: _,
        } = sighting;
        SightingFields {
            app_id,
            device_id,
            platform,
            plugin_version: plugin_version.as_deref(),
            version_os: version_os.as_deref(),
            version_build: version_build.as_deref(),
            version_code: version_code.as_deref(),
            version_name: version_name.as_deref(),
            custom_id: custom_id.as_deref(),
            is_prod: *is_prod,
            is_emulator: *is_emulator,
            default_channel: default_channel.as_deref(),
            key_id: key_id.as_deref(),
            install_source: install_source.as_deref(),
            last_offered_version: last_offered_version.as_deref(),
            last_update_outcome: last_update_outcome.as_deref(),
        }
    }
}

impl Shard {
    fn is_pending(&self, key: u64, app_id: &str, device_id: &str) -> bool {
        self.pending
            .find(key, |(k, p)| {
                *k == key && p.device_id == device_id && p.app_id == app_id
            })
            .is_some()
    }

    /// Whether this node wrote exactly these fields for the device recently.
    fn written_recently(&self, key: u64, fingerprint: u64, seen_at: Millis) -> bool {
        self.written.find(key, |w| w.key == key).is_some_and(|w| {
            w.fingerprint != FENCED
                && w.fingerprint == fingerprint
                && seen_at - w.seen_at < rewrite_after(key)
        })
    }

    /// Merges a sighting with what is pending for the same device; `is_newer`
    /// says which of the two happened last.
    fn fold_in(&mut self, key: u64, sighting: DeviceSighting, is_newer: bool) {
        match self
            .pending
            .find_entry(key, |(k, p)| *k == key && same_device(p, &sighting))
        {
            Ok(entry) => {
                let ((_, pending_one), vacant) = entry.remove();
                let merged = if is_newer {
                    merge_sighting(pending_one, sighting)
                } else {
                    merge_sighting(sighting, pending_one)
                };
                vacant.insert((key, merged));
            }
            Err(absent) => {
                absent
                    .into_table()
                    .insert_unique(key, (key, sighting), |(k, _)| *k);
            }
        }
    }

    /// Notes that `sighting` (with `fingerprint`) is being written, unless
    /// the stats writer wrote the row with newer observations (a fence).
    fn remember(&mut self, key: u64, fingerprint: u64, sighting: &DeviceSighting) {
        let seen_at = sighting.seen_at;
        if let Some(known) = self.written.find_mut(key, |w| w.key == key) {
            let under_fence = known.fingerprint == FENCED
                && oldest_observation(sighting) <= ObservedAt::stats_event(known.seen_at);
            if !under_fence {
                known.fingerprint = fingerprint;
                known.seen_at = seen_at;
            }
        } else if self.written.len() < REMEMBERED_PER_SHARD {
            self.written.insert_unique(
                key,
                Written {
                    key,
                    fingerprint,
                    seen_at,
                },
                |w| w.key,
            );
        }
    }
}

/// Pending device-registry writes, sharded so concurrent requests rarely
/// share a lock, and the devices recently written, so that a sighting that
/// changes nothing is dropped instead of queued.
pub struct RegistryWriter {
    store: Arc<dyn DeviceStore>,
    shards: Vec<Mutex<Shard>>,
    keys: RandomState,
    fingerprints: RandomState,
    metrics: Arc<crate::metrics::Metrics>,
}

/// Folds a sighting that arrived later into an earlier one so that writing
/// the result equals writing both in order: per field, the newest
/// observation (see `DeviceSighting::merged_with`), as the registry upsert
/// keeps it.
fn merge_sighting(earlier: DeviceSighting, later: DeviceSighting) -> DeviceSighting {
    earlier.merged_with(later)
}

impl RegistryWriter {
    pub fn new(store: Arc<dyn DeviceStore>, metrics: Arc<crate::metrics::Metrics>) -> Self {
        RegistryWriter {
            store,
            shards: (0..REGISTRY_SHARDS)
                .map(|_| Mutex::new(Shard::default()))
                .collect(),
            keys: RandomState::new(),
            fingerprints: RandomState::new(),
            metrics,
        }
    }

    fn key(&self, app_id: &str, device_id: &str) -> u64 {
        self.keys.hash_one((app_id, device_id))
    }

    /// Every field but the times: sightings with equal fingerprints write the
    /// same row values. (A separate hasher from the key's, so a key collision
    /// alone cannot make two devices look alike.) Never [`FENCED`].
    fn fingerprint(&self, sighting: &DeviceSighting) -> u64 {
        self.fingerprint_of(&SightingFields::of(sighting))
    }

    /// [`RegistryWriter::fingerprint`] of borrowed fields: the same hash, as
    /// `&str` hashes as the `String` it borrows.
    fn fingerprint_of(&self, fields: &SightingFields<'_>) -> u64 {
        let SightingFields {
            app_id,
            device_id,
            platform,
            plugin_version,
            version_os,
            version_build,
            version_code,
            version_name,
            custom_id,
            is_prod,
            is_emulator,
            default_channel,
            key_id,
            install_source,
            last_offered_version,
            last_update_outcome,
        } = fields;
        self.fingerprints.hash_one((
            (app_id, device_id, platform, plugin_version, version_os),
            (version_build, version_code, version_name, custom_id),
            (is_prod, is_emulator, default_channel, key_id),
            (install_source, last_offered_version, last_update_outcome),
        )) | 1
    }

    fn shard(&self, key: u64) -> MutexGuard<'_, Shard> {
        // Not the low bits: the tables inside index by those.
        lock(&self.shards[((key >> 32) as usize) % REGISTRY_SHARDS])
    }

    /// Queues a sighting for the next flush, unless this node wrote the very
    /// same fields for the device within [`rewrite_after`] (60–90 s).
    pub fn note(&self, sighting: DeviceSighting) {
        let seen_at = sighting.seen_at;
        let fields = SightingFields::of(&sighting);
        if self.is_unchanged(&fields, seen_at) {
            return;
        }
        let key = self.key(&sighting.app_id, &sighting.device_id);
        self.shard(key).fold_in(key, sighting, true);
    }

    /// [`RegistryWriter::note`] of a sighting described by borrowed fields:
    /// the owned one is only built (`build`) when it is to be written, so
    /// the many checks that change nothing allocate nothing here.
    pub fn note_with(
        &self,
        fields: &SightingFields<'_>,
        seen_at: Millis,
        build: impl FnOnce() -> DeviceSighting,
    ) {
        if self.is_unchanged(fields, seen_at) {
            return;
        }
        let sighting = build();
        let key = self.key(&sighting.app_id, &sighting.device_id);
        self.shard(key).fold_in(key, sighting, true);
    }

    /// Whether a sighting is dropped as unchanged (and counted so); notes
    /// its time either way.
    fn is_unchanged(&self, fields: &SightingFields<'_>, seen_at: Millis) -> bool {
        let key = self.key(fields.app_id, fields.device_id);
        let fingerprint = self.fingerprint_of(fields);
        let mut shard = self.shard(key);
        shard.latest = shard.latest.max(seen_at);
        let unchanged = !shard.is_pending(key, fields.app_id, fields.device_id)
            && shard.written_recently(key, fingerprint, seen_at);
        drop(shard);
        if unchanged {
            self.metrics.record_registry_unchanged_sighting();
        }
        unchanged
    }

    /// Someone else wrote these devices' rows (the stats writer): their next
    /// sightings are written whatever this node wrote before, and a sighting
    /// observed before these (pending, or noted late) is written but not
    /// taken for the row's contents.
    pub fn forget(&self, sightings: &[DeviceSighting]) {
        for sighting in sightings {
            let key = self.key(&sighting.app_id, &sighting.device_id);
            let fence = Written {
                key,
                fingerprint: FENCED,
                seen_at: sighting.seen_at,
            };
            let mut shard = self.shard(key);
            if let Some(known) = shard.written.find_mut(key, |w| w.key == key) {
                *known = fence;
            } else if shard.written.len() < REMEMBERED_PER_SHARD {
                shard.written.insert_unique(key, fence, |w| w.key);
            }
        }
    }

    /// Rows went away wholesale (an app was deleted): forget every write.
    pub fn forget_all(&self) {
        for shard in &self.shards {
            lock(shard).written.clear();
        }
    }

    pub fn pending(&self) -> usize {
        self.shards
            .iter()
            .map(|shard| lock(shard).pending.len())
            .sum()
    }

    /// Writes everything pending in one transaction. On failure the sightings
    /// are put back (under any newer ones) for the next attempt.
    pub async fn flush(&self) -> StoreResult<usize> {
        let mut batch = Vec::new();
        for shard in &self.shards {
            let mut shard = lock(shard);
            let horizon = shard.latest - UNCHANGED_REWRITE_AFTER_MS - UNCHANGED_REWRITE_SPREAD_MS;
            shard.written.retain(|w| w.seen_at > horizon);
            let drained: Vec<(u64, DeviceSighting)> = shard.pending.drain().collect();
            // Remembered as written now, not after the commit: a sighting
            // noted while this batch is being written must not be dropped
            // as unchanged against an older write.
            for (key, sighting) in drained {
                shard.remember(key, self.fingerprint(&sighting), &sighting);
                batch.push(sighting);
            }
        }
        if batch.is_empty() {
            return Ok(0);
        }
        match self.store.upsert_devices(&batch).await {
            Ok(()) => Ok(batch.len()),
            Err(err) => {
                for older in batch {
                    let key = self.key(&older.app_id, &older.device_id);
                    self.shard(key).fold_in(key, older, false);
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
                    writer
                        .metrics
                        .record_database_error(crate::metrics::db_operation::REGISTRY_FLUSH);
                    tracing::warn!(error = %err, "device registry flush failed; will retry");
                }
            }
            if let Err(err) = writer.flush().await {
                writer
                    .metrics
                    .record_database_error(crate::metrics::db_operation::REGISTRY_FLUSH);
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

/// What the stats writer works with besides its queue.
pub struct StatsWriterDeps {
    pub store: Arc<dyn AnalyticsStore>,
    /// What "now" is for active devices (events older than the retention
    /// no longer count as active).
    pub clock: Arc<dyn updraft_core::model::Clock>,
    pub releases: Arc<ReleaseCache>,
    /// Told which device rows each commit wrote.
    pub registry: Arc<RegistryWriter>,
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Unknown bundle names an app's rollups take per day (0 = no cap).
    pub max_bundles_per_day: u32,
}

/// Most events written in one transaction (a job is never split).
const MAX_EVENTS_PER_COMMIT: usize = 20_000;

type DeviceKey = (String, String);

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
        deps: StatsWriterDeps,
        capacity: usize,
        event_retention_days: u32,
    ) -> (StatsWriter, JoinHandle<()>) {
        let StatsWriterDeps {
            store,
            clock,
            releases,
            registry,
            metrics,
            max_bundles_per_day,
        } = deps;
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
                        active_devices_since: clock.now() - retention_ms,
                        max_bundles_per_day,
                    })
                    .await;
                match &result {
                    Err(err) => {
                        tracing::error!(error = %err, events = events.len(), "stats commit failed")
                    }
                    Ok(outcome) => {
                        metrics.record_stats_commit();
                        metrics.record_rollup_folded_events(outcome.folded_events);
                    }
                }
                registry.forget(&sightings);
                for job in batch {
                    let answer = match &result {
                        Ok(_) => Ok(()),
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
        // Each event's place in the server's time, then one sighting per
        // device from here on: a plugin's batch is one device, so the queue
        // holds one instead of one per event.
        let mut sightings = sightings;
        updraft_core::stats::anchor_observations(&events, &mut sightings);
        let sightings = coalesce_sightings(sightings);
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
    use updraft_core::model::Observed;

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
            observed: Observed::all(ObservedAt::update_check(seen_at)),
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

    async fn registry() -> (
        RegistryWriter,
        Arc<updraft_store::SqliteStore>,
        tempfile::TempDir,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(updraft_store::SqliteStore::open(dir.path()).await.unwrap());
        let writer = RegistryWriter::new(
            Arc::clone(&store) as Arc<dyn DeviceStore>,
            Arc::new(crate::metrics::Metrics::new()),
        );
        (writer, store, dir)
    }

    /// The registry row of the test device.
    async fn stored(store: &updraft_store::SqliteStore) -> updraft_core::model::Device {
        use updraft_store::DeviceStore;
        let s = sighting(0);
        let device = store.get_device(&s.app_id, &s.device_id).await.unwrap();
        device.expect("the device row exists")
    }

    #[tokio::test]
    async fn an_unchanged_sighting_is_written_again_only_after_a_minute() {
        let (writer, store, _dir) = registry().await;
        let start = 1_000_000;
        writer.note(sighting(start));
        assert_eq!(writer.flush().await.unwrap(), 1);
        writer.note(sighting(start + 5_000));
        writer.note(sighting(start + UNCHANGED_REWRITE_AFTER_MS - 1));
        assert_eq!(writer.pending(), 0, "unchanged within the minute: dropped");
        assert_eq!(writer.flush().await.unwrap(), 0);
        assert_eq!(stored(&store).await.last_seen, start);

        let due = start + UNCHANGED_REWRITE_AFTER_MS + UNCHANGED_REWRITE_SPREAD_MS;
        writer.note(sighting(due));
        assert_eq!(
            writer.flush().await.unwrap(),
            1,
            "due at the latest: written"
        );
        assert_eq!(stored(&store).await.last_seen, due);
    }

    #[tokio::test]
    async fn a_borrowed_sighting_is_only_built_when_it_is_written() {
        let (writer, _store, _dir) = registry().await;
        let start = 1_000_000;
        writer.note(sighting(start));
        writer.flush().await.unwrap();
        let same = sighting(start + 5_000);
        let fields = SightingFields::of(&same);
        writer.note_with(&fields, same.seen_at, || {
            panic!("an unchanged sighting must not be built")
        });
        assert_eq!(writer.pending(), 0);
        // Each field but the times changes the fingerprint.
        let mut changed = same.clone();
        changed.version_name = Some("1.0.1".into());
        let mut built = false;
        writer.note_with(&SightingFields::of(&changed), changed.seen_at, || {
            built = true;
            changed.clone()
        });
        assert!(built);
        assert_eq!(writer.pending(), 1);
        let fingerprint = writer.fingerprint(&same);
        assert_eq!(writer.fingerprint_of(&fields), fingerprint);
        let mut other = same.clone();
        for edit in [
            (|s: &mut DeviceSighting| s.platform = "ios".into()) as fn(&mut DeviceSighting),
            |s| s.plugin_version = None,
            |s| s.custom_id = Some(String::new()),
            |s| s.is_prod = !s.is_prod,
            |s| s.last_update_outcome = Some("no_new_version_available".into()),
        ] {
            edit(&mut other);
            assert_ne!(writer.fingerprint(&other), fingerprint);
            other = same.clone();
        }
    }

    #[tokio::test]
    async fn rewrites_of_devices_seen_together_are_spread_over_the_window() {
        let (writer, _store, _dir) = registry().await;
        let devices: Vec<DeviceSighting> = (0..200)
            .map(|n| {
                let mut s = sighting(0);
                s.device_id = format!("00000000-0000-4000-8000-{n:012}");
                s
            })
            .collect();
        for device in &devices {
            writer.note(device.clone());
        }
        writer.flush().await.unwrap();
        // Halfway through the spread about half of them are due.
        for device in &devices {
            let mut again = device.clone();
            again.seen_at = UNCHANGED_REWRITE_AFTER_MS + UNCHANGED_REWRITE_SPREAD_MS / 2;
            writer.note(again);
        }
        let due = writer.pending();
        assert!((60..=140).contains(&due), "{due} of 200 due halfway");
    }

    #[tokio::test]
    async fn any_changed_field_is_written_at_the_next_flush() {
        let (writer, store, _dir) = registry().await;
        writer.note(sighting(10));
        writer.flush().await.unwrap();
        let mut changed = sighting(20);
        changed.default_channel = None;
        writer.note(changed.clone());
        assert_eq!(writer.flush().await.unwrap(), 1);
        assert_eq!(stored(&store).await.default_channel, None);
        // And back: the fields last written are what counts, not the first.
        writer.note(sighting(30));
        assert_eq!(writer.flush().await.unwrap(), 1);
    }

    #[tokio::test]
    async fn a_sighting_equal_to_the_last_write_still_lands_over_a_pending_change() {
        let (writer, store, _dir) = registry().await;
        writer.note(sighting(10));
        writer.flush().await.unwrap();
        let mut changed = sighting(20);
        changed.version_name = Some("2.0.0".into());
        writer.note(changed);
        // Same fields as the write at 10, but newer than the pending change:
        // dropping it would leave 2.0.0 in the row.
        writer.note(sighting(30));
        assert_eq!(writer.flush().await.unwrap(), 1);
        let row = stored(&store).await;
        assert_eq!(row.version_name.as_deref(), Some("1.0.0"));
        assert_eq!(row.last_seen, 30);
    }

    #[tokio::test]
    async fn forgotten_devices_are_written_again() {
        let (writer, _store, _dir) = registry().await;
        let mut other = sighting(10);
        other.device_id = "00000000-0000-4000-8000-000000000002".into();
        writer.note(sighting(10));
        writer.note(other.clone());
        writer.flush().await.unwrap();
        writer.forget(std::slice::from_ref(&other));
        writer.note(sighting(20));
        other.seen_at = 20;
        writer.note(other);
        assert_eq!(writer.pending(), 1, "only the forgotten device");
        writer.flush().await.unwrap();
        writer.forget_all();
        writer.note(sighting(30));
        assert_eq!(writer.pending(), 1);
    }

    #[test]
    fn merge_keeps_per_field_the_newest_observation() {
        // Arrived first, observed last: says nothing of the running bundle.
        let mut newer = sighting(20);
        newer.version_name = None;
        newer.last_offered_version = Some("1.2.0".into());
        newer.last_update_outcome = Some("no_new_version_available".into());
        newer.default_channel = None;
        // Arrived last (a failed flush put back, a slow request), observed first.
        let mut older = sighting(10);
        older.version_name = Some("1.1.0".into());
        older.last_offered_version = Some("1.1.0".into());
        older.default_channel = Some("beta".into());
        older.is_prod = false;
        let merged = merge_sighting(newer, older);
        assert_eq!(merged.version_name.as_deref(), Some("1.1.0"));
        assert_eq!(merged.last_offered_version.as_deref(), Some("1.2.0"));
        assert_eq!(
            merged.last_update_outcome.as_deref(),
            Some("no_new_version_available")
        );
        assert_eq!(merged.default_channel, None);
        assert!(merged.is_prod);
        assert_eq!(merged.seen_at, 20);
    }

    /// A stats writer on `store`, telling `registry` what it wrote.
    fn stats_writer(
        store: &Arc<updraft_store::SqliteStore>,
        registry: &Arc<RegistryWriter>,
    ) -> StatsWriter {
        let store = Arc::clone(store) as Arc<dyn updraft_store::Store>;
        let (writer, _task) = StatsWriter::spawn(
            StatsWriterDeps {
                releases: Arc::new(ReleaseCache::new(
                    Arc::clone(&store) as Arc<dyn updraft_store::ReleaseStore>
                )),
                store,
                clock: Arc::new(updraft_core::model::SystemClock),
                registry: Arc::clone(registry),
                metrics: Arc::new(crate::metrics::Metrics::new()),
                max_bundles_per_day: crate::limiter::AbuseLimits::default()
                    .rollup_max_distinct_per_day,
            },
            16,
            30,
        );
        writer
    }

    /// The `set` stat of the test device for `version`, arriving at `at`.
    fn set_stat(version: &str, at: Millis) -> (StatsEvent, DeviceSighting) {
        let mut seen = sighting(at);
        seen.version_name = Some(version.into());
        seen.last_offered_version = None;
        seen.last_update_outcome = None;
        let event = StatsEvent {
            app_id: seen.app_id.clone(),
            device_id: seen.device_id.clone(),
            action: "set".into(),
            version_name: version.into(),
            old_version_name: Some("1.0.0".into()),
            platform: seen.platform.clone(),
            plugin_version: seen.plugin_version.clone(),
            version_build: seen.version_build.clone(),
            is_prod: true,
            is_emulator: false,
            metadata: None,
            timestamp: at,
            received_at: at,
        };
        (event, seen)
    }

    #[tokio::test]
    async fn an_update_check_noted_after_the_set_stat_does_not_undo_it() {
        for (check_at, set_at) in [(1_000, 1_400), (5_000, 5_000)] {
            let (writer, store, _dir) = registry().await;
            let writer = Arc::new(writer);
            let stats = stats_writer(&store, &writer);
            // The check read the clock at `check_at` (1.0.0, offered 1.1.0);
            // the set stat for 1.1.0 is committed before the check is noted.
            let (event, seen) = set_stat("1.1.0", set_at);
            stats.submit(vec![event], vec![seen]).await.unwrap();
            writer.note(sighting(check_at));
            assert_eq!(writer.flush().await.unwrap(), 1);
            let row = stored(&store).await;
            assert_eq!(row.version_name.as_deref(), Some("1.1.0"), "{check_at}");
            assert_eq!(row.last_offered_version.as_deref(), Some("1.1.0"));
            assert_eq!(row.last_update_outcome.as_deref(), Some("get"));
            assert_eq!(row.last_seen, set_at);
        }
    }

    #[tokio::test]
    async fn a_check_written_under_a_stat_is_not_taken_for_the_row() {
        let (writer, store, _dir) = registry().await;
        let writer = Arc::new(writer);
        let stats = stats_writer(&store, &writer);
        writer.note(sighting(1_000));
        let (event, seen) = set_stat("1.1.0", 1_400);
        stats.submit(vec![event], vec![seen]).await.unwrap();
        writer.flush().await.unwrap();
        assert_eq!(stored(&store).await.version_name.as_deref(), Some("1.1.0"));
        // The device rolls back to 1.0.0 and checks again with the very
        // fields of the check at 1_000: the row does not hold them, so the
        // check is written, not dropped as unchanged.
        writer.note(sighting(2_000));
        assert_eq!(writer.flush().await.unwrap(), 1);
        assert_eq!(stored(&store).await.version_name.as_deref(), Some("1.0.0"));
    }

    #[test]
    fn merge_never_moves_last_seen_backwards() {
        let merged = merge_sighting(sighting(50), sighting(40));
        assert_eq!(merged.seen_at, 50);
    }
}
