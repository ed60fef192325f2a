//! Updraft's HTTP layer: the device API the plugin calls, the management API,
//! health endpoints, and the background writers behind them.

pub mod access_log;
pub mod accounts;
pub mod analytics;
pub mod api;
pub mod apikeys;
pub mod apps;
pub mod audit;
pub mod auth;
pub mod body_limit;
pub mod bundles;
pub mod cluster;
pub mod control;
pub mod cors;
pub mod device;
pub mod device_downloads;
pub mod devices;
pub mod edge;
pub mod error;
pub mod extract;
pub mod limiter;
pub mod listener;
pub mod logging;
pub mod metrics;
pub mod proxy;
pub mod redirect;
pub mod release_changes;
pub mod releases;
pub mod retention;
pub mod settings;
pub mod state;
pub mod storage;
pub mod tls;
pub mod validate;
pub mod webhook_secrets;
pub mod webhooks;
pub mod write_health;
pub mod writers;

use crate::metrics::{db_operation, Metrics};
use crate::releases::ReleaseCache;
use crate::state::{AppState, ServerConfig};
use crate::writers::{RegistryWriter, StatsWriter, StatsWriterDeps};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use serde_json::json;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use updraft_store::cluster::{Cluster, SingleNode};
use updraft_store::Store;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot load the release configuration: {0}")]
    Load(#[from] updraft_store::StoreError),
    #[error("cannot open the bundle storage: {0}")]
    Storage(#[from] storage::StorageError),
    #[error("{0}")]
    SigningKey(#[from] storage::signing::SigningKeyError),
    #[error("{0}")]
    WebhookSecretKey(#[from] webhook_secrets::SecretKeyError),
    #[error("TLS: {0}")]
    Tls(#[from] tls::TlsError),
    #[error("{0}")]
    Settings(String),
    #[error("server error: {0}")]
    Io(#[from] std::io::Error),
}

async fn healthz() -> impl IntoResponse {
    axum::Json(json!({"status": "ok"}))
}

const READYZ_TIMEOUT: Duration = Duration::from_millis(1500);

/// Ready when the database answers, the disk is above `min_free_disk_mb`
/// and the last write probe committed (both checked in the background, see
/// `write_health`); `leader` says whether this node runs the
/// background work (one node of a cluster does; a single node always).
async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let leader = *state.leading.borrow();
    // Load balancers give up on a health check after a few seconds: answer
    // "unavailable" before that rather than wait out the pool.
    let ping = match tokio::time::timeout(READYZ_TIMEOUT, state.store.ping()).await {
        Ok(result) => result,
        Err(_) => Err(updraft_store::StoreError::Backend(format!(
            "the database did not answer within {} ms",
            READYZ_TIMEOUT.as_millis()
        ))),
    };
    match ping {
        Ok(()) => match state.write_health.readiness() {
            Ok(()) => (
                StatusCode::OK,
                axum::Json(json!({"status": "ok", "leader": leader})),
            ),
            Err(not_ready) => (
                StatusCode::SERVICE_UNAVAILABLE,
                axum::Json(json!({
                    "status": "unavailable",
                    "error": not_ready.code(),
                    "message": not_ready.message(),
                    "leader": leader,
                })),
            ),
        },
        Err(err) => {
            state.metrics.record_database_error(db_operation::READYZ);
            (
                StatusCode::SERVICE_UNAVAILABLE,
                axum::Json(
                    json!({"status": "unavailable", "error": "database_unavailable", "message": err.to_string()}),
                ),
            )
        }
    }
}

/// Unauthenticated, as Prometheus scrapes usually are: bind the server to a
/// private address or keep `/metrics` behind the reverse proxy.
async fn metrics_endpoint(State(state): State<AppState>) -> axum::response::Response {
    // Sampled here rather than on every sighting: the count needs all shard locks.
    state
        .metrics
        .set_registry_pending_devices(state.registry.pending());
    state.metrics.response()
}

async fn method_not_allowed() -> impl IntoResponse {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        axum::Json(
            json!({"error": "method_not_allowed", "message": "This route does not take that method"}),
        ),
    )
}

async fn not_found() -> impl IntoResponse {
    (
        StatusCode::NOT_FOUND,
        axum::Json(json!({"error": "not_found", "message": "Not found"})),
    )
}

/// Management requests that may write (anything but GET/HEAD/OPTIONS) get
/// 503 + `Retry-After` while the disk is below `min_free_disk_mb`.
async fn refuse_writes_on_low_disk(
    State(state): State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::http::Method;
    let reads_only = matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    if !reads_only {
        if let Some(low) = state.write_health.refusal() {
            state.metrics.record_write_refused_low_disk();
            return error::ApiError::unavailable(
                error::ErrorCode::LowDiskSpace,
                low.message(),
                write_health::LOW_DISK_RETRY_AFTER_SECS,
            )
            .into_response();
        }
    }
    next.run(request).await
}

pub fn router(state: AppState) -> Router {
    let cors_policy = cors::CorsPolicy::new(state.config.cors_allowed_origins.clone());
    let metrics = Arc::clone(&state.metrics);
    let limit = |bytes: u64, shape| body_limit::ContentLengthLimit::new(bytes, shape);
    let low_disk = axum::middleware::from_fn_with_state(state.clone(), refuse_writes_on_low_disk);
    let config = &state.config;
    let trusted = Arc::new(proxy::TrustedProxies::new(
        config.edge.trusted_proxies.clone(),
    ));
    let mut router = Router::new()
        .merge(device::routes().route_layer(limit(
            config.device_body_limit as u64,
            body_limit::Shape::Device,
        )))
        .merge(
            api::routes()
                .route_layer(limit(config.api_body_limit as u64, body_limit::Shape::Api))
                .layer(low_disk.clone()),
        )
        .merge(
            api::upload_routes()
                .route_layer(limit(config.max_upload_size, body_limit::Shape::Api))
                .layer(low_disk),
        )
        .merge(device_downloads::routes())
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz));
    // With a metrics listener, /metrics is served there only.
    if config.edge.metrics_listen.is_none() {
        router = router.route("/metrics", get(metrics_endpoint));
    }
    router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        // Outside the routing, so a preflight never meets the 405 fallback.
        .layer(axum::middleware::from_fn_with_state(
            cors_policy,
            cors::cors,
        ))
        .layer(axum::middleware::from_fn(access_log::log_requests))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        // Per route (after routing) so the matched template is known; outermost
        // of those, so the latency covers CORS and the request id too.
        .layer(axum::middleware::from_fn_with_state(
            metrics,
            metrics::track_requests,
        ))
        // First of all: who the client is (peer, TLS, trusted proxies).
        .layer(axum::middleware::from_fn_with_state(
            trusted,
            proxy::resolve_client,
        ))
        .with_state(state)
}

/// The services over stored bundles, sharing one blob store.
struct StorageServices {
    publish: Arc<storage::publish::PublishService>,
    downloads: Arc<storage::downloads::DownloadService>,
    gc: Arc<storage::gc::GcService>,
}

/// Opens the blob store the config names and builds the storage services
/// on it, each with the narrow stores it needs. Uploads live where the
/// blobs do: on this node's disk beside local blobs, in the database and the
/// bucket beside an object store (any node may take any request).
async fn open_storage(
    config: &ServerConfig,
    store: &Arc<dyn Store>,
    releases: Arc<ReleaseCache>,
    metrics: Arc<Metrics>,
    clock: Arc<dyn updraft_core::model::Clock>,
) -> Result<StorageServices, ServeError> {
    use storage::uploads::{local::LocalUploads, shared::SharedUploads, UploadBackend};
    let expiry = Duration::from_secs(config.upload_expiry_secs);
    let blobs = storage::open_blobs(
        config.storage_url.as_deref(),
        &config.storage_options,
        &config.data_dir,
        expiry,
        Arc::clone(&clock),
    )
    .await?;
    let uploads: Arc<dyn UploadBackend> = if blobs.is_shared() {
        Arc::new(SharedUploads::new(
            Arc::clone(store) as Arc<dyn updraft_store::UploadStore>,
            Arc::clone(&blobs),
            expiry,
            Arc::clone(&clock),
        ))
    } else {
        Arc::new(
            LocalUploads::open(
                &config.data_dir.join("uploads"),
                Arc::clone(&blobs),
                expiry,
                Arc::clone(&clock),
            )
            .map_err(storage::StorageError::from)?,
        )
    };
    let signer = match config.signed_url_ttl_secs {
        Some(ttl) => Some(
            storage::signing::UrlSigner::from_store(
                store.as_ref(),
                &config.data_dir,
                ttl,
                clock.now(),
            )
            .await?,
        ),
        None => None,
    };
    let bundles = Arc::clone(store) as Arc<dyn updraft_store::BundleStore>;
    let gc_lock = Arc::new(tokio::sync::RwLock::new(()));
    let publish = storage::publish::PublishService::new(
        Arc::clone(&uploads),
        Arc::clone(&blobs),
        Arc::clone(&bundles),
        Arc::clone(&clock),
        Arc::clone(&gc_lock),
        storage::publish::PublishLimits {
            max_upload_size: config.max_upload_size,
            blob_body_limit: config.api_body_limit,
            zip_limits: config.zip_limits,
            app_storage_quota: config.limits.app_storage_quota_bytes,
        },
    );
    let downloads = storage::downloads::DownloadService::new(
        storage::downloads::DownloadSources {
            blobs: Arc::clone(&blobs),
            releases,
            bundles: Arc::clone(&bundles),
            tallies: Arc::clone(store) as Arc<dyn updraft_store::DownloadStore>,
        },
        signer,
        storage::Delivery {
            mode: config.download_mode,
            cdn_base_url: config
                .cdn_base_url
                .as_ref()
                .map(|url| url.trim_end_matches('/').to_string()),
            presigned_ttl: Duration::from_secs(config.presigned_url_ttl_secs),
        },
        metrics,
        Arc::clone(&clock),
    );
    // Unreferenced blobs get the upload expiry as their grace period.
    let gc = storage::gc::GcService::new(blobs, bundles, uploads, gc_lock, clock, expiry);
    Ok(StorageServices {
        publish: Arc::new(publish),
        downloads: Arc::new(downloads),
        gc: Arc::new(gc),
    })
}

/// The metrics listener's routes: `/metrics` and nothing else.
fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics_endpoint))
        .fallback(not_found)
        .with_state(state)
}

