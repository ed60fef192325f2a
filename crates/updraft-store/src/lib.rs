//! Storage for Updraft: one trait per concern, implemented once in SQL
//! (`src/sql/`) and compiled for SQLite and for PostgreSQL. Nothing above
//! this crate knows which engine it talks to.

use async_trait::async_trait;
use updraft_core::account::User;
use updraft_core::model::{
    ApiKey, App, AuditEntry, Bundle, ChangeContext, Channel, ChannelHistoryEntry, ChannelPatch,
    Device, DeviceOverride, DeviceSighting, Health, ManifestFile, Millis, NativePackage,
    OverrideSource, ReleaseConfig, Role, RolloutDecision, ScheduleStatus, ScheduledAction,
    ScheduledRelease, StatsEvent, Webhook, WebhookDelivery,
};

pub mod backup;
pub mod blob;
pub mod cluster;
pub mod migrate;
pub mod postgres;
pub mod schema;
pub mod sqlite;

pub use postgres::PgStore;
pub use sqlite::SqliteStore;

/// What a [`StoreError::NotFound`] or [`StoreError::AlreadyExists`] is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Entity {
    App,
    Bundle,
    Channel,
    ApiKey,
    Schedule,
    Webhook,
    Delivery,
    User,
}

impl Entity {
    /// The name errors use: `app`, `bundle`, `channel`, `apikey`, ….
    pub fn as_str(self) -> &'static str {
        match self {
            Entity::App => "app",
            Entity::Bundle => "bundle",
            Entity::Channel => "channel",
            Entity::ApiKey => "apikey",
            Entity::Schedule => "schedule",
            Entity::Webhook => "webhook",
            Entity::Delivery => "delivery",
            Entity::User => "user",
        }
    }
}

impl std::fmt::Display for Entity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0} not found")]
    NotFound(Entity),
    /// A unique name is taken.
    #[error("{0} already exists")]
    AlreadyExists(Entity),
    /// A bundle name that was used by a deleted bundle cannot be reused.
    #[error("bundle name was used by a deleted bundle")]
    DeletedNameReused,
    /// The operation would break a reference (e.g. a channel's bundle of another app).
    #[error("{0}")]
    Invalid(String),
    /// The row changed since it was read (e.g. a rollout ended while the
    /// control loop was deciding about it); nothing was written.
    #[error("{0}")]
    Conflict(String),
    #[error("database error: {0}")]
    Backend(String),
    /// The database cannot take the request now but may shortly: a full
    /// disk, an I/O error, a lost connection, a lock or pool wait that timed
    /// out. Nothing was written; the same request can be retried.
    #[error("database unavailable: {0}")]
    Unavailable(String),
}

