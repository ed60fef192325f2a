//! The command-line surface (clap), and how arguments become request bodies.
//! Argument order mirrors the Capgo CLI: the object first, then the optional app id.

use clap::{Args, Subcommand, ValueEnum};
use std::path::PathBuf;
use updraft_core::model::{AutoUpdatePolicy, Role};
use updraft_core::rollout::FULL_BPS;

pub const DEFAULT_SERVER: &str = "http://127.0.0.1:8080";
pub const DEFAULT_DATA_DIR: &str = "./updraft-data";

/// Options every command accepts, anywhere on the command line.
#[derive(Args, Clone, Debug)]
#[command(next_help_heading = "Global options")]
pub struct GlobalOpts {
    /// Base URL of the Updraft server (default: the one of `updraft login`, else
    /// http://127.0.0.1:8080)
    #[arg(long, global = true, env = "UPDRAFT_SERVER", default_value = DEFAULT_SERVER, value_name = "URL")]
    pub server: String,
    /// API key for the management API (default: the one `updraft login` stored for
    /// this server)
    #[arg(
        short = 'a',
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
    /// Tables with every column and full values (on a terminal they fit its width)
    #[arg(long, global = true)]
    pub wide: bool,
    /// Data directory (database and files): used by `serve`; given (flag or
    /// environment), the `apikey` commands work on it instead of the server
    #[arg(long, global = true, env = "UPDRAFT_DATA_DIR", default_value = DEFAULT_DATA_DIR, value_name = "DIR")]
    pub data_dir: PathBuf,
    /// PostgreSQL instead of the data directory's SQLite file, for `serve`; given
    /// (flag or environment), the `apikey` commands work on it instead of the
    /// server (default: `database_url` of ./updraft.toml)
    #[arg(
        long,
        global = true,
        env = "UPDRAFT_DATABASE_URL",
        hide_env_values = true,
        value_name = "URL"
    )]
    pub database_url: Option<String>,
    #[arg(skip)]
    pub given: Given,
}

// ---- cli-keys: where the options came from, and `login` / `logout` / `whoami` ----

/// Which of [`GlobalOpts`]' options were chosen rather than defaulted: the
/// `apikey` commands go to the server or to the database by them (see
/// [`crate::apikeys`]). The binary sets it from clap's matches
/// ([`Given::from_matches`]), then [`crate::login::apply`] from the login file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Given {
    /// A server is configured: `--server`, `UPDRAFT_SERVER` or the login file.
    pub server: bool,
    /// `--data-dir`/`--database-url` or `UPDRAFT_DATA_DIR`/`UPDRAFT_DATABASE_URL`
    /// (not updraft.toml's: that is the server's own configuration).
    pub store: bool,
}

impl Given {
    pub fn from_matches(matches: &clap::ArgMatches) -> Given {
        use clap::parser::ValueSource;
        let chosen = |id: &str| {
            matches!(
                matches.value_source(id),
                Some(ValueSource::CommandLine | ValueSource::EnvVariable)
            )
        };
        let database_url = chosen("database_url")
            && matches
                .get_one::<String>("database_url")
                .is_some_and(|url| !url.trim().is_empty());
        Given {
            server: chosen("server"),
            store: chosen("data_dir") || database_url,
        }
    }
}

#[derive(Args, Clone, Debug)]
pub struct LoginArgs {
    /// Read the API key from the first line of stdin instead of asking for it
    #[arg(long)]
    pub apikey_stdin: bool,
}

// ---- end cli-keys ----

/// `updraft apikey --help`: how a key command picks the server or the database.
const APIKEY_ABOUT: &str = "Manage API keys.

