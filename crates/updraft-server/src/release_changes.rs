//! The one way a channel's release changes — from the API, `bundle upload
//! --channel`, schedules and the control loop: resolves bundle names, runs
//! the compatibility guard, computes the patch, and writes it with its
//! history row, decision, schedule completion and audit entry in one store
//! transaction; then refreshes the in-memory release and queues webhooks.
//!
//! A change is first built as a [`Plan`] on an in-memory copy of the
//! channel, so that several changes of one request (a PATCH with a bundle,
//! a rollout and settings) are written together or not at all.

use crate::audit::{self, AuditService};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::error::ErrorCode;
use crate::releases::ReleaseCache;
use crate::webhooks::{events, WebhookService};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;
use updraft_api::management::ChannelView;
use updraft_core::compat::{compare_native_packages, CompatibilityReport, PackageComparison};
use updraft_core::guards::{closest_names, did_you_mean};

use updraft_core::model::{
    Bundle, ChangeContext, Channel, ChannelHistoryEntry, ChannelPatch, Clock, Millis,
    NativePackage, RolloutDecision, Targeting, BUILTIN,
};
use updraft_core::rollout::{apply_change, RolloutChange};
use updraft_store::{
    BundleStore, ChannelStore, ChannelUpdate, NewAuditEntry, NewChannel, RolloutStore, StoreError,
};

/// Release changes of every kind, and what they need: the channel, bundle
/// and decision stores, the in-memory releases (refreshed after each
/// change), the clock, the audit log and webhooks.
pub struct ReleaseService {
    channels: Arc<dyn ChannelStore>,
    bundles: Arc<dyn BundleStore>,
    decisions: Arc<dyn RolloutStore>,
    cache: Arc<ReleaseCache>,
    clock: Arc<dyn Clock>,
    audit: Arc<AuditService>,
    webhooks: Arc<WebhookService>,
}

/// Who asks for a change.
pub enum Actor<'a> {
    Key(&'a Caller),
    ControlLoop,
    Schedule(i64),
}

impl Actor<'_> {
    /// As it appears in history and the audit log.
    pub fn name(&self) -> String {
        match self {
            Actor::Key(caller) => crate::audit::actor(caller),
            Actor::ControlLoop => "control-loop".to_string(),
            Actor::Schedule(id) => format!("schedule:{id}"),
        }
    }

    fn api_key_id(&self) -> Option<i64> {
        match self {
            Actor::Key(caller) => caller.api_key_id(),
            Actor::ControlLoop | Actor::Schedule(_) => None,
        }
    }
}

/// A rollout operation, bundles by version name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RolloutRequest {
    Start {
        version: String,
        percentage_bps: u32,
    },
    SetPercentage(u32),
    Pause,
    Resume,
    Promote,
    Rollback,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReleaseChange {
    /// Make `version` (or `builtin`) the channel's stable bundle.
    SetBundle {
        version: String,
    },
    Rollout(RolloutRequest),
}

/// How far back a rollback looks in the channel's history.
const ROLLBACK_HISTORY_DEPTH: i64 = 1000;

impl ReleaseService {
    pub fn new(
        channels: Arc<dyn ChannelStore>,
        bundles: Arc<dyn BundleStore>,
        decisions: Arc<dyn RolloutStore>,
        cache: Arc<ReleaseCache>,
        clock: Arc<dyn Clock>,
        audit: Arc<AuditService>,
        webhooks: Arc<WebhookService>,
    ) -> ReleaseService {
        ReleaseService {
            channels,
            bundles,
            decisions,
            cache,
            clock,
            audit,
            webhooks,
        }
    }

    /// Reloads the in-memory release of `app_id` after a change, logging a
    /// failure (the periodic reload catches up).
    pub async fn refresh(&self, app_id: &str) {
        if let Err(err) = self.cache.refresh(app_id).await {
            tracing::error!(error = %err, app_id, "release refresh failed");
        }
    }

    /// A change of `channel` being built in memory, from its current state.
    pub(crate) async fn plan(&self, channel: Channel) -> Result<Plan, ApiError> {
        let names = self.bundle_names(&channel.app_id, [&channel]).await?;
        Ok(Plan {
            after: channel.clone(),
            before: channel,
            patch: ChannelPatch::default(),
            reasons: Vec::new(),
            events: Vec::new(),
            names,
        })
    }

    /// The API view of `channel`, bundles by name.
    pub async fn view(&self, channel: Channel) -> Result<ChannelView, ApiError> {
        let names = self.bundle_names(&channel.app_id, [&channel]).await?;
        Ok(ChannelView::new(channel, &names))
    }

    /// Applies `change` to `channel` of `app_id`: refuses incompatible bundles
    /// unless `accept_incompatible`, writes history and audit with the change,
    /// refreshes the in-memory release and queues webhooks. A schedule actor's
    /// schedule is marked done in the same transaction.
    pub async fn change_release(
        &self,
        actor: Actor<'_>,
        app_id: &str,
        channel: &str,
        change: ReleaseChange,
        accept_incompatible: bool,
    ) -> Result<Channel, ApiError> {
        let current = self.existing_channel(app_id, channel).await?;
        let mut plan = self.plan(current).await?;
        plan.add_release(self, change, accept_incompatible).await?;
        let completes_schedule = match actor {
            Actor::Schedule(id) => Some(id),
            Actor::Key(_) | Actor::ControlLoop => None,
        };
        plan.commit(
            self,
            &actor,
            Commit {
                completes_schedule,
                ..Commit::default()
            },
        )
        .await
    }