impl StoreError {
    /// A failure of the database rather than of the request.
    pub fn is_database_failure(&self) -> bool {
        matches!(self, StoreError::Backend(_) | StoreError::Unavailable(_))
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// A new bundle, before it has an id.
#[derive(Clone, Debug, Default)]
pub struct NewBundle {
    pub app_id: String,
    pub name: String,
    pub checksum: Option<String>,
    pub encrypted_checksum: Option<String>,
    pub session_key: Option<String>,
    pub key_id: Option<String>,
    pub external_url: Option<String>,
    pub storage_path: Option<String>,
    /// The stored zip blob, when Updraft hosts the zip.
    pub zip_sha256: Option<String>,
    /// Size of the stored zip in bytes.
    pub size: Option<i64>,
    pub manifest: Vec<ManifestFile>,
    pub min_update_version: Option<String>,
    pub link: Option<String>,
    pub comment: Option<String>,
    /// `None` = not known (the compatibility guard cannot compare).
    pub native_packages: Option<Vec<NativePackage>>,
}

/// Downloads of one bundle on one day, to add to the stored totals.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DownloadTally {
    pub app_id: String,
    pub bundle_id: i64,
    /// UTC day, `YYYY-MM-DD`.
    pub day: String,
    pub requests: i64,
    pub bytes: i64,
}

/// Editable metadata of a bundle; `None` leaves a field, `Some(None)` clears it.
#[derive(Clone, Debug, Default)]
pub struct BundleMetadataPatch {
    pub link: Option<Option<String>>,
    pub comment: Option<Option<String>>,
    pub min_update_version: Option<Option<String>>,
}

/// A new channel: its name plus the settings that differ from the defaults.
#[derive(Clone, Debug, Default)]
pub struct NewChannel {
    pub app_id: String,
    pub name: String,
    pub settings: ChannelPatch,
}

#[derive(Clone, Debug, Default)]
pub struct DeviceQuery {
    /// Substring of device_id or custom_id.
    pub search: Option<String>,
    pub custom_id: Option<String>,
    /// Current bundle name.
    pub version_name: Option<String>,
    pub limit: i64,
    pub offset: i64,
}

#[derive(Clone, Debug)]
pub struct NewApiKey {
    pub name: String,
    pub role: Role,
    pub app_id: Option<String>,
    pub expires_at: Option<Millis>,
}

#[async_trait]
pub trait AppStore: Send + Sync {
    async fn create_app(&self, app_id: &str, name: &str, now: Millis) -> StoreResult<App>;
    async fn list_apps(&self) -> StoreResult<Vec<App>>;
    async fn get_app(&self, app_id: &str) -> StoreResult<Option<App>>;
    async fn update_app(
        &self,
        app_id: &str,
        name: Option<&str>,
        expose_metadata: Option<bool>,
    ) -> StoreResult<App>;
    /// Deletes the app and everything that belongs to it, and revokes (at
    /// `now`) the API keys limited to it, in one transaction.
    async fn delete_app(&self, app_id: &str, now: Millis) -> StoreResult<()>;
}

#[async_trait]
pub trait BundleStore: Send + Sync {
    /// `AlreadyExists(Entity::Bundle)` for a live name, `DeletedNameReused` for a deleted one.
    async fn create_bundle(&self, bundle: NewBundle, now: Millis) -> StoreResult<Bundle>;
    async fn list_bundles(&self, app_id: &str, include_deleted: bool) -> StoreResult<Vec<Bundle>>;
    /// Finds deleted bundles too; callers check `deleted`.
    async fn get_bundle(&self, app_id: &str, name: &str) -> StoreResult<Option<Bundle>>;
    async fn update_bundle_metadata(
        &self,
        app_id: &str,
        name: &str,
        patch: BundleMetadataPatch,
    ) -> StoreResult<Bundle>;
    /// Soft delete; the name stays reserved.
    async fn delete_bundle(&self, app_id: &str, name: &str, now: Millis) -> StoreResult<Bundle>;
    /// Every blob (zip or manifest file) a live bundle of any app references;
    /// deleted bundles do not count. What gc must keep.
    async fn referenced_blobs(&self) -> StoreResult<std::collections::HashSet<String>>;
    /// Which of `shas` a bundle of `app_id` (live or deleted) references, as
    /// its zip or a manifest file: what a key scoped to that app may learn.
    async fn app_blobs(
        &self,
        app_id: &str,
        shas: &[String],
    ) -> StoreResult<std::collections::HashSet<String>>;
    /// Every blob the live bundles of `app_id` reference, with its size:
    /// what the app's storage quota counts (each file once).
    async fn app_live_blobs(
        &self,
        app_id: &str,
    ) -> StoreResult<std::collections::HashMap<String, i64>>;
}

#[async_trait]
pub trait DownloadStore: Send + Sync {
    /// Adds each tally to `bundle_downloads` (upsert), in one transaction.
    /// Tallies of bundles that no longer exist are dropped.
    async fn record_downloads(&self, tallies: &[DownloadTally]) -> StoreResult<()>;
}

/// A channel change with what must be written in the same transaction.
#[derive(Clone, Debug)]
pub struct ChannelUpdate {
    pub app_id: String,
    pub name: String,
    pub patch: ChannelPatch,
    /// When, who and why; a history row is written when the stable bundle or
    /// the rollout (bundle, percentage, paused) changes.
    pub change: ChangeContext,
    /// For changes computed from a snapshot (the control loop, schedules):
    /// `Some(expected)` refuses with `Conflict` unless the channel's current
    /// rollout id is `expected` (`None` = no rollout).
    pub expect_rollout_id: Option<Option<String>>,
    /// Recorded with the change (its id is assigned by the store).
    pub decision: Option<RolloutDecision>,
    /// A pending schedule this change executes: marked done with the change.
    pub completes_schedule: Option<i64>,
    /// Written with the change.
    pub audit: Option<NewAuditEntry>,
}

#[async_trait]
pub trait ChannelStore: Send + Sync {
    /// Applies `update.patch` and writes its history row, decision, schedule
    /// completion and audit entry in one transaction.
    async fn apply_channel_update(&self, update: ChannelUpdate) -> StoreResult<Channel>;
    /// Newest first.
    async fn channel_history(
        &self,
        app_id: &str,
        channel: &str,
        limit: i64,
    ) -> StoreResult<Vec<ChannelHistoryEntry>>;
    /// Making a channel public demotes any other public channel of the app that
    /// shares a platform with it (one public channel per platform).
    async fn create_channel(&self, channel: NewChannel, now: Millis) -> StoreResult<Channel>;
    async fn list_channels(&self, app_id: &str) -> StoreResult<Vec<Channel>>;
    async fn get_channel(&self, app_id: &str, name: &str) -> StoreResult<Option<Channel>>;
    /// Also removes the device overrides that point at it.
    async fn delete_channel(&self, app_id: &str, name: &str) -> StoreResult<()>;
}

#[async_trait]
pub trait OverrideStore: Send + Sync {
    /// Upsert on (app_id, device_id).
    async fn set_override(
        &self,
        app_id: &str,
        device_id: &str,
        channel_id: i64,
        source: OverrideSource,
        now: Millis,
    ) -> StoreResult<DeviceOverride>;
    /// Returns whether a row was deleted.
    async fn delete_override(&self, app_id: &str, device_id: &str) -> StoreResult<bool>;
    async fn list_overrides(&self, app_id: &str) -> StoreResult<Vec<DeviceOverride>>;
}

#[async_trait]
pub trait DeviceStore: Send + Sync {
    /// Applies many sightings in one transaction, in order (later ones win).
    async fn upsert_devices(&self, sightings: &[DeviceSighting]) -> StoreResult<()>;
    async fn list_devices(&self, app_id: &str, query: &DeviceQuery) -> StoreResult<Vec<Device>>;
    async fn count_devices(&self, app_id: &str, query: &DeviceQuery) -> StoreResult<i64>;
    async fn get_device(&self, app_id: &str, device_id: &str) -> StoreResult<Option<Device>>;
}

#[async_trait]
pub trait StatsStore: Send + Sync {
    /// A device's raw events, newest first (events are written by
    /// `AnalyticsStore::ingest_stats`).
    async fn list_events(
        &self,
        app_id: &str,
        device_id: Option<&str>,
        limit: i64,
    ) -> StoreResult<Vec<StatsEvent>>;
}

/// One group commit of stats: events, the channel each was attributed to
/// (parallel to `events`; shorter means `None`), and the device sightings.
#[derive(Clone, Copy, Debug, Default)]
pub struct StatsIngest<'a> {
    pub events: &'a [StatsEvent],
    pub channels: &'a [Option<String>],
    pub sightings: &'a [DeviceSighting],
    /// Events before this time still count in the event rollups but not in
    /// active devices: their `device_days` rows are already pruned, so
    /// counting them again could count a device twice.
    pub active_devices_since: Millis,
    /// Distinct bundle names an app's rollups take per day besides its own
    /// bundles' (the rest count as `other`); 0 = no cap.
    pub max_bundles_per_day: u32,
}