Where the command goes:
  1. --data-dir / --database-url (or UPDRAFT_DATA_DIR / UPDRAFT_DATABASE_URL)
     given: directly to that database, without a server (how the first key is
     made). A data directory that does not exist yet is created, and said so.
  2. otherwise a server configured (--server, UPDRAFT_SERVER or `updraft login`):
     to that server's management API, with an admin API key. Only when that
     server does not answer and this directory has the server's data
     (./updraft-data, or updraft.toml's data_dir / database_url) does it work on
     that database instead, and says so on stderr.
  3. no server configured: on the local data directory or database when it
     exists (said on stderr), else refused; nothing is created.";

/// `updraft login --help`.
const LOGIN_ABOUT: &str = "Check an API key against the server and store both for later commands.

The server is --server (or UPDRAFT_SERVER, else the stored one, else
http://127.0.0.1:8080). The key is asked for on the terminal (not echoed), or
read from stdin with --apikey-stdin, or taken from --apikey / UPDRAFT_APIKEY.
It is checked (GET /api/v1/whoami) before anything is written.

The file is $XDG_CONFIG_HOME/updraft/login.toml (else ~/.config/updraft/login.toml),
created readable by you only (0600). Flags and environment variables win over
it; its key is only sent to its own server.";

#[derive(Subcommand, Clone, Debug)]
pub enum Command {
    /// Manage API keys: on the server (admin key needed), or with --data-dir /
    /// --database-url directly in its database (the first key)
    #[command(subcommand, long_about = APIKEY_ABOUT)]
    Apikey(ApikeyCommand),
    /// Check an API key against the server and store both for later commands
    /// (a per-user file only you can read)
    #[command(long_about = LOGIN_ABOUT)]
    Login(LoginArgs),
    /// Remove the stored server and API key
    Logout,
    /// The API key the CLI uses: its name, role, app scope and expiry
    Whoami,
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
    /// Release changes planned for a given time
    #[command(subcommand)]
    Schedule(ScheduleCommand),
    /// Console users, directly in the data directory or database (no server needed)
    #[command(subcommand)]
    User(crate::users::UserCommand),
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
    /// Delete an app with its channels, bundles, devices and stats. On a terminal
    /// it asks you to type the app id; otherwise it needs --yes
    Delete {
        /// App id
        app_id: String,
        /// Do not ask for confirmation (needed when stdin is not a terminal)
        #[arg(long, short = 'y')]
        yes: bool,
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
    /// Delete a bundle (its version can never be registered again); refused while a
    /// channel serves it or a pending schedule names it, unless --force
    Delete {
        /// Bundle version
        version: String,
        /// App id (default: the appId of ./capacitor.config.json)
        app_id: Option<String>,
        /// Delete it even though channels serve it or pending schedules name it
        #[arg(long)]
        force: bool,
    },
    /// Compare native packages (Capacitor plugins) with the channel's live bundle:
    /// this project's (package.json, node_modules) or a stored bundle's
    Compatibility(BundleCompatibilityArgs),
    /// Delete old bundles, keeping the newest N and every bundle a channel serves, a
    /// rollout uses or a pending schedule names. Shows the list and asks on a
    /// terminal; otherwise it needs --yes
    Cleanup(crate::cleanup::CleanupArgs),
}

#[derive(Args, Clone, Debug)]
pub struct BundleCompatibilityArgs {
    /// App id (default: the appId of ./capacitor.config.json)
    pub app_id: Option<String>,
    /// Channel whose live bundle to compare with
    #[arg(short, long)]
    pub channel: String,
    /// A stored bundle to check instead of the local project
    #[arg(short, long, value_name = "VERSION", conflicts_with_all = ["package_json", "node_modules"])]
    pub bundle: Option<String>,
    /// package.json files to read, comma-separated (default: ./package.json)
    #[arg(long, value_name = "PATHS")]
    pub package_json: Option<String>,
    /// node_modules folders to look in, comma-separated (default: ./node_modules and its parents')
    #[arg(long, value_name = "PATHS")]
    pub node_modules: Option<String>,
}

#[derive(Args, Clone, Debug)]
pub struct BundleUploadArgs {
    /// App id (default: the appId of ./capacitor.config.json)
    pub app_id: Option<String>,
    /// Semver version of the bundle (default: the version of ./package.json)
    #[arg(short, long, value_name = "VERSION")]
    pub bundle: Option<String>,
    /// Folder (zipped for you) or .zip file to upload to Updraft (default: the webDir
    /// of ./capacitor.config.ts, .js or .json)
    #[arg(short, long, value_name = "DIR_OR_ZIP")]
    pub path: Option<PathBuf>,
    /// Exit 0 when this version already exists with the same checksum (nothing is
    /// uploaded); a different checksum is still refused
    #[arg(long)]
    pub version_exists_ok: bool,
    /// URL where devices download the zip (a bundle hosted elsewhere; nothing is uploaded)
    #[arg(short, long, value_name = "URL", conflicts_with = "path")]
    pub external: Option<String>,
    /// SHA-256 (64 hex) of the plaintext zip, or its RSA-encrypted form (512 hex); with
    /// --path it is computed, and a given value must match. Required with --external,
    /// unless the bundle is encrypted (--iv-session-key with --encrypted-checksum)
    #[arg(long, value_name = "HEX")]
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
    /// Point this existing channel at the new bundle (a name that does not exist is
    /// refused before anything is uploaded, unless --create-channel)
    #[arg(short, long)]
    pub channel: Option<String>,
    /// Create --channel when it does not exist
    #[arg(long, requires = "channel")]
    pub create_channel: bool,
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
    /// Start a rollout of the new bundle on --channel at this percentage (0 to 100, e.g. 12.5)
    /// instead of making it the stable bundle
    #[arg(long, value_name = "PERCENT", value_parser = parse_percent, requires = "channel",
        conflicts_with = "rollout_percentage_bps")]
    pub rollout: Option<u32>,
    /// Same as --rollout, in basis points (0 to 10000)
    #[arg(long, value_name = "BPS", value_parser = parse_bps, requires = "channel")]
    pub rollout_percentage_bps: Option<u32>,
    /// Put the bundle on --channel even though its native packages differ from the live bundle's
    #[arg(long, requires = "channel", conflicts_with = "ignore_metadata_check")]
    pub accept_incompatible: bool,
    /// Do not read package.json / node_modules: the bundle's native packages stay unknown
    #[arg(long, conflicts_with_all = ["package_json", "node_modules"])]
    pub ignore_metadata_check: bool,
    /// package.json files to read native packages from, comma-separated (default: ./package.json)
    #[arg(long, value_name = "PATHS")]
    pub package_json: Option<String>,
    /// node_modules folders to look in, comma-separated (default: ./node_modules and its parents')
    #[arg(long, value_name = "PATHS")]
    pub node_modules: Option<String>,
}

/// `12.5` (percent) → `1250` (basis points); 0 to 100, at most two decimals are kept.
pub fn parse_percent(text: &str) -> Result<u32, String> {
    let value: f64 = text
        .trim()
        .trim_end_matches('%')
        .parse()
        .map_err(|_| format!("{text:?} is not a percentage (0 to 100, e.g. 12.5)"))?;
    if !value.is_finite() || !(0.0..=100.0).contains(&value) {
        return Err(format!("{text:?} is not between 0 and 100"));
    }
    // In range, so the rounded value fits: 0..=10000.
    Ok((value * 100.0).round() as u32)
}

/// Basis points: 0 to 10000.
pub fn parse_bps(text: &str) -> Result<u32, String> {
    let value: u32 = text
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a whole number of basis points (0 to 10000)"))?;
    if value > FULL_BPS {
        return Err(format!(
            "{value} is more than {FULL_BPS} basis points (100%)"
        ));
    }
    Ok(value)
}

/// A confidence strictly between 0 and 1 (e.g. 0.95).
pub fn parse_confidence(text: &str) -> Result<f64, String> {
    let value: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a number"))?;
    if !(value > 0.0 && value < 1.0) {
        return Err(format!(
            "{text:?} must be strictly between 0 and 1 (e.g. 0.95)"
        ));
    }
    Ok(value)
}

/// Ramp steps in percent, `1,5,25,100`, as basis points.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RampSteps(pub Vec<u32>);

pub fn parse_ramp_steps(text: &str) -> Result<RampSteps, String> {
    let steps = text
        .split(',')
        .map(str::trim)
        .filter(|step| !step.is_empty())
        .map(parse_percent)
        .collect::<Result<Vec<u32>, String>>()?;
    if steps.is_empty() {
        return Err("give the steps as percentages, e.g. 1,5,25,100".to_string());
    }
    if steps.windows(2).any(|pair| pair[0] >= pair[1]) {
        return Err(format!("{text:?}: the steps must increase"));
    }
    if steps.first() == Some(&0) {
        return Err(format!("{text:?}: a step of 0% reaches nobody"));
    }
    if steps.last() != Some(&FULL_BPS) {
        return Err(format!("{text:?}: the last step must be 100"));
    }
    Ok(RampSteps(steps))
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
        #[arg(short, long)]
        default: bool,
    },
    /// Change a channel's settings (only the given flags change)
    Set(ChannelSetArgs),
    /// List channels
    List {
        /// App id (default: the appId of ./capacitor.config.json)
        app_id: Option<String>,
    },
    /// Delete a channel and its device overrides. On a terminal it asks you to type
    /// the channel name; otherwise it needs --yes
    Delete {
        /// Channel name
        channel: String,
        /// App id (default: the appId of ./capacitor.config.json)
        app_id: Option<String>,
        /// Do not ask for confirmation (needed when stdin is not a terminal)
        #[arg(long, short = 'y')]
        yes: bool,
    },
    /// Show one channel with its rollout, targeting, auto-pause policy and ramp
    Show {
        /// Channel name
        channel: String,
        /// App id (default: the appId of ./capacitor.config.json)
        app_id: Option<String>,
    },
    /// Every change of what the channel serves, newest first: when, by whom, why
    History {
        /// Channel name
        channel: String,
        /// App id (default: the appId of ./capacitor.config.json)
        app_id: Option<String>,
        /// Most entries to show
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
        limit: Option<u32>,
    },
    /// Go back to the previous stable bundle (or --to a version); ends any rollout
    Rollback {
        /// Channel name
        channel: String,
        /// App id (default: the appId of ./capacitor.config.json)
        app_id: Option<String>,
        /// The bundle version to go back to (default: the one before the current)
        #[arg(long, value_name = "VERSION")]
        to: Option<String>,
        /// Go back to an unencrypted bundle although the current one is encrypted
        /// (on a terminal you are asked instead)
        #[arg(long)]
        force: bool,
    },
    /// What the rollout control loop decided (advanced, held, paused, …) and on which numbers
    Decisions {
        /// Channel name
        channel: String,
        /// App id (default: the appId of ./capacitor.config.json)
        app_id: Option<String>,
        /// Most decisions to show
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
        limit: Option<u32>,
    },
}