    /// Points `channel` back at `to`, or else at the newest stable bundle in its
    /// history that differs from the current one, and ends any rollout. No
    /// compatibility guard: the bundle was live before.
    pub async fn rollback_channel(
        &self,
        actor: Actor<'_>,
        app_id: &str,
        channel: &str,
        to: Option<&str>,
        accept_unencrypted: bool,
    ) -> Result<Channel, ApiError> {
        let current = self.existing_channel(app_id, channel).await?;
        let mut plan = self.plan(current).await?;
        let current_name = plan.stable_name();
        // Only bundles the channel served to every device: that is what lets a
        // rollback skip the compatibility guard. Anything else is a release.
        let served: Vec<String> = self
            .channels
            .channel_history(app_id, channel, ROLLBACK_HISTORY_DEPTH)
            .await?
            .into_iter()
            .map(|entry| entry.bundle)
            .collect();
        let version = match to {
            Some(version) => {
                // An unknown or deleted version says so first.
                self.resolve_bundle(app_id, version).await?;
                if !served.iter().any(|bundle| bundle == version) {
                    return Err(ApiError::conflict(
                        ErrorCode::NotInHistory,
                        format!(
                            "channel {channel} never served {version} to every device, so it is not a rollback; release it with `channel set --bundle {version}` (the compatibility guard applies)"
                        ),
                    ));
                }
                version.to_string()
            }
            None => {
                served
                    .into_iter()
                    .find(|bundle| *bundle != current_name)
                    .ok_or_else(|| {
                        ApiError::conflict(
                            ErrorCode::NothingToRollBack,
                            format!(
                                "channel {channel} has served no other bundle than {current_name}; give the version to roll back to"
                            ),
                        )
                    })?
            }
        };
        let target = self.resolve_bundle(app_id, &version).await?;
        if let Some(bundle) = &target {
            plan.names.insert(bundle.id, bundle.name.clone());
        }
        let had_rollout = plan.after.rollout.is_some();
        plan.push(
            ChannelPatch {
                bundle_id: Some(target.map(|b| b.id)),
                rollout: had_rollout.then_some(None),
                ..ChannelPatch::default()
            },
            "rollback",
            Some(events::CHANNEL_CHANGED),
        );
        if had_rollout {
            plan.events.push(events::ROLLOUT_ROLLED_BACK);
        }
        if !accept_unencrypted {
            plan.refuse_encryption_downgrade(self).await?;
        }
        plan.commit(self, &actor, Commit::default()).await
    }

    /// The channel or 404 `channel_not_found`.
    pub async fn existing_channel(&self, app_id: &str, name: &str) -> Result<Channel, ApiError> {
        self.channels
            .get_channel(app_id, name)
            .await?
            .ok_or_else(|| {
                ApiError::not_found(
                    ErrorCode::ChannelNotFound,
                    format!("channel {name} of {app_id} does not exist"),
                )
            })
    }

    /// A bundle by version name, deleted or not, or 404 `bundle_not_found`.
    pub async fn existing_bundle(&self, app_id: &str, version: &str) -> Result<Bundle, ApiError> {
        self.bundles
            .get_bundle(app_id, version)
            .await?
            .ok_or_else(|| {
                ApiError::not_found(
                    ErrorCode::BundleNotFound,
                    format!("bundle {version} of {app_id} does not exist"),
                )
            })
    }

    /// A bundle by version name: `None` for `builtin`, 404 `bundle_not_found`,
    /// 409 `bundle_deleted`.
    pub async fn resolve_bundle(
        &self,
        app_id: &str,
        version: &str,
    ) -> Result<Option<Bundle>, ApiError> {
        if version == BUILTIN {
            return Ok(None);
        }
        let bundle = self
            .bundles
            .get_bundle(app_id, version)
            .await?
            .ok_or_else(|| {
                ApiError::not_found(
                    ErrorCode::BundleNotFound,
                    format!("bundle {version} of {app_id} does not exist"),
                )
            })?;
        if bundle.deleted {
            return Err(ApiError::conflict(
                ErrorCode::BundleDeleted,
                format!("bundle {version} is deleted and cannot be served"),
            ));
        }
        Ok(Some(bundle))
    }

