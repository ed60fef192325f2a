//! Server configuration, in layers: built-in defaults < `updraft.toml` (or
//! `--config PATH`) < environment (`UPDRAFT_*`) < command-line flags.

use anyhow::{bail, Context};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use updraft_server::state::ServerConfig;
use updraft_server::webhook_secrets::SecretKey;

#[derive(clap::Args, Debug, Clone)]
pub struct ServeArgs {
    /// Configuration file (default: ./updraft.toml when it exists)
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Address to listen on (env UPDRAFT_LISTEN; default 127.0.0.1:8080)
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Base URL of download links (env UPDRAFT_PUBLIC_URL; default: from the request's Host)
    #[arg(long, value_name = "URL")]
    pub public_url: Option<String>,
}

/// `updraft.toml`. Every key is optional.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub listen: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
    pub public_url: Option<String>,
    /// Largest device request body, in bytes (default 1 MiB).
    pub device_body_limit: Option<usize>,
    /// Largest management request body, in bytes (default 16 MiB).
    pub api_body_limit: Option<usize>,
    /// Stats requests waiting for a commit before new ones get 429 (default 4096).
    pub stats_queue_capacity: Option<usize>,
    /// How often coalesced device-registry writes are flushed (default 1000 ms).
    pub registry_flush_interval_ms: Option<u64>,
    /// Full reload of the in-memory release configuration (default 30 s).
    pub release_reload_interval_secs: Option<u64>,
    /// Extra CORS origins for the device routes (`*` = any).
    pub cors_allowed_origins: Option<Vec<String>>,
    /// Log filter, e.g. "info" or "updraft_server=debug" (RUST_LOG wins).
    pub log: Option<String>,
    /// Days raw stats events are kept (default 30); rollups are kept for good.
    pub event_retention_days: Option<u32>,
    /// How often old raw events are deleted (default 3600 s).
    pub retention_interval_secs: Option<u64>,
    /// Largest file one upload may declare, in bytes (default 2 GiB).
    pub max_upload_size: Option<u64>,
    /// Unfinished uploads expire after this long; also the grace period before
    /// gc deletes an unreferenced file (default 86400 s).
    pub upload_expiry_secs: Option<u64>,
    /// Sign download URLs, valid this long (default: unsigned).
    pub signed_url_ttl_secs: Option<u64>,
    /// How often unused files are collected (default 3600 s).
    pub gc_interval_secs: Option<u64>,
    /// How often the rollout control loop runs (default 15000 ms).
    pub rollout_control_interval_ms: Option<u64>,
    /// First webhook retry delay; each next one is 4× longer, at most 10 h (default 5000 ms).
    pub webhook_retry_base_ms: Option<u64>,
    /// Attempts per webhook delivery before it is marked failed (default 8).
    pub webhook_max_attempts: Option<u32>,
    /// Timeout of one webhook request (default 10000 ms).
    pub webhook_timeout_ms: Option<u64>,
    /// Key that encrypts webhook secrets at rest: 32 bytes as 64 hex
    /// characters or base64 (default: a random key kept in the database).
    pub webhook_secret_key: Option<String>,
    /// Upload validation: most entries in a zip (default 50000).
    pub zip_max_entries: Option<usize>,
    /// Upload validation: largest uncompressed entry, in bytes.
    pub zip_max_entry_size: Option<u64>,
    /// Upload validation: largest uncompressed total, in bytes.
    pub zip_max_total_size: Option<u64>,
    /// Upload validation: highest uncompressed/compressed ratio.
    pub zip_max_compression_ratio: Option<u64>,
    /// `postgres://…` to use PostgreSQL instead of the embedded SQLite file.
    pub database_url: Option<String>,
    /// A read-only replica's `postgres://…` for the release-configuration reads.
    pub database_read_url: Option<String>,
    /// `s3://bucket/prefix` to keep bundle files in S3-compatible storage.
    pub storage_url: Option<String>,
    /// Object-store settings (`endpoint`, `region`, `access_key_id`, …) that
    /// win over the `AWS_*` environment.
    pub storage_options: Option<std::collections::BTreeMap<String, String>>,
    /// stream (default), redirect (302 to a presigned URL) or cdn.
    pub download_mode: Option<String>,
    /// Public base URL of the CDN in front of the bucket (download_mode = cdn).
    pub cdn_base_url: Option<String>,
    /// Validity of presigned download URLs (download_mode = redirect; default 3600 s).
    pub presigned_url_ttl_secs: Option<u64>,
    /// Most client connections at once (default: from the open-file limit).
    pub max_connections: Option<usize>,
    /// Connections the kernel queues while all are busy (default 1024).
    pub listen_backlog: Option<u32>,
    /// First request head (and, on HTTP/1.1, each next one) within this (default 10 s).
    pub header_read_timeout_secs: Option<u64>,
    /// A connection with no request in flight closes after this (default 60 s).
    pub idle_timeout_secs: Option<u64>,
    /// Request bodies and responses move at least this many bytes per second,
    /// over `transfer_window_secs` (default 256).
    pub min_transfer_rate: Option<u64>,
    /// The window the minimum transfer rate is measured over (default 60 s).
    pub transfer_window_secs: Option<u64>,
    /// Longest request target, path and query, in bytes (default 8192).
    pub max_uri_length: Option<usize>,
    /// Largest total of the request headers, in bytes (default 16384).
    pub max_header_bytes: Option<usize>,
    /// Below this much free space on the data directory's file system, stats
    /// and management writes get 503 + Retry-After (default 64; 0 = off).
    pub min_free_disk_mb: Option<u64>,
    /// How often free space is measured and a probe write committed (default 2000 ms).
    pub write_check_interval_ms: Option<u64>,
    /// `PRAGMA quick_check` of the SQLite database at start (default true;
    /// turn off for huge databases where it takes too long).
    pub startup_quick_check: Option<bool>,
    /// Device-route requests one device of an app may make at once (default 120; 0 = no limit).
    pub device_rate_limit_burst: Option<u32>,
    /// … and per minute after that (default 120).
    pub device_rate_limit_per_minute: Option<u32>,
    /// Device-route requests of all devices of one app at once (default 100000; 0 = no limit).
    pub app_rate_limit_burst: Option<u32>,
    /// … and per minute after that (default 1200000).
    pub app_rate_limit_per_minute: Option<u32>,
    /// Keys each rate limiter remembers (default 1000000, about 40 MB each).
    pub rate_limit_max_keys: Option<usize>,
    /// Failed management authentications per client address at once (default 20; 0 = no limit).
    pub auth_failure_limit_burst: Option<u32>,
    /// … and per minute after that (default 2).
    pub auth_failure_limit_per_minute: Option<u32>,
    /// Distinct unknown bundle names per app and day in the rollups (default 1000).
    pub rollup_max_distinct_per_day: Option<u32>,
    /// Bytes of live bundles one app may store (default: no quota).
    pub app_storage_quota_bytes: Option<u64>,
}