#[derive(Subcommand, Clone, Debug)]
pub enum ScheduleCommand {
    /// Set a bundle (or start a rollout) on a channel at a given time
    Add(ScheduleAddArgs),
    /// List scheduled release changes
    List {
        /// App id (default: the appId of ./capacitor.config.json)
        app_id: Option<String>,
    },
    /// Cancel a pending scheduled change
    Cancel {
        /// Schedule id (from `schedule list`)
        id: i64,
        /// App id (default: the appId of ./capacitor.config.json)
        app_id: Option<String>,
    },
}

#[derive(Args, Clone, Debug)]
pub struct ScheduleAddArgs {
    /// Channel name
    pub channel: String,
    /// App id (default: the appId of ./capacitor.config.json)
    pub app_id: Option<String>,
    /// Bundle version to release
    #[arg(short, long, value_name = "VERSION")]
    pub bundle: String,
    /// When: RFC 3339 (2026-12-01T09:00:00Z), epoch milliseconds, or from now (+30s, +30m, +2h, +1d)
    #[arg(long, value_name = "TIME", value_parser = parse_run_at)]
    pub at: RunAt,
    /// Start a rollout at this percentage (0 to 100) instead of setting the stable bundle
    #[arg(long, value_name = "PERCENT", value_parser = parse_percent, conflicts_with = "rollout_percentage_bps")]
    pub rollout: Option<u32>,
    /// Same as --rollout, in basis points
    #[arg(long, value_name = "BPS", value_parser = parse_bps)]
    pub rollout_percentage_bps: Option<u32>,
    /// Run even if the bundle's native packages differ from the live bundle's then
    #[arg(long)]
    pub accept_incompatible: bool,
}

