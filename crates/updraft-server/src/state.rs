//! Configuration and the state every handler shares.

use crate::metrics::Metrics;
use crate::releases::ReleaseCache;
use crate::settings;
use crate::writers::{RegistryWriter, StatsWriter};

use crate::limiter::AbuseLimits;
pub use crate::storage::DownloadMode;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use updraft_store::Store;

/// Every setting of the server, with its default (`Default`) and, in its
/// serde attributes, its validation: this is the settings type that
/// `updraft serve` loads from `updraft.toml`, the environment and flags (see
/// [`crate::settings`] for how a field is named as a setting). A new setting
/// is a new field here with its default below; the binary's `config.rs`
/// (`Settings`) says what else it takes (a README row, an example line).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct ServerConfig {
    #[serde(deserialize_with = "settings::host_port")]
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// Base of download links; `None` = from the request's Host.
    #[serde(deserialize_with = "settings::http_url")]
    pub public_url: Option<String>,
    /// Largest device request body (update checks, stats, channel calls).
    pub device_body_limit: usize,
    /// Largest management request body.
    pub api_body_limit: usize,
    /// Stats requests that may wait for a commit before new ones get 429.
    #[serde(deserialize_with = "settings::at_least::<1, _, _>")]
    pub stats_queue_capacity: usize,
    pub registry_flush_interval_ms: u64,
    /// Days raw stats events are kept (by arrival); rollups are kept for good.
    pub event_retention_days: u32,
    /// How often the retention task looks for raw events to delete.
    #[serde(deserialize_with = "settings::at_least::<1, _, _>")]
    pub retention_interval_secs: u64,
    /// Full reload of every app's release configuration (a safety net; changes
    /// made through this server apply at once).
    pub release_reload_interval_secs: u64,
    /// Origins allowed by CORS on the device routes, besides the built-in
    /// Capacitor/Ionic/localhost ones.
    #[serde(deserialize_with = "settings::list")]
    pub cors_allowed_origins: Vec<String>,
    /// Limits applied when validating uploaded plain zips.
    pub zip_limits: updraft_bundle::ZipLimits,
    /// Largest file one upload session may declare.
    pub max_upload_size: u64,
    /// Upload sessions expire this long after their last write; also the gc
    /// grace period of unreferenced blobs.
    pub upload_expiry_secs: u64,
    /// When set, download URLs are signed and valid this long (rounded up to half of it).
    #[serde(deserialize_with = "settings::zero_is_none")]
    pub signed_url_ttl_secs: Option<u64>,
    /// How often gc runs in the background.
    #[serde(deserialize_with = "settings::at_least::<1, _, _>")]
    pub gc_interval_secs: u64,
    /// How often the rollout control loop evaluates rollouts and runs due schedules.
    #[serde(deserialize_with = "settings::at_least::<10, _, _>")]
    pub rollout_control_interval_ms: u64,
    /// Webhook retries wait this long, then 4× longer each time (capped at 10 h).
    #[serde(deserialize_with = "settings::at_least::<1, _, _>")]
    pub webhook_retry_base_ms: u64,
    /// Attempts per webhook delivery before it is marked failed.
    #[serde(deserialize_with = "settings::at_least::<1, _, _>")]
    pub webhook_max_attempts: u32,
    /// Timeout of one webhook request.
    #[serde(deserialize_with = "settings::at_least::<100, _, _>")]
    pub webhook_timeout_ms: u64,
    /// Encrypts webhook secrets at rest; `None` = a random key kept in the
    /// database (shared by every node).
    #[serde(with = "settings::secret_key")]
    pub webhook_secret_key: Option<crate::webhook_secrets::SecretKey>,
    /// Where bundle files live: `None` = the local disk under `data_dir`;
    /// `s3://bucket/prefix` = an S3-compatible object store.
    #[serde(deserialize_with = "settings::s3_url")]
    pub storage_url: Option<String>,
    /// Object-store settings that win over the `AWS_*` environment, as
    /// `object_store` configuration keys (`endpoint`, `region`, …).
    #[serde(with = "settings::pairs")]
    pub storage_options: Vec<(String, String)>,
    /// How devices get bundle bytes.
    pub download_mode: DownloadMode,
    /// `download_mode = cdn`: links are this base URL + the object's key.
    #[serde(deserialize_with = "settings::http_url")]
    pub cdn_base_url: Option<String>,
    /// `download_mode = redirect`: how long a presigned URL stays valid.
    #[serde(deserialize_with = "settings::between::<1, 604_800, _, _>")]
    pub presigned_url_ttl_secs: u64,
    /// Connection cap, backlog, timeouts and head limits.
    pub connections: crate::listener::ConnectionLimits,
    /// Below this much free space on the data directory's file system,
    /// stats and management writes are refused with 503 (0 = never).
    pub min_free_disk_mb: u64,
    /// How often free space is measured and a probe write is committed
    /// (what `/readyz` reports).
    #[serde(deserialize_with = "settings::at_least::<100, _, _>")]
    pub write_check_interval_ms: u64,
    /// Rate limits, rollup cardinality and storage quotas (docs/reliability.md,
    /// "Abuse limits").
    pub limits: AbuseLimits,
    /// TLS, the redirect listener, trusted proxies, the metrics listener.
    #[serde(default)]
    pub edge: crate::edge::EdgeSettings,
    /// Console sessions and the sign-in throttle.
    #[serde(default)]
    pub accounts: crate::accounts::AccountSettings,
}

