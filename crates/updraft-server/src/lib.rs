//! Updraft's HTTP layer: the device API the plugin calls, the management API,
//! health endpoints, and the background writers behind them.

pub mod api;
pub mod audit;
pub mod control;
pub mod cors;
pub mod device;
pub mod error;
pub mod metrics;
pub mod release_changes;
pub mod releases;
pub mod retention;
pub mod state;
pub mod storage;
pub mod webhooks;
pub mod writers;

use crate::metrics::{db_operation, Metrics};
use crate::releases::ReleaseCache;
use crate::state::{AppState, ServerConfig};
use crate::writers::{RegistryWriter, StatsWriter};
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use serde_json::json;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
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
    #[error("server error: {0}")]
    Io(#[from] std::io::Error),
}

async fn healthz() -> impl IntoResponse {
    axum::Json(json!({"status": "ok"}))
}

async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    match state.store.ping().await {
        Ok(()) => (StatusCode::OK, axum::Json(json!({"status": "ok"}))),
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

/// Echoes a sane incoming `X-Request-Id`, else makes one, so a device's
/// request can be found in the logs.
async fn request_id(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let incoming = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 255
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        })
        .map(str::to_string);
    let id = incoming.unwrap_or_else(|| format!("{:032x}", rand::random::<u128>()));
    let mut response = next.run(request).await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", value);
    }
    response
}

pub fn router(state: AppState) -> Router {
    let cors_policy = cors::CorsPolicy::new(state.config.cors_allowed_origins.clone());
    let metrics = Arc::clone(&state.metrics);
    Router::new()
        .merge(device::routes())
        .merge(api::routes())
        .merge(storage::download_routes())
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_endpoint))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        // Outside the routing, so a preflight never meets the 405 fallback.
        .layer(axum::middleware::from_fn_with_state(
            cors_policy,
            cors::cors,
        ))
        .layer(axum::middleware::from_fn(request_id))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        // Per route (after routing) so the matched template is known; outermost
        // of those, so the latency covers CORS and the request id too.
        .layer(axum::middleware::from_fn_with_state(
            metrics,
            metrics::track_requests,
        ))
        .with_state(state)
}

/// A bound, loaded server, ready to run.
pub struct Server {
    listener: TcpListener,
    state: AppState,
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
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| ServeError::Bind {
                    addr: config.listen,
                    source,
                })?;
        let releases = Arc::new(ReleaseCache::new(Arc::clone(&store)));
        let apps = releases.reload_all().await?;
        tracing::info!(apps, "release configuration loaded");
        let metrics = Arc::new(Metrics::new());
        let registry = Arc::new(RegistryWriter::new(Arc::clone(&store)));
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let registry_task = registry.spawn_flusher(
            Duration::from_millis(config.registry_flush_interval_ms.max(10)),
            stop_rx,
            Arc::clone(&metrics),
        );
        let (stats, stats_handle) = StatsWriter::spawn(
            Arc::clone(&store),
            Arc::clone(&releases),
            config.stats_queue_capacity,
            config.event_retention_days,
            Arc::clone(&metrics),
        );
        let bundle_storage = Arc::new(storage::Storage::open(&config)?);
        let state = AppState {
            storage: bundle_storage,
            store,
            releases,
            registry,
            stats: Arc::new(stats),
            config: Arc::new(config),
            metrics,
            clock,
        };
        Ok(Server {
            listener,
            state,
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

    /// Serves until `shutdown` completes, lets in-flight requests finish, then
    /// flushes every buffered write.
    pub async fn run(
        mut self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        let reload = spawn_periodic_reload(&self.state);
        let bundle_storage = Arc::clone(&self.state.storage);
        let (downloads_stop, downloads_stop_rx) = tokio::sync::watch::channel(false);
        let downloads_flusher = storage::downloads::spawn_flusher(
            Arc::clone(&bundle_storage),
            Arc::clone(&self.state.store),
            Duration::from_secs(5),
            downloads_stop_rx,
        );
        let gc = storage::gc::spawn_periodic(
            bundle_storage,
            Arc::clone(&self.state.store),
            Duration::from_secs(self.state.config.gc_interval_secs.max(1)),
        );
        let retention = retention::spawn(
            Arc::clone(&self.state.store),
            self.state.config.event_retention_days,
            Duration::from_secs(self.state.config.retention_interval_secs),
        );
        let (webhooks_stop, webhooks_stop_rx) = tokio::sync::watch::channel(false);
        let webhook_worker = webhooks::spawn_worker(
            Arc::clone(&self.state.store),
            Arc::clone(&self.state.config),
            Arc::clone(&self.state.metrics),
            webhooks_stop_rx,
        );
        let (control_stop, control_stop_rx) = tokio::sync::watch::channel(false);
        let control_loop = control::spawn(self.state.clone(), control_stop_rx);
        let app = router(self.state.clone());
        axum::serve(self.listener, app)
            .with_graceful_shutdown(shutdown)
            .await?;
        reload.abort();
        gc.abort();
        let _ = downloads_stop.send(true);
        if let Err(err) = downloads_flusher.await {
            tracing::error!(error = %err, "download counter flusher ended badly");
        }
        retention.abort();
        // Before the webhook worker (its events get queued) and the stats
        // writer drains (the loop holds a copy of the state).
        let _ = control_stop.send(true);
        if let Err(err) = control_loop.await {
            tracing::error!(error = %err, "rollout control loop ended badly");
        }
        // Deliveries in flight finish (each within the webhook timeout); what
        // is still pending stays queued for the next start.
        let _ = webhooks_stop.send(true);
        if let Err(err) = webhook_worker.await {
            tracing::error!(error = %err, "webhook delivery worker ended badly");
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