/// When a scheduled change runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RunAt {
    /// Milliseconds from now.
    In(i64),
    /// Epoch milliseconds.
    At(i64),
    /// RFC 3339 text, checked by the server.
    Text(String),
}

pub fn parse_run_at(text: &str) -> Result<RunAt, String> {
    let text = text.trim();
    if let Some(relative) = text.strip_prefix('+') {
        let split = relative
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(relative.len());
        let (number, unit) = relative.split_at(split);
        let amount: i64 = number
            .parse()
            .map_err(|_| format!("{text:?}: expected +<number><s|m|h|d>, e.g. +30m"))?;
        let unit_ms: i64 = match unit {
            "s" => 1_000,
            "m" | "" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            _ => return Err(format!("{text:?}: the unit is s, m, h or d")),
        };
        return amount
            .checked_mul(unit_ms)
            .map(RunAt::In)
            .ok_or_else(|| format!("{text:?} is too far away"));
    }
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text
            .parse()
            .map(RunAt::At)
            .map_err(|_| format!("{text:?} is too large"));
    }
    let looks_like_rfc3339 = text.len() >= 20 && text.as_bytes().get(10) == Some(&b'T');
    if looks_like_rfc3339 {
        Ok(RunAt::Text(text.to_string()))
    } else {
        Err(format!(
            "{text:?}: give an RFC 3339 time (2026-12-01T09:00:00Z), epoch milliseconds or +30m"
        ))
    }
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

