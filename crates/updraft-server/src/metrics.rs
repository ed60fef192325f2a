//! Operations metrics, served at `GET /metrics` in the OpenMetrics text format
//! (which Prometheus scrapes natively).
//!
//! Every request is counted by a middleware ([`track_requests`]) that reads the
//! matched route template, never the raw path, so label cardinality stays
//! bounded by the routes the server has. Handlers that know more attach it to
//! their response as an extension ([`UpdateCheckOutcome`], [`DatabaseFailure`])
//! instead of touching response bodies.
//!
//! The hot path does not allocate for labels: route templates are interned
//! once, every other label value is a `&'static str` or an integer.

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::{EncodeLabelSet, LabelSetEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};
use std::collections::HashSet;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use updraft_core::decision::{RefusalKind, UpdateOutcome};
use updraft_core::error::DeviceErrorCode;

/// What `/metrics` answers with: the content type `prometheus-client` encodes.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The `route` label of requests no route matched (404 fallback).
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// The `kind` label of an update check that offered a bundle.
pub const KIND_NONE: &str = "none";

/// Upper bounds (seconds) of the latency histogram: an in-memory update check
/// answers in well under a millisecond, a management call that writes may take
/// a few hundred, a stalled disk seconds.
pub const LATENCY_BUCKETS: [f64; 16] = [
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// Where a database error happened (`operation` label of
/// `updraft_database_errors_total`). All are pre-registered at zero so that
/// `rate()` works from the first scrape.
pub mod db_operation {
    /// A management-API request (a `StoreError::Backend` turned into a 500).
    pub const API: &str = "api";
    /// A stats request whose events could not be committed.
    pub const STATS_COMMIT: &str = "stats_commit";
    /// A `channel_self` call whose device override could not be stored.
    pub const CHANNEL_OVERRIDE: &str = "channel_override";
    /// Reloading release configuration (periodic or after a change).
    pub const RELEASE_RELOAD: &str = "release_reload";
    /// The readiness probe's ping.
    pub const READYZ: &str = "readyz";
    /// Flushing buffered device sightings.
    pub const REGISTRY_FLUSH: &str = "registry_flush";
    /// Listening for other nodes' release changes, or taking the leader lock.
    pub const CLUSTER: &str = "cluster";

    pub const ALL: [&str; 7] = [
        API,
        STATS_COMMIT,
        CHANNEL_OVERRIDE,
        RELEASE_RELOAD,
        READYZ,
        REGISTRY_FLUSH,
        CLUSTER,
    ];
}

/// The outcome of one `/updates` check, attached to its response as an
/// extension for [`track_requests`] to count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UpdateCheckOutcome {
    /// `get`, or the refusal's error code.
    pub outcome: &'static str,
    /// `none` for `get`, else the refusal's `kind` (up_to_date / blocked / failed).
    pub kind: &'static str,
}

impl UpdateCheckOutcome {
    /// An answer from `answer_update`: its `kind` follows the decision's own
    /// classification of the code.
    pub fn of_answer(outcome: UpdateOutcome) -> Self {
        UpdateCheckOutcome {
            outcome: outcome.as_str(),
            kind: outcome.kind().map_or(KIND_NONE, RefusalKind::as_str),
        }
    }

    /// A request refused before any decision: `failed` for bad input,
    /// `blocked` for a rate limit (429), as `DeviceResponse::update_check`
    /// says on the wire.
    pub fn rejected(code: DeviceErrorCode, status: u16) -> Self {
        let kind = if status == 429 {
            RefusalKind::Blocked
        } else {
            RefusalKind::Failed
        };
        UpdateCheckOutcome {
            outcome: code.as_str(),
            kind: kind.as_str(),
        }
    }
}

/// Marks a response whose error came from the database, for
/// [`track_requests`] to count under `operation="api"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DatabaseFailure;

#[derive(Clone, Debug, Hash, PartialEq, Eq)]
struct HttpRequestLabels {
    route: Arc<str>,
    method: &'static str,
    status: u16,
}

impl EncodeLabelSet for HttpRequestLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> Result<(), std::fmt::Error> {
        (
            [("route", &*self.route), ("method", self.method)],
            [("status", self.status)],
        )
            .encode(encoder)
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq)]
struct RouteLabels {
    route: Arc<str>,
}

impl EncodeLabelSet for RouteLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> Result<(), std::fmt::Error> {
        [("route", &*self.route)].encode(encoder)
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq)]
struct UpdateCheckLabels {
    outcome: &'static str,
    kind: &'static str,
}

impl EncodeLabelSet for UpdateCheckLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> Result<(), std::fmt::Error> {
        [("outcome", self.outcome), ("kind", self.kind)].encode(encoder)
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq)]
struct OperationLabels {
    operation: &'static str,
}

