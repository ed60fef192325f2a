//! Column lists and row decoding, shared by every query of a table.

use crate::StoreError;
use sqlx::sqlite::SqliteRow;
use sqlx::Row;
use std::collections::BTreeMap;
use updraft_core::model::{
    ApiKey, App, AutoUpdatePolicy, Bundle, Channel, Device, DeviceOverride, ManifestFile,
    OverrideSource, Role, StatsEvent,
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
         zip_sha256, size, min_update_version, link, comment, deleted, created_at, deleted_at"
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

pub(super) fn app(row: &SqliteRow) -> Result<App, StoreError> {
    Ok(App {
        app_id: row.try_get("app_id")?,
        name: row.try_get("name")?,
        expose_metadata: row.try_get("expose_metadata")?,
        created_at: row.try_get("created_at")?,
    })
}

/// A bundle without its manifest; callers attach it.
pub(super) fn bundle(row: &SqliteRow) -> Result<Bundle, StoreError> {
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
        native_packages: None,
        deleted: row.try_get("deleted")?,
        created_at: row.try_get("created_at")?,
        deleted_at: row.try_get("deleted_at")?,
    })
}

/// `(bundle_id, file)`.
pub(super) fn manifest_file(row: &SqliteRow) -> Result<(i64, ManifestFile), StoreError> {
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

pub(super) fn channel(row: &SqliteRow) -> Result<Channel, StoreError> {
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
        targeting: Default::default(),
        rollout: None,
        auto_pause: Default::default(),
        ramp: Default::default(),
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

pub(super) fn parse_override_source(value: &str) -> Option<OverrideSource> {
    match value {
        "admin" => Some(OverrideSource::Admin),
        "device" => Some(OverrideSource::Device),
        _ => None,
    }
}

pub(super) fn device_override(row: &SqliteRow) -> Result<DeviceOverride, StoreError> {
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

pub(super) fn device(row: &SqliteRow) -> Result<Device, StoreError> {
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

pub(super) fn stats_event(row: &SqliteRow) -> Result<StatsEvent, StoreError> {
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

pub(super) fn api_key(row: &SqliteRow) -> Result<ApiKey, StoreError> {
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