/// Each `--x/--no-x` pair is one PATCH field; giving both is a usage error.
#[derive(Args, Clone, Debug)]
pub struct ChannelSetArgs {
    /// Channel name
    pub channel: String,
    /// App id (default: the appId of ./capacitor.config.json)
    pub app_id: Option<String>,
    /// Bundle version to serve, or `builtin`
    #[arg(short, long, value_name = "VERSION|builtin")]
    pub bundle: Option<String>,
    /// Serve the version of ./package.json (the Capgo CLI's --latest)
    #[arg(long, conflicts_with_all = ["bundle", "latest_remote"])]
    pub latest: bool,
    /// Serve the newest bundle uploaded (not deleted)
    #[arg(long, conflicts_with = "bundle")]
    pub latest_remote: bool,
    /// Serve an unencrypted bundle although the channel's current bundle is encrypted
    /// (devices with a public key refuse it; on a terminal you are asked instead)
    #[arg(long)]
    pub force: bool,
    /// `default` makes the channel public, `normal` makes it private
    #[arg(short, long, value_enum)]
    pub state: Option<ChannelState>,
    /// Serve iOS devices
    #[arg(long, conflicts_with = "no_ios")]
    pub ios: bool,
    /// Stop serving iOS devices
    #[arg(long, conflicts_with = "ios")]
    pub no_ios: bool,
    /// Serve Android devices
    #[arg(long, conflicts_with = "no_android")]
    pub android: bool,
    /// Stop serving Android devices
    #[arg(long, conflicts_with = "android")]
    pub no_android: bool,
    /// Serve Electron devices
    #[arg(long, conflicts_with = "no_electron")]
    pub electron: bool,
    /// Stop serving Electron devices
    #[arg(long, conflicts_with = "electron")]
    pub no_electron: bool,
    /// Let devices assign themselves to this channel
    #[arg(long, conflicts_with = "no_self_assign")]
    pub self_assign: bool,
    /// Forbid devices to assign themselves
    #[arg(long, conflicts_with = "self_assign")]
    pub no_self_assign: bool,
    /// Block automatic updates across this kind of version change
    #[arg(long, value_enum, value_name = "LEVEL")]
    pub disable_auto_update: Option<DisableAutoUpdateArg>,
    /// Allow bundles older than the native version
    #[arg(long, conflicts_with = "no_downgrade")]
    pub downgrade: bool,
    /// Refuse bundles older than the native version
    #[arg(long, conflicts_with = "downgrade")]
    pub no_downgrade: bool,
    /// Serve development builds
    #[arg(long, conflicts_with = "no_dev")]
    pub dev: bool,
    /// Do not serve development builds
    #[arg(long, conflicts_with = "dev")]
    pub no_dev: bool,
    /// Serve production builds
    #[arg(long, conflicts_with = "no_prod")]
    pub prod: bool,
    /// Do not serve production builds
    #[arg(long, conflicts_with = "prod")]
    pub no_prod: bool,
    /// Serve emulators
    #[arg(long, conflicts_with = "no_emulator")]
    pub emulator: bool,
    /// Do not serve emulators
    #[arg(long, conflicts_with = "emulator")]
    pub no_emulator: bool,
    /// Serve physical devices
    #[arg(long, conflicts_with = "no_device")]
    pub device: bool,
    /// Do not serve physical devices
    #[arg(long, conflicts_with = "device")]
    pub no_device: bool,
    // Boxed: together these groups would make every `Command` large.
    #[command(flatten)]
    pub rollout: Box<RolloutFlags>,
    #[command(flatten)]
    pub auto_pause: Box<AutoPauseFlags>,
    #[command(flatten)]
    pub ramp: Box<RampFlags>,
    #[command(flatten)]
    pub targeting: Box<TargetingFlags>,
    #[command(flatten)]
    pub rollout_targeting: Box<RolloutTargetingFlags>,
}