/// Serves `router` on an extra plain-HTTP listener until `stop` is told.
fn spawn_side_listener(
    name: &'static str,
    listener: TcpListener,
    router: Router,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let result = axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                let _ = stop.changed().await;
            })
            .await;
        if let Err(err) = result {
            tracing::error!(listener = name, error = %err, "listener ended with an error");
        }
    })
}

/// A bound, loaded server, ready to run.
pub struct Server {
    listener: TcpListener,
    /// The certificate in service, when the main listener speaks HTTPS.
    tls: Option<(Arc<tls::CertStore>, tokio_rustls::TlsAcceptor)>,
    /// `metrics_listen` and `http_redirect_listen`, bound.
    metrics_listener: Option<TcpListener>,
    redirect_listener: Option<TcpListener>,
    /// Connections served at once (the setting, or derived from the file limit).
    max_connections: usize,
    state: AppState,
    cluster: Arc<dyn Cluster>,
    /// Told by the leader election; `state.leading` listens.
    leading: tokio::sync::watch::Sender<bool>,
    registry_handle: Option<(
        tokio::task::JoinHandle<()>,
        tokio::sync::watch::Sender<bool>,
    )>,
    stats_handle: tokio::task::JoinHandle<()>,
}

impl Server {
    /// Binds the listener and loads every app's release configuration.
    pub async fn bind(config: ServerConfig, store: Arc<dyn Store>) -> Result<Server, ServeError> {
        Self::bind_with_clock(config, store, Arc::new(updraft_core::model::SystemClock)).await
    }

