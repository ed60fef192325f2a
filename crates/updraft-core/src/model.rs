//! The release model: plain data shared by every layer.
//!
//! Times are milliseconds since the Unix epoch (`Millis`) so that SQLite and
//! PostgreSQL store them the same way (a 64-bit integer).

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

pub type Millis = i64;

/// The synthetic bundle name of "the bundle that shipped inside the native app".
pub const BUILTIN: &str = "builtin";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Platform {
    Ios,
    Android,
    Electron,
}

impl Platform {
    pub fn as_str(self) -> &'static str {
        match self {
            Platform::Ios => "ios",
            Platform::Android => "android",
            Platform::Electron => "electron",
        }
    }

    pub fn parse(s: &str) -> Option<Platform> {
        match s {
            "ios" => Some(Platform::Ios),
            "android" => Some(Platform::Android),
            "electron" => Some(Platform::Electron),
            _ => None,
        }
    }
}

/// `disable_auto_update` of a channel. `Metadata` is the reference service's
/// `version_number`: the bundle's `min_update_version` decides.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum AutoUpdatePolicy {
    #[default]
    Major,
    Minor,
    Patch,
    Metadata,
    None,
}

impl AutoUpdatePolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            AutoUpdatePolicy::Major => "major",
            AutoUpdatePolicy::Minor => "minor",
            AutoUpdatePolicy::Patch => "patch",
            AutoUpdatePolicy::Metadata => "metadata",
            AutoUpdatePolicy::None => "none",
        }
    }

    /// Accepts the reference service's `version_number` as an alias of `metadata`.
    pub fn parse(s: &str) -> Option<AutoUpdatePolicy> {
        match s {
            "major" => Some(AutoUpdatePolicy::Major),
            "minor" => Some(AutoUpdatePolicy::Minor),
            "patch" => Some(AutoUpdatePolicy::Patch),
            "metadata" | "version_number" => Some(AutoUpdatePolicy::Metadata),
            "none" => Some(AutoUpdatePolicy::None),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct App {
    pub app_id: String,
    pub name: String,
    /// Send bundle `link`/`comment` to plugins that understand them.
    pub expose_metadata: bool,
    pub created_at: Millis,
}

/// One file of a delta (manifest) bundle.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestFile {
    /// Relative path in the bundle, `/`-separated; a `.br` suffix means Brotli on the wire.
    pub file_name: String,
    /// Lowercase hex SHA-256 of the final content (RSA-encrypted hex when encrypted).
    pub file_hash: String,
    /// Absolute URL, or a path starting with `/` under the public base URL.
    pub location: String,
    pub size: Option<i64>,
    /// The stored blob (lowercase hex SHA-256 of the bytes served) when Updraft hosts the file.
    #[serde(default)]
    pub blob_sha256: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bundle {
    pub id: i64,
    pub app_id: String,
    /// Semver name, unique per app (deleted names included).
    pub name: String,
    /// Lowercase hex SHA-256 of the plaintext zip.
    pub checksum: Option<String>,
    /// Lowercase hex of the RSA-encrypted SHA-256 (512 hex chars) for encrypted bundles.
    pub encrypted_checksum: Option<String>,
    /// `base64(iv):base64(rsa(aes key))`; non-empty means encrypted.
    pub session_key: Option<String>,
    pub key_id: Option<String>,
    /// Bundle hosted elsewhere; used verbatim.
    pub external_url: Option<String>,
    /// Bundle served by Updraft: a path starting with `/` under the public base URL.
    pub storage_path: Option<String>,
    /// The stored zip blob (SHA-256 of the bytes served, encrypted ones included) when Updraft hosts it.
    #[serde(default)]
    pub zip_sha256: Option<String>,
    /// Size in bytes of the stored zip.
    #[serde(default)]
    pub size: Option<i64>,
    pub manifest: Vec<ManifestFile>,
    pub min_update_version: Option<String>,
    pub link: Option<String>,
    pub comment: Option<String>,
    /// The Capacitor plugins with native code the bundle was built against;
    /// `None` when the uploader did not say (the compatibility guard then
    /// has nothing to compare).
    #[serde(default)]
    pub native_packages: Option<Vec<NativePackage>>,
    pub deleted: bool,
    pub created_at: Millis,
    pub deleted_at: Option<Millis>,
}

/// One npm package with native code a bundle depends on (from the project's
/// `package.json` and `node_modules`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NativePackage {
    pub name: String,
    /// The installed version (`node_modules/<name>/package.json`).
    pub version: String,
    /// The range `package.json` asks for, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_version: Option<String>,
}

impl Bundle {
    pub fn is_encrypted(&self) -> bool {
        self.session_key.as_deref().is_some_and(|s| !s.is_empty())
    }

    /// The checksum a device verifies: the RSA-encrypted one for encrypted bundles.
    pub fn device_checksum(&self) -> Option<&str> {
        let plain = self.checksum.as_deref().filter(|c| !c.is_empty());
        if self.is_encrypted() {
            self.encrypted_checksum
                .as_deref()
                .filter(|c| !c.is_empty())
                .or(plain)
        } else {
            plain
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Channel {
    pub id: i64,
    pub app_id: String,
    pub name: String,
    /// `None` = the builtin (native) bundle.
    pub bundle_id: Option<i64>,
    /// The platform's default channel for devices that ask for none.
    pub public: bool,
    pub ios: bool,
    pub android: bool,
    pub electron: bool,
    pub allow_device_self_set: bool,
    pub allow_emulator: bool,
    pub allow_device: bool,
    pub allow_dev: bool,
    pub allow_prod: bool,
    pub disable_auto_update: AutoUpdatePolicy,
    /// Refuse bundles older than the native version (`--no-downgrade`).
    pub disable_auto_update_under_native: bool,
    /// Which devices the channel serves at all; others get `device_not_targeted`.
    #[serde(default)]
    pub targeting: Targeting,
    /// A second bundle served to a share of the channel's devices.
    #[serde(default)]
    pub rollout: Option<Rollout>,
    /// When the control loop pauses, rolls back or alerts on a failing rollout.
    #[serde(default)]
    pub auto_pause: AutoPausePolicy,
    /// How the control loop raises the rollout's percentage while it is healthy.
    #[serde(default)]
    pub ramp: RampPlan,
    pub created_at: Millis,
    pub updated_at: Millis,
}

/// A semver range (`>=14`, `^8.40.0`, `>=1.2, <2`) over versions that devices
/// send leniently (`14`, `17.2`, `1.4.0-beta.1`). Parsed once, when set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VersionRange {
    pub text: String,
    pub req: semver::VersionReq,
}

impl VersionRange {
    pub fn parse(text: &str) -> Result<VersionRange, String> {
        let trimmed = text.trim();
        semver::VersionReq::parse(trimmed)
            .map(|req| VersionRange {
                text: trimmed.to_string(),
                req,
            })
            .map_err(|e| format!("{trimmed:?} is not a version range: {e}"))
    }
}

impl Serialize for VersionRange {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for VersionRange {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        VersionRange::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// Which devices a channel or a rollout is for. Every criterion that is set
/// must match; within a list any entry matches. The identity criteria
/// (`custom_ids`, `custom_id_prefix`, `device_ids`) together form one
/// criterion: a device listed by any of them matches it. All empty = every
/// device.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Targeting {
    pub platforms: Vec<Platform>,
    /// On the device's `version_os`.
    pub os_version: Option<VersionRange>,
    /// On the device's `version_build` (the native app's version).
    pub native_version: Option<VersionRange>,
    pub plugin_version: Option<VersionRange>,
    /// Lower-case; `""` matches devices that send none.
    pub install_sources: Vec<String>,
    pub custom_ids: Vec<String>,
    pub custom_id_prefix: Option<String>,
    /// Lower-case device ids.
    pub device_ids: Vec<String>,
}

impl Targeting {
    pub fn is_everyone(&self) -> bool {
        *self == Targeting::default()
    }
}

/// A progressive rollout on a channel: `bundle_id` beside the stable bundle,
/// for `percentage_bps` of the devices (basis points, 0..=10000).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rollout {
    pub bundle_id: i64,
    pub percentage_bps: u32,
    /// Paused rollouts reach no new device; devices already on the bundle keep it.
    pub paused_at: Option<Millis>,
    /// New for every rollout (bundle): the seed of the device buckets.
    pub rollout_id: String,
    pub started_at: Millis,
    /// When the percentage last changed: a ramp step's dwell starts here.
    pub step_started_at: Millis,
    /// Devices outside it get the stable bundle.
    #[serde(default)]
    pub targeting: Targeting,
    /// When auto-pause last acted (or alerted) on this rollout: the cooldown runs from here.
    #[serde(default)]
    pub auto_pause_triggered_at: Option<Millis>,
}

/// What auto-pause does when a rollout fails too often.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AutoPauseAction {
    #[default]
    Pause,
    Rollback,
    Notify,
}

impl AutoPauseAction {
    pub fn as_str(self) -> &'static str {
        match self {
            AutoPauseAction::Pause => "pause",
            AutoPauseAction::Rollback => "rollback",
            AutoPauseAction::Notify => "notify",
        }
    }

    pub fn parse(s: &str) -> Option<AutoPauseAction> {
        match s {
            "pause" => Some(AutoPauseAction::Pause),
            "rollback" => Some(AutoPauseAction::Rollback),
            "notify" => Some(AutoPauseAction::Notify),
            _ => None,
        }
    }
}

/// Per channel: when the rollout's failures in the last `window_minutes`
/// are too many — at least `min_attempts` installs + failures and
/// `min_failures` failures, and the Wilson lower bound of the failure rate at
/// `confidence` above `failure_rate_bps` — do `action`, then not again
/// within `cooldown_minutes`. Names as the Capgo CLI's `--auto-pause-*`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AutoPausePolicy {
    pub enabled: bool,
    pub window_minutes: u32,
    pub failure_rate_bps: u32,
    /// Strictly between 0 and 1.
    pub confidence: f64,
    pub min_attempts: u32,
    pub min_failures: u32,
    pub action: AutoPauseAction,
    pub cooldown_minutes: u32,
}