/// What one stats commit did beyond storing what it was given.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IngestOutcome {
    /// Events whose bundle name the rollups counted as `other` (the cap of
    /// [`StatsIngest::max_bundles_per_day`]); the raw events keep the name.
    pub folded_events: u64,
}

/// Raw events of one app for export, oldest id first, a page at a time.
#[derive(Clone, Debug, Default)]
pub struct EventExportQuery {
    pub app_id: String,
    /// Event time bounds: `since <= timestamp < until`.
    pub since: Option<Millis>,
    pub until: Option<Millis>,
    pub device_id: Option<String>,
    /// Keyset pagination: only events with a larger id.
    pub after_id: i64,
    pub limit: i64,
}

/// A raw event as stored, with its id and attributed channel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredEvent {
    pub id: i64,
    pub channel: Option<String>,
    pub event: StatsEvent,
}

#[async_trait]
pub trait AnalyticsStore: Send + Sync {
    /// Stores events, their rollups and the device sightings in one
    /// transaction: when this returns Ok, all of it is durable.
    async fn ingest_stats(&self, batch: StatsIngest<'_>) -> StoreResult<IngestOutcome>;
    /// The rollup rows of an app for `from_day..=to_day` (`YYYY-MM-DD`).
    async fn stats_rollups(
        &self,
        app_id: &str,
        from_day: &str,
        to_day: &str,
    ) -> StoreResult<updraft_core::analytics::Rollups>;
    async fn export_events(&self, query: &EventExportQuery) -> StoreResult<Vec<StoredEvent>>;
    /// Deletes at most `max_rows` raw events received before `before`;
    /// returns how many went. Rollups stay.
    async fn delete_events_received_before(
        &self,
        before: Millis,
        max_rows: i64,
    ) -> StoreResult<u64>;
    /// Deletes at most `max_rows` per-device day rows of days before `day`.
    async fn delete_device_days_before(&self, day: &str, max_rows: i64) -> StoreResult<u64>;
}

#[async_trait]
pub trait RolloutStore: Send + Sync {
    /// Installs and failures of `bundle` attributed to `channel`, by arrival
    /// time in `since..until` (per-minute rollups written at ingest).
    async fn rollout_health(
        &self,
        app_id: &str,
        channel: &str,
        bundle: &str,
        since: Millis,
        until: Millis,
    ) -> StoreResult<Health>;
    /// A decision that changes nothing on the channel (held, notified).
    async fn record_rollout_decision(
        &self,
        decision: RolloutDecision,
    ) -> StoreResult<RolloutDecision>;
    /// Newest first; `channel: None` = every channel of the app.
    async fn list_rollout_decisions(
        &self,
        app_id: &str,
        channel: Option<&str>,
        limit: i64,
    ) -> StoreResult<Vec<RolloutDecision>>;
    /// Prunes per-minute health rows older than `before`; returns how many went.
    async fn delete_health_before(&self, before: Millis, max_rows: i64) -> StoreResult<u64>;
}

#[derive(Clone, Debug)]
pub struct NewSchedule {
    pub app_id: String,
    pub channel: String,
    pub run_at: Millis,
    pub action: ScheduledAction,
    pub accept_incompatible: bool,
    pub created_by: String,
    pub created_at: Millis,
}

#[async_trait]
pub trait ScheduleStore: Send + Sync {
    async fn create_schedule(&self, schedule: NewSchedule) -> StoreResult<ScheduledRelease>;
    /// By `run_at`, then id; `channel: None` = every channel of the app.
    async fn list_schedules(
        &self,
        app_id: &str,
        channel: Option<&str>,
    ) -> StoreResult<Vec<ScheduledRelease>>;
    async fn get_schedule(&self, app_id: &str, id: i64) -> StoreResult<Option<ScheduledRelease>>;
    /// Pending → cancelled. `NotFound(Entity::Schedule)`, or `Conflict` when it is no longer pending.
    async fn cancel_schedule(
        &self,
        app_id: &str,
        id: i64,
        at: Millis,
    ) -> StoreResult<ScheduledRelease>;
    /// Pending schedules of every app with `run_at <= now`, oldest first.
    async fn due_schedules(&self, now: Millis, limit: i64) -> StoreResult<Vec<ScheduledRelease>>;
    /// Pending → `status` with `result`. `Ok(false)` when it was no longer
    /// pending. (A schedule that changes a channel is completed through
    /// `ChannelUpdate::completes_schedule` instead.)
    async fn finish_schedule(
        &self,
        id: i64,
        status: ScheduleStatus,
        result: &str,
        at: Millis,
    ) -> StoreResult<bool>;
}

#[derive(Clone, Debug, PartialEq)]
pub struct NewAuditEntry {
    pub at: Millis,
    pub actor: String,
    pub api_key_id: Option<i64>,
    pub app_id: Option<String>,
    pub action: String,
    pub target: String,
    pub before: Option<serde_json::Value>,
    pub after: Option<serde_json::Value>,
}

#[derive(Clone, Debug, Default)]
pub struct AuditQuery {
    pub app_id: Option<String>,
    /// Exact action, or a prefix ending in `.` (`channel.`).
    pub action: Option<String>,
    pub actor: Option<String>,
    pub since: Option<Millis>,
    pub until: Option<Millis>,
    /// Keyset pagination: only entries with a smaller id.
    pub before_id: Option<i64>,
    pub limit: i64,
}

#[async_trait]
pub trait AuditStore: Send + Sync {
    async fn record_audit(&self, entry: NewAuditEntry) -> StoreResult<AuditEntry>;
    /// Newest first.
    async fn list_audit(&self, query: &AuditQuery) -> StoreResult<Vec<AuditEntry>>;
}

/// A webhook to create; the secret is chosen by the caller and stored as
/// given (the server passes it sealed, see `updraft_server::webhook_secrets`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewWebhook {
    /// `None` = events of every app.
    pub app_id: Option<String>,
    pub url: String,
    pub secret: String,
    /// Empty = every event type.
    pub events: Vec<String>,
    pub enabled: bool,
    pub created_at: Millis,
}