    /// `bind` with another clock (tests: a `ManualClock`).
    pub async fn bind_with_clock(
        config: ServerConfig,
        store: Arc<dyn Store>,
        clock: Arc<dyn updraft_core::model::Clock>,
    ) -> Result<Server, ServeError> {
        Self::bind_in_cluster(config, store, Arc::new(SingleNode), clock).await
    }

    /// `bind` as one node of several sharing `store` (PostgreSQL): release
    /// changes from every node are applied here, and the background work runs
    /// on whichever node holds the cluster's leader lock.
    pub async fn bind_in_cluster(
        config: ServerConfig,
        store: Arc<dyn Store>,
        cluster: Arc<dyn Cluster>,
        clock: Arc<dyn updraft_core::model::Clock>,
    ) -> Result<Server, ServeError> {
        let file_limit = match listener::raise_file_limit() {
            Ok(limit) => {
                tracing::info!(
                    soft = limit.soft,
                    hard = limit.hard,
                    was = limit.before,
                    "open-file limit"
                );
                limit.soft
            }
            Err(err) => {
                tracing::warn!(error = %err, "cannot read or raise the open-file limit; assuming 1024");
                1024
            }
        };
        let max_connections =
            listener::effective_max_connections(config.connections.max_connections, file_limit);
        tracing::info!(
            max_connections,
            listen_backlog = config.connections.listen_backlog,
            file_limit,
            "connection limit"
        );
        let listener =
            listener::bind(config.listen, config.connections.listen_backlog).map_err(|source| {
                ServeError::Bind {
                    addr: config.listen,
                    source,
                }
            })?;
        let tls = match config.edge.tls_files().map_err(ServeError::Settings)? {
            Some(files) => {
                let store = Arc::new(tls::CertStore::load(files)?);
                let acceptor = tls::acceptor(&store)?;
                Some((store, acceptor))
            }
            None => None,
        };
        let bind_side = |addr: Option<SocketAddr>| {
            addr.map(|addr| {
                listener::bind(addr, 128).map_err(|source| ServeError::Bind { addr, source })
            })
            .transpose()
        };
        let metrics_listener = bind_side(config.edge.metrics_listen)?;
        let redirect_listener = bind_side(config.edge.http_redirect_listen)?;
        let releases = Arc::new(ReleaseCache::new(
            Arc::clone(&store) as Arc<dyn updraft_store::ReleaseStore>
        ));
        let apps = releases.reload_all().await?;
        tracing::info!(apps, "release configuration loaded");
        let metrics = Arc::new(Metrics::with_app_labels(
            config
                .edge
                .metrics_per_app
                .then_some(config.edge.metrics_max_apps),
        ));
        metrics.set_process_start_time(clock.now());
        metrics.set_connection_limit(max_connections);
        let registry = Arc::new(RegistryWriter::new(
            Arc::clone(&store) as Arc<dyn updraft_store::DeviceStore>,
            Arc::clone(&metrics),
        ));
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let registry_task = registry.spawn_flusher(
            Duration::from_millis(config.registry_flush_interval_ms.max(10)),
            stop_rx,
        );
        let (stats, stats_handle) = StatsWriter::spawn(
            StatsWriterDeps {
                store: Arc::clone(&store) as Arc<dyn updraft_store::AnalyticsStore>,
                clock: Arc::clone(&clock),
                releases: Arc::clone(&releases),
                registry: Arc::clone(&registry),
                metrics: Arc::clone(&metrics),
                max_bundles_per_day: config.limits.rollup_max_distinct_per_day,
            },
            config.stats_queue_capacity,
            config.event_retention_days,
        );
        let bundle_storage = open_storage(
            &config,
            &store,
            Arc::clone(&releases),
            Arc::clone(&metrics),
            Arc::clone(&clock),
        )
        .await?;
        let webhook_secrets = Arc::new(
            webhook_secrets::SecretBox::from_config_or_store(
                config.webhook_secret_key.as_ref(),
                store.as_ref(),
                clock.now(),
            )
            .await?,
        );
        // Secrets stored as plaintext by an older version are sealed now;
        // with nothing left to seal this is one read.
        let sealed =
            webhook_secrets::encrypt_plaintext_rows(store.as_ref(), &webhook_secrets).await?;
        if sealed > 0 {
            tracing::info!(webhooks = sealed, "encrypted plaintext webhook secrets");
        }
        let (leading_tx, leading_rx) = tokio::sync::watch::channel(false);
        let write_health = Arc::new(write_health::WriteHealth::new(
            &config.data_dir,
            config.min_free_disk_mb,
        ));
        metrics.set_write_health(write_health.free_bytes(), write_health.readiness().is_ok());
        let limiters = Arc::new(limiter::Limiters::new(&config.limits));
        let auth = Arc::new(auth::AuthService::new(
            Arc::clone(&store) as Arc<dyn updraft_store::ApiKeyStore>,
            Arc::clone(&clock),
            config.limits.auth_failure_rate,
            config.limits.rate_limit_max_keys,
            Arc::clone(&metrics),
        ));
        let audit = Arc::new(audit::AuditService::new(
            Arc::clone(&store) as Arc<dyn updraft_store::AuditStore>,
            Arc::clone(&clock),
            Arc::clone(&metrics),
        ));
        let accounts = Arc::new(accounts::AccountService::new(
            accounts::AccountDeps {
                users: Arc::clone(&store) as Arc<dyn updraft_store::UserStore>,
                sessions: Arc::clone(&store) as Arc<dyn updraft_store::SessionStore>,
                audit: Arc::clone(&store) as Arc<dyn updraft_store::AuditStore>,
                clock: Arc::clone(&clock),
                secrets: Arc::clone(&webhook_secrets),
                metrics: Arc::clone(&metrics),
            },
            config.accounts,
            config.limits.rate_limit_max_keys,
        ));
        let webhooks = Arc::new(webhooks::WebhookService::new(
            Arc::clone(&store) as Arc<dyn updraft_store::WebhookStore>,
            Arc::clone(&clock),
            Arc::clone(&metrics),
            Arc::clone(&webhook_secrets),
            Arc::clone(&audit),
            config.webhook_delivery(),
        ));
        let release_changes = Arc::new(release_changes::ReleaseService::new(
            Arc::clone(&store) as Arc<dyn updraft_store::ChannelStore>,
            Arc::clone(&store) as Arc<dyn updraft_store::BundleStore>,
            Arc::clone(&store) as Arc<dyn updraft_store::RolloutStore>,
            Arc::clone(&releases),
            Arc::clone(&clock),
            Arc::clone(&audit),
            Arc::clone(&webhooks),
        ));
        let control = Arc::new(control::ControlLoop::new(control::ControlDeps {
            releases: Arc::clone(&release_changes),
            apps: Arc::clone(&store) as Arc<dyn updraft_store::ReleaseStore>,
            channels: Arc::clone(&store) as Arc<dyn updraft_store::ChannelStore>,
            schedules: Arc::clone(&store) as Arc<dyn updraft_store::ScheduleStore>,
            rollouts: Arc::clone(&store) as Arc<dyn updraft_store::RolloutStore>,
            cache: Arc::clone(&releases),
            clock: Arc::clone(&clock),
            metrics: Arc::clone(&metrics),
            audit: Arc::clone(&audit),
            every: Duration::from_millis(config.rollout_control_interval_ms),
        }));
        let apps = Arc::new(apps::AppService::new(
            Arc::clone(&store) as Arc<dyn updraft_store::AppStore>,
            Arc::clone(&registry),
            Arc::clone(&release_changes),
            Arc::clone(&clock),
            Arc::clone(&audit),
        ));
        let apikeys = Arc::new(apikeys::ApiKeyService::new(
            Arc::clone(&store) as Arc<dyn updraft_store::ApiKeyStore>,
            Arc::clone(&store) as Arc<dyn updraft_store::AppStore>,
            Arc::clone(&clock),
            Arc::clone(&audit),
        ));
        let devices = Arc::new(devices::DeviceService::new(devices::DeviceDeps {
            devices: Arc::clone(&store) as Arc<dyn updraft_store::DeviceStore>,
            overrides: Arc::clone(&store) as Arc<dyn updraft_store::OverrideStore>,
            channels: Arc::clone(&store) as Arc<dyn updraft_store::ChannelStore>,
            events: Arc::clone(&store) as Arc<dyn updraft_store::StatsStore>,
            registry: Arc::clone(&registry),
            cache: Arc::clone(&releases),
            releases: Arc::clone(&release_changes),
            audit: Arc::clone(&audit),
            clock: Arc::clone(&clock),
        }));
        let analytics = Arc::new(analytics::AnalyticsService::new(
            Arc::clone(&store) as Arc<dyn updraft_store::AnalyticsStore>
        ));
        let bundles = Arc::new(bundles::BundleService::new(
            Arc::clone(&store) as Arc<dyn updraft_store::BundleStore>,
            Arc::clone(&store) as Arc<dyn updraft_store::ScheduleStore>,
            Arc::clone(&release_changes),
            Arc::clone(&clock),
            Arc::clone(&audit),
        ));
        let state = AppState {
            bundles,
            analytics,
            devices,
            apps,
            apikeys,
            release_changes,
            audit,
            accounts,
            webhooks,
            control,
            auth,
            webhook_secrets,
            limiters,
            write_health,
            publish: bundle_storage.publish,
            downloads: bundle_storage.downloads,
            gc: bundle_storage.gc,
            store,
            releases,
            registry,
            stats: Arc::new(stats),
            config: Arc::new(config),
            metrics,
            clock,
            leading: leading_rx,
        };
        Ok(Server {
            listener,
            tls,
            metrics_listener,
            redirect_listener,
            max_connections,
            state,
            cluster,
            leading: leading_tx,
            registry_handle: Some((registry_task, stop_tx)),
            stats_handle,
        })
    }

