//! Stats ingest with its rollups, the analytics reads, export and retention.
//!
//! Ingest is built for throughput inside one group commit: events go in with
//! multi-row INSERTs, the rollups are aggregated in memory first (one UPSERT
//! per key per commit, not per event), and the per-device day rows are read
//! and written in chunks. Chunks come in a few fixed sizes so the database
//! prepares each statement shape once and reuses it.

use super::devices::apply_sightings;
use super::release_safety::minute_of;
use super::rows::{self, event_columns};
use super::DbConnection;
use super::EngineStore;
use crate::{
    AnalyticsStore, EventExportQuery, IngestOutcome, StatsIngest, StoreError, StoreResult,
    StoredEvent,
};
use async_trait::async_trait;
use sqlx::Row;
use std::collections::{BTreeSet, HashMap, HashSet};
use updraft_core::analytics::{
    day_of, event_bundle, is_failure, rollup_action, running_bundle, ActionCount, DeviceCount,
    DownloadCount, Rollups, INSTALL_ACTION, MILLIS_PER_DAY, OTHER_BUNDLE,
};
use updraft_core::model::{Millis, StatsEvent};

/// Statement sizes, largest first: a batch is cut into as many of the
/// largest as fit, then the rest into the smaller ones. The largest keeps
/// the widest statement (18 columns) under each engine's parameter limit
/// (`super::MAX_PARAMETERS`: 32,766 for SQLite, 65,535 for PostgreSQL).
const CHUNK_SIZES: [usize; 6] = [1024, 256, 64, 16, 4, 1];
/// Checked when the engine's module compiles: the device upsert's 18 columns.
const _: () = assert!(CHUNK_SIZES[0] * 18 <= super::MAX_PARAMETERS);

/// Cuts `items` into chunks of the sizes in [`CHUNK_SIZES`], largest first
/// (so equal sizes are neighbours and can share one statement text).
pub(super) fn chunks<T>(mut items: &[T]) -> Vec<&[T]> {
    let mut out = Vec::new();
    for size in CHUNK_SIZES {
        while items.len() >= size {
            let (head, rest) = items.split_at(size);
            out.push(head);
            items = rest;
        }
    }
    out
}

/// `(p1, p2, p3), (p4, p5, p6)` for `rows` rows of `columns` parameters,
/// each `p` in the engine's marker style (`super::push_placeholder`).
pub(super) fn placeholders(rows: usize, columns: usize) -> String {
    let mut all = String::with_capacity(rows * (columns * 7 + 4));
    let mut number = 0;
    for row in 0..rows {
        all.push_str(if row == 0 { "(" } else { ", (" });
        for column in 0..columns {
            if column > 0 {
                all.push_str(", ");
            }
            number += 1;
            super::push_placeholder(&mut all, number);
        }
        all.push(')');
    }
    all
}

/// One statement text per chunk size, built when the size changes (chunks
/// come largest first, so once per size per commit).
struct StatementText<F: Fn(usize) -> String> {
    build: F,
    rows: usize,
    text: String,
}

impl<F: Fn(usize) -> String> StatementText<F> {
    fn new(build: F) -> Self {
        StatementText {
            build,
            rows: 0,
            text: String::new(),
        }
    }

    fn for_rows(&mut self, rows: usize) -> &str {
        if rows != self.rows {
            self.rows = rows;
            self.text = (self.build)(rows);
        }
        &self.text
    }
}

/// A UTC day index → `YYYY-MM-DD`, formatted once per commit.
#[derive(Default)]
struct DayNames(HashMap<i64, String>);

impl DayNames {
    fn get(&mut self, day_index: i64) -> &str {
        self.0
            .entry(day_index)
            .or_insert_with(|| day_of(day_index * MILLIS_PER_DAY))
    }
}

fn day_index(millis: Millis) -> i64 {
    millis.div_euclid(MILLIS_PER_DAY)
}

/// What one device did on one day that decides its adoption bucket: the
/// latest event reporting a running bundle (`at` = -1 when none did).
/// Ordered by (at, bundle, channel) so the outcome is the same whatever order
/// commits come in.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct DeviceDay {
    at: Millis,
    bundle: String,
    channel: String,
}

/// The same, borrowed from this commit's events (no allocation per event).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Candidate<'a> {
    at: Millis,
    bundle: &'a str,
    channel: &'a str,
}

impl Candidate<'_> {
    fn beats(&self, stored: &DeviceDay) -> bool {
        (self.at, self.bundle, self.channel)
            > (stored.at, stored.bundle.as_str(), stored.channel.as_str())
    }
}