/// A pending delivery whose time has come, with where and how to send it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DueDelivery {
    pub delivery: WebhookDelivery,
    pub url: String,
    pub secret: String,
}

/// The outcome of one attempt to send a delivery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeliveryAttempt {
    pub delivery_id: i64,
    pub at: Millis,
    /// The receiver answered 2xx.
    pub succeeded: bool,
    /// The HTTP status, when the receiver answered at all.
    pub status_code: Option<u16>,
    /// Why it failed (timeout, connection refused, non-2xx status …).
    pub error: Option<String>,
    /// When a failed delivery is tried again, unless this was its last attempt.
    pub retry_at: Millis,
    /// A failed attempt that brings the count to this marks the delivery failed.
    pub max_attempts: u32,
}

#[async_trait]
pub trait WebhookStore: Send + Sync {
    async fn create_webhook(&self, webhook: NewWebhook) -> StoreResult<Webhook>;
    /// By id. `app_id: Some(app)` = that app's webhooks and the global ones;
    /// `None` = every webhook.
    async fn list_webhooks(&self, app_id: Option<&str>) -> StoreResult<Vec<Webhook>>;
    async fn get_webhook(&self, id: i64) -> StoreResult<Option<Webhook>>;
    /// Also deletes its deliveries. `NotFound(Entity::Webhook)` when there is none.
    async fn delete_webhook(&self, id: i64) -> StoreResult<()>;
    /// Sets the webhook's stored secret to `new` if it still is `current`;
    /// returns whether it changed (false: another writer came first, or the
    /// webhook is gone).
    async fn replace_webhook_secret(&self, id: i64, current: &str, new: &str) -> StoreResult<bool>;
    /// One pending delivery of `payload` (due now) per enabled webhook of
    /// `app_id` or global whose events include `event_type` (or are empty),
    /// each with its own message id, in one transaction.
    async fn enqueue_event(
        &self,
        app_id: &str,
        event_type: &str,
        payload: &str,
        now: Millis,
    ) -> StoreResult<Vec<WebhookDelivery>>;
    /// One pending delivery to exactly this webhook (test sends), whatever
    /// its event filter. `NotFound(Entity::Webhook)` when there is none.
    async fn enqueue_for_webhook(
        &self,
        webhook_id: i64,
        event_type: &str,
        payload: &str,
        now: Millis,
    ) -> StoreResult<WebhookDelivery>;
    /// Pending deliveries with `next_attempt_at <= now`, oldest due first.
    async fn due_deliveries(&self, now: Millis, limit: i64) -> StoreResult<Vec<DueDelivery>>;
    /// Success → succeeded; failure → attempts + 1 and retry at `retry_at`,
    /// or failed once `max_attempts` is reached. Only a pending delivery
    /// changes; returns it as it is afterwards.
    async fn record_delivery_attempt(
        &self,
        attempt: DeliveryAttempt,
    ) -> StoreResult<WebhookDelivery>;
    /// Newest first.
    async fn list_deliveries(
        &self,
        webhook_id: i64,
        limit: i64,
    ) -> StoreResult<Vec<WebhookDelivery>>;
    /// Prunes up to `max_rows` finished (succeeded or failed) deliveries
    /// created before `before`; pending ones stay however old. Returns how
    /// many went.
    async fn delete_finished_deliveries_before(
        &self,
        before: Millis,
        max_rows: i64,
    ) -> StoreResult<u64>;
}

