//! Column lists and row decoding, shared by every query of a table.

use super::DbRow;
use crate::StoreError;
use serde::de::DeserializeOwned;
use serde::Serialize;
use sqlx::Row;
use std::collections::BTreeMap;
use updraft_core::model::{
    ApiKey, App, AuditEntry, AutoUpdatePolicy, Bundle, Channel, ChannelHistoryEntry, Device,
    DeviceOverride, ManifestFile, OverrideSource, Role, Rollout, RolloutDecision, ScheduleStatus,
    ScheduledRelease, StatsEvent,
};

// Macros rather than consts so `concat!` can build `&'static str` statements,
// which sqlx caches as prepared statements.
macro_rules! app_columns {
    () => {
        "app_id, name, expose_metadata, created_at"
    };
}
macro_rules! bundle_columns {
    () => {
        "id, app_id, name, checksum, encrypted_checksum, session_key, key_id, external_url, storage_path, \
         zip_sha256, size, min_update_version, link, comment, native_packages, deleted, created_at, deleted_at"
    };
}
macro_rules! manifest_columns {
    () => {
        "bundle_id, file_name, file_hash, location, size, blob_sha256"
    };
}
macro_rules! channel_columns {
    () => {
        "id, app_id, name, bundle_id, public, ios, android, electron, allow_device_self_set, allow_emulator, \
         allow_device, allow_dev, allow_prod, disable_auto_update, disable_auto_update_under_native, \
         targeting, rollout_bundle_id, rollout_percentage_bps, rollout_paused_at, rollout_id, rollout_started_at, \
         rollout_step_started_at, rollout_targeting, rollout_auto_pause_triggered_at, auto_pause, ramp, \
         created_at, updated_at"
    };
}
macro_rules! override_columns {
    () => {
        "app_id, device_id, channel_id, source, created_at"
    };
}
macro_rules! device_columns {
    () => {
        "app_id, device_id, platform, plugin_version, version_os, version_build, version_code, version_name, \
         custom_id, is_prod, is_emulator, default_channel, key_id, install_source, last_offered_version, \
         last_update_outcome, first_seen, last_seen"
    };
}
macro_rules! event_columns {
    () => {
        "app_id, device_id, action, version_name, old_version_name, platform, plugin_version, version_build, \
         is_prod, is_emulator, metadata, timestamp, received_at"
    };
}
macro_rules! apikey_columns {
    () => {
        "id, name, prefix, role, app_id, expires_at, created_at, revoked_at"
    };
}
pub(super) use {
    apikey_columns, app_columns, bundle_columns, channel_columns, device_columns, event_columns,
    manifest_columns, override_columns,
};

/// A stored value this version does not understand: the database was edited
/// by hand or by a newer version.
fn corrupt(what: &str, value: &str) -> StoreError {
    StoreError::Backend(format!("unexpected stored {what}: {value:?}"))
}

pub(super) fn app(row: &DbRow) -> Result<App, StoreError> {
    Ok(App {
        app_id: row.try_get("app_id")?,
        name: row.try_get("name")?,
        expose_metadata: row.try_get("expose_metadata")?,
        created_at: row.try_get("created_at")?,
    })
}

/// A bundle without its manifest; callers attach it.
pub(super) fn bundle(row: &DbRow) -> Result<Bundle, StoreError> {
    Ok(Bundle {
        id: row.try_get("id")?,
        app_id: row.try_get("app_id")?,
        name: row.try_get("name")?,
        checksum: row.try_get("checksum")?,
        encrypted_checksum: row.try_get("encrypted_checksum")?,
        session_key: row.try_get("session_key")?,
        key_id: row.try_get("key_id")?,
        external_url: row.try_get("external_url")?,
        storage_path: row.try_get("storage_path")?,
        zip_sha256: row.try_get("zip_sha256")?,
        size: row.try_get("size")?,
        manifest: Vec::new(),
        min_update_version: row.try_get("min_update_version")?,
        link: row.try_get("link")?,
        comment: row.try_get("comment")?,
        native_packages: json_column(row, "native_packages")?,
        deleted: row.try_get("deleted")?,
        created_at: row.try_get("created_at")?,
        deleted_at: row.try_get("deleted_at")?,
    })
}

/// `(bundle_id, file)`.
pub(super) fn manifest_file(row: &DbRow) -> Result<(i64, ManifestFile), StoreError> {
    Ok((
        row.try_get("bundle_id")?,
        ManifestFile {
            file_name: row.try_get("file_name")?,
            file_hash: row.try_get("file_hash")?,
            location: row.try_get("location")?,
            size: row.try_get("size")?,
            blob_sha256: row.try_get("blob_sha256")?,
        },
    ))
}