    /// Names of the bundles `channels` point at (stable and rollout), for
    /// views: from the in-memory release, which holds every bundle a channel
    /// points at; from the store only when a channel was just changed and the
    /// release has not caught up.
    pub async fn bundle_names<'a>(
        &self,
        app_id: &str,
        channels: impl IntoIterator<Item = &'a Channel>,
    ) -> Result<HashMap<i64, String>, ApiError> {
        let release = self.cache.get(app_id);
        let mut names = HashMap::new();
        let mut missing = false;
        for channel in channels {
            let ids = channel
                .bundle_id
                .into_iter()
                .chain(channel.rollout.as_ref().map(|r| r.bundle_id));
            for id in ids {
                match release.bundles.get(&id) {
                    Some(bundle) => {
                        names.insert(id, bundle.name.clone());
                    }
                    None => missing = true,
                }
            }
        }
        if missing {
            names.extend(
                self.bundles
                    .list_bundles(app_id, true)
                    .await?
                    .into_iter()
                    .map(|b| (b.id, b.name)),
            );
        }
        Ok(names)
    }

    /// The newest `limit` history entries of a channel, newest first.
    pub async fn history(
        &self,
        app_id: &str,
        channel: &str,
        limit: i64,
    ) -> Result<Vec<ChannelHistoryEntry>, ApiError> {
        Ok(self
            .channels
            .channel_history(app_id, channel, limit)
            .await?)
    }

    /// Every channel of the app, by name.
    pub async fn channels(&self, app_id: &str) -> Result<Vec<Channel>, ApiError> {
        Ok(self.channels.list_channels(app_id).await?)
    }

    /// Every channel of the app as the API shows it, bundles by name.
    pub async fn channel_views(&self, app_id: &str) -> Result<Vec<ChannelView>, ApiError> {
        let channels = self.channels(app_id).await?;
        let names = self.bundle_names(app_id, &channels).await?;
        Ok(channels
            .into_iter()
            .map(|c| ChannelView::new(c, &names))
            .collect())
    }

    /// The channel, if it exists.
    pub async fn find_channel(
        &self,
        app_id: &str,
        name: &str,
    ) -> Result<Option<Channel>, ApiError> {
        Ok(self.channels.get_channel(app_id, name).await?)
    }

    /// 404 `channel_not_found` for a channel that does not exist, with the
    /// closest existing names in `suggestions` (a typo, most likely).
    pub async fn unknown_channel(&self, app_id: &str, name: &str) -> Result<ApiError, ApiError> {
        let channels = self.channels(app_id).await?;
        let suggestions = closest_names(name, channels.iter().map(|c| c.name.as_str()));
        Ok(ApiError::not_found(
            ErrorCode::ChannelNotFound,
            format!(
                "channel {name} of {app_id} does not exist{}; create it first or ask for it with create_channel",
                did_you_mean(&suggestions)
            ),
        )
        .with("suggestions", suggestions))
    }
}

/// Why a channel request changed nothing: a stable code and a sentence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoChange {
    pub code: &'static str,
    pub message: String,
}

/// Why `releases` (and settings) asked of `channel` leave it as it is: the
/// first release change names the reason, else the settings were already so.
pub fn no_change(
    channel: &Channel,
    releases: &[ReleaseChange],
    bundle_name: impl Fn(i64) -> String,
) -> NoChange {
    let name = &channel.name;
    let rollout_bundle = channel
        .rollout
        .as_ref()
        .map(|r| bundle_name(r.bundle_id))
        .unwrap_or_default();
    let percent = channel.rollout.as_ref().map_or(0, |r| r.percentage_bps);
    let (code, message) = match releases.first() {
        Some(ReleaseChange::Rollout(RolloutRequest::Pause)) => (
            "already_paused",
            format!("the rollout of {rollout_bundle} on channel {name} is already paused"),
        ),
        Some(ReleaseChange::Rollout(RolloutRequest::Resume)) => (
            "not_paused",
            format!("the rollout of {rollout_bundle} on channel {name} is not paused"),
        ),
        Some(ReleaseChange::SetBundle { version }) => (
            "already_serving",
            format!("channel {name} already serves bundle {version}"),
        ),
        Some(ReleaseChange::Rollout(
            RolloutRequest::Start { .. } | RolloutRequest::SetPercentage(_),
        )) => (
            "same_percentage",
            format!(
                "the rollout of {rollout_bundle} on channel {name} is already at {percent} basis points"
            ),
        ),
        _ => (
            "same_settings",
            format!("channel {name} already has these settings"),
        ),
    };
    NoChange { code, message }
}

/// The changes of one channel request, checked: what goes straight into
/// the channel, and the release changes in the order they apply.
#[derive(Debug, Default)]
pub struct ChannelChanges {
    pub patch: ChannelPatch,
    pub releases: Vec<ReleaseChange>,
    pub rollout_targeting: Option<Targeting>,
    pub accept_incompatible: bool,
}

impl ChannelChanges {
    pub fn is_empty(&self) -> bool {
        self.patch == ChannelPatch::default()
            && self.releases.is_empty()
            && self.rollout_targeting.is_none()
    }
}

impl ReleaseService {
    /// Creates channel `name` of `app_id` with `changes` (a release among
    /// them is made on the new channel); unknown or deleted bundles are
    /// refused before the channel exists.
    pub async fn create_channel(
        &self,
        caller: &Caller,
        app_id: &str,
        name: String,
        changes: ChannelChanges,
    ) -> Result<Channel, ApiError> {
        for change in &changes.releases {
            match change {
                ReleaseChange::SetBundle { version }
                | ReleaseChange::Rollout(RolloutRequest::Start { version, .. }) => {
                    self.resolve_bundle(app_id, version).await?;
                }
                ReleaseChange::Rollout(_) => {}
            }
        }
        let channel = self
            .channels
            .create_channel(
                NewChannel {
                    app_id: app_id.to_string(),
                    name,
                    settings: changes.patch.clone(),
                },
                self.clock.now(),
            )
            .await?;
        let created = self.view(channel.clone()).await?;
        self.audit
            .log(
                caller,
                Some(app_id),
                "channel.create",
                &channel.name,
                None,
                audit::view(&created),
            )
            .await;
        let has_release = !changes.releases.is_empty() || changes.rollout_targeting.is_some();
        if !has_release {
            self.refresh(app_id).await;
            return Ok(channel);
        }
        let mut plan = self.plan(channel).await?;
        let release_only = ChannelChanges {
            patch: ChannelPatch::default(),
            ..changes
        };
        self.plan_changes(&mut plan, release_only).await?;
        plan.commit(self, &Actor::Key(caller), Commit::default())
            .await
    }