/// The rollout of `channel set` (the Capgo CLI's names).
#[derive(Args, Clone, Debug, Default)]
#[command(next_help_heading = "Rollout")]
pub struct RolloutFlags {
    /// Bundle version to release gradually on this channel (a new rollout)
    #[arg(long, value_name = "VERSION")]
    pub rollout_bundle: Option<String>,
    /// Share of the channel's devices that get the rollout bundle, 0 to 100 (e.g. 12.5)
    #[arg(long, value_name = "PERCENT", value_parser = parse_percent,
        conflicts_with = "rollout_percentage_bps")]
    pub rollout_percentage: Option<u32>,
    /// Same as --rollout-percentage, in basis points (0 to 10000)
    #[arg(long, value_name = "BPS", value_parser = parse_bps)]
    pub rollout_percentage_bps: Option<u32>,
    /// Stop the rollout reaching new devices (devices already on it keep it)
    #[arg(long, conflicts_with_all = ["rollout_resume", "rollout_promote", "rollout_rollback"])]
    pub rollout_pause: bool,
    /// Let a paused rollout reach devices again
    #[arg(long, conflicts_with_all = ["rollout_promote", "rollout_rollback"])]
    pub rollout_resume: bool,
    /// Make the rollout bundle the stable bundle for every device and end the rollout
    #[arg(long, conflicts_with_all = ["rollout_rollback", "bundle", "latest", "latest_remote",
        "rollout_bundle", "rollout_percentage", "rollout_percentage_bps"])]
    pub rollout_promote: bool,
    /// End the rollout: every device goes back to the stable bundle
    #[arg(long, conflicts_with_all = ["rollout_bundle", "rollout_percentage", "rollout_percentage_bps"])]
    pub rollout_rollback: bool,
    /// Set the bundle even though its native packages differ from the live bundle's
    #[arg(long)]
    pub accept_incompatible: bool,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum AutoPauseActionArg {
    /// Stop the rollout reaching new devices
    Pause,
    /// End the rollout: devices go back to the stable bundle
    Rollback,
    /// Only record the decision and send a `rollout.alert` webhook
    Notify,
}