impl ServerConfig {
    /// The `webhook_*` settings, as the [`WebhookService`](crate::webhooks::WebhookService) takes them.
    pub fn webhook_delivery(&self) -> crate::webhooks::DeliverySettings {
        crate::webhooks::DeliverySettings {
            timeout_ms: self.webhook_timeout_ms,
            retry_base_ms: self.webhook_retry_base_ms,
            max_attempts: self.webhook_max_attempts,
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("./updraft-data"),
            public_url: None,
            device_body_limit: 1024 * 1024,
            api_body_limit: 16 * 1024 * 1024,
            stats_queue_capacity: 4096,
            registry_flush_interval_ms: 1000,
            event_retention_days: 30,
            retention_interval_secs: 3600,
            release_reload_interval_secs: 30,
            cors_allowed_origins: Vec::new(),
            zip_limits: updraft_bundle::ZipLimits::default(),
            max_upload_size: 2 * 1024 * 1024 * 1024,
            upload_expiry_secs: 86_400,
            signed_url_ttl_secs: None,
            gc_interval_secs: 3600,
            rollout_control_interval_ms: 15_000,
            webhook_retry_base_ms: 5_000,
            webhook_max_attempts: 8,
            webhook_timeout_ms: 10_000,
            webhook_secret_key: None,
            storage_url: None,
            storage_options: Vec::new(),
            download_mode: DownloadMode::Stream,
            cdn_base_url: None,
            presigned_url_ttl_secs: 3600,
            connections: crate::listener::ConnectionLimits::default(),
            min_free_disk_mb: 64,
            write_check_interval_ms: 2000,
            limits: AbuseLimits::default(),
            edge: crate::edge::EdgeSettings::default(),
            accounts: crate::accounts::AccountSettings::default(),
        }
    }
}