impl Default for AutoPausePolicy {
    fn default() -> Self {
        AutoPausePolicy {
            enabled: false,
            window_minutes: 60,
            failure_rate_bps: 500,
            confidence: 0.95,
            min_attempts: 100,
            min_failures: 5,
            action: AutoPauseAction::Pause,
            cooldown_minutes: 60,
        }
    }
}

/// Per channel: raise the rollout through `steps_bps` (increasing, the last
/// 10000), staying at least `min_dwell_minutes` on each step and advancing
/// only when at least `min_attempts` installs + failures were seen on that
/// step and its failure rate is under the auto-pause threshold. At the last
/// step, `promote_at_end` makes the rollout bundle the stable one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RampPlan {
    pub enabled: bool,
    pub steps_bps: Vec<u32>,
    pub min_dwell_minutes: u32,
    pub min_attempts: u32,
    pub promote_at_end: bool,
}

impl Default for RampPlan {
    fn default() -> Self {
        RampPlan {
            enabled: false,
            steps_bps: vec![100, 500, 2500, 10_000],
            min_dwell_minutes: 60,
            min_attempts: 100,
            promote_at_end: true,
        }
    }
}

impl Channel {
    pub fn allows_platform(&self, platform: Platform) -> bool {
        match platform {
            Platform::Ios => self.ios,
            Platform::Android => self.android,
            Platform::Electron => self.electron,
        }
    }
}

