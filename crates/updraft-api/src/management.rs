//! Apps, bundles, channels, rollouts, schedules, devices and API keys: what
//! the management API takes and answers, with their OpenAPI schemas and the
//! conversions from the domain model the server answers with.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use updraft_core::model::{
    ApiKey, App, AutoPausePolicy, Bundle, Channel, ChannelHistoryEntry, Device, DeviceOverride,
    RampPlan, ReleaseConfig, Rollout, RolloutDecision, ScheduledAction, ScheduledRelease,
    StatsEvent, Targeting,
};
use utoipa::ToSchema;

pub use updraft_core::analytics::rfc3339;

#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
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

#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
pub struct AppList {
    pub apps: Vec<AppView>,
}

#[derive(Serialize, Deserialize, ToSchema, Debug, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CreateApp {
    pub app_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expose_metadata: Option<bool>,
}

#[derive(Serialize, Deserialize, ToSchema, Debug, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct UpdateApp {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expose_metadata: Option<bool>,
}

#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
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
    /// Channels serving this bundle as their stable bundle.
    pub channels: Vec<String>,
    /// Channels rolling this bundle out to part of their devices.
    pub rollout_channels: Vec<String>,
    /// Capacitor plugins with native code the bundle was built against
    /// (`name`, `version`, `requested_version`); `null` = unknown.
    #[schema(value_type = Option<Vec<Object>>)]
    pub native_packages: Option<Vec<updraft_core::model::NativePackage>>,
}

impl BundleView {
    pub fn new(
        bundle: Bundle,
        base_url: &str,
        channels: Vec<String>,
        rollout_channels: Vec<String>,
    ) -> Self {
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
            rollout_channels,
            native_packages: bundle.native_packages,
        }
    }
}

#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
pub struct BundleList {
    pub bundles: Vec<BundleView>,
}

#[derive(Serialize, Deserialize, ToSchema, Debug, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CreateBundle {
    /// Semver, unique per app forever (deleted versions included).
    pub version: String,
    /// A zip hosted elsewhere. Exactly one of `external_url` and `zip_sha256`,
    /// or neither for a manifest-only bundle.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_url: Option<String>,
    /// A zip uploaded to this server (a completed upload's SHA-256).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zip_sha256: Option<String>,
    /// Delta files, each a stored blob.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manifest: Option<Vec<ManifestEntryInput>>,
    /// Lowercase hex SHA-256 of the plaintext zip (or the 512-hex RSA-encrypted one).
    /// Required with a zip, except an encrypted external one that gives
    /// `session_key` and `encrypted_checksum` (what devices verify); optional
    /// for manifest-only bundles.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checksum: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encrypted_checksum: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_update_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// Point this existing channel at the new bundle (404
    /// `channel_not_found` with `suggestions` when there is none, unless
    /// `create_channel`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// With `channel`: create it when it does not exist.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub create_channel: Option<bool>,
    /// Capacitor plugins with native code the bundle was built against
    /// (`name`, `version`, `requested_version`?); absent = unknown.
    #[schema(value_type = Option<Vec<Object>>)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub native_packages: Option<Vec<updraft_core::model::NativePackage>>,
    /// With `channel`: start a rollout of the new bundle at this share
    /// (0..=10000 basis points) instead of making it the stable bundle.
    #[schema(minimum = 0, maximum = 10000)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollout_percentage_bps: Option<i64>,
    /// With `channel`: put it live even when its native packages differ from the live bundle's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accept_incompatible: Option<bool>,
}

/// One delta file of a new bundle.
#[derive(Serialize, Deserialize, ToSchema, Debug, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ManifestEntryInput {
    /// Path in the bundle, `/`-separated; a `.br` suffix means Brotli on the wire.
    pub file_name: String,
    /// SHA-256 of the final content (64 hex), or its RSA-encrypted form (512 hex) for encrypted bundles.
    pub file_hash: String,
    /// The stored blob served for this file.
    pub blob_sha256: String,
    /// Optional; when given it must equal the blob's size.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<i64>,
}