pub(super) fn channel(row: &DbRow) -> Result<Channel, StoreError> {
    let policy: String = row.try_get("disable_auto_update")?;
    Ok(Channel {
        id: row.try_get("id")?,
        app_id: row.try_get("app_id")?,
        name: row.try_get("name")?,
        bundle_id: row.try_get("bundle_id")?,
        public: row.try_get("public")?,
        ios: row.try_get("ios")?,
        android: row.try_get("android")?,
        electron: row.try_get("electron")?,
        allow_device_self_set: row.try_get("allow_device_self_set")?,
        allow_emulator: row.try_get("allow_emulator")?,
        allow_device: row.try_get("allow_device")?,
        allow_dev: row.try_get("allow_dev")?,
        allow_prod: row.try_get("allow_prod")?,
        disable_auto_update: AutoUpdatePolicy::parse(&policy)
            .ok_or_else(|| corrupt("disable_auto_update", &policy))?,
        disable_auto_update_under_native: row.try_get("disable_auto_update_under_native")?,
        targeting: json_column(row, "targeting")?.unwrap_or_default(),
        rollout: rollout(row)?,
        auto_pause: json_column(row, "auto_pause")?.unwrap_or_default(),
        ramp: json_column(row, "ramp")?.unwrap_or_default(),
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// A JSON text column; NULL = `None`.
fn json_column<T: DeserializeOwned>(row: &DbRow, column: &str) -> Result<Option<T>, StoreError> {
    let text: Option<String> = row.try_get(column)?;
    text.map(|json| serde_json::from_str(&json).map_err(|_| corrupt(column, &json)))
        .transpose()
}

/// The JSON text stored for `value`: NULL when it is the default, so rows
/// written before a setting existed and rows left at the default read alike.
pub(super) fn json_unless_default<T: Serialize + Default + PartialEq>(
    value: &T,
) -> Result<Option<String>, StoreError> {
    if *value == T::default() {
        return Ok(None);
    }
    json_text(value).map(Some)
}

pub(super) fn json_text<T: Serialize + ?Sized>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value)
        .map_err(|e| StoreError::Backend(format!("cannot encode JSON: {e}")))
}

/// The channel's rollout: present when `rollout_bundle_id` is set.
fn rollout(row: &DbRow) -> Result<Option<Rollout>, StoreError> {
    let Some(bundle_id) = row.try_get::<Option<i64>, _>("rollout_bundle_id")? else {
        return Ok(None);
    };
    fn required<T>(value: Option<T>, column: &str) -> Result<T, StoreError> {
        value.ok_or_else(|| corrupt(column, "NULL with a rollout bundle"))
    }
    let percentage: i64 = required(
        row.try_get("rollout_percentage_bps")?,
        "rollout_percentage_bps",
    )?;
    Ok(Some(Rollout {
        bundle_id,
        percentage_bps: u32::try_from(percentage)
            .map_err(|_| corrupt("rollout_percentage_bps", &percentage.to_string()))?,
        paused_at: row.try_get("rollout_paused_at")?,
        rollout_id: required(row.try_get("rollout_id")?, "rollout_id")?,
        started_at: required(row.try_get("rollout_started_at")?, "rollout_started_at")?,
        step_started_at: required(
            row.try_get("rollout_step_started_at")?,
            "rollout_step_started_at",
        )?,
        targeting: json_column(row, "rollout_targeting")?.unwrap_or_default(),
        auto_pause_triggered_at: row.try_get("rollout_auto_pause_triggered_at")?,
    }))
}

pub(super) fn parse_override_source(value: &str) -> Option<OverrideSource> {
    match value {
        "admin" => Some(OverrideSource::Admin),
        "device" => Some(OverrideSource::Device),
        _ => None,
    }
}

pub(super) fn device_override(row: &DbRow) -> Result<DeviceOverride, StoreError> {
    let source: String = row.try_get("source")?;
    Ok(DeviceOverride {
        app_id: row.try_get("app_id")?,
        device_id: row.try_get("device_id")?,
        channel_id: row.try_get("channel_id")?,
        source: parse_override_source(&source)
            .ok_or_else(|| corrupt("override source", &source))?,
        created_at: row.try_get("created_at")?,
    })
}

pub(super) fn device(row: &DbRow) -> Result<Device, StoreError> {
    Ok(Device {
        app_id: row.try_get("app_id")?,
        device_id: row.try_get("device_id")?,
        platform: row.try_get("platform")?,
        plugin_version: row.try_get("plugin_version")?,
        version_os: row.try_get("version_os")?,
        version_build: row.try_get("version_build")?,
        version_code: row.try_get("version_code")?,
        version_name: row.try_get("version_name")?,
        custom_id: row.try_get("custom_id")?,
        is_prod: row.try_get("is_prod")?,
        is_emulator: row.try_get("is_emulator")?,
        default_channel: row.try_get("default_channel")?,
        key_id: row.try_get("key_id")?,
        install_source: row.try_get("install_source")?,
        last_offered_version: row.try_get("last_offered_version")?,
        last_update_outcome: row.try_get("last_update_outcome")?,
        first_seen: row.try_get("first_seen")?,
        last_seen: row.try_get("last_seen")?,
    })
}

pub(super) fn stats_event(row: &DbRow) -> Result<StatsEvent, StoreError> {
    let metadata_json: Option<String> = row.try_get("metadata")?;
    let metadata = match metadata_json {
        None => None,
        Some(json) => Some(
            serde_json::from_str::<BTreeMap<String, String>>(&json)
                .map_err(|_| corrupt("event metadata", &json))?,
        ),
    };
    Ok(StatsEvent {
        app_id: row.try_get("app_id")?,
        device_id: row.try_get("device_id")?,
        action: row.try_get("action")?,
        version_name: row.try_get("version_name")?,
        old_version_name: row.try_get("old_version_name")?,
        platform: row.try_get("platform")?,
        plugin_version: row.try_get("plugin_version")?,
        version_build: row.try_get("version_build")?,
        is_prod: row.try_get("is_prod")?,
        is_emulator: row.try_get("is_emulator")?,
        metadata,
        timestamp: row.try_get("timestamp")?,
        received_at: row.try_get("received_at")?,
    })
}

pub(super) fn api_key(row: &DbRow) -> Result<ApiKey, StoreError> {
    let role: String = row.try_get("role")?;
    Ok(ApiKey {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        prefix: row.try_get("prefix")?,
        role: Role::parse(&role).ok_or_else(|| corrupt("api key role", &role))?,
        app_id: row.try_get("app_id")?,
        expires_at: row.try_get("expires_at")?,
        created_at: row.try_get("created_at")?,
        revoked_at: row.try_get("revoked_at")?,
    })
}

/// A basis-point figure stored as INTEGER.
fn bps(row: &DbRow, column: &str) -> Result<u32, StoreError> {
    let value: i64 = row.try_get(column)?;
    u32::try_from(value).map_err(|_| corrupt(column, &value.to_string()))
}

pub(super) fn channel_history_entry(row: &DbRow) -> Result<ChannelHistoryEntry, StoreError> {
    let percentage: Option<i64> = row.try_get("rollout_percentage_bps")?;
    Ok(ChannelHistoryEntry {
        id: row.try_get("id")?,
        app_id: row.try_get("app_id")?,
        channel: row.try_get("channel")?,
        bundle: row.try_get("bundle")?,
        rollout_bundle: row.try_get("rollout_bundle")?,
        rollout_percentage_bps: percentage
            .map(|p| {
                u32::try_from(p).map_err(|_| corrupt("rollout_percentage_bps", &p.to_string()))
            })
            .transpose()?,
        rollout_paused: row.try_get("rollout_paused")?,
        at: row.try_get("at")?,
        actor: row.try_get("actor")?,
        reason: row.try_get("reason")?,
    })
}

macro_rules! decision_columns {
    () => {
        "id, app_id, channel, rollout_id, bundle, at, action, reason, message, from_bps, to_bps, \
         attempts, failures, failure_rate, wilson_lower_bound, threshold_bps"
    };
}
macro_rules! schedule_columns {
    () => {
        "id, app_id, channel, run_at, action, accept_incompatible, status, created_by, created_at, \
         executed_at, result"
    };
}
macro_rules! audit_columns {
    () => {
        "id, at, actor, api_key_id, app_id, action, target, before_value, after_value"
    };
}
pub(super) use {audit_columns, decision_columns, schedule_columns};

pub(super) fn rollout_decision(row: &DbRow) -> Result<RolloutDecision, StoreError> {
    Ok(RolloutDecision {
        id: row.try_get("id")?,
        app_id: row.try_get("app_id")?,
        channel: row.try_get("channel")?,
        rollout_id: row.try_get("rollout_id")?,
        bundle: row.try_get("bundle")?,
        at: row.try_get("at")?,
        action: row.try_get("action")?,
        reason: row.try_get("reason")?,
        message: row.try_get("message")?,
        from_bps: bps(row, "from_bps")?,
        to_bps: bps(row, "to_bps")?,
        attempts: row.try_get("attempts")?,
        failures: row.try_get("failures")?,
        failure_rate: row.try_get("failure_rate")?,
        wilson_lower_bound: row.try_get("wilson_lower_bound")?,
        threshold_bps: bps(row, "threshold_bps")?,
    })
}

pub(super) fn scheduled_release(row: &DbRow) -> Result<ScheduledRelease, StoreError> {
    let status: String = row.try_get("status")?;
    Ok(ScheduledRelease {
        id: row.try_get("id")?,
        app_id: row.try_get("app_id")?,
        channel: row.try_get("channel")?,
        run_at: row.try_get("run_at")?,
        action: json_column(row, "action")?.ok_or_else(|| corrupt("schedule action", "NULL"))?,
        accept_incompatible: row.try_get("accept_incompatible")?,
        status: ScheduleStatus::parse(&status)
            .ok_or_else(|| corrupt("schedule status", &status))?,
        created_by: row.try_get("created_by")?,
        created_at: row.try_get("created_at")?,
        executed_at: row.try_get("executed_at")?,
        result: row.try_get("result")?,
    })
}

pub(super) fn audit_entry(row: &DbRow) -> Result<AuditEntry, StoreError> {
    Ok(AuditEntry {
        id: row.try_get("id")?,
        at: row.try_get("at")?,
        actor: row.try_get("actor")?,
        api_key_id: row.try_get("api_key_id")?,
        app_id: row.try_get("app_id")?,
        action: row.try_get("action")?,
        target: row.try_get("target")?,
        before: json_column(row, "before_value")?,
        after: json_column(row, "after_value")?,
    })
}