#[async_trait]
pub trait ApiKeyStore: Send + Sync {
    /// Returns the stored key and the secret (shown once; only its hash is kept).
    async fn create_api_key(&self, key: NewApiKey, now: Millis) -> StoreResult<(ApiKey, String)>;
    /// Looks a secret up by its hash. Returns revoked and expired keys too.
    async fn find_api_key(&self, secret: &str) -> StoreResult<Option<ApiKey>>;
    async fn list_api_keys(&self) -> StoreResult<Vec<ApiKey>>;
    /// By id or by name.
    async fn revoke_api_key(&self, id_or_name: &str, now: Millis) -> StoreResult<ApiKey>;
}

#[async_trait]
pub trait SettingStore: Send + Sync {
    /// The stored value of `name`; when there is none, stores `candidate`
    /// first. The first writer wins, so every node ends up with one value.
    async fn setting_or_insert(
        &self,
        name: &str,
        candidate: &str,
        now: Millis,
    ) -> StoreResult<String>;
    /// Commits one small write (the `write_probe` setting) through the same
    /// path as every other write: proves that writes work right now.
    async fn probe_write(&self, now: Millis) -> StoreResult<()>;
}

#[async_trait]
pub trait ReleaseStore: Send + Sync {
    /// The app's whole release configuration; `app: None` when the app is unknown.
    async fn load_release(&self, app_id: &str) -> StoreResult<ReleaseConfig>;
    async fn list_app_ids(&self) -> StoreResult<Vec<String>>;
    /// Health check: can the database answer?
    async fn ping(&self) -> StoreResult<()>;
}