#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub releases: Arc<ReleaseCache>,
    pub registry: Arc<RegistryWriter>,
    pub stats: Arc<StatsWriter>,
    pub config: Arc<ServerConfig>,
    /// Uploads, small blobs and the checks and commit of stored bundles.
    pub publish: Arc<crate::storage::publish::PublishService>,
    /// Device downloads, their links (signed URLs, CDN) and counts.
    pub downloads: Arc<crate::storage::downloads::DownloadService>,
    /// Unreferenced blobs and expired upload sessions.
    pub gc: Arc<crate::storage::gc::GcService>,
    pub metrics: Arc<Metrics>,
    /// The time for release decisions, stats arrival, schedules and the
    /// control loop; tests inject a `ManualClock`.
    pub clock: Arc<dyn updraft_core::model::Clock>,
    /// Whether this node runs the background work now (see `cluster`).
    pub leading: tokio::sync::watch::Receiver<bool>,
    /// Free disk space and the write probe: refusals and `/readyz`.
    pub write_health: Arc<crate::write_health::WriteHealth>,
    /// Per-device and per-app rate limits of the device routes.
    pub limiters: Arc<crate::limiter::Limiters>,
    /// API-key authentication and its failed-authentication throttle.
    pub auth: Arc<crate::auth::AuthService>,
    /// Seals webhook secrets before they are stored, opens them to sign.
    pub webhook_secrets: Arc<crate::webhook_secrets::SecretBox>,
    /// Every change of what a channel serves (with the compatibility guard
    /// and the refresh of `releases`).
    pub release_changes: Arc<crate::release_changes::ReleaseService>,
    /// The audit log.
    pub audit: Arc<crate::audit::AuditService>,
    /// Console users, sessions and sign-in.
    pub accounts: Arc<crate::accounts::AccountService>,
    /// Webhook events: queued here, delivered by its worker.
    pub webhooks: Arc<crate::webhooks::WebhookService>,
    /// The rollout control loop (also asked for its current judgement).
    pub control: Arc<crate::control::ControlLoop>,
    /// Apps: list, look-up, create, update, delete.
    pub apps: Arc<crate::apps::AppService>,
    /// Management API keys: list, create, revoke.
    pub apikeys: Arc<crate::apikeys::ApiKeyService>,
    /// The device registry and admin channel overrides, for the management API.
    pub devices: Arc<crate::devices::DeviceService>,
    /// Analytics reports and raw event exports.
    pub analytics: Arc<crate::analytics::AnalyticsService>,
    /// Published bundles: views, metadata changes, deletion.
    pub bundles: Arc<crate::bundles::BundleService>,
}

/// The storage services as handler state: a handler names the one it
/// calls (`State<Arc<PublishService>>`), not the whole [`AppState`].
macro_rules! service_state {
    ($($service:ty => $field:ident),* $(,)?) => {$(
        impl axum::extract::FromRef<AppState> for Arc<$service> {
            fn from_ref(state: &AppState) -> Self {
                Arc::clone(&state.$field)
            }
        }
    )*};
}

service_state!(
    crate::storage::publish::PublishService => publish,
    crate::storage::downloads::DownloadService => downloads,
    crate::storage::gc::GcService => gc,
    crate::apps::AppService => apps,
    crate::apikeys::ApiKeyService => apikeys,
    crate::devices::DeviceService => devices,
);

impl AppState {
    /// Base URL of this server as devices reach it, without a trailing slash:
    /// `public_url`, else the scheme and host the client used. The request
    /// went through [`crate::proxy::resolve_client`], so `X-Forwarded-Proto`
    /// and `X-Forwarded-Host` are this server's own conclusions (TLS, or a
    /// trusted proxy's word), never a client's.
    pub fn base_url(&self, headers: &axum::http::HeaderMap) -> String {
        if let Some(url) = &self.config.public_url {
            return url.trim_end_matches('/').to_string();
        }
        let header = |name| {
            headers
                .get(name)
                .and_then(|h| h.to_str().ok())
                .filter(|h| !h.is_empty())
        };
        let host = header(axum::http::HeaderName::from_static("x-forwarded-host"))
            .or_else(|| header(axum::http::header::HOST))
            .map(str::to_string)
            .unwrap_or_else(|| self.config.listen.to_string());
        let scheme = header(axum::http::HeaderName::from_static("x-forwarded-proto"))
            .filter(|p| *p == "https" || *p == "http")
            .unwrap_or("http");
        format!("{scheme}://{host}")
    }
}