    /// Creates an empty channel `name` of `app_id`, created at `at`, unless
    /// it exists (also when another request created it meanwhile), for a
    /// release that follows at once (which refreshes the in-memory release).
    pub async fn ensure_channel(
        &self,
        caller: &Caller,
        app_id: &str,
        name: &str,
        at: Millis,
    ) -> Result<(), ApiError> {
        if self.find_channel(app_id, name).await?.is_some() {
            return Ok(());
        }
        let created = self
            .channels
            .create_channel(
                NewChannel {
                    app_id: app_id.to_string(),
                    name: name.to_string(),
                    settings: ChannelPatch::default(),
                },
                at,
            )
            .await;
        match created {
            Ok(channel) => {
                let after = audit::view(&self.view(channel).await?);
                self.audit
                    .log(caller, Some(app_id), "channel.create", name, None, after)
                    .await;
                Ok(())
            }
            // Created meanwhile by someone else: use it.
            Err(StoreError::AlreadyExists(_)) => Ok(()),
            Err(error) => Err(error.into()),
        }
    }

    /// Applies `changes` to `current` in one write. A request that would
    /// leave the channel as it is writes nothing (no history row, audit entry
    /// or webhook) and says why ([`NoChange`]).
    pub async fn update_channel(
        &self,
        caller: &Caller,
        current: Channel,
        changes: ChannelChanges,
        accept_unencrypted: bool,
    ) -> Result<(Channel, Option<NoChange>), ApiError> {
        let releases = changes.releases.clone();
        let mut plan = self.plan(current).await?;
        if !changes.is_empty() {
            self.plan_changes(&mut plan, changes).await?;
        }
        if plan.before == plan.after {
            let reason = no_change(&plan.before, &releases, |id| plan.bundle_name(id));
            return Ok((plan.before, Some(reason)));
        }
        if !accept_unencrypted {
            plan.refuse_encryption_downgrade(self).await?;
        }
        let channel = plan
            .commit(self, &Actor::Key(caller), Commit::default())
            .await?;
        Ok((channel, None))
    }

    /// Deletes channel `name` of `app_id` (404 when there is none).
    pub async fn delete_channel(
        &self,
        caller: &Caller,
        app_id: &str,
        name: &str,
    ) -> Result<(), ApiError> {
        let channel = self.existing_channel(app_id, name).await?;
        let before = self.view(channel).await?;
        self.channels.delete_channel(app_id, name).await?;
        self.audit
            .log(
                caller,
                Some(app_id),
                "channel.delete",
                name,
                audit::view(&before),
                None,
            )
            .await;
        self.refresh(app_id).await;
        Ok(())
    }

    /// Builds the whole change on `plan`: settings, then release changes, then
    /// the rollout's targeting (so that it applies to a rollout started here too).
    async fn plan_changes(&self, plan: &mut Plan, changes: ChannelChanges) -> Result<(), ApiError> {
        plan.add_settings(changes.patch);
        for change in changes.releases {
            plan.add_release(self, change, changes.accept_incompatible)
                .await?;
        }
        if let Some(targeting) = changes.rollout_targeting {
            plan.add_rollout_change(
                RolloutChange::SetTargeting(targeting),
                self.clock.now(),
                "rollout_targeting",
                None,
            )?;
        }
        Ok(())
    }
}

/// The comparison of `packages` (a bundle's, `None` = unknown) with the
/// channel's live bundle.
pub struct Comparison {
    pub report: CompatibilityReport,
    /// The live bundle's name (`builtin` for none).
    pub live_bundle: String,
    /// False when the compared bundle's packages are unknown.
    pub bundle_known: bool,
}

/// The native-compatibility guard: a web bundle that calls a Capacitor
/// plugin the installed app lacks (or expects another version of it) breaks
/// on devices, so putting one live on a channel is refused unless accepted.
impl ReleaseService {
    /// The channel's live (stable) bundle; `None` for the builtin one.
    async fn live_bundle(&self, channel: &Channel) -> Result<Option<Bundle>, ApiError> {
        let Some(id) = channel.bundle_id else {
            return Ok(None);
        };
        if let Some(bundle) = self.cache.get(&channel.app_id).bundle(id) {
            return Ok(Some(bundle.clone()));
        }
        // Not in memory yet (a change in flight): ask the store.
        Ok(self
            .bundles
            .list_bundles(&channel.app_id, true)
            .await?
            .into_iter()
            .find(|bundle| bundle.id == id))
    }

    pub async fn compare(
        &self,
        channel: &Channel,
        packages: Option<&[NativePackage]>,
    ) -> Result<Comparison, ApiError> {
        let live = self.live_bundle(channel).await?;
        let live_bundle = live
            .as_ref()
            .map(|b| b.name.clone())
            .unwrap_or_else(|| BUILTIN.to_string());
        let live_packages = live.as_ref().and_then(|b| b.native_packages.as_deref());
        let report = match packages {
            Some(packages) => compare_native_packages(packages, live_packages),
            // Nothing known about the bundle: nothing to hold against it.
            None => CompatibilityReport {
                compatible: true,
                live_known: live_packages.is_some(),
                packages: Vec::new(),
            },
        };
        Ok(Comparison {
            report,
            live_bundle,
            bundle_known: packages.is_some(),
        })
    }