/// A resumable upload session shared by every node (used when the bytes go
/// to object storage). Its bytes are part objects, one per accepted PATCH.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadSession {
    pub upload_id: String,
    pub sha256: String,
    pub size: i64,
    /// The durable offset: every byte before it is in a listed part.
    pub received: i64,
    pub complete: bool,
    pub created_at: Millis,
    /// Last write or creation; expiry counts from here.
    pub last_activity: Millis,
}

/// One part of an upload: the bytes `[start, start + len)` in scratch object `name`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadPart {
    pub start: i64,
    pub len: i64,
    pub name: String,
}

#[async_trait]
pub trait UploadStore: Send + Sync {
    /// The live (`last_activity > live_after`), incomplete session with this
    /// content (the furthest along when there are several) or else
    /// `candidate`, inserted. Atomic across nodes, so one (sha256, size) gets
    /// one session while it lives. `true` when `candidate` was inserted.
    async fn find_or_create_upload(
        &self,
        candidate: UploadSession,
        live_after: Millis,
    ) -> StoreResult<(UploadSession, bool)>;
    async fn get_upload(&self, upload_id: &str) -> StoreResult<Option<UploadSession>>;
    /// Records part `part` (starting at `part.start`) and advances `received`
    /// by its length, only if the session exists, is incomplete and its
    /// `received` equals `part.start`; `None` when it did not (nothing changed).
    async fn append_upload_part(
        &self,
        upload_id: &str,
        part: &UploadPart,
        now: Millis,
    ) -> StoreResult<Option<UploadSession>>;
    /// The session's parts in offset order.
    async fn list_upload_parts(&self, upload_id: &str) -> StoreResult<Vec<UploadPart>>;
    /// Marks a fully received session complete and forgets its parts
    /// (returned, for the caller to delete); `None` when it is not fully
    /// received or gone.
    async fn complete_upload(
        &self,
        upload_id: &str,
        now: Millis,
    ) -> StoreResult<Option<Vec<UploadPart>>>;
    /// Deletes the session; returns its parts (empty when it did not exist).
    async fn delete_upload(&self, upload_id: &str) -> StoreResult<Vec<UploadPart>>;
    /// Sessions with `last_activity <= before`, oldest first, at most `limit`.
    async fn expired_uploads(&self, before: Millis, limit: i64) -> StoreResult<Vec<UploadSession>>;
}