/// A change to a channel's settings; `None` leaves a field as it is.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ChannelPatch {
    /// `Some(None)` = builtin, `Some(Some(id))` = that bundle.
    pub bundle_id: Option<Option<i64>>,
    pub public: Option<bool>,
    pub ios: Option<bool>,
    pub android: Option<bool>,
    pub electron: Option<bool>,
    pub allow_device_self_set: Option<bool>,
    pub allow_emulator: Option<bool>,
    pub allow_device: Option<bool>,
    pub allow_dev: Option<bool>,
    pub allow_prod: Option<bool>,
    pub disable_auto_update: Option<AutoUpdatePolicy>,
    pub disable_auto_update_under_native: Option<bool>,
    pub targeting: Option<Targeting>,
    /// `Some(None)` ends the rollout; `Some(Some(r))` stores `r` as it is
    /// (see `rollout::apply_change` for how a change is computed).
    pub rollout: Option<Option<Rollout>>,
    pub auto_pause: Option<AutoPausePolicy>,
    pub ramp: Option<RampPlan>,
}

impl ChannelPatch {
    /// Changes every field of `channel` that the patch sets.
    pub fn apply_to(&self, channel: &mut Channel) {
        fn set<T: Clone>(field: &mut T, value: &Option<T>) {
            if let Some(value) = value {
                *field = value.clone();
            }
        }
        // Destructured so that a new patch field cannot be forgotten here.
        let ChannelPatch {
            bundle_id,
            public,
            ios,
            android,
            electron,
            allow_device_self_set,
            allow_emulator,
            allow_device,
            allow_dev,
            allow_prod,
            disable_auto_update,
            disable_auto_update_under_native,
            targeting,
            rollout,
            auto_pause,
            ramp,
        } = self;
        set(&mut channel.bundle_id, bundle_id);
        set(&mut channel.public, public);
        set(&mut channel.ios, ios);
        set(&mut channel.android, android);
        set(&mut channel.electron, electron);
        set(&mut channel.allow_device_self_set, allow_device_self_set);
        set(&mut channel.allow_emulator, allow_emulator);
        set(&mut channel.allow_device, allow_device);
        set(&mut channel.allow_dev, allow_dev);
        set(&mut channel.allow_prod, allow_prod);
        set(&mut channel.disable_auto_update, disable_auto_update);
        set(
            &mut channel.disable_auto_update_under_native,
            disable_auto_update_under_native,
        );
        set(&mut channel.targeting, targeting);
        set(&mut channel.rollout, rollout);
        set(&mut channel.auto_pause, auto_pause);
        set(&mut channel.ramp, ramp);
    }