/// A numeric setting: `UPDRAFT_<NAME>` in the environment wins over the file.
fn number<T: std::str::FromStr>(env_name: &str, from_file: Option<T>) -> anyhow::Result<Option<T>> {
    match env(env_name) {
        Some(text) => text.trim().parse::<T>().map(Some).map_err(|_| {
            anyhow::anyhow!("{env_name} must be a non-negative whole number, got {text:?}")
        }),
        None => Ok(from_file),
    }
}

pub struct Settings {
    pub server: ServerConfig,
    pub log: String,
    /// Run `PRAGMA quick_check` on the SQLite database before serving.
    pub startup_quick_check: bool,
    /// Where the data lives instead of the embedded SQLite file.
    pub database: Option<DatabaseUrls>,
}

/// A PostgreSQL primary and an optional read replica.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DatabaseUrls {
    pub url: String,
    pub read_url: Option<String>,
}

pub fn check_database_url(name: &str, url: &str) -> anyhow::Result<String> {
    let url = url.trim();
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        bail!(
            "{name} must be a postgres:// URL, got {:?}",
            redact_url(url)
        );
    }
    Ok(url.to_string())
}

/// A URL with any password replaced, for messages.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme_end + 3],
                    &userinfo[..colon],
                    &url[at..]
                ),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// Storage and download settings, checked together: the modes that hand