impl EncodeLabelSet for OperationLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> Result<(), std::fmt::Error> {
        [("operation", self.operation)].encode(encoder)
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq)]
struct ControlOutcomeLabels {
    action: &'static str,
    reason: &'static str,
}

impl EncodeLabelSet for ControlOutcomeLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> Result<(), std::fmt::Error> {
        [("action", self.action), ("reason", self.reason)].encode(encoder)
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq)]
struct DeliveryLabels {
    outcome: &'static str,
}

impl EncodeLabelSet for DeliveryLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> Result<(), std::fmt::Error> {
        [("outcome", self.outcome)].encode(encoder)
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq)]
struct ScopeLabels {
    scope: &'static str,
}

impl EncodeLabelSet for ScopeLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> Result<(), std::fmt::Error> {
        [("scope", self.scope)].encode(encoder)
    }
}

/// The `scope` label of `updraft_rate_limited_total`.
pub mod rate_scope {
    /// One device of one app (device routes).
    pub const DEVICE: &str = "device";
    /// All devices of one app (device routes).
    pub const APP: &str = "app";
    /// A client address after failed management authentications.
    pub const AUTH_FAILURES: &str = "auth_failures";
    pub const ALL: [&str; 3] = [DEVICE, APP, AUTH_FAILURES];
}

#[derive(Clone, Debug, Hash, PartialEq, Eq)]
struct VersionLabels {
    version: &'static str,
}

impl EncodeLabelSet for VersionLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> Result<(), std::fmt::Error> {
        [("version", self.version)].encode(encoder)
    }
}

/// Route templates, each allocated once: `MatchedPath` only lends its `&str`,
/// and a label key must be owned. The set is bounded by the routes the router has.
#[derive(Default)]
struct RouteInterner {
    routes: RwLock<HashSet<Arc<str>>>,
}

impl RouteInterner {
    fn intern(&self, route: &str) -> Arc<str> {
        {
            let known = match self.routes.read() {
                Ok(guard) => guard,
                Err(poisoned) => poisoned.into_inner(),
            };
            if let Some(found) = known.get(route) {
                return Arc::clone(found);
            }
        }
        let mut known = match self.routes.write() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(found) = known.get(route) {
            return Arc::clone(found);
        }
        let interned: Arc<str> = Arc::from(route);
        known.insert(Arc::clone(&interned));
        interned
    }
}

/// The `method` label: the standard methods by name, anything else `other`
/// (a client cannot mint label values).
pub fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

type HistogramFamily<S> = Family<S, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

/// Every metric the server exposes, and the registry that renders them.
pub struct Metrics {
    registry: Registry,
    routes: RouteInterner,
    unmatched: Arc<str>,
    http_requests: Family<HttpRequestLabels, Counter>,
    http_duration: HistogramFamily<RouteLabels>,
    update_checks: Family<UpdateCheckLabels, Counter>,
    stats_queue_depth: Gauge,
    stats_events_committed: Counter,
    stats_commits: Counter,
    stats_rejected_busy: Counter,
    database_errors: Family<OperationLabels, Counter>,
    storage_errors: Family<OperationLabels, Counter>,
    download_bytes: Counter,
    registry_pending_devices: Gauge,
    registry_unchanged_sightings: Counter,
    disk_free_bytes: Gauge,
    writes_ready: Gauge,
    writes_refused_low_disk: Counter,
    cluster_leader: Gauge,
    release_notifications: Counter,
    rollout_control_outcomes: Family<ControlOutcomeLabels, Counter>,
    webhook_attempts: Family<DeliveryLabels, Counter>,
    http_connections: Gauge,
    http_connection_limit: Gauge,
    accept_errors: Counter,
    connection_timeouts: Family<ReasonLabels, Counter>,
    rate_limited: Family<ScopeLabels, Counter>,
    auth_failures: Counter,
    rollup_folded_events: Counter,
    process_start_time: Gauge<f64, AtomicU64>,
    /// Per-app series, when `metrics_per_app` is on.
    apps: Option<AppSeries>,
}

/// The app of a device request whose app exists, attached to its response
/// for [`track_requests`] (per-app series only count known apps, so made-up
/// app ids cannot take the labels).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppLabel(pub Arc<str>);

/// The `app` label of apps past `metrics_max_apps`.
pub const OTHER_APP: &str = "other";

#[derive(Clone, Debug, Hash, PartialEq, Eq)]
struct AppKindLabels {
    app: Arc<str>,
    kind: &'static str,
}

impl EncodeLabelSet for AppKindLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> Result<(), std::fmt::Error> {
        [("app", &*self.app), ("kind", self.kind)].encode(encoder)
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq)]
struct AppLabels {
    app: Arc<str>,
}