/// `null` clears a field; an absent key leaves it.
#[derive(Serialize, Deserialize, ToSchema, Default, Debug, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct UpdateBundle {
    #[serde(
        default,
        deserialize_with = "double_option",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<String>)]
    pub link: Option<Option<String>>,
    #[serde(
        default,
        deserialize_with = "double_option",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<String>)]
    pub comment: Option<Option<String>>,
    #[serde(
        default,
        deserialize_with = "double_option",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<String>)]
    pub min_update_version: Option<Option<String>>,
}

/// Tells "absent" (`None`) from "null" (`Some(None)`).
fn double_option<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
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
    /// Which devices the channel serves; others get `device_not_targeted`.
    #[schema(value_type = TargetingSpec)]
    pub targeting: TargetingView,
    /// The bundle served to a share of the devices beside `bundle`.
    pub rollout: Option<RolloutView>,
    pub auto_pause: AutoPauseView,
    pub ramp: RampView,
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
            targeting: TargetingView::from(&channel.targeting),
            rollout: channel
                .rollout
                .as_ref()
                .map(|r| RolloutView::new(r, bundle_names)),
            auto_pause: AutoPauseView::from(&channel.auto_pause),
            ramp: RampView::from(&channel.ramp),
            created_at: rfc3339(channel.created_at),
            updated_at: rfc3339(channel.updated_at),
        }
    }
}

/// The answer of `PATCH /apps/{app_id}/channels/{name}`: the channel, and
/// whether the request changed it. A request that changes nothing (pausing a
/// paused rollout, the bundle the channel already serves, settings it
/// already has) writes nothing: no history row, audit entry or webhook.
#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
pub struct ChannelUpdateView {
    #[serde(flatten)]
    pub channel: ChannelView,
    /// Read as `true` when absent (a server older than this field).
    #[serde(default = "answer_changed")]
    pub changed: bool,
    /// Why nothing changed; absent when something did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unchanged: Option<NoChangeView>,
}

fn answer_changed() -> bool {
    true
}

/// Why a channel request changed nothing.
#[derive(Serialize, Deserialize, ToSchema, Debug, Clone, PartialEq, Eq)]
pub struct NoChangeView {
    /// `already_paused`, `not_paused`, `already_serving`, `same_percentage` or `same_settings`.
    pub code: String,
    pub message: String,
}

#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
pub struct ChannelList {
    pub channels: Vec<ChannelView>,
}

/// Every setting of a channel; absent ones are left as they are.
#[derive(Serialize, Deserialize, ToSchema, Default, Debug, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ChannelSettings {
    /// Bundle version, or `builtin`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bundle: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ios: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub android: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub electron: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow_device_self_set: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow_emulator: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow_device: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow_dev: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow_prod: Option<bool>,
    /// major | minor | patch | metadata | none
    #[schema(value_type = Option<AutoUpdateName>)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disable_auto_update: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disable_auto_update_under_native: Option<bool>,
    /// Replaces the channel's targeting (`{}` = every device).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub targeting: Option<TargetingSpec>,
    /// Starts a rollout of this bundle version (or, for the current rollout
    /// bundle, sets its percentage).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollout_bundle: Option<String>,
    /// 0..=10000 basis points; alone, changes the current rollout's percentage.
    #[schema(minimum = 0, maximum = 10000)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollout_percentage_bps: Option<i64>,
    /// pause | resume | promote | rollback
    #[schema(value_type = Option<RolloutActionName>)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollout_action: Option<String>,
    /// Replaces the current (or starting) rollout's targeting.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollout_targeting: Option<TargetingSpec>,
    /// Changes only the fields given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auto_pause: Option<AutoPauseSettings>,
    /// Changes only the fields given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ramp: Option<RampSettings>,
    /// Put a bundle live even when its native packages differ from the live one's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accept_incompatible: Option<bool>,
    /// Serve an unencrypted bundle although the channel's current bundle is
    /// encrypted (else 409 `encryption_downgrade`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accept_unencrypted: Option<bool>,
}

