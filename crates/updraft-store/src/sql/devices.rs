//! The device registry and stats events.

use super::analytics::{chunks, placeholders};
use super::rows::{self, device_columns, event_columns};
use super::DbConnection;
use super::{clamp_limit, EngineStore};
use crate::{DeviceQuery, DeviceStore, StatsStore, StoreResult};
use async_trait::async_trait;
use std::collections::HashMap;
use updraft_core::model::{Device, DeviceSighting, ObservedAt, StatsEvent};

/// Optional text that is blank counts as absent (keeps the stored value).
fn non_blank(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

/// Columns of one registry row in [`apply_sightings`]' VALUES.
const SIGHTING_COLUMNS: usize = 22;

/// The row's observation key of a field group: `NEVER` when the sighting
/// carries none of it, so that a row inserted without the field takes it
/// from any later-written sighting, however old.
fn observed_key<T>(value: &Option<T>, at: ObservedAt) -> i64 {
    match value {
        Some(_) => at.key(),
        None => ObservedAt::NEVER.key(),
    }
}

/// Splits sightings into rounds in which no device appears twice: the k-th
/// sighting of a device goes to round k (usually there is one round).
/// PostgreSQL refuses an upsert that touches one row twice; applying the
/// rounds in order equals applying the sightings in order, because sightings
/// of different devices do not interact.
fn rounds(sightings: &[DeviceSighting]) -> Vec<Vec<&DeviceSighting>> {
    let mut seen: HashMap<(&str, &str), usize> = HashMap::with_capacity(sightings.len());
    let mut rounds: Vec<Vec<&DeviceSighting>> = Vec::new();
    for sighting in sightings {
        let round = seen
            .entry((sighting.app_id.as_str(), sighting.device_id.as_str()))
            .or_insert(0);
        if *round == rounds.len() {
            rounds.push(Vec::new());
        }
        rounds[*round].push(sighting);
        *round += 1;
    }
    rounds
}

/// `column` from the incoming row if its group (`at`) was observed no
/// earlier than the stored one's, else the stored value; `value` is what
/// the incoming row sets (e.g. a COALESCE that keeps the stored value).
macro_rules! newest {
    ($column:literal, $at:literal, $value:expr) => {
        concat!(
            $column,
            " = CASE WHEN excluded.",
            $at,
            " >= devices.",
            $at,
            " THEN ",
            $value,
            " ELSE devices.",
            $column,
            " END, "
        )
    };
    ($column:literal, $at:literal) => {
        newest!(
            $column,
            $at,
            concat!("COALESCE(excluded.", $column, ", devices.", $column, ")")
        )
    };
}

/// The later of the stored and incoming observation keys.
macro_rules! latest {
    ($at:literal) => {
        concat!(
            $at,
            " = CASE WHEN excluded.",
            $at,
            " > devices.",
            $at,
            " THEN excluded.",
            $at,
            " ELSE devices.",
            $at,
            " END, "
        )
    };
}

/// The upsert's conflict branch: each field from the sighting only if it was
/// observed no earlier than the stored one (per group, see
/// `DeviceSighting::observed`); a NULL keeps the stored value; `last_seen`
/// is the max. SQLite and PostgreSQL both read `devices.*` as the row was
/// before this UPDATE, whatever order the assignments are in.
const ON_CONFLICT: &str = concat!(
    " ON CONFLICT (app_id, device_id) DO UPDATE SET ",
    newest!(
        "platform",
        "facts_at",
        "COALESCE(NULLIF(excluded.platform, ''), devices.platform)"
    ),
    newest!("plugin_version", "facts_at"),
    newest!("version_os", "facts_at"),
    newest!("version_build", "facts_at"),
    newest!("version_code", "facts_at"),
    newest!("custom_id", "facts_at"),
    newest!("is_prod", "facts_at", "excluded.is_prod"),
    newest!("is_emulator", "facts_at", "excluded.is_emulator"),
    newest!("default_channel", "facts_at", "excluded.default_channel"),
    newest!("key_id", "facts_at"),
    newest!("install_source", "facts_at"),
    latest!("facts_at"),
    newest!("version_name", "version_name_at"),
    latest!("version_name_at"),
    newest!("last_offered_version", "last_offered_version_at"),
    latest!("last_offered_version_at"),
    newest!("last_update_outcome", "last_update_outcome_at"),
    latest!("last_update_outcome_at"),
    "last_seen = CASE WHEN excluded.last_seen > devices.last_seen \
     THEN excluded.last_seen ELSE devices.last_seen END"
);

/// Applies sightings in order on `conn` (the caller's transaction), many rows
/// per statement (see [`rounds`] for a device seen twice). Chunks come in a
/// few fixed sizes so the database prepares each statement shape once.
/// The order only decides between sightings observed at the same time:
/// otherwise each field ends as the newest observation wrote it.
pub(super) async fn apply_sightings(
    conn: &mut DbConnection,
    sightings: &[DeviceSighting],
) -> StoreResult<()> {
    let mut sql = String::new();
    let mut sql_rows = 0;
    let rounds = rounds(sightings);
    for chunk in rounds.iter().flat_map(|round| chunks(round)) {
        if chunk.len() != sql_rows {
            sql_rows = chunk.len();
            sql = format!(
                "INSERT INTO devices (app_id, device_id, platform, plugin_version, version_os, version_build, \
                 version_code, version_name, custom_id, is_prod, is_emulator, default_channel, key_id, \
                 install_source, last_offered_version, last_update_outcome, first_seen, last_seen, \
                 facts_at, version_name_at, last_offered_version_at, last_update_outcome_at) \
                 VALUES {}{ON_CONFLICT}",
                placeholders(sql_rows, SIGHTING_COLUMNS)
            );
        }
        let mut query = sqlx::query(&sql);
        for sighting in chunk {
            let observed = &sighting.observed;
            query = query
                .bind(&sighting.app_id)
                .bind(&sighting.device_id)
                .bind(&sighting.platform)
                .bind(&sighting.plugin_version)
                .bind(&sighting.version_os)
                .bind(&sighting.version_build)
                .bind(&sighting.version_code)
                .bind(&sighting.version_name)
                .bind(non_blank(&sighting.custom_id))
                .bind(sighting.is_prod)
                .bind(sighting.is_emulator)
                .bind(&sighting.default_channel)
                .bind(&sighting.key_id)
                .bind(non_blank(&sighting.install_source))
                .bind(&sighting.last_offered_version)
                .bind(&sighting.last_update_outcome)
                .bind(sighting.seen_at)
                .bind(sighting.seen_at)
                .bind(observed.facts.key())
                .bind(observed_key(&sighting.version_name, observed.version_name))
                .bind(observed_key(
                    &sighting.last_offered_version,
                    observed.last_offered_version,
                ))
                .bind(observed_key(
                    &sighting.last_update_outcome,
                    observed.last_update_outcome,
                ));
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

/// `LIKE` pattern matching `needle` anywhere, with its wildcards escaped.
fn contains_pattern(needle: &str) -> String {
    let mut pattern = String::with_capacity(needle.len() + 2);
    pattern.push('%');
    for ch in needle.to_lowercase().chars() {
        if matches!(ch, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(ch);
    }
    pattern.push('%');
    pattern
}

/// Shared WHERE clause of list_devices and count_devices ($1..$4).
macro_rules! device_filter {
    () => {
        " WHERE app_id = $1 \
          AND ($2 IS NULL OR LOWER(device_id) LIKE $2 ESCAPE '\\' \
               OR LOWER(COALESCE(custom_id, '')) LIKE $2 ESCAPE '\\') \
          AND ($3 IS NULL OR custom_id = $3) \
          AND ($4 IS NULL OR version_name = $4)"
    };
}

#[async_trait]
impl DeviceStore for EngineStore {
    async fn upsert_devices(&self, sightings: &[DeviceSighting]) -> StoreResult<()> {
        if sightings.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin_write().await?;
        apply_sightings(&mut tx, sightings).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn list_devices(&self, app_id: &str, query: &DeviceQuery) -> StoreResult<Vec<Device>> {
        sqlx::query(concat!(
            "SELECT ",
            device_columns!(),
            " FROM devices",
            device_filter!(),
            " ORDER BY last_seen DESC, device_id LIMIT $5 OFFSET $6"
        ))
        .bind(app_id)
        .bind(query.search.as_deref().map(contains_pattern))
        .bind(&query.custom_id)
        .bind(&query.version_name)
        .bind(clamp_limit(query.limit))
        .bind(query.offset.max(0))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(rows::device)
        .collect()
    }

    async fn count_devices(&self, app_id: &str, query: &DeviceQuery) -> StoreResult<i64> {
        Ok(
            sqlx::query_scalar(concat!("SELECT COUNT(*) FROM devices", device_filter!()))
                .bind(app_id)
                .bind(query.search.as_deref().map(contains_pattern))
                .bind(&query.custom_id)
                .bind(&query.version_name)
                .fetch_one(&self.pool)
                .await?,
        )
    }

    async fn get_device(&self, app_id: &str, device_id: &str) -> StoreResult<Option<Device>> {
        sqlx::query(concat!(
            "SELECT ",
            device_columns!(),
            " FROM devices WHERE app_id = $1 AND device_id = $2"
        ))
        .bind(app_id)
        .bind(device_id)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(rows::device)
        .transpose()
    }
}

#[async_trait]
impl StatsStore for EngineStore {
    async fn list_events(
        &self,
        app_id: &str,
        device_id: Option<&str>,
        limit: i64,
    ) -> StoreResult<Vec<StatsEvent>> {
        let limit = clamp_limit(limit);
        // Two statements rather than `($2 IS NULL OR ...)` so each can use its index.
        let found = match device_id {
            Some(device_id) => {
                sqlx::query(concat!(
                    "SELECT ",
                    event_columns!(),
                    " FROM stats_events WHERE app_id = $1 AND device_id = $2 \
                     ORDER BY timestamp DESC, id DESC LIMIT $3"
                ))
                .bind(app_id)
                .bind(device_id)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?
            }
            None => {
                sqlx::query(concat!(
                    "SELECT ",
                    event_columns!(),
                    " FROM stats_events WHERE app_id = $1 ORDER BY timestamp DESC, id DESC LIMIT $2"
                ))
                .bind(app_id)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?
            }
        };
        found.iter().map(rows::stats_event).collect()
    }
}