impl EncodeLabelSet for AppLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> Result<(), std::fmt::Error> {
        [("app", &*self.app)].encode(encoder)
    }
}

/// Series labelled by app, for at most `max_apps` apps (the first seen);
/// the others share `app="other"`. At most (`max_apps` + 1) × 4 update-check
/// series and `max_apps` + 1 stats series.
struct AppSeries {
    max_apps: usize,
    labelled: RwLock<HashSet<Arc<str>>>,
    other: Arc<str>,
    update_checks: Family<AppKindLabels, Counter>,
    stats_events: Family<AppLabels, Counter>,
}

impl AppSeries {
    fn label(&self, app: &str) -> Arc<str> {
        if let Ok(labelled) = self.labelled.read() {
            if let Some(known) = labelled.get(app) {
                return Arc::clone(known);
            }
            if labelled.len() >= self.max_apps {
                return Arc::clone(&self.other);
            }
        }
        match self.labelled.write() {
            Ok(mut labelled) => {
                if let Some(known) = labelled.get(app) {
                    return Arc::clone(known);
                }
                if labelled.len() >= self.max_apps {
                    return Arc::clone(&self.other);
                }
                let label: Arc<str> = Arc::from(app);
                labelled.insert(Arc::clone(&label));
                label
            }
            Err(_) => Arc::clone(&self.other),
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq)]
struct ReasonLabels {
    reason: &'static str,
}

impl EncodeLabelSet for ReasonLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> Result<(), std::fmt::Error> {
        [("reason", self.reason)].encode(encoder)
    }
}

/// Why the server closed a connection itself (`reason` label).
pub mod connection_timeout {
    /// No request, or none after the last answer, within the header/idle timeout.
    pub const IDLE: &str = "idle";
    /// The client read the response slower than the minimum transfer rate.
    pub const SEND: &str = "send";
    pub const ALL: [&str; 2] = [IDLE, SEND];
}