/// Targeting rules: every criterion given must match; a list matches any
/// entry; `custom_ids`, `custom_id_prefix` and `device_ids` together count as
/// one criterion. All empty = every device.
// A request's criteria: absent ones are left out of the body (`{}` = every
// device), and a list given empty stays in it.
#[derive(Serialize, Deserialize, ToSchema, Default, Debug, Clone, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TargetingSpec {
    /// ios | android | electron
    #[serde(deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Vec<PlatformName>, default = json!([]))]
    pub platforms: Option<Vec<String>>,
    /// Semver range on the device's OS version (`>=14`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub os_version: Option<String>,
    /// Semver range on the native app version (`>=1.4, <2`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub native_version: Option<String>,
    /// Semver range on the plugin version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plugin_version: Option<String>,
    /// `google_play`, `app_store`, … (`""` = devices that send none).
    #[serde(deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Vec<String>, default = json!([]))]
    pub install_sources: Option<Vec<String>>,
    #[serde(deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Vec<String>, default = json!([]))]
    pub custom_ids: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub custom_id_prefix: Option<String>,
    #[serde(deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Vec<String>, default = json!([]))]
    pub device_ids: Option<Vec<String>>,
}

/// A list that, when its key is there, is a list (`null` is refused as it
/// is for any other list of the API).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    Vec::<String>::deserialize(d).map(Some)
}

/// Targeting as a channel (or rollout) shows it: every criterion, `null` or
/// `[]` when not set. Read back, an absent list stays `None`, so a partial
/// object (an older server's) keeps telling "absent" from "empty".
#[derive(Serialize, Deserialize, Default, Debug, Clone, PartialEq)]
#[serde(default)]
pub struct TargetingView {
    pub platforms: Option<Vec<String>>,
    pub os_version: Option<String>,
    pub native_version: Option<String>,
    pub plugin_version: Option<String>,
    pub install_sources: Option<Vec<String>>,
    pub custom_ids: Option<Vec<String>>,
    pub custom_id_prefix: Option<String>,
    pub device_ids: Option<Vec<String>>,
}

impl From<&Targeting> for TargetingView {
    fn from(t: &Targeting) -> Self {
        TargetingView {
            platforms: Some(t.platforms.iter().map(|p| p.as_str().to_string()).collect()),
            os_version: t.os_version.as_ref().map(|r| r.text.clone()),
            native_version: t.native_version.as_ref().map(|r| r.text.clone()),
            plugin_version: t.plugin_version.as_ref().map(|r| r.text.clone()),
            install_sources: Some(t.install_sources.clone()),
            custom_ids: Some(t.custom_ids.clone()),
            custom_id_prefix: t.custom_id_prefix.clone(),
            device_ids: Some(t.device_ids.clone()),
        }
    }
}

impl From<TargetingView> for TargetingSpec {
    /// The criteria a view shows, as a request would give them again.
    fn from(t: TargetingView) -> Self {
        TargetingSpec {
            platforms: t.platforms,
            os_version: t.os_version,
            native_version: t.native_version,
            plugin_version: t.plugin_version,
            install_sources: t.install_sources,
            custom_ids: t.custom_ids,
            custom_id_prefix: t.custom_id_prefix,
            device_ids: t.device_ids,
        }
    }
}

#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
pub struct RolloutView {
    /// The rollout bundle's version.
    pub bundle: String,
    pub percentage_bps: u32,
    pub paused: bool,
    pub paused_at: Option<String>,
    /// The seed of the device buckets; new for every rollout bundle.
    pub rollout_id: String,
    pub started_at: String,
    /// When the percentage last changed (a ramp step's dwell starts here).
    pub step_started_at: String,
    #[schema(value_type = TargetingSpec)]
    pub targeting: TargetingView,
    /// When auto-pause last acted or alerted (its cooldown runs from here).
    pub auto_pause_triggered_at: Option<String>,
}

impl RolloutView {
    pub fn new(r: &Rollout, bundle_names: &HashMap<i64, String>) -> Self {
        RolloutView {
            bundle: bundle_names
                .get(&r.bundle_id)
                .cloned()
                .unwrap_or_else(|| format!("#{}", r.bundle_id)),
            percentage_bps: r.percentage_bps,
            paused: r.paused_at.is_some(),
            paused_at: r.paused_at.map(rfc3339),
            rollout_id: r.rollout_id.clone(),
            started_at: rfc3339(r.started_at),
            step_started_at: rfc3339(r.step_started_at),
            targeting: TargetingView::from(&r.targeting),
            auto_pause_triggered_at: r.auto_pause_triggered_at.map(rfc3339),
        }
    }
}