/// devices object-store URLs need object storage.
fn storage_settings(server: &mut ServerConfig, file: &FileConfig) -> anyhow::Result<()> {
    use updraft_server::state::DownloadMode;
    if let Some(url) = env("UPDRAFT_STORAGE_URL").or_else(|| file.storage_url.clone()) {
        let url = url.trim().to_string();
        if !url.starts_with("s3://") || url.len() <= "s3://".len() {
            bail!("storage URL must be s3://bucket[/prefix], got {url:?}");
        }
        server.storage_url = Some(url);
    }
    if let Some(options) = &file.storage_options {
        server.storage_options = options
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
    }
    if let Some(text) = env("UPDRAFT_DOWNLOAD_MODE").or_else(|| file.download_mode.clone()) {
        server.download_mode = DownloadMode::parse(&text).ok_or_else(|| {
            anyhow::anyhow!(
                "download mode must be {}, got {text:?}",
                DownloadMode::NAMES
            )
        })?;
    }
    if let Some(url) = env("UPDRAFT_CDN_BASE_URL").or_else(|| file.cdn_base_url.clone()) {
        server.cdn_base_url = Some(check_public_url(&url).context("CDN base URL")?);
    }
    if let Some(v) = number(
        "UPDRAFT_PRESIGNED_URL_TTL_SECS",
        file.presigned_url_ttl_secs,
    )? {
        server.presigned_url_ttl_secs = v.clamp(1, 7 * 24 * 3600);
    }
    Ok(())
}

/// The connection cap, backlog, timeouts and head limits.
fn connection_settings(server: &mut ServerConfig, file: &FileConfig) -> anyhow::Result<()> {
    use std::time::Duration;
    let limits = &mut server.connections;
    if let Some(v) = number("UPDRAFT_MAX_CONNECTIONS", file.max_connections)? {
        // 0 = derived from the open-file limit, like leaving it unset.
        limits.max_connections = Some(v).filter(|n| *n > 0);
    }
    if let Some(v) = number("UPDRAFT_LISTEN_BACKLOG", file.listen_backlog)? {
        limits.listen_backlog = v.clamp(16, 65_535);
    }
    if let Some(v) = number(
        "UPDRAFT_HEADER_READ_TIMEOUT_SECS",
        file.header_read_timeout_secs,
    )? {
        limits.header_read_timeout = Duration::from_secs(v.max(1));
    }
    if let Some(v) = number("UPDRAFT_IDLE_TIMEOUT_SECS", file.idle_timeout_secs)? {
        limits.idle_timeout = Duration::from_secs(v.max(1));
    }
    if let Some(v) = number("UPDRAFT_MIN_TRANSFER_RATE", file.min_transfer_rate)? {
        limits.min_transfer_rate = v;
    }
    if let Some(v) = number("UPDRAFT_TRANSFER_WINDOW_SECS", file.transfer_window_secs)? {
        limits.transfer_window = Duration::from_secs(v.max(1));
    }
    if let Some(v) = number("UPDRAFT_MAX_URI_LENGTH", file.max_uri_length)? {
        limits.max_uri_length = v.max(256);
    }
    if let Some(v) = number("UPDRAFT_MAX_HEADER_BYTES", file.max_header_bytes)? {
        limits.max_header_bytes = v.max(1024);
    }
    Ok(())
}