/// A console user to create: the email already normalised and the password
/// already hashed (see `updraft_core::account`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewUser {
    pub email: String,
    /// argon2id PHC string.
    pub password_hash: String,
    pub role: Role,
    /// `None` = every app.
    pub apps: Option<Vec<String>>,
}

/// A user with what signing in checks: never listed, never sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserCredentials {
    pub user: User,
    pub password_hash: String,
    /// Base32 secret of the confirmed second factor.
    pub totp_secret: Option<String>,
    /// Base32 secret being enrolled (not yet confirmed).
    pub totp_pending_secret: Option<String>,
}

/// Admin changes to a user; `None` leaves a field as it is.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserPatch {
    pub role: Option<Role>,
    /// `Some(None)` = every app.
    pub apps: Option<Option<Vec<String>>>,
    pub disabled: Option<bool>,
}

#[async_trait]
pub trait UserStore: Send + Sync {
    /// `AlreadyExists(Entity::User)` when the email is taken (whatever its case).
    async fn create_user(&self, user: NewUser, now: Millis) -> StoreResult<User>;
    /// Creates `user` only if there is no user at all, in one write
    /// transaction (safe with several nodes starting at once); `None` when
    /// some user already existed and nothing was written.
    async fn create_first_user(&self, user: NewUser, now: Millis) -> StoreResult<Option<User>>;
    async fn get_user(&self, id: i64) -> StoreResult<Option<User>>;
    /// By normalised email, with the password hash and TOTP secrets.
    async fn user_credentials(&self, email: &str) -> StoreResult<Option<UserCredentials>>;
    /// By id, with the password hash and TOTP secrets.
    async fn user_credentials_by_id(&self, id: i64) -> StoreResult<Option<UserCredentials>>;
    /// By id (email order would change with renames; ids do not).
    async fn list_users(&self) -> StoreResult<Vec<User>>;
    /// Applies the patch; a change of role, app scope or a disable also
    /// ends every session of the user, in the same transaction.
    /// `NotFound(Entity::User)`.
    async fn update_user(&self, id: i64, patch: UserPatch, now: Millis) -> StoreResult<User>;
    /// A new password hash; ends every session of the user in the same transaction.
    async fn set_password(&self, id: i64, password_hash: &str, now: Millis) -> StoreResult<User>;
    /// Stores (or with `None` clears) the secret being enrolled.
    async fn set_totp_pending(
        &self,
        id: i64,
        secret: Option<&str>,
        now: Millis,
    ) -> StoreResult<User>;
    /// Turns the pending secret into the confirmed one (if it still is
    /// `secret`), records `step` as used and replaces the recovery codes with
    /// `recovery_hashes`, in one transaction. `false`: the pending secret changed.
    async fn enable_totp(
        &self,
        id: i64,
        secret: &str,
        step: i64,
        recovery_hashes: &[String],
        now: Millis,
    ) -> StoreResult<bool>;
    /// Clears both secrets and the recovery codes.
    async fn disable_totp(&self, id: i64, now: Millis) -> StoreResult<User>;
    /// Records `step` as the last TOTP step used if it is later than the
    /// recorded one: `false` when it is not (a replayed code). Atomic.
    async fn claim_totp_step(&self, id: i64, step: i64) -> StoreResult<bool>;
    /// Deletes the recovery code with this hash: `true` when it existed
    /// (each code works once, also across nodes).
    async fn use_recovery_code(&self, id: i64, code_hash: &str) -> StoreResult<bool>;
    async fn count_recovery_codes(&self, id: i64) -> StoreResult<i64>;
}