/// When the control loop pauses, rolls back or alerts on a failing rollout.
#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
pub struct AutoPauseView {
    pub enabled: bool,
    pub window_minutes: u32,
    pub failure_rate_bps: u32,
    pub confidence: f64,
    pub min_attempts: u32,
    pub min_failures: u32,
    /// pause | rollback | notify
    pub action: String,
    pub cooldown_minutes: u32,
}

impl From<&AutoPausePolicy> for AutoPauseView {
    fn from(p: &AutoPausePolicy) -> Self {
        AutoPauseView {
            enabled: p.enabled,
            window_minutes: p.window_minutes,
            failure_rate_bps: p.failure_rate_bps,
            confidence: p.confidence,
            min_attempts: p.min_attempts,
            min_failures: p.min_failures,
            action: p.action.as_str().to_string(),
            cooldown_minutes: p.cooldown_minutes,
        }
    }
}

/// Auto-pause settings to change; absent ones stay.
#[derive(Serialize, Deserialize, ToSchema, Default, Debug, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AutoPauseSettings {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// At least 1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window_minutes: Option<u32>,
    /// 0..=10000.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure_rate_bps: Option<u32>,
    /// Strictly between 0 and 1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_attempts: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_failures: Option<u32>,
    /// pause | rollback | notify
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// At most 10080 (a week).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cooldown_minutes: Option<u32>,
}

/// How the control loop raises a healthy rollout's percentage.
#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
pub struct RampView {
    pub enabled: bool,
    pub steps_bps: Vec<u32>,
    pub min_dwell_minutes: u32,
    pub min_attempts: u32,
    pub promote_at_end: bool,
}

impl From<&RampPlan> for RampView {
    fn from(r: &RampPlan) -> Self {
        RampView {
            enabled: r.enabled,
            steps_bps: r.steps_bps.clone(),
            min_dwell_minutes: r.min_dwell_minutes,
            min_attempts: r.min_attempts,
            promote_at_end: r.promote_at_end,
        }
    }
}

/// Ramp settings to change; absent ones stay.
#[derive(Serialize, Deserialize, ToSchema, Default, Debug, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RampSettings {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Strictly increasing, each 1..=10000, the last 10000.
    #[schema(min_items = 1, max_items = 10000)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub steps_bps: Option<Vec<u32>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_dwell_minutes: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_attempts: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub promote_at_end: Option<bool>,
}

/// One change of what a channel serves.
#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
pub struct HistoryEntryView {
    pub id: i64,
    /// The stable bundle after the change (`builtin` for none).
    pub bundle: String,
    /// The stable bundle before it (from the previous entry; `null` for the
    /// first entry of the channel's history).
    pub previous_bundle: Option<String>,
    pub rollout_bundle: Option<String>,
    /// The rollout bundle before the change, when there was a rollout.
    pub previous_rollout_bundle: Option<String>,
    pub rollout_percentage_bps: Option<u32>,
    pub rollout_paused: bool,
    pub at: String,
    /// `key:<name>`, `control-loop`, `schedule:<id>`.
    pub actor: String,
    /// `set`, `rollout_start`, `rollout_percentage`, `pause`, `resume`, `promote`, `rollback`, …
    pub reason: String,
}

impl From<ChannelHistoryEntry> for HistoryEntryView {
    fn from(e: ChannelHistoryEntry) -> Self {
        HistoryEntryView {
            id: e.id,
            bundle: e.bundle,
            previous_bundle: None,
            rollout_bundle: e.rollout_bundle,
            previous_rollout_bundle: None,
            rollout_percentage_bps: e.rollout_percentage_bps,
            rollout_paused: e.rollout_paused,
            at: rfc3339(e.at),
            actor: e.actor,
            reason: e.reason,
        }
    }
}

#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
pub struct HistoryList {
    pub channel: String,
    /// Newest first.
    pub history: Vec<HistoryEntryView>,
}