    /// Folds a later patch into this one: the fields it sets win.
    pub fn merge(&mut self, later: ChannelPatch) {
        fn set<T>(field: &mut Option<T>, value: Option<T>) {
            if value.is_some() {
                *field = value;
            }
        }
        let ChannelPatch {
            bundle_id,
            public,
            ios,
            android,
            electron,
            allow_device_self_set,
            allow_emulator,
            allow_device,
            allow_dev,
            allow_prod,
            disable_auto_update,
            disable_auto_update_under_native,
            targeting,
            rollout,
            auto_pause,
            ramp,
        } = later;
        set(&mut self.bundle_id, bundle_id);
        set(&mut self.public, public);
        set(&mut self.ios, ios);
        set(&mut self.android, android);
        set(&mut self.electron, electron);
        set(&mut self.allow_device_self_set, allow_device_self_set);
        set(&mut self.allow_emulator, allow_emulator);
        set(&mut self.allow_device, allow_device);
        set(&mut self.allow_dev, allow_dev);
        set(&mut self.allow_prod, allow_prod);
        set(&mut self.disable_auto_update, disable_auto_update);
        set(
            &mut self.disable_auto_update_under_native,
            disable_auto_update_under_native,
        );
        set(&mut self.targeting, targeting);
        set(&mut self.rollout, rollout);
        set(&mut self.auto_pause, auto_pause);
        set(&mut self.ramp, ramp);
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OverrideSource {
    /// Set through the management API or CLI.
    Admin,
    /// Set by an old plugin through `POST /channel_self`.
    Device,
}

impl OverrideSource {
    pub fn as_str(self) -> &'static str {
        match self {
            OverrideSource::Admin => "admin",
            OverrideSource::Device => "device",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceOverride {
    pub app_id: String,
    pub device_id: String,
    pub channel_id: i64,
    pub source: OverrideSource,
    pub created_at: Millis,
}

/// Everything the update decision needs about one app, held in memory and
/// swapped atomically when it changes.
#[derive(Clone, Debug, Default)]
pub struct ReleaseConfig {
    pub app: Option<App>,
    /// Sorted by (name, id), as the reference service orders candidates.
    pub channels: Vec<Channel>,
    /// Every bundle a channel points at, deleted ones included.
    pub bundles: HashMap<i64, Arc<Bundle>>,
    /// device_id (lower-case) → override.
    pub overrides: HashMap<String, DeviceOverride>,
}

impl ReleaseConfig {
    pub fn channel_by_id(&self, id: i64) -> Option<&Channel> {
        self.channels.iter().find(|c| c.id == id)
    }

    pub fn bundle(&self, id: i64) -> Option<&Bundle> {
        self.bundles.get(&id).map(|b| b.as_ref())
    }
}

/// What one device request tells about the device, for the registry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceSighting {
    pub app_id: String,
    pub device_id: String,
    pub platform: String,
    pub plugin_version: Option<String>,
    pub version_os: Option<String>,
    pub version_build: Option<String>,
    pub version_code: Option<String>,
    /// The bundle the device says it runs; `None` leaves the stored one (e.g. `*_fail` events).
    pub version_name: Option<String>,
    /// Trimmed; `None`/empty keeps the stored value.
    pub custom_id: Option<String>,
    pub is_prod: bool,
    pub is_emulator: bool,
    /// Overwritten (with null when absent), as the reference service does.
    pub default_channel: Option<String>,
    pub key_id: Option<String>,
    /// Trimmed and lower-cased; `None` keeps the stored value.
    pub install_source: Option<String>,
    /// The bundle `/updates` last offered; `None` keeps the stored value.
    pub last_offered_version: Option<String>,
    /// The outcome code of the last `/updates` (`get`, or an error code); `None` keeps it.
    pub last_update_outcome: Option<String>,
    /// When the server received the request (its clock): `last_seen` is the
    /// newest of these.
    pub seen_at: Millis,
    /// When each group of the fields above was observed. Of two sightings of
    /// a device, each field comes from the one observed last that carries it,
    /// whatever order they are written in (see [`Observed`]).
    pub observed: Observed,
}

/// Where an observation of a device falls in time, as an order key: twice
/// the server-clock millisecond, plus one for a stats event. Of an update
/// check and a stats event of the same millisecond, the stats event counts
/// as the later: the plugin sends `set` after the check that offered the
/// bundle, and the check's sighting waits in the registry buffer while the
/// stats commit is written at once. `NEVER` (0) sorts before every
/// observation.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct ObservedAt(i64);

impl ObservedAt {
    pub const NEVER: ObservedAt = ObservedAt(0);

    /// An `/updates` request the server received at `at`.
    pub fn update_check(at: Millis) -> ObservedAt {
        ObservedAt(at.max(0).saturating_mul(2))
    }

    /// A stats event the server places at `at` (see
    /// `stats::anchor_observations`).
    pub fn stats_event(at: Millis) -> ObservedAt {
        ObservedAt(at.max(0).saturating_mul(2).saturating_add(1))
    }

    /// The order key, as the registry stores it.
    pub fn key(self) -> i64 {
        self.0
    }

    /// The server-clock millisecond.
    pub fn millis(self) -> Millis {
        self.0 / 2
    }
}

/// When each group of a [`DeviceSighting`]'s fields was observed. The groups
/// are what the two paths write differently: both `/updates` and stats
/// events report the device facts; stats events that name another bundle
/// (failures, downloads) say nothing of the running one; only `/updates`
/// has an offer and an outcome, and an offer only when it offered something.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observed {
    /// `platform`, `plugin_version`, `version_os`, `version_build`,
    /// `version_code`, `custom_id`, `is_prod`, `is_emulator`,
    /// `default_channel`, `key_id`, `install_source`.
    pub facts: ObservedAt,
    pub version_name: ObservedAt,
    pub last_offered_version: ObservedAt,
    pub last_update_outcome: ObservedAt,
}

impl Observed {
    /// Every field observed at `at`.
    pub fn all(at: ObservedAt) -> Observed {
        Observed {
            facts: at,
            version_name: at,
            last_offered_version: at,
            last_update_outcome: at,
        }
    }
}

impl DeviceSighting {
    /// Folds a sighting of the same device that arrived after this one into
    /// it, so that writing the result equals writing both in order: each
    /// field from the one observed last that carries it (a tie goes to
    /// `later`), the device facts as a group, `seen_at` the newest.
    pub fn merged_with(mut self, mut later: DeviceSighting) -> DeviceSighting {
        fn pick<T>(
            earlier: (Option<T>, ObservedAt),
            later: (Option<T>, ObservedAt),
        ) -> (Option<T>, ObservedAt) {
            match (&earlier.0, &later.0) {
                (_, None) => earlier,
                (Some(_), Some(_)) if later.1 < earlier.1 => earlier,
                _ => later,
            }
        }
        let version_name = pick(
            (self.version_name.take(), self.observed.version_name),
            (later.version_name.take(), later.observed.version_name),
        );
        let offered = pick(
            (
                self.last_offered_version.take(),
                self.observed.last_offered_version,
            ),
            (
                later.last_offered_version.take(),
                later.observed.last_offered_version,
            ),
        );
        let outcome = pick(
            (
                self.last_update_outcome.take(),
                self.observed.last_update_outcome,
            ),
            (
                later.last_update_outcome.take(),
                later.observed.last_update_outcome,
            ),
        );
        let seen_at = self.seen_at.max(later.seen_at);
        // The facts are one group, as the registry compares them: the other
        // sighting fills in where the newer is silent only if it is older
        // by arrival too (written after the newer one, it would not land).
        let mut merged = if later.observed.facts >= self.observed.facts {
            DeviceSighting {
                plugin_version: later.plugin_version.or(self.plugin_version),
                version_os: later.version_os.or(self.version_os),
                version_build: later.version_build.or(self.version_build),
                version_code: later.version_code.or(self.version_code),
                custom_id: later.custom_id.or(self.custom_id),
                key_id: later.key_id.or(self.key_id),
                install_source: later.install_source.or(self.install_source),
                ..later
            }
        } else {
            self
        };
        (merged.version_name, merged.observed.version_name) = version_name;
        (
            merged.last_offered_version,
            merged.observed.last_offered_version,
        ) = offered;
        (
            merged.last_update_outcome,
            merged.observed.last_update_outcome,
        ) = outcome;
        merged.seen_at = seen_at;
        merged
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Device {
    pub app_id: String,
    pub device_id: String,
    pub platform: String,
    pub plugin_version: Option<String>,
    pub version_os: Option<String>,
    pub version_build: Option<String>,
    pub version_code: Option<String>,
    pub version_name: Option<String>,
    pub custom_id: Option<String>,
    pub is_prod: bool,
    pub is_emulator: bool,
    pub default_channel: Option<String>,
    pub key_id: Option<String>,
    pub install_source: Option<String>,
    pub last_offered_version: Option<String>,
    pub last_update_outcome: Option<String>,
    pub first_seen: Millis,
    pub last_seen: Millis,
}

/// One stats event as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatsEvent {
    pub app_id: String,
    pub device_id: String,
    pub action: String,
    /// Verbatim, composite `version:file` names kept.
    pub version_name: String,
    pub old_version_name: Option<String>,
    pub platform: String,
    pub plugin_version: Option<String>,
    pub version_build: Option<String>,
    pub is_prod: bool,
    pub is_emulator: bool,
    pub metadata: Option<BTreeMap<String, String>>,
    /// When the device says the event happened (else arrival time).
    pub timestamp: Millis,
    pub received_at: Millis,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Viewer,
    Publisher,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Publisher => "publisher",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "viewer" => Some(Role::Viewer),
            "publisher" => Some(Role::Publisher),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKey {
    pub id: i64,
    pub name: String,
    /// The first characters of the key, to recognise it in lists.
    pub prefix: String,
    pub role: Role,
    /// Limited to this app when set.
    pub app_id: Option<String>,
    pub expires_at: Option<Millis>,
    pub created_at: Millis,
    pub revoked_at: Option<Millis>,
}

impl ApiKey {
    pub fn is_usable(&self, now: Millis) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|e| e > now)
    }
}

/// Who made a change, and why: stored with channel history and audit entries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeContext {
    pub at: Millis,
    /// An API key's name (`key:<name>`), `control-loop`, `schedule:<id>`, `cli:offline`.
    pub actor: String,
    /// What kind of change: `set`, `rollout_start`, `promote`, `rollback`,
    /// `auto_rollback`, `ramp`, `schedule`, `update`, …
    pub reason: String,
}

/// One change of what a channel serves (stable bundle or rollout).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelHistoryEntry {
    pub id: i64,
    pub app_id: String,
    pub channel: String,
    /// The stable bundle's name after the change (`builtin` for none).
    pub bundle: String,
    pub rollout_bundle: Option<String>,
    pub rollout_percentage_bps: Option<u32>,
    pub rollout_paused: bool,
    pub at: Millis,
    pub actor: String,
    pub reason: String,
}