async fn insert_events(
    conn: &mut DbConnection,
    events: &[StatsEvent],
    channels: &[Option<String>],
    metadata: &[Option<String>],
) -> StoreResult<()> {
    const COLUMNS: usize = 14;
    let indices: Vec<usize> = (0..events.len()).collect();
    let mut sql = StatementText::new(|rows| {
        format!(
            concat!(
                "INSERT INTO stats_events (",
                event_columns!(),
                ", channel) VALUES {}"
            ),
            placeholders(rows, COLUMNS)
        )
    });
    for chunk in chunks(&indices) {
        let mut query = sqlx::query(sql.for_rows(chunk.len()));
        for &i in chunk {
            let event = &events[i];
            query = query
                .bind(&event.app_id)
                .bind(&event.device_id)
                .bind(&event.action)
                .bind(&event.version_name)
                .bind(&event.old_version_name)
                .bind(&event.platform)
                .bind(&event.plugin_version)
                .bind(&event.version_build)
                .bind(event.is_prod)
                .bind(event.is_emulator)
                .bind(&metadata[i])
                .bind(event.timestamp)
                .bind(event.received_at)
                .bind(channels.get(i).and_then(|c| c.as_deref()));
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

type ActionKey<'a> = (&'a str, i64, &'a str, &'a str, &'a str);

async fn upsert_action_counts(
    conn: &mut DbConnection,
    counts: &HashMap<ActionKey<'_>, i64>,
    days: &mut DayNames,
) -> StoreResult<()> {
    let rows: Vec<(&ActionKey, &i64)> = counts.iter().collect();
    let mut sql = StatementText::new(|rows| {
        format!(
            "INSERT INTO stats_daily (app_id, day, channel, bundle, action, events) VALUES {} \
             ON CONFLICT (app_id, day, channel, bundle, action) \
             DO UPDATE SET events = stats_daily.events + excluded.events",
            placeholders(rows, 6)
        )
    });
    for chunk in chunks(&rows) {
        let mut query = sqlx::query(sql.for_rows(chunk.len()));
        for ((app_id, day, channel, bundle, action), n) in chunk {
            query = query
                .bind(*app_id)
                .bind(days.get(*day).to_string())
                .bind(*channel)
                .bind(*bundle)
                .bind(*action)
                .bind(**n);
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

/// (app, channel, bundle, minute of arrival).
type HealthKey<'a> = (&'a str, &'a str, &'a str, i64);

/// Installs and failures of this commit, per key.
#[derive(Clone, Copy, Debug, Default)]
struct HealthCount {
    installs: i64,
    failures: i64,
}

async fn upsert_health(
    conn: &mut DbConnection,
    counts: &HashMap<HealthKey<'_>, HealthCount>,
) -> StoreResult<()> {
    let rows: Vec<(&HealthKey, &HealthCount)> = counts.iter().collect();
    let mut sql = StatementText::new(|rows| {
        format!(
            "INSERT INTO rollout_health (app_id, channel, bundle, minute, installs, failures) VALUES {} \
             ON CONFLICT (app_id, channel, bundle, minute) DO UPDATE SET \
             installs = rollout_health.installs + excluded.installs, \
             failures = rollout_health.failures + excluded.failures",
            placeholders(rows, 6)
        )
    });
    for chunk in chunks(&rows) {
        let mut query = sqlx::query(sql.for_rows(chunk.len()));
        for ((app_id, channel, bundle, minute), count) in chunk {
            query = query
                .bind(*app_id)
                .bind(*channel)
                .bind(*bundle)
                .bind(*minute)
                .bind(count.installs)
                .bind(count.failures);
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

type DeviceDayKey<'a> = (i64, &'a str, &'a str);

/// Updates `device_days` with this commit's candidates and `daily_devices`
/// with the resulting moves (+1 for a device new that day, -1/+1 when its
/// bucket changes).
async fn update_device_days<'a>(
    conn: &mut DbConnection,
    candidates: HashMap<DeviceDayKey<'a>, Candidate<'a>>,
    days: &mut DayNames,
) -> StoreResult<()> {
    let keys: Vec<DeviceDayKey> = candidates.keys().copied().collect();
    let mut stored: HashMap<DeviceDayKey, DeviceDay> = HashMap::with_capacity(keys.len());
    let mut select_sql = StatementText::new(|rows| {
        format!(
            "SELECT day, app_id, device_id, channel, bundle, bundle_at FROM device_days \
             WHERE (day, app_id, device_id) IN (VALUES {})",
            placeholders(rows, 3)
        )
    });
    for chunk in chunks(&keys) {
        let mut query = sqlx::query(select_sql.for_rows(chunk.len()));
        for (day, app_id, device_id) in chunk {
            query = query
                .bind(days.get(*day).to_string())
                .bind(*app_id)
                .bind(*device_id);
        }
        let found = query.fetch_all(&mut *conn).await?;
        // Map the stored rows back to this commit's borrowed keys.
        let by_text: HashMap<(String, &str, &str), DeviceDayKey> = chunk
            .iter()
            .map(|key| ((days.get(key.0).to_string(), key.1, key.2), *key))
            .collect();
        for row in found {
            let day: String = row.try_get("day")?;
            let app_id: String = row.try_get("app_id")?;
            let device_id: String = row.try_get("device_id")?;
            if let Some(key) = by_text.get(&(day, app_id.as_str(), device_id.as_str())) {
                stored.insert(
                    *key,
                    DeviceDay {
                        at: row.try_get("bundle_at")?,
                        bundle: row.try_get("bundle")?,
                        channel: row.try_get("channel")?,
                    },
                );
            }
        }
    }

    let mut deltas: HashMap<(&str, i64, String, String), i64> = HashMap::new();
    let mut writes: Vec<(DeviceDayKey, Candidate)> = Vec::new();
    for (key, candidate) in candidates {
        let (day, app_id, _) = key;
        let new_bucket = || {
            (
                app_id,
                day,
                candidate.channel.to_string(),
                candidate.bundle.to_string(),
            )
        };
        match stored.remove(&key) {
            None => {
                *deltas.entry(new_bucket()).or_default() += 1;
                writes.push((key, candidate));
            }
            Some(old) if candidate.beats(&old) => {
                if (old.channel.as_str(), old.bundle.as_str())
                    != (candidate.channel, candidate.bundle)
                {
                    *deltas
                        .entry((app_id, day, old.channel, old.bundle))
                        .or_default() -= 1;
                    *deltas.entry(new_bucket()).or_default() += 1;
                }
                writes.push((key, candidate));
            }
            Some(_) => {}
        }
    }

    let mut write_sql = StatementText::new(|rows| {
        format!(
            "INSERT INTO device_days (day, app_id, device_id, channel, bundle, bundle_at) VALUES {} \
             ON CONFLICT (day, app_id, device_id) DO UPDATE SET \
             channel = excluded.channel, bundle = excluded.bundle, bundle_at = excluded.bundle_at",
            placeholders(rows, 6)
        )
    });
    for chunk in chunks(&writes) {
        let mut query = sqlx::query(write_sql.for_rows(chunk.len()));
        for ((day, app_id, device_id), row) in chunk {
            query = query
                .bind(days.get(*day).to_string())
                .bind(*app_id)
                .bind(*device_id)
                .bind(row.channel)
                .bind(row.bundle)
                .bind(row.at);
        }
        query.execute(&mut *conn).await?;
    }

    let deltas: Vec<_> = deltas.into_iter().filter(|(_, n)| *n != 0).collect();
    let mut delta_sql = StatementText::new(|rows| {
        format!(
            "INSERT INTO daily_devices (app_id, day, channel, bundle, devices) VALUES {} \
             ON CONFLICT (app_id, day, channel, bundle) \
             DO UPDATE SET devices = daily_devices.devices + excluded.devices",
            placeholders(rows, 5)
        )
    });
    for chunk in chunks(&deltas) {
        let mut query = sqlx::query(delta_sql.for_rows(chunk.len()));
        for ((app_id, day, channel, bundle), n) in chunk {
            query = query
                .bind(*app_id)
                .bind(days.get(*day).to_string())
                .bind(channel)
                .bind(bundle)
                .bind(*n);
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

/// `SELECT <column> … WHERE app_id = ? AND <day filter> AND <column> IN (VALUES (?), …)`.
fn names_in(select: &str, with_day: bool, rows: usize) -> String {
    let mut sql = String::from(select);
    sql.push_str(" WHERE app_id = ");
    super::push_placeholder(&mut sql, 1);
    let mut next = 2;
    if with_day {
        sql.push_str(" AND day = ");
        super::push_placeholder(&mut sql, 2);
        next = 3;
    }
    sql.push_str(" AND ");
    sql.push_str(if with_day { "bundle" } else { "name" });
    sql.push_str(" IN (VALUES ");
    for row in 0..rows {
        sql.push_str(if row == 0 { "(" } else { ", (" });
        super::push_placeholder(&mut sql, next + row);
        sql.push(')');
    }
    sql.push(')');
    sql
}

/// The bundle names of this commit that the rollups fold into
/// [`OTHER_BUNDLE`], as (app, day, name). A name is kept when the app has
/// (or had) a bundle of that name, when the day's rollups already hold it,
/// or while the day holds fewer than `cap` distinct names; the rest fold.
/// So whatever devices invent, an app's rollups grow by at most `cap` names
/// a day (a little more when several nodes admit the last free names at
/// the same moment). `cap == 0` keeps every name.
async fn folded_bundles<'e>(
    conn: &mut DbConnection,
    events: &'e [StatsEvent],
    cap: u32,
    days: &mut DayNames,
) -> StoreResult<HashSet<(&'e str, i64, &'e str)>> {
    let mut folded = HashSet::new();
    if cap == 0 {
        return Ok(folded);
    }
    let mut names: HashMap<(&str, i64), BTreeSet<&str>> = HashMap::new();
    for event in events {
        let bundle = event_bundle(&event.version_name);
        if !bundle.is_empty() && bundle != OTHER_BUNDLE {
            names
                .entry((event.app_id.as_str(), day_index(event.timestamp)))
                .or_default()
                .insert(bundle);
        }
    }
    for ((app_id, day), candidates) in names {
        let day_name = days.get(day).to_string();
        let candidates: Vec<&str> = candidates.into_iter().collect();
        let mut known: HashSet<String> = HashSet::new();
        for chunk in chunks(&candidates) {
            let sql = names_in("SELECT DISTINCT bundle FROM stats_daily", true, chunk.len());
            let mut query = sqlx::query_scalar::<_, String>(&sql)
                .bind(app_id)
                .bind(&day_name);
            for name in chunk {
                query = query.bind(*name);
            }
            known.extend(query.fetch_all(&mut *conn).await?);
            let sql = names_in("SELECT name FROM bundles", false, chunk.len());
            let mut query = sqlx::query_scalar::<_, String>(&sql).bind(app_id);
            for name in chunk {
                query = query.bind(*name);
            }
            known.extend(query.fetch_all(&mut *conn).await?);
        }
        let new: Vec<&str> = candidates
            .into_iter()
            .filter(|name| !known.contains(*name))
            .collect();
        if new.is_empty() {
            continue;
        }
        let held: i64 = sqlx::query_scalar(
            "SELECT COUNT(DISTINCT bundle) FROM stats_daily WHERE app_id = $1 AND day = $2",
        )
        .bind(app_id)
        .bind(&day_name)
        .fetch_one(&mut *conn)
        .await?;
        let room = usize::try_from((i64::from(cap) - held).max(0)).unwrap_or(0);
        for name in new.into_iter().skip(room) {
            folded.insert((app_id, day, name));
        }
    }
    Ok(folded)
}

/// Everything one group commit writes, on the caller's transaction./// Everything one group commit writes, on the caller's transaction.
pub(super) async fn ingest(
    conn: &mut DbConnection,
    batch: StatsIngest<'_>,
) -> StoreResult<IngestOutcome> {
    let events = batch.events;
    let metadata = events
        .iter()
        .map(|event| {
            event
                .metadata
                .as_ref()
                .map(serde_json::to_string)
                .transpose()
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| StoreError::Backend(format!("cannot encode event metadata: {e}")))?;
    let channel_of = |i: usize| -> &str {
        batch
            .channels
            .get(i)
            .and_then(|c| c.as_deref())
            .unwrap_or("")
    };

    let mut days = DayNames::default();
    let folded = folded_bundles(conn, events, batch.max_bundles_per_day, &mut days).await?;
    let mut outcome = IngestOutcome::default();
    let mut action_counts: HashMap<ActionKey, i64> = HashMap::new();
    let mut health: HashMap<HealthKey, HealthCount> = HashMap::new();
    let mut device_days: HashMap<DeviceDayKey, Candidate> = HashMap::new();
    for (i, event) in events.iter().enumerate() {
        let day = day_index(event.timestamp);
        let channel = channel_of(i);
        let mut bundle = event_bundle(&event.version_name);
        if !folded.is_empty() && folded.contains(&(event.app_id.as_str(), day, bundle)) {
            bundle = OTHER_BUNDLE;
            outcome.folded_events += 1;
        }
        let action = rollup_action(&event.action);
        *action_counts
            .entry((event.app_id.as_str(), day, channel, bundle, action))
            .or_default() += 1;
        // Rollout health counts by arrival: the control loop judges what
        // reached the server in its window, whatever the device clocks say.
        let install = action == INSTALL_ACTION;
        if install || is_failure(action) {
            let count = health
                .entry((
                    event.app_id.as_str(),
                    channel,
                    bundle,
                    minute_of(event.received_at),
                ))
                .or_default();
            if install {
                count.installs += 1;
            } else {
                count.failures += 1;
            }
        }
        if event.timestamp < batch.active_devices_since {
            continue;
        }
        // The running bundle is the whole version_name, so the event's bundle.
        let running = running_bundle(&event.action, &event.version_name).map(|_| bundle);
        let candidate = Candidate {
            at: if running.is_some() {
                event.timestamp
            } else {
                -1
            },
            bundle: running.unwrap_or(""),
            channel,
        };
        device_days
            .entry((day, event.app_id.as_str(), event.device_id.as_str()))
            .and_modify(|best| *best = (*best).max(candidate))
            .or_insert(candidate);
    }

    insert_events(conn, events, batch.channels, &metadata).await?;
    upsert_action_counts(conn, &action_counts, &mut days).await?;
    upsert_health(conn, &health).await?;
    update_device_days(conn, device_days, &mut days).await?;
    apply_sightings(conn, batch.sightings).await?;
    Ok(outcome)
}

#[async_trait]
impl AnalyticsStore for EngineStore {
    async fn ingest_stats(&self, batch: StatsIngest<'_>) -> StoreResult<IngestOutcome> {
        if batch.events.is_empty() && batch.sightings.is_empty() {
            return Ok(IngestOutcome::default());
        }
        let mut tx = self.begin_write().await?;
        let outcome = ingest(&mut tx, batch).await?;
        tx.commit().await?;
        Ok(outcome)
    }

    async fn stats_rollups(
        &self,
        app_id: &str,
        from_day: &str,
        to_day: &str,
    ) -> StoreResult<Rollups> {
        let actions = sqlx::query(
            "SELECT day, channel, bundle, action, events FROM stats_daily \
             WHERE app_id = $1 AND day BETWEEN $2 AND $3",
        )
        .bind(app_id)
        .bind(from_day)
        .bind(to_day)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|row| {
            Ok(ActionCount {
                day: row.try_get("day")?,
                channel: row.try_get("channel")?,
                bundle: row.try_get("bundle")?,
                action: row.try_get("action")?,
                events: row.try_get("events")?,
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
        let devices = sqlx::query(
            "SELECT day, channel, bundle, devices FROM daily_devices \
             WHERE app_id = $1 AND day BETWEEN $2 AND $3 AND devices <> 0",
        )
        .bind(app_id)
        .bind(from_day)
        .bind(to_day)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|row| {
            Ok(DeviceCount {
                day: row.try_get("day")?,
                channel: row.try_get("channel")?,
                bundle: row.try_get("bundle")?,
                devices: row.try_get("devices")?,
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
        Ok(Rollups {
            actions,
            devices,
            downloads: self.download_counts(app_id, from_day, to_day).await?,
        })
    }

    async fn export_events(&self, query: &EventExportQuery) -> StoreResult<Vec<StoredEvent>> {
        let limit = query.limit.clamp(1, 10_000);
        // Keyset pages must walk the primary key: through the (app, device,
        // time) index SQLite would read and sort all the app's events for
        // every page (`not_indexed!` forbids it there; PostgreSQL's planner
        // walks the key by itself). For one device that index is the right path.
        let found = match &query.device_id {
            None => {
                sqlx::query(concat!(
                    "SELECT id, channel, ",
                    event_columns!(),
                    " FROM stats_events",
                    not_indexed!(),
                    " WHERE id > $2 AND app_id = $1 \
                      AND ($3 IS NULL OR timestamp >= $3) AND ($4 IS NULL OR timestamp < $4) \
                      ORDER BY id LIMIT $5"
                ))
                .bind(&query.app_id)
                .bind(query.after_id)
                .bind(query.since)
                .bind(query.until)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?
            }
            Some(device_id) => {
                sqlx::query(concat!(
                    "SELECT id, channel, ",
                    event_columns!(),
                    " FROM stats_events WHERE app_id = $1 AND device_id = $5 AND id > $2 \
                      AND ($3 IS NULL OR timestamp >= $3) AND ($4 IS NULL OR timestamp < $4) \
                      ORDER BY id LIMIT $6"
                ))
                .bind(&query.app_id)
                .bind(query.after_id)
                .bind(query.since)
                .bind(query.until)
                .bind(device_id)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?
            }
        };
        found
            .iter()
            .map(|row| {
                Ok(StoredEvent {
                    id: row.try_get("id")?,
                    channel: row.try_get("channel")?,
                    event: rows::stats_event(row)?,
                })
            })
            .collect()
    }

    async fn delete_events_received_before(
        &self,
        before: Millis,
        max_rows: i64,
    ) -> StoreResult<u64> {
        // Ids grow with arrival (one writer), so the oldest events are the
        // lowest ids: look at the first `max_rows` and delete the old ones
        // among them, a short range scan on the primary key.
        let head: Vec<(i64, Millis)> =
            sqlx::query_as("SELECT id, received_at FROM stats_events ORDER BY id LIMIT $1")
                .bind(max_rows.max(1))
                .fetch_all(&self.pool)
                .await?;
        let old: Vec<i64> = head
            .iter()
            .filter(|(_, received_at)| *received_at < before)
            .map(|(id, _)| *id)
            .collect();
        let (Some(first), Some(last)) = (old.first(), old.last()) else {
            return Ok(0);
        };
        let mut tx = self.begin_write().await?;
        let deleted =
            sqlx::query("DELETE FROM stats_events WHERE id BETWEEN $1 AND $2 AND received_at < $3")
                .bind(first)
                .bind(last)
                .bind(before)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        tx.commit().await?;
        Ok(deleted)
    }

    async fn delete_device_days_before(&self, day: &str, max_rows: i64) -> StoreResult<u64> {
        let mut tx = self.begin_write().await?;
        let deleted = sqlx::query(
            "DELETE FROM device_days WHERE (day, app_id, device_id) IN \
             (SELECT day, app_id, device_id FROM device_days WHERE day < $1 LIMIT $2)",
        )
        .bind(day)
        .bind(max_rows.max(1))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(deleted)
    }
}

impl EngineStore {
    /// Downloads served per day and bundle, from the `bundle_downloads` table
    /// the download route keeps (the migrations create it before the store opens).
    async fn download_counts(
        &self,
        app_id: &str,
        from_day: &str,
        to_day: &str,
    ) -> StoreResult<Vec<DownloadCount>> {
        // CAST: PostgreSQL sums BIGINTs as NUMERIC.
        let found = sqlx::query(
            "SELECT d.day AS day, COALESCE(b.name, '') AS bundle, \
             CAST(SUM(d.requests) AS BIGINT) AS requests, CAST(SUM(d.bytes) AS BIGINT) AS bytes \
             FROM bundle_downloads d LEFT JOIN bundles b ON b.id = d.bundle_id \
             WHERE d.app_id = $1 AND d.day BETWEEN $2 AND $3 GROUP BY d.day, b.name",
        )
        .bind(app_id)
        .bind(from_day)
        .bind(to_day)
        .fetch_all(&self.pool)
        .await?;
        found
            .iter()
            .map(|row| {
                Ok(DownloadCount {
                    day: row.try_get("day")?,
                    bundle: row.try_get("bundle")?,
                    requests: row.try_get::<Option<i64>, _>("requests")?.unwrap_or(0),
                    bytes: row.try_get::<Option<i64>, _>("bytes")?.unwrap_or(0),
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_cover_every_item_in_order_largest_first() {
        let items: Vec<usize> = (0..1_301).collect();
        let cut = chunks(&items);
        let sizes: Vec<usize> = cut.iter().map(|c| c.len()).collect();
        assert_eq!(sizes, vec![1024, 256, 16, 4, 1]);
        let rejoined: Vec<usize> = cut.concat();
        assert_eq!(rejoined, items);
        assert!(chunks::<usize>(&[]).is_empty());
    }

    #[test]
    fn a_statement_text_is_rebuilt_only_when_the_size_changes() {
        let built = std::cell::Cell::new(0);
        let mut text = StatementText::new(|rows| {
            built.set(built.get() + 1);
            placeholders(rows, 2)
        });
        let two_rows = placeholders(2, 2);
        let one_row = placeholders(1, 2);
        assert_eq!(text.for_rows(2), two_rows);
        assert_eq!(text.for_rows(2), two_rows);
        assert_eq!(text.for_rows(1), one_row);
        assert_eq!(built.get(), 2);
    }
}