/// Rate limits, rollup cardinality and quotas (docs/reliability.md, "Abuse limits").
fn abuse_settings(server: &mut ServerConfig, file: &FileConfig) -> anyhow::Result<()> {
    let limits = &mut server.limits;
    let quotas = [
        (
            &mut limits.device_rate,
            (
                "UPDRAFT_DEVICE_RATE_LIMIT_BURST",
                file.device_rate_limit_burst,
            ),
            (
                "UPDRAFT_DEVICE_RATE_LIMIT_PER_MINUTE",
                file.device_rate_limit_per_minute,
            ),
        ),
        (
            &mut limits.app_rate,
            ("UPDRAFT_APP_RATE_LIMIT_BURST", file.app_rate_limit_burst),
            (
                "UPDRAFT_APP_RATE_LIMIT_PER_MINUTE",
                file.app_rate_limit_per_minute,
            ),
        ),
        (
            &mut limits.auth_failure_rate,
            (
                "UPDRAFT_AUTH_FAILURE_LIMIT_BURST",
                file.auth_failure_limit_burst,
            ),
            (
                "UPDRAFT_AUTH_FAILURE_LIMIT_PER_MINUTE",
                file.auth_failure_limit_per_minute,
            ),
        ),
    ];
    for (quota, (burst_env, burst), (rate_env, rate)) in quotas {
        if let Some(v) = number(burst_env, burst)? {
            quota.burst = v;
        }
        if let Some(v) = number(rate_env, rate)? {
            quota.per_minute = v;
        }
    }
    if let Some(v) = number("UPDRAFT_RATE_LIMIT_MAX_KEYS", file.rate_limit_max_keys)? {
        limits.rate_limit_max_keys = v.max(1);
    }
    if let Some(v) = number(
        "UPDRAFT_ROLLUP_MAX_DISTINCT_PER_DAY",
        file.rollup_max_distinct_per_day,
    )? {
        limits.rollup_max_distinct_per_day = v;
    }
    if let Some(v) = number(
        "UPDRAFT_APP_STORAGE_QUOTA_BYTES",
        file.app_storage_quota_bytes,
    )? {
        limits.app_storage_quota_bytes = Some(v).filter(|bytes| *bytes > 0);
    }
    Ok(())
}

/// The download mode against the storage and signing settings.
fn check_download_mode(server: &ServerConfig) -> anyhow::Result<()> {
    use updraft_server::state::DownloadMode;
    match server.download_mode {
        DownloadMode::Stream => {}
        DownloadMode::Redirect | DownloadMode::Cdn if server.storage_url.is_none() => bail!(
            "download mode {} needs object storage: set UPDRAFT_STORAGE_URL=s3://bucket/prefix",
            server.download_mode.as_str()
        ),
        DownloadMode::Redirect => {}
        DownloadMode::Cdn => {
            if server.cdn_base_url.is_none() {
                bail!(
                    "download mode cdn needs UPDRAFT_CDN_BASE_URL (the CDN in front of the bucket)"
                );
            }
            if server.signed_url_ttl_secs.is_some() {
                bail!("signed download URLs (UPDRAFT_SIGNED_URL_TTL_SECS) do not apply to download mode cdn: devices fetch from the CDN");
            }
        }
    }
    Ok(())
}

/// `./updraft.toml` when it exists.
fn default_file() -> anyhow::Result<FileConfig> {
    let path = Path::new("updraft.toml");
    if path.exists() {
        read_file(path)
    } else {
        Ok(FileConfig::default())
    }
}

/// What the offline commands (`updraft apikey …`) take from `./updraft.toml`
/// when neither a flag nor the environment says: the data directory and the
/// database, so that they open the database `updraft serve` uses.
pub fn client_defaults(
    global: &mut updraft_cli::GlobalOpts,
    data_dir_from_default: bool,
) -> anyhow::Result<()> {
    let file = default_file()?;
    if data_dir_from_default {
        if let Some(dir) = file.data_dir {
            global.data_dir = dir;
        }
    }
    if global.database_url.is_none() {
        global.database_url = file.database_url;
    }
    Ok(())
}

fn read_file(path: &Path) -> anyhow::Result<FileConfig> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("invalid configuration in {}", path.display()))
}

fn parse_bool(name: &str, text: &str) -> anyhow::Result<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => bail!("{name} must be true or false, got {text:?}"),
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn check_public_url(url: &str) -> anyhow::Result<String> {
    let trimmed = url.trim().trim_end_matches('/');
    if !(trimmed.starts_with("http://") || trimmed.starts_with("https://")) || trimmed.len() < 10 {
        bail!("public URL must be an absolute http(s) URL, got {url:?}");
    }
    Ok(trimmed.to_string())
}

/// The webhook secret key: the environment's wins over the file's; a
/// malformed one refuses the start.
fn webhook_secret_key(
    from_env: Option<String>,
    from_file: Option<String>,
) -> anyhow::Result<Option<SecretKey>> {
    let (name, key) = match (from_env, from_file) {
        (Some(key), _) => ("UPDRAFT_WEBHOOK_SECRET_KEY", key),
        (None, Some(key)) if !key.trim().is_empty() => ("webhook_secret_key", key),
        _ => return Ok(None),
    };
    SecretKey::parse(&key)
        .map(Some)
        .map_err(|err| anyhow::anyhow!("{name}: {err}"))
}

