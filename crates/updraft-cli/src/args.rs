//! The command-line surface (clap), and how arguments become request bodies.
//! Argument order mirrors the Capgo CLI: the object first, then the optional app id.

use crate::error::CliError;
use clap::{Args, Subcommand, ValueEnum};
use serde_json::{json, Map, Value};
use std::path::PathBuf;
use updraft_core::model::{AutoUpdatePolicy, Role};

pub const DEFAULT_SERVER: &str = "http://127.0.0.1:8080";
pub const DEFAULT_DATA_DIR: &str = "./updraft-data";

/// Options every command accepts, anywhere on the command line.
#[derive(Args, Clone, Debug)]
#[command(next_help_heading = "Global options")]
pub struct GlobalOpts {
    /// Base URL of the Updraft server
    #[arg(long, global = true, env = "UPDRAFT_SERVER", default_value = DEFAULT_SERVER, value_name = "URL")]
    pub server: String,
    /// API key for the management API (create one with `updraft apikey create`)
    #[arg(
        long,
        global = true,
        env = "UPDRAFT_APIKEY",
        hide_env_values = true,
        value_name = "KEY"
    )]
    pub apikey: Option<String>,
    /// Print JSON on stdout instead of tables
    #[arg(long, global = true)]
    pub json: bool,
    /// Data directory (database and files): used by `serve` and the offline `apikey` commands
    #[arg(long, global = true, env = "UPDRAFT_DATA_DIR", default_value = DEFAULT_DATA_DIR, value_name = "DIR")]
    pub data_dir: PathBuf,
}

#[derive(Subcommand, Clone, Debug)]
pub enum Command {
    /// Manage API keys directly in the data directory (no server needed)
    #[command(subcommand)]
    Apikey(ApikeyCommand),
    /// Manage apps
    #[command(subcommand)]
    App(AppCommand),
    /// Manage bundles
    #[command(subcommand)]
    Bundle(BundleCommand),
    /// Manage channels
    #[command(subcommand)]
    Channel(ChannelCommand),
    /// Inspect devices and set their channel
    #[command(subcommand)]
    Device(DeviceCommand),
    /// End-to-end encryption keys
    #[command(subcommand)]
    Key(KeyCommand),
    /// Delete stored files that no bundle uses any more
    Gc,
    /// Release analytics of an app: active devices, installs, failures, adoption
    Stats(StatsArgs),
    /// Raw stats events
    #[command(subcommand)]
    Events(EventsCommand),
    /// The audit log: every management change, who made it, before and after
    Audit(crate::ops::AuditArgs),
    /// Signed notifications of releases and rollouts (Standard Webhooks)
    #[command(subcommand)]
    Webhook(crate::ops::WebhookCommand),
}

#[derive(Args, Clone, Debug)]
pub struct StatsArgs {
    /// App id (default: the appId of ./capacitor.config.json)
    pub app_id: Option<String>,
    /// Only this channel
    #[arg(long)]
    pub channel: Option<String>,
    /// Only this bundle (version)
    #[arg(long)]
    pub bundle: Option<String>,
    /// Start of the range: 7d, 24h, 2w, YYYY-MM-DD or epoch ms
    #[arg(long, default_value = "7d")]
    pub since: String,
    /// End of the range (default: now)
    #[arg(long)]
    pub until: Option<String>,
}