/// Holds `updraft_http_connections` one higher while a connection is open.
pub struct ConnectionGuard {
    open: Gauge,
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.open.dec();
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        Self::with_app_labels(None)
    }

    /// `Some(max_apps)`: also the per-app series (`metrics_per_app`).
    pub fn with_app_labels(max_apps: Option<usize>) -> Metrics {
        let mut registry = Registry::with_prefix("updraft");
        let apps = max_apps.map(|max_apps| {
            let series = AppSeries {
                max_apps: max_apps.max(1),
                labelled: RwLock::new(HashSet::new()),
                other: Arc::from(OTHER_APP),
                update_checks: Family::default(),
                stats_events: Family::default(),
            };
            registry.register(
                "app_update_checks",
                "POST /updates answers of existing apps, by app and kind (metrics_max_apps apps get their own label, the rest app=\"other\")",
                series.update_checks.clone(),
            );
            registry.register(
                "app_stats_events_committed",
                "Stats events committed, by app (metrics_max_apps apps get their own label, the rest app=\"other\")",
                series.stats_events.clone(),
            );
            series
        });
        let http_requests = Family::<HttpRequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by matched route template, method and status",
            http_requests.clone(),
        );
        let http_duration: HistogramFamily<RouteLabels> =
            Family::new_with_constructor(latency_histogram);
        registry.register_with_unit(
            "http_request_duration",
            "Time from receiving a request to its response head, by matched route template",
            Unit::Seconds,
            http_duration.clone(),
        );
        let update_checks = Family::<UpdateCheckLabels, Counter>::default();
        registry.register(
            "update_checks",
            "POST /updates answers, by outcome (get or the refusal code) and kind",
            update_checks.clone(),
        );
        let stats_queue_depth = Gauge::default();
        registry.register(
            "stats_queue_depth",
            "Stats requests waiting for their events to be committed",
            stats_queue_depth.clone(),
        );
        let stats_events_committed = Counter::default();
        registry.register(
            "stats_events_committed",
            "Stats events durably committed and acknowledged",
            stats_events_committed.clone(),
        );
        let stats_commits = Counter::default();
        registry.register(
            "stats_commits",
            "Stats group-commit transactions that succeeded",
            stats_commits.clone(),
        );
        let stats_rejected_busy = Counter::default();
        registry.register(
            "stats_rejected_busy",
            "Stats requests answered 429 because the ingest queue was full",
            stats_rejected_busy.clone(),
        );
        let database_errors = Family::<OperationLabels, Counter>::default();
        for operation in db_operation::ALL {
            drop(database_errors.get_or_create(&OperationLabels { operation }));
        }
        registry.register(
            "database_errors",
            "Database operations that failed, by where they happened",
            database_errors.clone(),
        );
        let storage_errors = Family::<OperationLabels, Counter>::default();
        registry.register(
            "storage_errors",
            "Bundle file storage operations that failed, by operation",
            storage_errors.clone(),
        );
        let download_bytes = Counter::default();
        registry.register_with_unit(
            "download",
            "Bytes of bundle files sent to devices",
            Unit::Bytes,
            download_bytes.clone(),
        );
        let registry_pending_devices = Gauge::default();
        registry.register(
            "registry_pending_devices",
            "Device sightings buffered for the next registry flush (sampled at scrape)",
            registry_pending_devices.clone(),
        );
        let disk_free_bytes = Gauge::default();
        registry.register_with_unit(
            "disk_free",
            "Free space on the data directory's file system (checked every write_check_interval_ms)",
            Unit::Bytes,
            disk_free_bytes.clone(),
        );
        let writes_ready = Gauge::default();
        registry.register(
            "writes_ready",
            "1 while the last write probe committed and the disk is above min_free_disk_mb",
            writes_ready.clone(),
        );
        writes_ready.set(1);
        let writes_refused_low_disk = Counter::default();
        registry.register(
            "writes_refused_low_disk",
            "Stats and management writes refused with 503 because the disk is below min_free_disk_mb",
            writes_refused_low_disk.clone(),
        );
        let registry_unchanged_sightings = Counter::default();
        registry.register(
            "registry_unchanged_sightings",
            "Device sightings not written because this node wrote the same fields for the device in the last 60 to 90 seconds",
            registry_unchanged_sightings.clone(),
        );
        let cluster_leader = Gauge::default();
        registry.register(
            "cluster_leader",
            "1 while this node runs the background work (rollout control, retention, gc, webhooks)",
            cluster_leader.clone(),
        );
        let release_notifications = Counter::default();
        registry.register(
            "release_notifications",
            "Release changes this node heard of from the shared database (any node's)",
            release_notifications.clone(),
        );
        let rollout_control_outcomes = Family::<ControlOutcomeLabels, Counter>::default();
        registry.register(
            "rollout_control_outcomes",
            "What the rollout control loop concluded for a rollout, per pass (holds included)",
            rollout_control_outcomes.clone(),
        );
        let webhook_attempts = Family::<DeliveryLabels, Counter>::default();
        for outcome in ["succeeded", "failed"] {
            drop(webhook_attempts.get_or_create(&DeliveryLabels { outcome }));
        }
        registry.register(
            "webhook_delivery_attempts",
            "Webhook delivery attempts, by whether the receiver answered 2xx",
            webhook_attempts.clone(),
        );
        let rate_limited = Family::<ScopeLabels, Counter>::default();
        for scope in rate_scope::ALL {
            drop(rate_limited.get_or_create(&ScopeLabels { scope }));
        }
        registry.register(
            "rate_limited",
            "Requests answered 429 by a rate limit, by what was limited (device, app, auth_failures)",
            rate_limited.clone(),
        );
        let auth_failures = Counter::default();
        registry.register(
            "auth_failures",
            "Management requests refused 401 (no, unknown, revoked or expired API key)",
            auth_failures.clone(),
        );
        let rollup_folded_events = Counter::default();
        registry.register(
            "rollup_folded_events",
            "Stats events whose bundle name the rollups counted as `other` (over the app's distinct names of the day)",
            rollup_folded_events.clone(),
        );
        // Set by the server from its clock when it starts (`set_process_start_time`).
        let process_start_time = Gauge::<f64, AtomicU64>::default();
        registry.register_with_unit(
            "process_start_time",
            "When this server process started, in seconds since the Unix epoch",
            Unit::Seconds,
            process_start_time.clone(),
        );
        registry.register(
            "build",
            "The running Updraft version",
            Info::new(VersionLabels {
                version: env!("CARGO_PKG_VERSION"),
            }),
        );
        let http_connections = Gauge::default();
        registry.register(
            "http_connections",
            "Client connections open now",
            http_connections.clone(),
        );
        let http_connection_limit = Gauge::default();
        registry.register(
            "http_connection_limit",
            "Most client connections served at once (max_connections); more wait in the listen backlog",
            http_connection_limit.clone(),
        );
        let accept_errors = Counter::default();
        registry.register(
            "http_accept_errors",
            "Accept failures for want of descriptors or memory (EMFILE, ENFILE, ENOMEM); the server backs off and retries",
            accept_errors.clone(),
        );
        let connection_timeouts = Family::<ReasonLabels, Counter>::default();
        for reason in connection_timeout::ALL {
            drop(connection_timeouts.get_or_create(&ReasonLabels { reason }));
        }
        registry.register(
            "http_connection_timeouts",
            "Connections the server closed itself: idle (no request within the header or idle timeout) or send (the client stopped reading)",
            connection_timeouts.clone(),
        );
        Metrics {
            http_connections,
            http_connection_limit,
            accept_errors,
            connection_timeouts,
            registry,
            routes: RouteInterner::default(),
            unmatched: Arc::from(UNMATCHED_ROUTE),
            http_requests,
            http_duration,
            update_checks,
            stats_queue_depth,
            stats_events_committed,
            stats_commits,
            stats_rejected_busy,
            database_errors,
            storage_errors,
            download_bytes,
            registry_pending_devices,
            registry_unchanged_sightings,
            disk_free_bytes,
            writes_ready,
            writes_refused_low_disk,
            cluster_leader,
            release_notifications,
            rollout_control_outcomes,
            webhook_attempts,
            rate_limited,
            auth_failures,
            rollup_folded_events,
            process_start_time,
            apps,
        }
    }

    /// Counts an update check of a known app (per-app series only).
    pub fn record_app_update_check(&self, app: &str, kind: &'static str) {
        if let Some(apps) = &self.apps {
            apps.update_checks
                .get_or_create(&AppKindLabels {
                    app: apps.label(app),
                    kind,
                })
                .inc();
        }
    }

    /// Counts committed stats events of a known app (per-app series only).
    pub fn record_app_stats_events(&self, app: &str, events: usize) {
        if let Some(apps) = &self.apps {
            apps.stats_events
                .get_or_create(&AppLabels {
                    app: apps.label(app),
                })
                .inc_by(events as u64);
        }
    }

    /// Counts events a stats commit folded into the `other` bundle.
    pub fn record_rollup_folded_events(&self, events: u64) {
        self.rollup_folded_events.inc_by(events);
    }

    /// Counts a request refused by a rate limit (`rate_scope`).
    pub fn record_rate_limited(&self, scope: &'static str) {
        self.rate_limited
            .get_or_create(&ScopeLabels { scope })
            .inc();
    }

    /// Counts a failed management authentication.
    pub fn record_auth_failure(&self) {
        self.auth_failures.inc();
    }

    /// The `route` label of a request: its matched template, or `unmatched`.
    fn route_label(&self, matched: Option<&str>) -> Arc<str> {
        match matched {
            Some(template) => self.routes.intern(template),
            None => Arc::clone(&self.unmatched),
        }
    }

    /// Counts one answered request and its latency.
    pub fn record_request(
        &self,
        matched_route: Option<&str>,
        method: &Method,
        status: StatusCode,
        elapsed: Duration,
    ) {
        let route = self.route_label(matched_route);
        self.http_duration
            .get_or_create(&RouteLabels {
                route: Arc::clone(&route),
            })
            .observe(elapsed.as_secs_f64());
        self.http_requests
            .get_or_create(&HttpRequestLabels {
                route,
                method: method_label(method),
                status: status.as_u16(),
            })
            .inc();
    }

    pub fn record_update_check(&self, check: UpdateCheckOutcome) {
        self.update_checks
            .get_or_create(&UpdateCheckLabels {
                outcome: check.outcome,
                kind: check.kind,
            })
            .inc();
    }

    /// Counts a stats request's events once they are durable.
    pub fn record_stats_events_committed(&self, events: usize) {
        self.stats_events_committed.inc_by(events as u64);
    }

    /// Counts one successful group-commit transaction (the stats writer calls it).
    pub fn record_stats_commit(&self) {
        self.stats_commits.inc();
    }

    /// Counts a stats request refused with 429.
    pub fn record_stats_rejected_busy(&self) {
        self.stats_rejected_busy.inc();
    }

    /// Holds `updraft_stats_queue_depth` one higher until the guard drops
    /// (also when the waiting request is cancelled).
    pub fn stats_waiting(&self) -> StatsWaitGuard {
        self.stats_queue_depth.inc();
        StatsWaitGuard {
            depth: self.stats_queue_depth.clone(),
        }
    }

    /// Counts an open connection until the guard drops.
    pub fn connection_opened(&self) -> ConnectionGuard {
        self.http_connections.inc();
        ConnectionGuard {
            open: self.http_connections.clone(),
        }
    }

    /// `updraft_process_start_time_seconds`: when the server started, by its clock.
    pub fn set_process_start_time(&self, at: updraft_core::model::Millis) {
        self.process_start_time.set(at as f64 / 1000.0);
    }

    pub fn set_connection_limit(&self, limit: usize) {
        self.http_connection_limit
            .set(i64::try_from(limit).unwrap_or(i64::MAX));
    }

    pub fn record_accept_error(&self) {
        self.accept_errors.inc();
    }

    /// `reason` is one of [`connection_timeout`].
    pub fn record_connection_timeout(&self, reason: &'static str) {
        self.connection_timeouts
            .get_or_create(&ReasonLabels { reason })
            .inc();
    }

    /// `operation` should be one of [`db_operation`]; any `&'static str` works.
    pub fn record_database_error(&self, operation: &'static str) {
        self.database_errors
            .get_or_create(&OperationLabels { operation })
            .inc();
    }

    /// For bundle file storage: `operation` names what failed ("read", "write", "delete" …).
    pub fn record_storage_error(&self, operation: &'static str) {
        self.storage_errors
            .get_or_create(&OperationLabels { operation })
            .inc();
    }

    /// For the download code: bytes of bundle files sent.
    pub fn record_download_bytes(&self, bytes: u64) {
        self.download_bytes.inc_by(bytes);
    }

    /// One outcome of `control::evaluate` (`action` as recorded, reason code).
    pub fn record_rollout_control_outcome(&self, action: &'static str, reason: &'static str) {
        self.rollout_control_outcomes
            .get_or_create(&ControlOutcomeLabels { action, reason })
            .inc();
    }

    pub fn record_webhook_attempt(&self, succeeded: bool) {
        let outcome = if succeeded { "succeeded" } else { "failed" };
        self.webhook_attempts
            .get_or_create(&DeliveryLabels { outcome })
            .inc();
    }

    pub fn set_cluster_leader(&self, leading: bool) {
        self.cluster_leader.set(i64::from(leading));
    }

    pub fn record_release_notification(&self) {
        self.release_notifications.inc();
    }

    pub fn set_registry_pending_devices(&self, pending: usize) {
        self.registry_pending_devices
            .set(i64::try_from(pending).unwrap_or(i64::MAX));
    }

    pub fn set_write_health(&self, free_bytes: Option<u64>, ready: bool) {
        if let Some(free) = free_bytes {
            self.disk_free_bytes
                .set(i64::try_from(free).unwrap_or(i64::MAX));
        }
        self.writes_ready.set(i64::from(ready));
    }

    pub fn record_write_refused_low_disk(&self) {
        self.writes_refused_low_disk.inc();
    }

    pub fn record_registry_unchanged_sighting(&self) {
        self.registry_unchanged_sightings.inc();
    }

    /// The exposition, in the OpenMetrics text format (ends with `# EOF`).
    pub fn render(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::with_capacity(8 * 1024);
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }

    /// The `GET /metrics` response.
    pub fn response(&self) -> Response {
        match self.render() {
            Ok(body) => (
                [(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE))],
                body,
            )
                .into_response(),
            Err(err) => {
                tracing::error!(error = %err, "metrics could not be encoded");
                StatusCode::INTERNAL_SERVER_ERROR.into_response()
            }
        }
    }
}