    /// Refuses (409 `incompatible_bundle`) to put `bundle` live on `channel`
    /// when its native packages differ from those of the channel's live
    /// bundle, unless `accept_incompatible`. Unknown packages on either side pass.
    async fn guard(
        &self,
        channel: &Channel,
        bundle: &Bundle,
        accept_incompatible: bool,
    ) -> Result<(), ApiError> {
        self.check_compatible(
            channel,
            &bundle.name,
            bundle.native_packages.as_deref(),
            accept_incompatible,
        )
        .await
    }

    /// As the guard, for a bundle not stored yet (an upload with `channel`).
    pub async fn check_compatible(
        &self,
        channel: &Channel,
        version: &str,
        packages: Option<&[NativePackage]>,
        accept_incompatible: bool,
    ) -> Result<(), ApiError> {
        if accept_incompatible || packages.is_none() {
            return Ok(());
        }
        let comparison = self.compare(channel, packages).await?;
        if comparison.report.compatible {
            Ok(())
        } else {
            Err(incompatible_error(&channel.name, version, &comparison))
        }
    }
}

/// `name 6.0.0 → 7.0.0 (version_mismatch)` for each incompatible package.
fn differences(packages: &[PackageComparison]) -> Vec<String> {
    packages
        .iter()
        .filter(|p| !p.compatible)
        .map(|p| {
            format!(
                "{} {} → {} ({})",
                p.name,
                p.live_version.as_deref().unwrap_or("absent"),
                p.bundle_version.as_deref().unwrap_or("absent"),
                p.reason.unwrap_or("incompatible")
            )
        })
        .collect()
}

/// The 409 for `version` refused on `channel`; lists the packages in the
/// message and, machine-readable, in `details`.
fn incompatible_error(channel: &str, version: &str, comparison: &Comparison) -> ApiError {
    let packages: Vec<&PackageComparison> = comparison
        .report
        .packages
        .iter()
        .filter(|p| !p.compatible)
        .collect();
    let details = serde_json::to_value(&packages).unwrap_or_default();
    ApiError::conflict(
        ErrorCode::IncompatibleBundle,
        format!(
            "bundle {version} is not compatible with the native packages of channel {channel}'s live bundle {}: {}; \
             pass accept_incompatible to put it live anyway",
            comparison.live_bundle,
            differences(&comparison.report.packages).join(", ")
        ),
    )
    .with("details", details)
    .with("live_bundle", comparison.live_bundle.clone())
}

/// A new rollout's id: the seed of its device buckets.
pub(crate) fn new_rollout_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// What else is written with a change.
#[derive(Default)]
pub(crate) struct Commit {
    /// `Some(expected)`: refuse unless the stored rollout id is still `expected`.
    /// `None`: the one the plan started from.
    pub expect_rollout_id: Option<Option<String>>,
    pub decision: Option<RolloutDecision>,
    pub completes_schedule: Option<i64>,
}

/// A channel change being built in memory.
pub(crate) struct Plan {
    pub before: Channel,
    /// `before` with `patch` applied: what the store will hold.
    pub after: Channel,
    pub patch: ChannelPatch,
    /// History reasons of the release changes (empty = settings only).
    pub reasons: Vec<&'static str>,
    /// Webhook events to emit once written.
    pub events: Vec<&'static str>,
    names: HashMap<i64, String>,
}