/// `data_dir` comes from the global `--data-dir`/`UPDRAFT_DATA_DIR`; when it
/// only holds clap's default, the file may set it.
pub fn load(
    args: &ServeArgs,
    data_dir: &Path,
    data_dir_from_default: bool,
    database_url: Option<&str>,
) -> anyhow::Result<Settings> {
    let file = match &args.config {
        Some(path) => read_file(path)?,
        None => default_file()?,
    };
    let mut server = ServerConfig::default();
    storage_settings(&mut server, &file)?;
    connection_settings(&mut server, &file)?;
    abuse_settings(&mut server, &file)?;
    let listen = match (args.listen, env("UPDRAFT_LISTEN")) {
        (Some(listen), _) => Some(listen),
        (None, Some(text)) => Some(
            text.parse::<SocketAddr>()
                .with_context(|| format!("UPDRAFT_LISTEN must be host:port, got {text:?}"))?,
        ),
        (None, None) => file.listen,
    };
    if let Some(listen) = listen {
        server.listen = listen;
    }
    server.data_dir = match (data_dir_from_default, file.data_dir) {
        (true, Some(from_file)) => from_file,
        _ => data_dir.to_path_buf(),
    };
    let public_url = args
        .public_url
        .clone()
        .or_else(|| env("UPDRAFT_PUBLIC_URL"))
        .or(file.public_url);
    server.public_url = public_url.as_deref().map(check_public_url).transpose()?;
    if let Some(v) = file.device_body_limit {
        server.device_body_limit = v;
    }
    if let Some(v) = file.api_body_limit {
        server.api_body_limit = v;
    }
    if let Some(v) = number("UPDRAFT_STATS_QUEUE_CAPACITY", file.stats_queue_capacity)? {
        server.stats_queue_capacity = v.max(1);
    }
    if let Some(v) = number("UPDRAFT_EVENT_RETENTION_DAYS", file.event_retention_days)? {
        server.event_retention_days = v;
    }
    if let Some(v) = number(
        "UPDRAFT_RETENTION_INTERVAL_SECS",
        file.retention_interval_secs,
    )? {
        server.retention_interval_secs = v.max(1);
    }
    if let Some(v) = number("UPDRAFT_MAX_UPLOAD_SIZE", file.max_upload_size)? {
        server.max_upload_size = v;
    }
    if let Some(v) = number("UPDRAFT_UPLOAD_EXPIRY_SECS", file.upload_expiry_secs)? {
        server.upload_expiry_secs = v;
    }
    server.signed_url_ttl_secs =
        number("UPDRAFT_SIGNED_URL_TTL_SECS", file.signed_url_ttl_secs)?.filter(|ttl| *ttl > 0);
    if let Some(v) = number("UPDRAFT_GC_INTERVAL_SECS", file.gc_interval_secs)? {
        server.gc_interval_secs = v.max(1);
    }
    if let Some(v) = number(
        "UPDRAFT_ROLLOUT_CONTROL_INTERVAL_MS",
        file.rollout_control_interval_ms,
    )? {
        server.rollout_control_interval_ms = v.max(10);
    }
    if let Some(v) = number("UPDRAFT_WEBHOOK_RETRY_BASE_MS", file.webhook_retry_base_ms)? {
        server.webhook_retry_base_ms = v.max(1);
    }
    if let Some(v) = number("UPDRAFT_WEBHOOK_MAX_ATTEMPTS", file.webhook_max_attempts)? {
        server.webhook_max_attempts = v.max(1);
    }
    if let Some(v) = number("UPDRAFT_WEBHOOK_TIMEOUT_MS", file.webhook_timeout_ms)? {
        server.webhook_timeout_ms = v.max(100);
    }
    server.webhook_secret_key = webhook_secret_key(
        env("UPDRAFT_WEBHOOK_SECRET_KEY"),
        file.webhook_secret_key.clone(),
    )?;
    let limits = &mut server.zip_limits;
    if let Some(v) = number("UPDRAFT_ZIP_MAX_ENTRIES", file.zip_max_entries)? {
        limits.max_entries = v;
    }
    if let Some(v) = number("UPDRAFT_ZIP_MAX_ENTRY_SIZE", file.zip_max_entry_size)? {
        limits.max_entry_size = v;
    }
    if let Some(v) = number("UPDRAFT_ZIP_MAX_TOTAL_SIZE", file.zip_max_total_size)? {
        limits.max_total_size = v;
    }
    if let Some(v) = number(
        "UPDRAFT_ZIP_MAX_COMPRESSION_RATIO",
        file.zip_max_compression_ratio,
    )? {
        limits.max_compression_ratio = v;
    }
    if let Some(v) = number("UPDRAFT_MIN_FREE_DISK_MB", file.min_free_disk_mb)? {
        server.min_free_disk_mb = v;
    }
    if let Some(v) = number(
        "UPDRAFT_WRITE_CHECK_INTERVAL_MS",
        file.write_check_interval_ms,
    )? {
        server.write_check_interval_ms = v.max(100);
    }
    let startup_quick_check = match env("UPDRAFT_STARTUP_QUICK_CHECK") {
        Some(text) => parse_bool("UPDRAFT_STARTUP_QUICK_CHECK", &text)?,
        None => file.startup_quick_check.unwrap_or(true),
    };
    if let Some(v) = file.registry_flush_interval_ms {
        server.registry_flush_interval_ms = v;
    }
    if let Some(v) = file.release_reload_interval_secs {
        server.release_reload_interval_secs = v;
    }
    check_download_mode(&server)?;
    let database_url = database_url
        .map(str::to_string)
        .filter(|url| !url.trim().is_empty())
        .or_else(|| file.database_url.clone());
    let database = match database_url {
        Some(url) => Some(DatabaseUrls {
            url: check_database_url("UPDRAFT_DATABASE_URL", &url)?,
            read_url: env("UPDRAFT_DATABASE_READ_URL")
                .or_else(|| file.database_read_url.clone())
                .map(|url| check_database_url("UPDRAFT_DATABASE_READ_URL", &url))
                .transpose()?,
        }),
        None if env("UPDRAFT_DATABASE_READ_URL").is_some() || file.database_read_url.is_some() => {
            bail!("UPDRAFT_DATABASE_READ_URL needs UPDRAFT_DATABASE_URL (a replica of which primary?)")
        }
        None => None,
    };
    if let Some(v) = file.cors_allowed_origins {
        server.cors_allowed_origins = v;
    }
    Ok(Settings {
        database,
        server,
        startup_quick_check,
        log: file
            .log
            .unwrap_or_else(|| "info,tower_http=warn,sqlx=warn".to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_secret_keys_must_be_32_bytes() {
        let hex_key = "ab".repeat(32);
        let file: FileConfig =
            toml::from_str(&format!("webhook_secret_key = \"{hex_key}\"")).unwrap();
        let from_file = webhook_secret_key(None, file.webhook_secret_key).unwrap();
        assert_eq!(from_file, Some(SecretKey::from_bytes([0xab; 32])));
        let from_env = webhook_secret_key(
            Some("AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=".to_string()),
            Some(hex_key),
        )
        .unwrap();
        assert_eq!(from_env, Some(SecretKey::from_bytes([1; 32])));
        assert_eq!(
            webhook_secret_key(None, Some(" ".to_string())).unwrap(),
            None
        );
        let err = webhook_secret_key(Some("tooshort".to_string()), None).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("UPDRAFT_WEBHOOK_SECRET_KEY") && text.contains("32 bytes"),
            "{text}"
        );
        assert!(!text.contains("tooshort"), "{text}");
    }

    #[test]
    fn public_url_must_be_absolute() {
        assert_eq!(
            check_public_url("https://u.example.com/").unwrap(),
            "https://u.example.com"
        );
        assert!(check_public_url("u.example.com").is_err());
    }

    #[test]
    fn database_passwords_are_redacted_in_messages() {
        assert_eq!(
            redact_url("postgres://app:s3cret@db:5432/updraft"),
            "postgres://app:***@db:5432/updraft"
        );
        assert_eq!(redact_url("postgres://db/updraft"), "postgres://db/updraft");
        let err = check_database_url("X", "mysql://u:pw@h/d").unwrap_err();
        assert!(!err.to_string().contains("pw"), "{err}");
    }

    #[test]
    fn object_store_download_modes_need_object_storage() {
        let mut server = ServerConfig::default();
        let file: FileConfig = toml::from_str("download_mode = \"redirect\"").unwrap();
        storage_settings(&mut server, &file).unwrap();
        let err = check_download_mode(&server).unwrap_err();
        assert!(err.to_string().contains("UPDRAFT_STORAGE_URL"), "{err}");
        let file: FileConfig = toml::from_str(
            "download_mode = \"cdn\"\nstorage_url = \"s3://b/p\"\ncdn_base_url = \"https://cdn.example.com/\"\n[storage_options]\nendpoint = \"http://127.0.0.1:9000\"",
        )
        .unwrap();
        let mut server = ServerConfig::default();
        storage_settings(&mut server, &file).unwrap();
        check_download_mode(&server).unwrap();
        server.signed_url_ttl_secs = Some(60);
        assert!(check_download_mode(&server).is_err());
        assert_eq!(
            server.cdn_base_url.as_deref(),
            Some("https://cdn.example.com")
        );
        assert_eq!(server.storage_url.as_deref(), Some("s3://b/p"));
        assert_eq!(
            server.storage_options,
            vec![("endpoint".to_string(), "http://127.0.0.1:9000".to_string())]
        );
        let file: FileConfig = toml::from_str("download_mode = \"fast\"").unwrap();
        let err = storage_settings(&mut ServerConfig::default(), &file).unwrap_err();
        assert!(err.to_string().contains("stream, redirect or cdn"), "{err}");
        let file: FileConfig = toml::from_str("storage_url = \"/var/bundles\"").unwrap();
        assert!(storage_settings(&mut ServerConfig::default(), &file).is_err());
    }

    #[test]
    fn connection_settings_come_from_the_file() {
        let file: FileConfig = toml::from_str(
            "max_connections = 300\nlisten_backlog = 4096\nheader_read_timeout_secs = 3\nidle_timeout_secs = 20\nmin_transfer_rate = 100\ntransfer_window_secs = 30\nmax_uri_length = 2048\nmax_header_bytes = 4096",
        )
        .unwrap();
        let mut server = ServerConfig::default();
        connection_settings(&mut server, &file).unwrap();
        let limits = &server.connections;
        assert_eq!(limits.max_connections, Some(300));
        assert_eq!(limits.listen_backlog, 4096);
        assert_eq!(
            limits.header_read_timeout,
            std::time::Duration::from_secs(3)
        );
        assert_eq!(limits.idle_timeout, std::time::Duration::from_secs(20));
        assert_eq!(limits.min_transfer_rate, 100);
        assert_eq!(limits.transfer_window, std::time::Duration::from_secs(30));
        assert_eq!(
            (limits.max_uri_length, limits.max_header_bytes),
            (2048, 4096)
        );
        let file: FileConfig = toml::from_str("max_connections = 0").unwrap();
        let mut server = ServerConfig::default();
        connection_settings(&mut server, &file).unwrap();
        assert_eq!(server.connections.max_connections, None);
    }

    #[test]
    fn file_keys_are_checked() {
        let err = toml::from_str::<FileConfig>("listen = \"127.0.0.1:1\"\nbogus = 1").unwrap_err();
        assert!(err.to_string().contains("bogus"));
        let ok: FileConfig =
            toml::from_str("listen = \"127.0.0.1:9\"\ndata_dir = \"/tmp/x\"\nzip_max_entries = 10")
                .unwrap();
        assert_eq!(ok.zip_max_entries, Some(10));
        let disk: FileConfig =
            toml::from_str("min_free_disk_mb = 5\nstartup_quick_check = false").unwrap();
        assert_eq!(disk.min_free_disk_mb, Some(5));
        assert_eq!(disk.startup_quick_check, Some(false));
        assert!(parse_bool("X", "off").is_ok_and(|v| !v));
        assert!(parse_bool("X", "maybe").is_err());
        assert_eq!(ok.listen, Some("127.0.0.1:9".parse().unwrap()));
    }
}