/// What the rollout control loop decided, and the figures it decided on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RolloutDecision {
    pub id: i64,
    pub app_id: String,
    pub channel: String,
    pub rollout_id: String,
    pub bundle: String,
    pub at: Millis,
    /// `advanced`, `held`, `paused`, `rolled_back`, `notified`, `promoted`.
    pub action: String,
    /// Stable code of the reason (`healthy`, `dwell_not_reached`,
    /// `not_enough_attempts`, `failure_rate_above_threshold`, `cooldown`, …).
    pub reason: String,
    /// A sentence for people, with the numbers.
    pub message: String,
    pub from_bps: u32,
    pub to_bps: u32,
    pub attempts: i64,
    pub failures: i64,
    pub failure_rate: Option<f64>,
    pub wilson_lower_bound: Option<f64>,
    pub threshold_bps: u32,
}

/// Installs (`set`) and failures (`*_fail`) of one bundle on one channel in a
/// time window, from the per-minute rollups.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    pub installs: i64,
    pub failures: i64,
}

impl Health {
    pub fn attempts(&self) -> i64 {
        self.installs + self.failures
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ScheduledAction {
    /// Make `bundle` the channel's stable bundle.
    SetBundle { bundle: String },
    /// Start a rollout of `bundle` at `percentage_bps`.
    StartRollout { bundle: String, percentage_bps: u32 },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScheduleStatus {
    Pending,
    Done,
    Failed,
    Cancelled,
}

impl ScheduleStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ScheduleStatus::Pending => "pending",
            ScheduleStatus::Done => "done",
            ScheduleStatus::Failed => "failed",
            ScheduleStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<ScheduleStatus> {
        match s {
            "pending" => Some(ScheduleStatus::Pending),
            "done" => Some(ScheduleStatus::Done),
            "failed" => Some(ScheduleStatus::Failed),
            "cancelled" => Some(ScheduleStatus::Cancelled),
            _ => None,
        }
    }
}

/// A release change to make on a channel at `run_at`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduledRelease {
    pub id: i64,
    pub app_id: String,
    pub channel: String,
    pub run_at: Millis,
    pub action: ScheduledAction,
    /// Checked when it runs: refused if incompatible unless accepted here.
    pub accept_incompatible: bool,
    pub status: ScheduleStatus,
    pub created_by: String,
    pub created_at: Millis,
    pub executed_at: Option<Millis>,
    /// Why it failed, or what it did.
    pub result: Option<String>,
}

/// One management change: who, what, before and after.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub id: i64,
    pub at: Millis,
    /// `key:<name>`, `control-loop`, `schedule:<id>`, `cli:offline`.
    pub actor: String,
    pub api_key_id: Option<i64>,
    pub app_id: Option<String>,
    /// Dotted: `channel.update`, `bundle.create`, `apikey.revoke`, …
    pub action: String,
    /// What was changed (channel name, bundle version, key name, …).
    pub target: String,
    pub before: Option<serde_json::Value>,
    pub after: Option<serde_json::Value>,
}