/// See [`Metrics::stats_waiting`].
#[derive(Debug)]
pub struct StatsWaitGuard {
    depth: Gauge,
}

impl Drop for StatsWaitGuard {
    fn drop(&mut self) {
        self.depth.dec();
    }
}

/// Middleware: counts every request by matched route, method and status, its
/// latency, and what the handler attached to the response.
pub async fn track_requests(
    State(metrics): State<Arc<Metrics>>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let matched = request.extensions().get::<MatchedPath>().cloned();
    let response = next.run(request).await;
    metrics.record_request(
        matched.as_ref().map(MatchedPath::as_str),
        &method,
        response.status(),
        started.elapsed(),
    );
    if let Some(check) = response.extensions().get::<UpdateCheckOutcome>() {
        metrics.record_update_check(*check);
        if let Some(AppLabel(app)) = response.extensions().get::<AppLabel>() {
            metrics.record_app_update_check(app, check.kind);
        }
    }
    if response.extensions().get::<DatabaseFailure>().is_some() {
        metrics.record_database_error(db_operation::API);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use updraft_core::decision::Refusal;

    /// The sample lines of `name` (with `_total` etc. as written), label text → value.
    fn samples(text: &str, name: &str) -> Vec<(String, String)> {
        text.lines()
            .filter(|line| !line.starts_with('#'))
            .filter_map(|line| {
                let (series, value) = line.rsplit_once(' ')?;
                let (metric, labels) = match series.split_once('{') {
                    Some((metric, rest)) => (metric, rest.trim_end_matches('}')),
                    None => (series, ""),
                };
                (metric == name).then(|| (labels.to_string(), value.to_string()))
            })
            .collect()
    }

    fn value(text: &str, name: &str, labels: &str) -> Option<String> {
        samples(text, name)
            .into_iter()
            .find(|(l, _)| l == labels)
            .map(|(_, v)| v)
    }

    #[test]
    fn update_outcomes_map_to_the_kind_the_device_sees() {
        assert_eq!(
            UpdateCheckOutcome::of_answer(UpdateOutcome::Get),
            UpdateCheckOutcome {
                outcome: "get",
                kind: "none"
            }
        );
        assert_eq!(
            UpdateCheckOutcome::of_answer(UpdateOutcome::Refused(Refusal::NoNewVersionAvailable))
                .kind,
            "up_to_date"
        );
        assert_eq!(
            UpdateCheckOutcome::of_answer(UpdateOutcome::Refused(Refusal::DisableEmulator)).kind,
            "blocked"
        );
        assert_eq!(
            UpdateCheckOutcome::of_answer(UpdateOutcome::Refused(Refusal::NoChannel)).kind,
            "failed"
        );
        assert_eq!(
            UpdateCheckOutcome::rejected(DeviceErrorCode::InvalidJsonParseBody, 400),
            UpdateCheckOutcome {
                outcome: "invalid_json_parse_body",
                kind: "failed"
            }
        );
    }

    #[test]
    fn per_app_labels_are_bounded() {
        let plain = Metrics::new();
        plain.record_app_update_check("a", "none");
        assert!(!plain.render().unwrap().contains("app_update_checks"));
        let metrics = Metrics::with_app_labels(Some(2));
        for app in ["a", "b", "c", "d", "a"] {
            metrics.record_app_update_check(app, "none");
        }
        metrics.record_app_stats_events("z", 3);
        let text = metrics.render().unwrap();
        let series = samples(&text, "updraft_app_update_checks_total");
        assert_eq!(series.len(), 3, "{text}");
        assert_eq!(
            value(
                &text,
                "updraft_app_update_checks_total",
                r#"app="a",kind="none""#
            )
            .as_deref(),
            Some("2")
        );
        assert_eq!(
            value(
                &text,
                "updraft_app_update_checks_total",
                r#"app="other",kind="none""#
            )
            .as_deref(),
            Some("2")
        );
        assert_eq!(
            value(
                &text,
                "updraft_app_stats_events_committed_total",
                r#"app="other""#
            )
            .as_deref(),
            Some("3")
        );
    }

    #[test]
    fn unknown_methods_share_one_label() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::DELETE), "DELETE");
        let custom = Method::from_bytes(b"PURGE").unwrap();
        assert_eq!(method_label(&custom), "other");
        assert_eq!(method_label(&Method::TRACE), "other");
    }

    #[test]
    fn routes_are_labelled_by_template_and_unmatched_requests_share_one_label() {
        let metrics = Metrics::new();
        let template = "/api/v1/apps/{app_id}";
        metrics.record_request(
            Some(template),
            &Method::GET,
            StatusCode::OK,
            Duration::from_micros(300),
        );
        metrics.record_request(
            Some(template),
            &Method::GET,
            StatusCode::OK,
            Duration::from_millis(20),
        );
        metrics.record_request(
            None,
            &Method::POST,
            StatusCode::NOT_FOUND,
            Duration::from_micros(50),
        );
        let text = metrics.render().unwrap();
        assert_eq!(
            value(
                &text,
                "updraft_http_requests_total",
                r#"route="/api/v1/apps/{app_id}",method="GET",status="200""#
            )
            .as_deref(),
            Some("2"),
            "{text}"
        );
        assert_eq!(
            value(
                &text,
                "updraft_http_requests_total",
                r#"route="unmatched",method="POST",status="404""#
            )
            .as_deref(),
            Some("1"),
            "{text}"
        );
        assert_eq!(samples(&text, "updraft_http_requests_total").len(), 2);
        // 300 µs falls in the 0.0005 bucket, 20 ms does not.
        assert_eq!(
            value(
                &text,
                "updraft_http_request_duration_seconds_bucket",
                r#"le="0.0005",route="/api/v1/apps/{app_id}""#
            )
            .as_deref(),
            Some("1"),
            "{text}"
        );
        assert_eq!(
            value(
                &text,
                "updraft_http_request_duration_seconds_count",
                r#"route="/api/v1/apps/{app_id}""#
            )
            .as_deref(),
            Some("2")
        );
    }

    /// Through a real router: the matched template, the 404 fallback, a 405,
    /// and a response marked as a database failure (what an `ApiError` from
    /// a backend `StoreError` is; `error`'s tests check that marking).
    #[tokio::test]
    async fn the_middleware_labels_by_template_and_counts_database_failures() {
        use axum::body::Body;
        use axum::routing::get;
        use tower::ServiceExt;

        async fn broken() -> Response {
            let mut response = StatusCode::INTERNAL_SERVER_ERROR.into_response();
            response.extensions_mut().insert(DatabaseFailure);
            response
        }
        async fn missing() -> Response {
            StatusCode::NOT_FOUND.into_response()
        }
        let metrics = Arc::new(Metrics::new());
        let app = axum::Router::new()
            .route("/items/{id}", get(|| async { "ok" }))
            .route("/broken", get(broken))
            .route("/missing", get(missing))
            .layer(axum::middleware::from_fn_with_state(
                Arc::clone(&metrics),
                track_requests,
            ));
        for (method, uri, status) in [
            (Method::GET, "/items/41", 200),
            (Method::GET, "/items/42", 200),
            (Method::POST, "/items/42", 405),
            (Method::GET, "/nowhere/7", 404),
            (Method::GET, "/broken", 500),
            (Method::GET, "/missing", 404),
        ] {
            let request = axum::http::Request::builder()
                .method(method)
                .uri(uri)
                .body(Body::empty())
                .unwrap();
            let response = app.clone().oneshot(request).await.unwrap();
            assert_eq!(response.status().as_u16(), status, "{uri}");
        }
        let text = metrics.render().unwrap();
        let requests = |labels: &str| value(&text, "updraft_http_requests_total", labels);
        assert_eq!(
            requests(r#"route="/items/{id}",method="GET",status="200""#).as_deref(),
            Some("2"),
            "{text}"
        );
        assert_eq!(
            requests(r#"route="/items/{id}",method="POST",status="405""#).as_deref(),
            Some("1"),
            "{text}"
        );
        assert_eq!(
            requests(r#"route="unmatched",method="GET",status="404""#).as_deref(),
            Some("1"),
            "{text}"
        );
        assert!(!text.contains("/items/42"), "{text}");
        // Only the backend failure counts, not the 404 that also came from the store.
        assert_eq!(
            value(&text, "updraft_database_errors_total", r#"operation="api""#).as_deref(),
            Some("1"),
            "{text}"
        );
    }

    #[test]
    fn interned_routes_are_shared() {
        let interner = RouteInterner::default();
        let first = interner.intern("/updates");
        let second = interner.intern("/updates");
        assert!(Arc::ptr_eq(&first, &second));
        assert_eq!(&*interner.intern("/stats"), "/stats");
    }

    #[test]
    fn counters_and_gauges_render_with_their_names() {
        let metrics = Metrics::new();
        metrics.record_update_check(UpdateCheckOutcome::of_answer(UpdateOutcome::Get));
        metrics.record_update_check(UpdateCheckOutcome::of_answer(UpdateOutcome::Get));
        metrics.record_update_check(UpdateCheckOutcome::of_answer(UpdateOutcome::Refused(
            Refusal::DisableEmulator,
        )));
        metrics.record_stats_events_committed(7);
        metrics.record_stats_commit();
        metrics.record_stats_rejected_busy();
        metrics.record_database_error(db_operation::API);
        metrics.record_storage_error("write");
        metrics.record_download_bytes(1500);
        metrics.record_download_bytes(500);
        metrics.set_registry_pending_devices(3);
        metrics.record_registry_unchanged_sighting();
        metrics.record_rate_limited(rate_scope::DEVICE);
        metrics.record_auth_failure();
        metrics.set_process_start_time(1_700_000_000_500);
        let waiting = metrics.stats_waiting();
        let also_waiting = metrics.stats_waiting();
        drop(also_waiting);
        let text = metrics.render().unwrap();
        drop(waiting);
        let expect = [
            (
                "updraft_update_checks_total",
                r#"outcome="get",kind="none""#,
                "2",
            ),
            (
                "updraft_update_checks_total",
                r#"outcome="disable_emulator",kind="blocked""#,
                "1",
            ),
            ("updraft_stats_events_committed_total", "", "7"),
            ("updraft_stats_commits_total", "", "1"),
            ("updraft_stats_rejected_busy_total", "", "1"),
            ("updraft_stats_queue_depth", "", "1"),
            ("updraft_database_errors_total", r#"operation="api""#, "1"),
            (
                "updraft_database_errors_total",
                r#"operation="stats_commit""#,
                "0",
            ),
            ("updraft_storage_errors_total", r#"operation="write""#, "1"),
            ("updraft_download_bytes_total", "", "2000"),
            ("updraft_registry_pending_devices", "", "3"),
            ("updraft_registry_unchanged_sightings_total", "", "1"),
            ("updraft_rate_limited_total", r#"scope="device""#, "1"),
            ("updraft_rate_limited_total", r#"scope="app""#, "0"),
            ("updraft_auth_failures_total", "", "1"),
            ("updraft_process_start_time_seconds", "", "1700000000.5"),
            (
                "updraft_build_info",
                &format!(r#"version="{}""#, env!("CARGO_PKG_VERSION")),
                "1",
            ),
        ];
        for (name, labels, expected) in expect {
            assert_eq!(
                value(&text, name, labels).as_deref(),
                Some(expected),
                "{name}{{{labels}}} in\n{text}"
            );
        }
        assert!(text.ends_with("# EOF\n"), "{text}");
        let after = metrics.render().unwrap();
        assert_eq!(
            value(&after, "updraft_stats_queue_depth", "").as_deref(),
            Some("0")
        );
    }
}