    /// The shared state, for in-process tests that drive `router` directly.
    pub fn state(&self) -> &AppState {
        &self.state
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Whether the main listener speaks HTTPS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// The metrics listener's address, when `metrics_listen` is set.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
    }

    /// The redirect listener's address, when `http_redirect_listen` is set.
    pub fn redirect_addr(&self) -> Option<SocketAddr> {
        self.redirect_listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
    }

    /// Serves until `shutdown` completes, lets in-flight requests finish, then
    /// flushes every buffered write.
    pub async fn run(
        mut self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        let reload = spawn_periodic_reload(&self.state);
        let write_checks = write_health::spawn(
            Arc::clone(&self.state.write_health),
            Arc::clone(&self.state.store) as Arc<dyn updraft_store::SettingStore>,
            Arc::clone(&self.state.clock),
            Arc::clone(&self.state.metrics),
            Duration::from_millis(self.state.config.write_check_interval_ms.max(100)),
        );
        let release_listener = cluster::spawn_release_listener(
            Arc::clone(&self.cluster),
            Arc::clone(&self.state.releases),
            Arc::clone(&self.state.metrics),
        );
        let (downloads_stop, downloads_stop_rx) = tokio::sync::watch::channel(false);
        let downloads_flusher = Arc::clone(&self.state.downloads)
            .spawn_flusher(Duration::from_secs(5), downloads_stop_rx);
        // Background work runs on one node at a time (the leader); on the
        // embedded store this node leads from the start.
        let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
        let background = self.spawn_background_work(&shutdown_rx);
        let election = cluster::spawn_election(
            Arc::clone(&self.cluster),
            Arc::clone(&self.state.metrics),
            self.leading.clone(),
            shutdown_rx.clone(),
        );
        let app = router(self.state.clone());
        let (edge_stop, edge_stop_rx) = tokio::sync::watch::channel(false);
        let mut edge_tasks = Vec::new();
        let acceptor = match &self.tls {
            Some((store, acceptor)) => {
                let every =
                    Duration::from_secs(self.state.config.edge.tls_reload_interval_secs.max(1));
                edge_tasks.push(tls::spawn_reloader(
                    Arc::clone(store),
                    every,
                    edge_stop_rx.clone(),
                ));
                Some(acceptor.clone())
            }
            None => None,
        };
        if let Some(listener) = self.metrics_listener.take() {
            edge_tasks.push(spawn_side_listener(
                "metrics",
                listener,
                metrics_router(self.state.clone()),
                edge_stop_rx.clone(),
            ));
        }
        if let Some(listener) = self.redirect_listener.take() {
            // To this server's own HTTPS port, or 443 when TLS ends in front of it.
            let https_port = match (&self.tls, self.listener.local_addr()) {
                (Some(_), Ok(addr)) => addr.port(),
                _ => 443,
            };
            edge_tasks.push(spawn_side_listener(
                "http-redirect",
                listener,
                redirect::router(https_port),
                edge_stop_rx.clone(),
            ));
        }
        listener::serve(
            self.listener,
            app,
            self.state.config.connections.clone(),
            self.max_connections,
            Arc::clone(&self.state.metrics),
            acceptor,
            shutdown,
        )
        .await;
        let _ = edge_stop.send(true);
        for task in edge_tasks {
            if let Err(err) = task.await {
                tracing::error!(error = %err, "a listener ended badly");
            }
        }
        reload.abort();
        write_checks.abort();
        if let Some(listener) = release_listener {
            listener.abort();
        }
        let _ = downloads_stop.send(true);
        if let Err(err) = downloads_flusher.await {
            tracing::error!(error = %err, "download counter flusher ended badly");
        }
        // The control loop stops before the stats writer drains; webhook deliveries in flight finish (each
        // within the webhook timeout), what is pending stays queued; then the
        // leader lock goes, so another node takes over at once.
        let _ = shutdown_tx.send(true);
        for task in background {
            if let Err(err) = task.await {
                tracing::error!(error = %err, "background work ended badly");
            }
        }
        if let Err(err) = election.await {
            tracing::error!(error = %err, "leader election ended badly");
        }
        tracing::info!("stopped accepting requests; flushing buffered writes");
        // Dropping the last sender lets the stats writer drain its queue and stop.
        let AppState { stats, .. } = self.state;
        drop(stats);
        match tokio::time::timeout(Duration::from_secs(30), self.stats_handle).await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => tracing::error!(error = %err, "stats writer ended badly"),
            Err(_) => tracing::error!("stats writer did not drain within 30 s"),
        }
        if let Some((task, stop)) = self.registry_handle.take() {
            let _ = stop.send(true);
            if let Err(err) = task.await {
                tracing::error!(error = %err, "device registry writer ended badly");
            }
        }
        tracing::info!("shutdown complete");
        Ok(())
    }

    /// Rollout control, webhook deliveries, gc and retention, each running
    /// while this node leads.
    fn spawn_background_work(
        &self,
        shutdown: &tokio::sync::watch::Receiver<bool>,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        let leading = &self.state.leading;
        let control_loop = Arc::clone(&self.state.control);
        let control = cluster::spawn_while_leading(
            "rollout-control",
            leading.clone(),
            shutdown.clone(),
            move |stop| control_loop.spawn(stop),
        );
        let deliveries = Arc::clone(&self.state.webhooks);
        let webhooks = cluster::spawn_while_leading(
            "webhooks",
            leading.clone(),
            shutdown.clone(),
            move |stop| deliveries.spawn_worker(stop),
        );
        let gc_service = Arc::clone(&self.state.gc);
        let gc_every = Duration::from_secs(self.state.config.gc_interval_secs.max(1));
        let gc =
            cluster::spawn_while_leading("gc", leading.clone(), shutdown.clone(), move |stop| {
                let task = Arc::clone(&gc_service).spawn_periodic(gc_every);
                cluster::abort_on_stop(task, stop)
            });
        let store = &self.state.store;
        let old_rows = Arc::new(
            retention::Retention::new(
                Arc::clone(store) as Arc<dyn updraft_store::AnalyticsStore>,
                Arc::clone(store) as Arc<dyn updraft_store::RolloutStore>,
                Arc::clone(store) as Arc<dyn updraft_store::WebhookStore>,
                Arc::clone(&self.state.clock),
                self.state.config.event_retention_days,
            )
            .with_sessions(
                Arc::clone(store) as Arc<dyn updraft_store::SessionStore>,
                self.state.config.accounts.session_idle_timeout_secs,
            ),
        );
        let retention_every = Duration::from_secs(self.state.config.retention_interval_secs);
        let retention = cluster::spawn_while_leading(
            "retention",
            leading.clone(),
            shutdown.clone(),
            move |stop| cluster::abort_on_stop(old_rows.spawn(retention_every), stop),
        );
        vec![control, webhooks, gc, retention]
    }
}

fn spawn_periodic_reload(state: &AppState) -> tokio::task::JoinHandle<()> {
    let releases = Arc::clone(&state.releases);
    let metrics = Arc::clone(&state.metrics);
    let every = Duration::from_secs(state.config.release_reload_interval_secs.max(1));
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(every);
        ticker.tick().await;
        loop {
            ticker.tick().await;
            if let Err(err) = releases.reload_all().await {
                metrics.record_database_error(db_operation::RELEASE_RELOAD);
                tracing::warn!(error = %err, "periodic release reload failed");
            }
        }
    })
}