/// Where signed event notifications go.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Webhook {
    pub id: i64,
    /// `None` = events of every app.
    pub app_id: Option<String>,
    pub url: String,
    /// `whsec_` + base64 key (Standard Webhooks).
    pub secret: String,
    /// Event types (`bundle.uploaded`, `channel.changed`, `rollout.*` …); empty = all.
    pub events: Vec<String>,
    pub enabled: bool,
    pub created_at: Millis,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryStatus {
    Pending,
    Succeeded,
    /// Every attempt failed; no more retries.
    Failed,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Succeeded => "succeeded",
            DeliveryStatus::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<DeliveryStatus> {
        match s {
            "pending" => Some(DeliveryStatus::Pending),
            "succeeded" => Some(DeliveryStatus::Succeeded),
            "failed" => Some(DeliveryStatus::Failed),
            _ => None,
        }
    }
}

/// One event for one webhook, with its attempts so far.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookDelivery {
    pub id: i64,
    pub webhook_id: i64,
    /// The `webhook-id` header: the same on every retry.
    pub message_id: String,
    pub event_type: String,
    /// The exact body sent (and signed).
    pub payload: String,
    pub status: DeliveryStatus,
    pub attempts: u32,
    pub next_attempt_at: Option<Millis>,
    pub last_status_code: Option<u16>,
    pub last_error: Option<String>,
    pub created_at: Millis,
    pub delivered_at: Option<Millis>,
}

