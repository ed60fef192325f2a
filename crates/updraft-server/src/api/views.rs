//! What the management API sends and receives, with their OpenAPI schemas.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use updraft_core::model::{
    ApiKey, App, Bundle, Channel, Device, DeviceOverride, ReleaseConfig, StatsEvent,
};
use utoipa::ToSchema;

pub use updraft_core::analytics::rfc3339;

#[derive(Serialize, ToSchema)]
pub struct AppView {
    pub app_id: String,
    pub name: String,
    pub expose_metadata: bool,
    pub created_at: String,
}

impl From<App> for AppView {
    fn from(app: App) -> Self {
        AppView {
            app_id: app.app_id,
            name: app.name,
            expose_metadata: app.expose_metadata,
            created_at: rfc3339(app.created_at),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct AppList {
    pub apps: Vec<AppView>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApp {
    pub app_id: String,
    pub name: Option<String>,
    pub expose_metadata: Option<bool>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateApp {
    pub name: Option<String>,
    pub expose_metadata: Option<bool>,
}

#[derive(Serialize, ToSchema)]
pub struct BundleView {
    pub id: i64,
    pub version: String,
    pub checksum: Option<String>,
    pub encrypted_checksum: Option<String>,
    pub session_key: Option<String>,
    pub key_id: Option<String>,
    pub external_url: Option<String>,
    /// The stored zip blob (SHA-256 of the bytes served) when Updraft hosts the zip.
    pub zip_sha256: Option<String>,
    /// Size in bytes of the stored zip.
    pub size: Option<i64>,
    /// Number of delta (manifest) files.
    pub manifest_count: usize,
    /// What devices are sent.
    pub url: Option<String>,
    pub encrypted: bool,
    pub min_update_version: Option<String>,
    pub link: Option<String>,
    pub comment: Option<String>,
    pub deleted: bool,
    pub created_at: String,
    pub deleted_at: Option<String>,
    /// Channels pointing at this bundle.
    pub channels: Vec<String>,
}

impl BundleView {
    pub fn new(bundle: Bundle, base_url: &str, channels: Vec<String>) -> Self {
        let url = updraft_core::decision::bundle_url(&bundle, base_url);
        BundleView {
            id: bundle.id,
            encrypted: bundle.is_encrypted(),
            version: bundle.name,
            checksum: bundle.checksum,
            encrypted_checksum: bundle.encrypted_checksum,
            session_key: bundle.session_key,
            key_id: bundle.key_id,
            external_url: bundle.external_url,
            zip_sha256: bundle.zip_sha256,
            size: bundle.size,
            manifest_count: bundle.manifest.len(),
            url,
            min_update_version: bundle.min_update_version,
            link: bundle.link,
            comment: bundle.comment,
            deleted: bundle.deleted,
            created_at: rfc3339(bundle.created_at),
            deleted_at: bundle.deleted_at.map(rfc3339),
            channels,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct BundleList {
    pub bundles: Vec<BundleView>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateBundle {
    /// Semver, unique per app forever (deleted versions included).
    pub version: String,
    /// A zip hosted elsewhere. Exactly one of `external_url` and `zip_sha256`,
    /// or neither for a manifest-only bundle.
    pub external_url: Option<String>,
    /// A zip uploaded to this server (a completed upload's SHA-256).
    pub zip_sha256: Option<String>,
    /// Delta files, each a stored blob.
    pub manifest: Option<Vec<ManifestEntryInput>>,
    /// Lowercase hex SHA-256 of the plaintext zip (or the 512-hex RSA-encrypted one).
    /// Required with a zip; optional for manifest-only bundles.
    pub checksum: Option<String>,
    pub session_key: Option<String>,
    pub key_id: Option<String>,
    pub encrypted_checksum: Option<String>,
    pub min_update_version: Option<String>,
    pub link: Option<String>,
    pub comment: Option<String>,
    /// Point this channel at the new bundle (created if missing).
    pub channel: Option<String>,
}

/// One delta file of a new bundle.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ManifestEntryInput {
    /// Path in the bundle, `/`-separated; a `.br` suffix means Brotli on the wire.
    pub file_name: String,
    /// SHA-256 of the final content (64 hex), or its RSA-encrypted form (512 hex) for encrypted bundles.
    pub file_hash: String,
    /// The stored blob served for this file.
    pub blob_sha256: String,
    /// Optional; when given it must equal the blob's size.
    pub size: Option<i64>,
}

/// `null` clears a field; an absent key leaves it.
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct UpdateBundle {
    #[serde(default, with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub link: Option<Option<String>>,
    #[serde(default, with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub comment: Option<Option<String>>,
    #[serde(default, with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub min_update_version: Option<Option<String>>,
}

/// Tells "absent" (`None`) from "null" (`Some(None)`).
mod double_option {
    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
    where
        D: Deserializer<'de>,
        T: Deserialize<'de>,
    {
        Option::<T>::deserialize(deserializer).map(Some)
    }
}

#[derive(Serialize, ToSchema)]
pub struct ChannelView {
    pub id: i64,
    pub name: String,
    /// Bundle version, or `builtin`.
    pub bundle: String,
    pub public: bool,
    pub ios: bool,
    pub android: bool,
    pub electron: bool,
    pub allow_device_self_set: bool,
    pub allow_emulator: bool,
    pub allow_device: bool,
    pub allow_dev: bool,
    pub allow_prod: bool,
    pub disable_auto_update: String,
    pub disable_auto_update_under_native: bool,
    pub created_at: String,
    pub updated_at: String,
}

impl ChannelView {
    pub fn new(channel: Channel, bundle_names: &HashMap<i64, String>) -> Self {
        let bundle = match channel.bundle_id {
            None => updraft_core::model::BUILTIN.to_string(),
            Some(id) => bundle_names
                .get(&id)
                .cloned()
                .unwrap_or_else(|| format!("#{id}")),
        };
        ChannelView {
            id: channel.id,
            name: channel.name,
            bundle,
            public: channel.public,
            ios: channel.ios,
            android: channel.android,
            electron: channel.electron,
            allow_device_self_set: channel.allow_device_self_set,
            allow_emulator: channel.allow_emulator,
            allow_device: channel.allow_device,
            allow_dev: channel.allow_dev,
            allow_prod: channel.allow_prod,
            disable_auto_update: channel.disable_auto_update.as_str().to_string(),
            disable_auto_update_under_native: channel.disable_auto_update_under_native,
            created_at: rfc3339(channel.created_at),
            updated_at: rfc3339(channel.updated_at),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct ChannelList {
    pub channels: Vec<ChannelView>,
}

/// Every setting of a channel; absent ones are left as they are.
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct ChannelSettings {
    /// Bundle version, or `builtin`.
    pub bundle: Option<String>,
    pub public: Option<bool>,
    pub ios: Option<bool>,
    pub android: Option<bool>,
    pub electron: Option<bool>,
    pub allow_device_self_set: Option<bool>,
    pub allow_emulator: Option<bool>,
    pub allow_device: Option<bool>,
    pub allow_dev: Option<bool>,
    pub allow_prod: Option<bool>,
    /// major | minor | patch | metadata | none
    pub disable_auto_update: Option<String>,
    pub disable_auto_update_under_native: Option<bool>,
}

/// A new channel: its name and any settings. Documentation only: the handler
/// reads `name` and parses the rest as `ChannelSettings` (unknown keys
/// refused), and the OpenAPI modifier writes its flat schema.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct CreateChannel {
    pub name: String,
}

#[derive(Serialize, ToSchema)]
pub struct DeviceView {
    pub device_id: String,
    pub platform: String,
    pub plugin_version: Option<String>,
    pub version_os: Option<String>,
    pub version_build: Option<String>,
    pub version_code: Option<String>,
    /// The bundle the device last said it runs.
    pub version_name: Option<String>,
    pub custom_id: Option<String>,
    pub is_prod: bool,
    pub is_emulator: bool,
    pub default_channel: Option<String>,
    /// The channel the device belongs to now: its override, else a usable
    /// `defaultChannel`, else its platform's public channel.
    pub channel: Option<String>,
    pub key_id: Option<String>,
    pub install_source: Option<String>,
    pub last_offered_version: Option<String>,
    pub last_update_outcome: Option<String>,
    pub first_seen: String,
    pub last_seen: String,
}

impl DeviceView {
    pub fn new(d: Device, release: &ReleaseConfig) -> Self {
        let channel = updraft_core::analytics::attribute_channel(
            release,
            &d.device_id,
            &d.platform,
            d.default_channel.as_deref(),
        )
        .map(str::to_string);
        DeviceView {
            channel,
            device_id: d.device_id,
            platform: d.platform,
            plugin_version: d.plugin_version,
            version_os: d.version_os,
            version_build: d.version_build,
            version_code: d.version_code,
            version_name: d.version_name,
            custom_id: d.custom_id,
            is_prod: d.is_prod,
            is_emulator: d.is_emulator,
            default_channel: d.default_channel,
            key_id: d.key_id,
            install_source: d.install_source,
            last_offered_version: d.last_offered_version,
            last_update_outcome: d.last_update_outcome,
            first_seen: rfc3339(d.first_seen),
            last_seen: rfc3339(d.last_seen),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct DeviceList {
    pub devices: Vec<DeviceView>,
    pub total: i64,
}

#[derive(Serialize, ToSchema)]
pub struct EventView {
    pub action: String,
    pub version_name: String,
    pub old_version_name: Option<String>,
    pub timestamp: String,
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<std::collections::BTreeMap<String, String>>,
}

impl From<StatsEvent> for EventView {
    fn from(e: StatsEvent) -> Self {
        EventView {
            action: e.action,
            version_name: e.version_name,
            old_version_name: e.old_version_name,
            timestamp: rfc3339(e.timestamp),
            metadata: e.metadata,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct DeviceDetail {
    #[serde(flatten)]
    pub device: DeviceView,
    pub channel_override: Option<OverrideView>,
    pub recent_events: Vec<EventView>,
}

#[derive(Serialize, ToSchema)]
pub struct OverrideView {
    pub device_id: String,
    pub channel: String,
    /// `admin` (management API) or `device` (an old plugin's channel_self).
    pub source: String,
    pub created_at: String,
}

impl OverrideView {
    pub fn new(o: DeviceOverride, channel: String) -> Self {
        OverrideView {
            device_id: o.device_id,
            channel,
            source: o.source.as_str().to_string(),
            created_at: rfc3339(o.created_at),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct OverrideList {
    pub overrides: Vec<OverrideView>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetOverride {
    pub channel: String,
}

#[derive(Serialize, ToSchema)]
pub struct ApiKeyView {
    pub id: i64,
    pub name: String,
    pub prefix: String,
    pub role: String,
    pub app_id: Option<String>,
    pub expires_at: Option<String>,
    pub created_at: String,
    pub revoked_at: Option<String>,
}

impl From<ApiKey> for ApiKeyView {
    fn from(k: ApiKey) -> Self {
        ApiKeyView {
            id: k.id,
            name: k.name,
            prefix: k.prefix,
            role: k.role.as_str().to_string(),
            app_id: k.app_id,
            expires_at: k.expires_at.map(rfc3339),
            created_at: rfc3339(k.created_at),
            revoked_at: k.revoked_at.map(rfc3339),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct ApiKeyList {
    pub apikeys: Vec<ApiKeyView>,
}

#[derive(Serialize, ToSchema)]
pub struct CreatedApiKey {
    #[serde(flatten)]
    pub apikey: ApiKeyView,
    /// Shown once; only its hash is stored.
    pub key: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKey {
    pub name: String,
    pub role: Option<String>,
    pub app_id: Option<String>,
    pub expires_in_days: Option<u32>,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorView {
    /// Stable machine-readable code.
    pub error: String,
    pub message: String,
}
