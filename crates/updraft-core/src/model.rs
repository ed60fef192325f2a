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
    pub deleted: bool,
    pub created_at: Millis,
    pub deleted_at: Option<Millis>,
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

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
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
    pub created_at: Millis,
    pub updated_at: Millis,
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
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
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
    pub seen_at: Millis,
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
            deleted: false,
            created_at: 0,
            deleted_at: None,
        };
        assert_eq!(bundle.device_checksum(), Some("aa"));
        bundle.session_key = Some("iv:key".into());
        assert_eq!(bundle.device_checksum(), Some("bb"));
    }
}