impl AutoPauseActionArg {
    pub fn as_str(self) -> &'static str {
        match self {
            AutoPauseActionArg::Pause => "pause",
            AutoPauseActionArg::Rollback => "rollback",
            AutoPauseActionArg::Notify => "notify",
        }
    }
}

/// When the control loop acts on a failing rollout (the Capgo CLI's `--auto-pause-*`).
#[derive(Args, Clone, Debug, Default)]
#[command(next_help_heading = "Auto-pause")]
pub struct AutoPauseFlags {
    /// Let the control loop act on a failing rollout
    #[arg(long, conflicts_with = "auto_pause_disabled")]
    pub auto_pause_enabled: bool,
    /// Never act automatically on this channel's rollouts
    #[arg(long, conflicts_with = "auto_pause_enabled")]
    pub auto_pause_disabled: bool,
    /// Minutes of recent stats to look at
    #[arg(long, value_name = "MINUTES", value_parser = clap::value_parser!(u32).range(1..))]
    pub auto_pause_window_minutes: Option<u32>,
    /// Failure-rate threshold in basis points (500 = 5%)
    #[arg(long, value_name = "BPS", value_parser = parse_bps)]
    pub auto_pause_failure_rate_bps: Option<u32>,
    /// How sure the loop must be that the failure rate is above the threshold (0 < c < 1)
    #[arg(long, value_name = "CONFIDENCE", value_parser = parse_confidence)]
    pub auto_pause_confidence: Option<f64>,
    /// Installs + failures needed before it may act
    #[arg(long, value_name = "N")]
    pub auto_pause_min_attempts: Option<u32>,
    /// Failures needed before it may act
    #[arg(long, value_name = "N")]
    pub auto_pause_min_failures: Option<u32>,
    /// What to do: pause, rollback or notify
    #[arg(long, value_enum, value_name = "ACTION")]
    pub auto_pause_action: Option<AutoPauseActionArg>,
    /// After acting, wait this long before acting again (at most 10080 = a week)
    #[arg(long, value_name = "MINUTES", value_parser = clap::value_parser!(u32).range(0..=10_080))]
    pub auto_pause_cooldown_minutes: Option<u32>,
}

/// How the control loop raises a healthy rollout (Updraft's own).
#[derive(Args, Clone, Debug, Default)]
#[command(next_help_heading = "Ramp")]
pub struct RampFlags {
    /// Raise healthy rollouts step by step
    #[arg(long, conflicts_with = "ramp_disabled")]
    pub ramp_enabled: bool,
    /// Leave the percentage to people
    #[arg(long, conflicts_with = "ramp_enabled")]
    pub ramp_disabled: bool,
    /// The steps in percent, increasing, ending at 100: 1,5,25,100
    #[arg(long, value_name = "PERCENTS", value_parser = parse_ramp_steps)]
    pub ramp_steps: Option<RampSteps>,
    /// Least time on each step
    #[arg(long, value_name = "MINUTES")]
    pub ramp_dwell_minutes: Option<u32>,
    /// Installs + failures needed on a step before moving on
    #[arg(long, value_name = "N")]
    pub ramp_min_attempts: Option<u32>,
    /// After the last step, make the rollout bundle the stable one
    #[arg(long, conflicts_with = "no_ramp_promote")]
    pub ramp_promote: bool,
    /// Stay at 100% after the last step
    #[arg(long, conflicts_with = "ramp_promote")]
    pub no_ramp_promote: bool,
}