/// The time, injectable so that tests can run days of a rollout in a second.
pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now(&self) -> Millis;
}

#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Millis {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as Millis)
            .unwrap_or(0)
    }
}

/// A clock that moves only when told to.
#[derive(Debug, Default)]
pub struct ManualClock(std::sync::atomic::AtomicI64);

impl ManualClock {
    pub fn new(start: Millis) -> ManualClock {
        ManualClock(std::sync::atomic::AtomicI64::new(start))
    }

    pub fn set(&self, at: Millis) {
        self.0.store(at, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn advance(&self, by: Millis) {
        self.0.fetch_add(by, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Millis {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(expires_at: Option<Millis>, revoked_at: Option<Millis>) -> ApiKey {
        ApiKey {
            id: 1,
            name: "ci".into(),
            prefix: "upd_abcd".into(),
            role: Role::Publisher,
            app_id: None,
            expires_at,
            created_at: 0,
            revoked_at,
        }
    }

    #[test]
    fn api_keys_stop_working_when_expired_or_revoked() {
        assert!(key(None, None).is_usable(1_000));
        assert!(key(Some(1_001), None).is_usable(1_000));
        assert!(!key(Some(1_000), None).is_usable(1_000));
        assert!(!key(None, Some(500)).is_usable(1_000));
    }

    #[test]
    fn roles_are_ordered_by_what_they_allow() {
        assert!(Role::Viewer < Role::Publisher && Role::Publisher < Role::Admin);
        for role in [Role::Viewer, Role::Publisher, Role::Admin] {
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
    }

    #[test]
    fn encrypted_bundles_send_their_rsa_checksum() {
        let mut bundle = Bundle {
            id: 1,
            app_id: "com.example.app".into(),
            name: "1.0.0".into(),
            checksum: Some("aa".into()),
            encrypted_checksum: Some("bb".into()),
            session_key: None,
            key_id: None,
            external_url: None,
            storage_path: None,
            zip_sha256: None,
            size: None,
            manifest: Vec::new(),
            min_update_version: None,
            link: None,
            comment: None,
            native_packages: None,
            deleted: false,
            created_at: 0,
            deleted_at: None,
        };
        assert_eq!(bundle.device_checksum(), Some("aa"));
        bundle.session_key = Some("iv:key".into());
        assert_eq!(bundle.device_checksum(), Some("bb"));
    }
}