/// Back to `to`, or else to the newest earlier stable bundle of the history.
#[derive(Serialize, Deserialize, ToSchema, Default, Debug, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RollbackRequest {
    /// A bundle version or `builtin`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// Go back to an unencrypted bundle although the current one is
    /// encrypted (else 409 `encryption_downgrade`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accept_unencrypted: Option<bool>,
}

/// What the rollout control loop decided, with its numbers.
#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
pub struct DecisionView {
    pub id: i64,
    pub channel: String,
    pub rollout_id: String,
    pub bundle: String,
    pub at: String,
    /// advanced | held | paused | rolled_back | notified | promoted
    pub action: String,
    /// healthy | dwell_not_reached | not_enough_attempts | failure_rate_above_threshold | auto_pause_triggered | cooldown | paused | ramp_complete
    pub reason: String,
    pub message: String,
    pub from_bps: u32,
    pub to_bps: u32,
    pub attempts: i64,
    pub failures: i64,
    pub failure_rate: Option<f64>,
    pub wilson_lower_bound: Option<f64>,
    pub threshold_bps: u32,
}

impl From<RolloutDecision> for DecisionView {
    fn from(d: RolloutDecision) -> Self {
        DecisionView {
            id: d.id,
            channel: d.channel,
            rollout_id: d.rollout_id,
            bundle: d.bundle,
            at: rfc3339(d.at),
            action: d.action,
            reason: d.reason,
            message: d.message,
            from_bps: d.from_bps,
            to_bps: d.to_bps,
            attempts: d.attempts,
            failures: d.failures,
            failure_rate: d.failure_rate,
            wilson_lower_bound: d.wilson_lower_bound,
            threshold_bps: d.threshold_bps,
        }
    }
}

#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
pub struct DecisionList {
    /// Newest first.
    pub decisions: Vec<DecisionView>,
    /// What the loop would decide now for each running rollout, with the
    /// current figures (not recorded; `id` 0). Holds are recorded only when
    /// their reason changes, so the newest recorded one can be old.
    pub current: Vec<DecisionView>,
}

/// `run_at` as a request gives it: epoch milliseconds or RFC 3339 text.
/// Any other JSON is kept as it came, for the server to refuse with
/// `invalid_run_at` naming what it got (not as an unreadable body).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(untagged)]
pub enum RunAtInput {
    Millis(i64),
    Text(String),
    Other(serde_json::Value),
}

/// A release change to make on a channel at a given time.
#[derive(Serialize, Deserialize, ToSchema, Debug, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CreateSchedule {
    pub channel: String,
    /// RFC 3339 (`2026-12-01T09:00:00Z`) or epoch milliseconds; in the future.
    #[schema(value_type = Object)]
    pub run_at: RunAtInput,
    /// The bundle version to put live (`builtin` only without a rollout).
    pub bundle: String,
    /// Start a rollout of `bundle` at this share instead of making it stable.
    #[schema(minimum = 0, maximum = 10000)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollout_percentage_bps: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accept_incompatible: Option<bool>,
}

#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
pub struct ScheduleView {
    pub id: i64,
    pub channel: String,
    pub run_at: String,
    /// set_bundle | start_rollout
    pub action: String,
    pub bundle: String,
    pub rollout_percentage_bps: Option<u32>,
    pub accept_incompatible: bool,
    /// pending | done | failed | cancelled
    pub status: String,
    pub created_by: String,
    pub created_at: String,
    pub executed_at: Option<String>,
    /// Why it failed, or what it did.
    pub result: Option<String>,
}

impl From<ScheduledRelease> for ScheduleView {
    fn from(s: ScheduledRelease) -> Self {
        let (action, bundle, percentage) = match s.action {
            ScheduledAction::SetBundle { bundle } => ("set_bundle", bundle, None),
            ScheduledAction::StartRollout {
                bundle,
                percentage_bps,
            } => ("start_rollout", bundle, Some(percentage_bps)),
        };
        ScheduleView {
            id: s.id,
            channel: s.channel,
            run_at: rfc3339(s.run_at),
            action: action.to_string(),
            bundle,
            rollout_percentage_bps: percentage,
            accept_incompatible: s.accept_incompatible,
            status: s.status.as_str().to_string(),
            created_by: s.created_by,
            created_at: rfc3339(s.created_at),
            executed_at: s.executed_at.map(rfc3339),
            result: s.result,
        }
    }
}