/// Which devices the channel serves; others are refused `device_not_targeted`.
/// Given criteria replace those of the channel; the others stay.
#[derive(Args, Clone, Debug, Default)]
#[command(next_help_heading = "Channel targeting")]
pub struct TargetingFlags {
    /// Only these platforms (repeat the flag for several)
    #[arg(long, value_enum, value_name = "PLATFORM")]
    pub target_platform: Vec<PlatformArg>,
    /// OS version range, e.g. ">=14"
    #[arg(long, value_name = "RANGE")]
    pub target_os_version: Option<String>,
    /// Native app version range, e.g. ">=1.4, <2"
    #[arg(long, value_name = "RANGE")]
    pub target_native_version: Option<String>,
    /// Updater plugin version range, e.g. ">=8.40"
    #[arg(long, value_name = "RANGE")]
    pub target_plugin_version: Option<String>,
    /// Install source (google_play, app_store, testflight, …); repeatable
    #[arg(long, value_name = "SOURCE")]
    pub target_install_source: Vec<String>,
    /// Custom id; repeatable
    #[arg(long, value_name = "ID")]
    pub target_custom_id: Vec<String>,
    /// Custom ids starting with this
    #[arg(long, value_name = "PREFIX")]
    pub target_custom_id_prefix: Option<String>,
    /// Device id; repeatable
    #[arg(long, value_name = "DEVICE_ID")]
    pub target_device: Vec<String>,
    /// Serve every device again (removes all channel targeting)
    #[arg(long, conflicts_with_all = ["target_platform", "target_os_version", "target_native_version",
        "target_plugin_version", "target_install_source", "target_custom_id", "target_custom_id_prefix",
        "target_device"])]
    pub clear_targeting: bool,
}

/// Which devices the rollout may reach; others get the stable bundle.
/// The same criteria as the channel's, merged the same way.
#[derive(Args, Clone, Debug, Default)]
#[command(next_help_heading = "Rollout targeting")]
pub struct RolloutTargetingFlags {
    /// Only these platforms get the rollout (repeatable)
    #[arg(long, value_enum, value_name = "PLATFORM")]
    pub rollout_target_platform: Vec<PlatformArg>,
    /// OS version range for the rollout, e.g. ">=14"
    #[arg(long, value_name = "RANGE")]
    pub rollout_target_os_version: Option<String>,
    /// Native app version range for the rollout
    #[arg(long, value_name = "RANGE")]
    pub rollout_target_native_version: Option<String>,
    /// Updater plugin version range for the rollout, e.g. ">=8.40"
    #[arg(long, value_name = "RANGE")]
    pub rollout_target_plugin_version: Option<String>,
    /// Install source that may get the rollout (google_play, app_store, …); repeatable
    #[arg(long, value_name = "SOURCE")]
    pub rollout_target_install_source: Vec<String>,
    /// Custom id that may get the rollout; repeatable
    #[arg(long, value_name = "ID")]
    pub rollout_target_custom_id: Vec<String>,
    /// Custom ids starting with this may get the rollout
    #[arg(long, value_name = "PREFIX")]
    pub rollout_target_custom_id_prefix: Option<String>,
    /// Device id that may get the rollout; repeatable
    #[arg(long, value_name = "DEVICE_ID")]
    pub rollout_target_device: Vec<String>,
    /// Let the rollout reach every device of the channel again
    #[arg(long, conflicts_with_all = ["rollout_target_platform", "rollout_target_os_version",
        "rollout_target_native_version", "rollout_target_plugin_version",
        "rollout_target_install_source", "rollout_target_custom_id",
        "rollout_target_custom_id_prefix", "rollout_target_device"])]
    pub clear_rollout_targeting: bool,
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
    /// Why a device gets what it gets: its channel, each rule of the update
    /// decision on what it last reported, and the command that would change it
    Explain {
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