impl Plan {
    /// The event of moving the current rollout to `to_bps`: up, down, or
    /// none when it stays.
    fn percentage_event(&self, to_bps: u32) -> Option<&'static str> {
        let from_bps = self.after.rollout.as_ref()?.percentage_bps;
        match to_bps.cmp(&from_bps) {
            std::cmp::Ordering::Greater => Some(events::ROLLOUT_ADVANCED),
            std::cmp::Ordering::Less => Some(events::ROLLOUT_REDUCED),
            std::cmp::Ordering::Equal => None,
        }
    }

    pub fn bundle_name(&self, id: i64) -> String {
        self.names
            .get(&id)
            .cloned()
            .unwrap_or_else(|| format!("#{id}"))
    }

    fn stable_name(&self) -> String {
        match self.after.bundle_id {
            None => BUILTIN.to_string(),
            Some(id) => self.bundle_name(id),
        }
    }

    /// 409 `encryption_downgrade` when the plan serves an unencrypted bundle
    /// (as the stable or a new rollout bundle) on a channel whose stable
    /// bundle is encrypted: devices configured with a public key refuse
    /// unencrypted bundles. `builtin` is no download, so it is no downgrade.
    pub async fn refuse_encryption_downgrade(&self, svc: &ReleaseService) -> Result<(), ApiError> {
        let Some(current_id) = self.before.bundle_id else {
            return Ok(());
        };
        let app_id = &self.before.app_id;
        let mut served = Vec::new();
        if self.after.bundle_id != self.before.bundle_id {
            served.extend(self.after.bundle_id);
        }
        let rollout_bundle = |c: &Channel| c.rollout.as_ref().map(|r| r.bundle_id);
        if rollout_bundle(&self.after) != rollout_bundle(&self.before) {
            served.extend(rollout_bundle(&self.after));
        }
        if served.is_empty() {
            return Ok(());
        }
        let current_name = self.bundle_name(current_id);
        let encrypted = |bundle: &Option<Bundle>| bundle.as_ref().is_some_and(Bundle::is_encrypted);
        let current = svc.bundles.get_bundle(app_id, &current_name).await?;
        if !encrypted(&current) {
            return Ok(());
        }
        for id in served {
            let name = self.bundle_name(id);
            let target = svc.bundles.get_bundle(app_id, &name).await?;
            if target.is_some() && !encrypted(&target) {
                return Err(ApiError::conflict(
                    ErrorCode::EncryptionDowngrade,
                    format!(
                        "bundle {name} is not encrypted but channel {}'s current bundle {current_name} is: \
                         devices configured with a public key refuse unencrypted bundles; \
                         pass accept_unencrypted to serve it anyway",
                        self.before.name
                    ),
                )
                .with("bundle", name)
                .with("current_bundle", current_name));
            }
        }
        Ok(())
    }

    /// Adds a settings change (no history reason of its own).
    pub fn add_settings(&mut self, patch: ChannelPatch) {
        patch.apply_to(&mut self.after);
        self.patch.merge(patch);
    }

    fn push(&mut self, patch: ChannelPatch, reason: &'static str, event: Option<&'static str>) {
        self.add_settings(patch);
        self.reasons.push(reason);
        self.events.extend(event);
    }

    /// Adds a rollout change computed by `rollout::apply_change` (no guard).
    pub fn add_rollout_change(
        &mut self,
        change: RolloutChange,
        now: Millis,
        reason: &'static str,
        event: Option<&'static str>,
    ) -> Result<(), ApiError> {
        let patch = apply_change(&self.after, change, now, new_rollout_id)?;
        self.push(patch, reason, event);
        Ok(())
    }

    /// A change with no patch of its own (an alert): its reason and event.
    pub fn add_event(&mut self, reason: &'static str, event: &'static str) {
        self.reasons.push(reason);
        self.events.push(event);
    }

    /// Records that auto-pause acted on the current rollout now (the cooldown starts).
    pub fn mark_auto_pause_triggered(&mut self, now: Millis) {
        if let Some(rollout) = self.after.rollout.as_mut() {
            rollout.auto_pause_triggered_at = Some(now);
            self.patch.rollout = Some(Some(rollout.clone()));
        }
    }

    /// Adds a release change as asked through the API, a schedule or upload.
    pub async fn add_release(
        &mut self,
        svc: &ReleaseService,
        change: ReleaseChange,
        accept_incompatible: bool,
    ) -> Result<(), ApiError> {
        let before = self.after.clone();
        let (reasons, events) = (self.reasons.len(), self.events.len());
        self.add_release_change(svc, change, accept_incompatible)
            .await?;
        // A part that changes nothing (pausing a paused rollout next to a
        // setting) leaves no history reason and sends no event of its own.
        if self.after == before {
            self.reasons.truncate(reasons);
            self.events.truncate(events);
        }
        Ok(())
    }

    async fn add_release_change(
        &mut self,
        svc: &ReleaseService,
        change: ReleaseChange,
        accept_incompatible: bool,
    ) -> Result<(), ApiError> {
        let app_id = self.after.app_id.clone();
        let now = svc.clock.now();
        match change {
            ReleaseChange::SetBundle { version } => {
                let target = svc.resolve_bundle(&app_id, &version).await?;
                if let Some(bundle) = &target {
                    self.names.insert(bundle.id, bundle.name.clone());
                    if self.after.bundle_id != Some(bundle.id) {
                        svc.guard(&self.after, bundle, accept_incompatible).await?;
                    }
                }
                let target_id = target.map(|b| b.id);
                // The rollout bundle made stable: the rollout has nothing left to do.
                let ends_rollout = matches!(
                    (&self.after.rollout, target_id),
                    (Some(rollout), Some(id)) if rollout.bundle_id == id
                );
                self.push(
                    ChannelPatch {
                        bundle_id: Some(target_id),
                        rollout: ends_rollout.then_some(None),
                        ..ChannelPatch::default()
                    },
                    "set",
                    Some(events::CHANNEL_CHANGED),
                );
            }
            ReleaseChange::Rollout(RolloutRequest::Start {
                version,
                percentage_bps,
            }) => {
                let bundle = svc.resolve_bundle(&app_id, &version)
                    .await?
                    .ok_or_else(|| {
                        ApiError::bad_request(
                            ErrorCode::InvalidRolloutBundle,
                            "the builtin bundle cannot be rolled out; set it as the channel's bundle",
                        )
                    })?;
                self.names.insert(bundle.id, bundle.name.clone());
                let same_rollout = self
                    .after
                    .rollout
                    .as_ref()
                    .is_some_and(|r| r.bundle_id == bundle.id);
                if !same_rollout && self.after.bundle_id != Some(bundle.id) {
                    svc.guard(&self.after, &bundle, accept_incompatible).await?;
                }
                let (reason, event) = if same_rollout {
                    ("rollout_percentage", self.percentage_event(percentage_bps))
                } else {
                    ("rollout_start", Some(events::ROLLOUT_STARTED))
                };
                self.add_rollout_change(
                    RolloutChange::Start {
                        bundle_id: bundle.id,
                        percentage_bps,
                    },
                    now,
                    reason,
                    event,
                )?;
            }
            ReleaseChange::Rollout(RolloutRequest::SetPercentage(bps)) => {
                let event = self.percentage_event(bps);
                self.add_rollout_change(
                    RolloutChange::SetPercentage(bps),
                    now,
                    "rollout_percentage",
                    event,
                )?;
            }
            ReleaseChange::Rollout(RolloutRequest::Pause) => {
                self.add_rollout_change(
                    RolloutChange::Pause,
                    now,
                    "pause",
                    Some(events::ROLLOUT_PAUSED),
                )?;
            }
            ReleaseChange::Rollout(RolloutRequest::Resume) => {
                self.add_rollout_change(
                    RolloutChange::Resume,
                    now,
                    "resume",
                    Some(events::ROLLOUT_RESUMED),
                )?;
            }
            ReleaseChange::Rollout(RolloutRequest::Promote) => {
                // The rollout bundle may have been deleted since it started.
                if let Some(rollout) = &self.after.rollout {
                    let name = self.bundle_name(rollout.bundle_id);
                    svc.resolve_bundle(&app_id, &name).await?;
                }
                self.add_rollout_change(
                    RolloutChange::Promote,
                    now,
                    "promote",
                    Some(events::ROLLOUT_PROMOTED),
                )?;
            }
            ReleaseChange::Rollout(RolloutRequest::Rollback) => {
                self.add_rollout_change(
                    RolloutChange::Rollback,
                    now,
                    "rollback",
                    Some(events::ROLLOUT_ROLLED_BACK),
                )?;
            }
        }
        Ok(())
    }

    /// Adds the names of any bundle `before` or `after` points at that the
    /// plan does not know yet, so that the audit entry and webhooks name
    /// bundles by version, never by id.
    async fn complete_names(&mut self, svc: &ReleaseService) -> Result<(), ApiError> {
        let ids = [&self.before, &self.after].into_iter().flat_map(|c| {
            c.bundle_id
                .into_iter()
                .chain(c.rollout.as_ref().map(|r| r.bundle_id))
        });
        if ids.into_iter().all(|id| self.names.contains_key(&id)) {
            return Ok(());
        }
        let app_id = self.before.app_id.clone();
        let known = svc
            .bundle_names(&app_id, [&self.before, &self.after])
            .await?;
        for (id, name) in known {
            self.names.entry(id).or_insert(name);
        }
        Ok(())
    }

    /// The view of a channel with this plan's bundle names.
    pub fn view(&self, channel: &Channel) -> ChannelView {
        ChannelView::new(channel.clone(), &self.names)
    }

    /// Writes the plan (patch, history, decision, schedule completion, audit
    /// entry) in one transaction, refreshes the release and emits webhooks.
    pub async fn commit(
        mut self,
        svc: &ReleaseService,
        actor: &Actor<'_>,
        commit: Commit,
    ) -> Result<Channel, ApiError> {
        let now = svc.clock.now();
        self.after.updated_at = now;
        let app_id = self.before.app_id.clone();
        let channel_name = self.before.name.clone();
        let reason = if self.reasons.is_empty() {
            "update".to_string()
        } else {
            self.reasons.join("+")
        };
        let audit_action = if self.reasons.is_empty() {
            "channel.update"
        } else {
            "channel.release"
        };
        self.complete_names(svc).await?;
        let before_view = audit::view(&self.view(&self.before));
        let after_view = audit::view(&self.view(&self.after));
        let expect_rollout_id = commit
            .expect_rollout_id
            .unwrap_or_else(|| self.before.rollout.as_ref().map(|r| r.rollout_id.clone()));
        let update = ChannelUpdate {
            app_id: app_id.clone(),
            name: channel_name.clone(),
            patch: self.patch.clone(),
            change: ChangeContext {
                at: now,
                actor: actor.name(),
                reason: reason.clone(),
            },
            expect_rollout_id: Some(expect_rollout_id),
            decision: commit.decision.clone(),
            completes_schedule: commit.completes_schedule,
            audit: Some(NewAuditEntry {
                at: now,
                actor: actor.name(),
                api_key_id: actor.api_key_id(),
                app_id: Some(app_id.clone()),
                action: audit_action.to_string(),
                target: channel_name.clone(),
                before: before_view,
                after: after_view,
            }),
        };
        let stored = match svc.channels.apply_channel_update(update).await {
            Ok(channel) => channel,
            Err(StoreError::Conflict(message)) => {
                return Err(ApiError::conflict(
                    ErrorCode::Conflict,
                    format!("channel {channel_name} changed meanwhile ({message}); retry"),
                ))
            }
            Err(err) => return Err(err.into()),
        };
        svc.refresh(&app_id).await;
        // The decision as stored (its id, its time as the API shows it), so a
        // receiver can find it in the decisions list; only the loop writes
        // decisions, one at a time, so the newest one is this one.
        let decision = match commit.decision {
            Some(_) => svc
                .decisions
                .list_rollout_decisions(&app_id, Some(&channel_name), 1)
                .await
                .ok()
                .and_then(|newest| newest.into_iter().next()),
            None => None,
        };
        let mut events = self.events.clone();
        // A change of settings, targeting or policies is a channel change too.
        if events.is_empty() && self.before != self.after {
            events.push(events::CHANNEL_CHANGED);
        }
        for event in events {
            let data = self.event_data(&stored, actor, &reason, decision.as_ref());
            svc.webhooks.emit(&app_id, event, data).await;
        }
        Ok(stored)
    }

    fn event_data(
        &self,
        after: &Channel,
        actor: &Actor<'_>,
        reason: &str,
        decision: Option<&RolloutDecision>,
    ) -> Value {
        // A rollout that just ended (promoted, rolled back) is still the subject.
        let rollout = after.rollout.as_ref().or(self.before.rollout.as_ref());
        let stable = match after.bundle_id {
            None => BUILTIN.to_string(),
            Some(id) => self.bundle_name(id),
        };
        let previous_stable = match self.before.bundle_id {
            None => BUILTIN.to_string(),
            Some(id) => self.bundle_name(id),
        };
        let mut data = json!({
            "app_id": after.app_id,
            "channel": after.name,
            "bundle": stable,
            "previous_bundle": previous_stable,
            "rollout_bundle": rollout.map(|r| self.bundle_name(r.bundle_id)),
            "rollout_percentage_bps": rollout.map(|r| r.percentage_bps),
            "previous_rollout_percentage_bps": self.before.rollout.as_ref().map(|r| r.percentage_bps),
            "rollout_paused": after.rollout.as_ref().is_some_and(|r| r.paused_at.is_some()),
            "rollout_active": after.rollout.is_some(),
            "actor": actor.name(),
            "reason": reason,
        });
        if let (Some(decision), Some(fields)) = (decision, data.as_object_mut()) {
            if let Ok(value) = serde_json::to_value(updraft_api::management::DecisionView::from(
                decision.clone(),
            )) {
                fields.insert("decision".to_string(), value);
            }
        }
        data
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use updraft_core::model::{AutoUpdatePolicy, Rollout, Targeting};

    fn channel() -> Channel {
        Channel {
            id: 1,
            app_id: "com.example.app".into(),
            name: "production".into(),
            bundle_id: Some(1),
            public: true,
            ios: true,
            android: true,
            electron: true,
            allow_device_self_set: false,
            allow_emulator: false,
            allow_device: true,
            allow_dev: false,
            allow_prod: true,
            disable_auto_update: AutoUpdatePolicy::Major,
            disable_auto_update_under_native: true,
            targeting: Targeting::default(),
            rollout: None,
            auto_pause: Default::default(),
            ramp: Default::default(),
            created_at: 0,
            updated_at: 0,
        }
    }

    fn rollout(bundle_id: i64) -> Rollout {
        Rollout {
            bundle_id,
            percentage_bps: 100,
            paused_at: None,
            rollout_id: "r1".into(),
            started_at: 5,
            step_started_at: 5,
            targeting: Targeting::default(),
            auto_pause_triggered_at: None,
        }
    }

    #[test]
    fn later_patches_win_and_unset_fields_stay() {
        let mut merged = ChannelPatch {
            bundle_id: Some(Some(2)),
            ios: Some(false),
            rollout: Some(Some(rollout(3))),
            ..ChannelPatch::default()
        };
        merged.merge(ChannelPatch {
            rollout: Some(None),
            android: Some(false),
            ..ChannelPatch::default()
        });
        assert_eq!(merged.bundle_id, Some(Some(2)));
        assert_eq!(merged.ios, Some(false));
        assert_eq!(merged.android, Some(false));
        assert_eq!(merged.rollout, Some(None));
        let mut c = channel();
        c.rollout = Some(rollout(3));
        merged.apply_to(&mut c);
        assert_eq!(c.bundle_id, Some(2));
        assert!(!c.ios && !c.android && c.electron);
        assert_eq!(c.rollout, None);
    }

    #[test]
    fn a_request_that_changes_nothing_names_its_first_release_change() {
        let mut c = channel();
        let mut paused = rollout(3);
        paused.paused_at = Some(9);
        c.rollout = Some(paused);
        let name = |id: i64| format!("1.{id}.0");
        let reason = |releases: &[ReleaseChange]| no_change(&c, releases, name);
        let pause = ReleaseChange::Rollout(RolloutRequest::Pause);
        let resume = ReleaseChange::Rollout(RolloutRequest::Resume);
        let set = ReleaseChange::SetBundle {
            version: "1.1.0".into(),
        };
        let percentage = ReleaseChange::Rollout(RolloutRequest::SetPercentage(100));
        assert_eq!(
            reason(&[pause.clone(), set.clone()]),
            NoChange {
                code: "already_paused",
                message: "the rollout of 1.3.0 on channel production is already paused".into(),
            }
        );
        assert_eq!(reason(&[resume]).code, "not_paused");
        assert_eq!(
            reason(&[set]).message,
            "channel production already serves bundle 1.1.0"
        );
        assert!(reason(&[percentage])
            .message
            .ends_with("already at 100 basis points"));
        assert_eq!(reason(&[]).code, "same_settings");
    }

    #[test]
    fn builtin_is_a_patch_to_none() {
        let mut c = channel();
        (ChannelPatch {
            bundle_id: Some(None),
            ..ChannelPatch::default()
        })
        .apply_to(&mut c);
        assert_eq!(c.bundle_id, None);
    }
}