#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
pub struct ScheduleList {
    pub schedules: Vec<ScheduleView>,
}

/// A new channel: its name and any settings, in one object. The server reads
/// `name` and parses the rest as `ChannelSettings` (unknown keys refused);
/// the OpenAPI document shows the flat object.
#[derive(Serialize, ToSchema, Debug, Clone, PartialEq)]
pub struct CreateChannel {
    pub name: String,
    #[serde(flatten)]
    pub settings: ChannelSettings,
}

#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
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

#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
pub struct DeviceList {
    pub devices: Vec<DeviceView>,
    pub total: i64,
}

#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
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

#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
pub struct DeviceDetail {
    #[serde(flatten)]
    pub device: DeviceView,
    pub channel_override: Option<OverrideView>,
    pub recent_events: Vec<EventView>,
}

#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
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

#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
pub struct OverrideList {
    pub overrides: Vec<OverrideView>,
}

#[derive(Serialize, Deserialize, ToSchema, Debug, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SetOverride {
    pub channel: String,
}

#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
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

#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
pub struct ApiKeyList {
    pub apikeys: Vec<ApiKeyView>,
}

#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
pub struct CreatedApiKey {
    #[serde(flatten)]
    pub apikey: ApiKeyView,
    /// Shown once; only its hash is stored.
    pub key: String,
}

#[derive(Serialize, Deserialize, ToSchema, Debug, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKey {
    /// 1 to 100 characters, no control characters, not only spaces (trimmed).
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f][^\\u0000-\\u001f\\u007f-\\u009f]*$"
    )]
    pub name: String,
    /// Admin when absent.
    #[schema(value_type = Option<RoleName>)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Scope the key to this app (a reverse domain).
    #[schema(max_length = 255, pattern = r"^[A-Za-z0-9]+(\.[A-Za-z0-9_-]+)+$")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app_id: Option<String>,
    /// 1 to 36,500 days (100 years); never expires when absent.
    #[schema(minimum = 1, maximum = 36500)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_in_days: Option<u32>,
}

/// The most days an API key may be given before it expires.
pub const MAX_KEY_DAYS: u32 = 36_500;

/// `GET /api/v1/whoami`: the API key the request was made with (any role,
/// any scope), so a client can show whom it acts as and check a key before
/// storing it (`updraft login`, `updraft whoami`).
#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
pub struct Whoami {
    pub apikey: ApiKeyView,
}

/// A key's role, as the API takes it.
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)] // only describes the wire values of `CreateApiKey::role`
pub enum RoleName {
    Admin,
    Publisher,
    Viewer,
}

/// What `disable_auto_update` takes.
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)] // only describes the wire values of `ChannelSettings::disable_auto_update`
pub enum AutoUpdateName {
    Major,
    Minor,
    Patch,
    Metadata,
    None,
}

/// What `rollout_action` takes.
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)] // only describes the wire values of `ChannelSettings::rollout_action`
pub enum RolloutActionName {
    Pause,
    Resume,
    Promote,
    Rollback,
}

/// A targeting platform, as the API takes it.
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)] // only describes the wire values of `TargetingSpec::platforms`
pub enum PlatformName {
    Ios,
    Android,
    Electron,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn run_at_reads_milliseconds_text_or_keeps_anything_else() {
        let read = |json: serde_json::Value| serde_json::from_value::<RunAtInput>(json).unwrap();
        assert_eq!(read(json!(1234)), RunAtInput::Millis(1234));
        assert_eq!(read(json!(-1)), RunAtInput::Millis(-1));
        assert_eq!(
            read(json!("2026-12-01T09:00:00Z")),
            RunAtInput::Text("2026-12-01T09:00:00Z".into())
        );
        for other in [
            json!(true),
            json!(1.5),
            json!(u64::MAX),
            json!(null),
            json!({"at": 1}),
        ] {
            assert_eq!(read(other.clone()), RunAtInput::Other(other.clone()));
        }
        for given in [json!(1234), json!("x"), json!(true)] {
            assert_eq!(serde_json::to_value(read(given.clone())).unwrap(), given);
        }
    }
}