/// A session to store: the token's hash, never the token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewSession {
    pub token_hash: String,
    pub user_id: i64,
    pub csrf_token: String,
    pub created_at: Millis,
    /// The absolute end, whatever the activity.
    pub expires_at: Millis,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    pub token_hash: String,
    pub user_id: i64,
    pub csrf_token: String,
    pub created_at: Millis,
    pub last_seen_at: Millis,
    pub expires_at: Millis,
}

#[async_trait]
pub trait SessionStore: Send + Sync {
    /// `NotFound(Entity::User)` when the user does not exist.
    async fn create_session(&self, session: NewSession) -> StoreResult<Session>;
    async fn get_session(&self, token_hash: &str) -> StoreResult<Option<Session>>;
    /// Moves `last_seen_at` forward to `now` (never back).
    async fn touch_session(&self, token_hash: &str, now: Millis) -> StoreResult<()>;
    /// `true` when it existed.
    async fn delete_session(&self, token_hash: &str) -> StoreResult<bool>;
    /// Every session of the user (sign-out everywhere); how many went.
    async fn delete_user_sessions(&self, user_id: i64) -> StoreResult<u64>;
    /// Up to `max_rows` sessions past their absolute end (`expires_at <= now`)
    /// or idle since `idle_before` (`last_seen_at <= idle_before`).
    async fn delete_expired_sessions(
        &self,
        now: Millis,
        idle_before: Millis,
        max_rows: i64,
    ) -> StoreResult<u64>;
}

/// Every storage concern, as one object the server can hold.
pub trait Store:
    AppStore
    + BundleStore
    + ChannelStore
    + OverrideStore
    + DeviceStore
    + StatsStore
    + AnalyticsStore
    + ApiKeyStore
    + ReleaseStore
    + DownloadStore
    + RolloutStore
    + ScheduleStore
    + AuditStore
    + WebhookStore
    + SettingStore
    + UploadStore
    + UserStore
    + SessionStore
{
}

impl<T> Store for T where
    T: AppStore
        + BundleStore
        + ChannelStore
        + OverrideStore
        + DeviceStore
        + StatsStore
        + AnalyticsStore
        + ApiKeyStore
        + ReleaseStore
        + DownloadStore
        + RolloutStore
        + ScheduleStore
        + AuditStore
        + WebhookStore
        + SettingStore
        + UploadStore
        + UserStore
        + SessionStore
{
}

/// SHA-256 hex of an API key secret: what is stored and looked up.
pub fn hash_api_key(secret: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(secret.as_bytes()))
}