#[derive(Subcommand, Clone, Debug)]
pub enum EventsCommand {
    /// Export raw events as CSV or NDJSON (streamed)
    Export(EventsExportArgs),
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportFormatArg {
    Csv,
    Ndjson,
}

#[derive(Args, Clone, Debug)]
pub struct EventsExportArgs {
    /// App id (default: the appId of ./capacitor.config.json)
    pub app_id: Option<String>,
    #[arg(long, value_enum, default_value_t = ExportFormatArg::Csv)]
    pub format: ExportFormatArg,
    /// Only events since: 7d, 24h, YYYY-MM-DD or epoch ms
    #[arg(long)]
    pub since: Option<String>,
    /// Only events before this time
    #[arg(long)]
    pub until: Option<String>,
    /// Only this device
    #[arg(long)]
    pub device_id: Option<String>,
    /// Write to this file instead of stdout
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

#[derive(Subcommand, Clone, Debug)]
pub enum KeyCommand {
    /// Write a new RSA-2048 key pair (`.capgo_key_v2`, `.capgo_key_v2.pub`) and print the
    /// `capacitor.config` snippet for the app
    Create {
        /// Folder to write the keys into
        #[arg(long, value_name = "DIR", default_value = ".")]
        dir: PathBuf,
        /// Overwrite existing key files
        #[arg(long)]
        force: bool,
    },
}

#[derive(Subcommand, Clone, Debug)]
pub enum ApikeyCommand {
    /// Create an API key and print it (it is shown only once)
    Create(ApikeyCreateArgs),
    /// List API keys
    List,
    /// Revoke an API key
    Revoke {
        /// Numeric id or name of the key
        id_or_name: String,
    },
}

#[derive(Args, Clone, Debug)]
pub struct ApikeyCreateArgs {
    /// A unique name for the key (e.g. "ci")
    #[arg(long)]
    pub name: String,
    /// What the key may do
    #[arg(long, value_enum, default_value_t = RoleArg::Admin)]
    pub role: RoleArg,
    /// Limit the key to this app
    #[arg(long = "app", value_name = "APP_ID")]
    pub app_id: Option<String>,
    /// Let the key expire after this many days
    #[arg(long, value_name = "DAYS", value_parser = clap::value_parser!(u32).range(1..=36_500))]
    pub expires_in_days: Option<u32>,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum RoleArg {
    Admin,
    Publisher,
    Viewer,
}

impl From<RoleArg> for Role {
    fn from(role: RoleArg) -> Role {
        match role {
            RoleArg::Admin => Role::Admin,
            RoleArg::Publisher => Role::Publisher,
            RoleArg::Viewer => Role::Viewer,
        }
    }
}

#[derive(Subcommand, Clone, Debug)]
pub enum AppCommand {
    /// Register an app
    Add {
        /// Reverse-domain app id, e.g. com.example.app
        app_id: String,
        /// Display name (defaults to the app id)
        #[arg(long)]
        name: Option<String>,
    },
    /// List apps
    List,
    /// Delete an app with its channels, bundles, devices and stats
    Delete {
        /// App id
        app_id: String,
    },
}

#[derive(Subcommand, Clone, Debug)]
pub enum BundleCommand {
    /// Register a bundle
    // Boxed so that `Command` stays small next to the binary's other subcommands.
    Upload(Box<BundleUploadArgs>),
    /// List bundles, newest first
    List {
        /// App id (default: the appId of ./capacitor.config.json)
        app_id: Option<String>,
        /// Also show deleted bundles
        #[arg(long)]
        include_deleted: bool,
    },
    /// Delete a bundle (its version can never be registered again)
    Delete {
        /// Bundle version
        version: String,
        /// App id (default: the appId of ./capacitor.config.json)
        app_id: Option<String>,
    },
}

#[derive(Args, Clone, Debug)]
pub struct BundleUploadArgs {
    /// App id (default: the appId of ./capacitor.config.json)
    pub app_id: Option<String>,
    /// Semver version of the bundle
    #[arg(short, long, value_name = "VERSION")]
    pub bundle: String,
    /// Folder (zipped for you) or .zip file to upload to Updraft
    #[arg(
        short,
        long,
        value_name = "DIR_OR_ZIP",
        required_unless_present = "external"
    )]
    pub path: Option<PathBuf>,
    /// URL where devices download the zip (a bundle hosted elsewhere; nothing is uploaded)
    #[arg(short, long, value_name = "URL", conflicts_with = "path")]
    pub external: Option<String>,
    /// SHA-256 (64 hex) of the plaintext zip, or its RSA-encrypted form (512 hex); with
    /// --path it is computed, and a given value must match
    #[arg(long, value_name = "HEX", required_unless_present = "path")]
    pub checksum: Option<String>,
    /// Encrypt end to end with this RSA private key (default: ./.capgo_key_v2 when it exists,
    /// as the Capgo CLI does)
    #[arg(long, value_name = "PRIVATE_KEY", conflicts_with_all = ["external", "key_data_v2"])]
    pub key_v2: Option<PathBuf>,
    /// Encrypt end to end with this RSA private key, given as PEM text
    #[arg(long, value_name = "PEM", conflicts_with = "external")]
    pub key_data_v2: Option<String>,
    /// Upload in clear even though ./.capgo_key_v2 exists
    #[arg(long, conflicts_with_all = ["key_v2", "key_data_v2"])]
    pub no_key: bool,
    /// Also upload each file on its own, for delta (manifest) updates
    #[arg(long, conflicts_with = "external")]
    pub delta: bool,
    /// Upload only the delta files, no zip (devices whose plugin cannot read manifests get nothing)
    #[arg(long, conflicts_with_all = ["external", "delta"])]
    pub delta_only: bool,
    /// Do not draw a progress bar
    #[arg(long)]
    pub no_progress: bool,
    /// Point this channel at the new bundle (created if missing)
    #[arg(short, long)]
    pub channel: Option<String>,
    /// Minimum native version for `disable-auto-update metadata`
    #[arg(long, value_name = "VERSION")]
    pub min_update_version: Option<String>,
    /// Link shown to plugins that support it
    #[arg(long, value_name = "URL")]
    pub link: Option<String>,
    /// Comment shown to plugins that support it
    #[arg(long, value_name = "TEXT")]
    pub comment: Option<String>,
    /// Session key of an encrypted bundle: `<b64 iv>:<b64 rsa key>`
    #[arg(long, value_name = "KEY", conflicts_with_all = ["iv_session_key", "path"])]
    pub session_key: Option<String>,
    /// Same as --session-key (the Capgo CLI's name)
    #[arg(long, value_name = "KEY", conflicts_with = "path")]
    pub iv_session_key: Option<String>,
    /// Public key id the bundle was encrypted for
    #[arg(long, value_name = "ID", conflicts_with = "path")]
    pub key_id: Option<String>,
    /// RSA-encrypted checksum (512 hex)
    #[arg(long, value_name = "HEX", conflicts_with = "path")]
    pub encrypted_checksum: Option<String>,
}

impl BundleUploadArgs {
    /// The body of `POST /apps/{app_id}/bundles`; only given options are sent.
    pub fn request_body(&self) -> Result<Value, CliError> {
        let external_url = self
            .external
            .as_deref()
            .ok_or_else(|| CliError::invalid_argument("--external URL is required"))?;
        let checksum = self
            .checksum
            .as_deref()
            .ok_or_else(|| CliError::invalid_argument("--checksum HEX is required"))?;
        let mut body = Map::new();
        body.insert("version".into(), json!(self.bundle));
        body.insert("external_url".into(), json!(external_url));
        body.insert("checksum".into(), json!(checksum));
        let session_key = self.session_key.as_ref().or(self.iv_session_key.as_ref());
        let optional = [
            ("session_key", session_key),
            ("key_id", self.key_id.as_ref()),
            ("encrypted_checksum", self.encrypted_checksum.as_ref()),
            ("min_update_version", self.min_update_version.as_ref()),
            ("link", self.link.as_ref()),
            ("comment", self.comment.as_ref()),
            ("channel", self.channel.as_ref()),
        ];
        for (key, value) in optional {
            if let Some(value) = value {
                body.insert(key.into(), json!(value));
            }
        }
        Ok(Value::Object(body))
    }
}

#[derive(Subcommand, Clone, Debug)]
pub enum ChannelCommand {
    /// Create a channel
    Add {
        /// Channel name
        channel: String,
        /// App id (default: the appId of ./capacitor.config.json)
        app_id: Option<String>,
        /// Make it the default (public) channel
        #[arg(long)]
        default: bool,
    },
    /// Change a channel's settings (only the given flags change)
    Set(ChannelSetArgs),
    /// List channels
    List {
        /// App id (default: the appId of ./capacitor.config.json)
        app_id: Option<String>,
    },
    /// Delete a channel and its device overrides
    Delete {
        /// Channel name
        channel: String,
        /// App id (default: the appId of ./capacitor.config.json)
        app_id: Option<String>,
    },
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChannelState {
    /// The default (public) channel of its platforms
    Default,
    /// Only for devices assigned to it
    Normal,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum DisableAutoUpdateArg {
    Major,
    Minor,
    Patch,
    #[value(alias = "version_number")]
    Metadata,
    None,
}

impl From<DisableAutoUpdateArg> for AutoUpdatePolicy {
    fn from(arg: DisableAutoUpdateArg) -> AutoUpdatePolicy {
        match arg {
            DisableAutoUpdateArg::Major => AutoUpdatePolicy::Major,
            DisableAutoUpdateArg::Minor => AutoUpdatePolicy::Minor,
            DisableAutoUpdateArg::Patch => AutoUpdatePolicy::Patch,
            DisableAutoUpdateArg::Metadata => AutoUpdatePolicy::Metadata,
            DisableAutoUpdateArg::None => AutoUpdatePolicy::None,
        }
    }
}

/// Each `--x/--no-x` pair is one PATCH field; when both are given the last wins.
#[derive(Args, Clone, Debug)]
pub struct ChannelSetArgs {
    /// Channel name
    pub channel: String,
    /// App id (default: the appId of ./capacitor.config.json)
    pub app_id: Option<String>,
    /// Bundle version to serve, or `builtin`
    #[arg(short, long, value_name = "VERSION|builtin")]
    pub bundle: Option<String>,
    /// `default` makes the channel public, `normal` makes it private
    #[arg(long, value_enum)]
    pub state: Option<ChannelState>,
    /// Serve iOS devices
    #[arg(long, overrides_with = "no_ios")]
    pub ios: bool,
    /// Stop serving iOS devices
    #[arg(long, overrides_with = "ios")]
    pub no_ios: bool,
    /// Serve Android devices
    #[arg(long, overrides_with = "no_android")]
    pub android: bool,
    /// Stop serving Android devices
    #[arg(long, overrides_with = "android")]
    pub no_android: bool,
    /// Serve Electron devices
    #[arg(long, overrides_with = "no_electron")]
    pub electron: bool,
    /// Stop serving Electron devices
    #[arg(long, overrides_with = "electron")]
    pub no_electron: bool,
    /// Let devices assign themselves to this channel
    #[arg(long, overrides_with = "no_self_assign")]
    pub self_assign: bool,
    /// Forbid devices to assign themselves
    #[arg(long, overrides_with = "self_assign")]
    pub no_self_assign: bool,
    /// Block automatic updates across this kind of version change
    #[arg(long, value_enum, value_name = "LEVEL")]
    pub disable_auto_update: Option<DisableAutoUpdateArg>,
    /// Allow bundles older than the native version
    #[arg(long, overrides_with = "no_downgrade")]
    pub downgrade: bool,
    /// Refuse bundles older than the native version
    #[arg(long, overrides_with = "downgrade")]
    pub no_downgrade: bool,
    /// Serve development builds
    #[arg(long, overrides_with = "no_dev")]
    pub dev: bool,
    /// Do not serve development builds
    #[arg(long, overrides_with = "dev")]
    pub no_dev: bool,
    /// Serve production builds
    #[arg(long, overrides_with = "no_prod")]
    pub prod: bool,
    /// Do not serve production builds
    #[arg(long, overrides_with = "prod")]
    pub no_prod: bool,
    /// Serve emulators
    #[arg(long, overrides_with = "no_emulator")]
    pub emulator: bool,
    /// Do not serve emulators
    #[arg(long, overrides_with = "emulator")]
    pub no_emulator: bool,
    /// Serve physical devices
    #[arg(long, overrides_with = "no_device")]
    pub device: bool,
    /// Do not serve physical devices
    #[arg(long, overrides_with = "device")]
    pub no_device: bool,
}

/// `Some(true)` for `--x`, `Some(false)` for `--no-x`, `None` when neither was given.
fn flag_pair(on: bool, off: bool) -> Option<bool> {
    match (on, off) {
        (true, _) => Some(true),
        (false, true) => Some(false),
        (false, false) => None,
    }
}

impl ChannelSetArgs {
    /// The body of `PATCH /apps/{app_id}/channels/{name}`: only the settings
    /// given on the command line. An empty change is an error.
    pub fn patch_body(&self) -> Result<Value, CliError> {
        let mut body = Map::new();
        if let Some(bundle) = &self.bundle {
            body.insert("bundle".into(), json!(bundle));
        }
        if let Some(state) = self.state {
            body.insert("public".into(), json!(state == ChannelState::Default));
        }
        // `--downgrade` allows going under the native version: the stored flag is the opposite.
        let downgrade_blocked =
            flag_pair(self.downgrade, self.no_downgrade).map(|allowed| !allowed);
        let pairs = [
            ("ios", flag_pair(self.ios, self.no_ios)),
            ("android", flag_pair(self.android, self.no_android)),
            ("electron", flag_pair(self.electron, self.no_electron)),
            (
                "allow_device_self_set",
                flag_pair(self.self_assign, self.no_self_assign),
            ),
            ("allow_dev", flag_pair(self.dev, self.no_dev)),
            ("allow_prod", flag_pair(self.prod, self.no_prod)),
            ("allow_emulator", flag_pair(self.emulator, self.no_emulator)),
            ("allow_device", flag_pair(self.device, self.no_device)),
            ("disable_auto_update_under_native", downgrade_blocked),
        ];
        for (key, value) in pairs {
            if let Some(value) = value {
                body.insert(key.into(), json!(value));
            }
        }
        if let Some(policy) = self.disable_auto_update {
            body.insert(
                "disable_auto_update".into(),
                json!(AutoUpdatePolicy::from(policy).as_str()),
            );
        }
        if body.is_empty() {
            return Err(CliError::new(
                "nothing_to_set",
                "channel set needs at least one setting, e.g. --bundle 1.2.3, --state default or --no-ios",
            ));
        }
        Ok(Value::Object(body))
    }
}

#[derive(Subcommand, Clone, Debug)]
pub enum DeviceCommand {
    /// Assign a device to a channel (an override)
    Set {
        /// Device id
        device_id: String,
        /// App id (default: the appId of ./capacitor.config.json)
        app_id: Option<String>,
        /// Channel to assign the device to
        #[arg(short, long)]
        channel: String,
    },
    /// Remove a device's channel override
    Unset {
        /// Device id
        device_id: String,
        /// App id (default: the appId of ./capacitor.config.json)
        app_id: Option<String>,
    },
    /// List devices
    List(DeviceListArgs),
    /// Act like a device: check for an update, download, decrypt, verify and unpack it
    Simulate(Box<DeviceSimulateArgs>),
    /// Show one device, its override and recent events
    Show {
        /// Device id
        device_id: String,
        /// App id (default: the appId of ./capacitor.config.json)
        app_id: Option<String>,
    },
}

#[derive(Args, Clone, Debug)]
pub struct DeviceListArgs {
    /// App id (default: the appId of ./capacitor.config.json)
    pub app_id: Option<String>,
    /// Substring of the device id or custom id
    #[arg(long)]
    pub search: Option<String>,
    /// Only devices with this custom id
    #[arg(long, value_name = "ID")]
    pub custom_id: Option<String>,
    /// Only devices running this bundle version
    #[arg(long, value_name = "VERSION")]
    pub bundle: Option<String>,
    /// Devices per page (the server's default is 50)
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub limit: Option<u32>,
    /// Skip this many devices (paging)
    #[arg(long)]
    pub offset: Option<u32>,
}

impl DeviceListArgs {
    /// Query parameters for `GET /apps/{app_id}/devices`; only given filters are sent.
    pub fn query(&self) -> Vec<(&'static str, String)> {
        let mut query = Vec::new();
        if let Some(search) = &self.search {
            query.push(("search", search.clone()));
        }
        if let Some(custom_id) = &self.custom_id {
            query.push(("custom_id", custom_id.clone()));
        }
        if let Some(bundle) = &self.bundle {
            query.push(("bundle", bundle.clone()));
        }
        if let Some(limit) = self.limit {
            query.push(("limit", limit.to_string()));
        }
        if let Some(offset) = self.offset {
            query.push(("offset", offset.to_string()));
        }
        query
    }
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlatformArg {
    Android,
    Ios,
    Electron,
}

impl PlatformArg {
    pub fn as_str(self) -> &'static str {
        match self {
            PlatformArg::Android => "android",
            PlatformArg::Ios => "ios",
            PlatformArg::Electron => "electron",
        }
    }
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum DownloadMode {
    /// As the plugin: the manifest when the server sends one, else the zip
    Auto,
    /// Always the zip
    Zip,
    /// Always the manifest (fails when there is none)
    Manifest,
}

#[derive(Args, Clone, Debug)]
pub struct DeviceSimulateArgs {
    /// App id (default: the appId of ./capacitor.config.json)
    pub app_id: Option<String>,
    /// The device's platform
    #[arg(long, value_enum, default_value_t = PlatformArg::Android)]
    pub platform: PlatformArg,
    /// Native app version (versionName / CFBundleShortVersionString)
    #[arg(long, value_name = "VERSION", default_value = "1.0.0")]
    pub version_build: String,
    /// Bundle the device runs now (`builtin` = the one shipped in the app)
    #[arg(long, value_name = "VERSION", default_value = "builtin")]
    pub version_name: String,
    /// The app's `defaultChannel`
    #[arg(long)]
    pub channel: Option<String>,
    /// The app's `publicKey` (`.capgo_key_v2.pub`): the device decrypts and sends its key_id
    #[arg(long, value_name = "PATH")]
    pub public_key: Option<PathBuf>,
    /// Device id (default: a new random one)
    #[arg(long, value_name = "UUID")]
    pub device_id: Option<String>,
    /// Plugin version the device reports
    #[arg(long, value_name = "VERSION", default_value = "8.51.14")]
    pub plugin_version: String,
    /// Report as a development build
    #[arg(long)]
    pub dev: bool,
    /// Report as an emulator
    #[arg(long)]
    pub emulator: bool,
    /// Zip or manifest download
    #[arg(long, value_enum, default_value_t = DownloadMode::Auto)]
    pub download: DownloadMode,
    /// Update URL (default: <server>/updates)
    #[arg(long, value_name = "URL")]
    pub update_url: Option<String>,
    /// Folder to unpack the bundle into (default: a new folder under ./updraft-simulated)
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}
