//! Bundles after they are published: their views (with the channels that
//! serve them), metadata changes and soft deletion, each written, refreshed
//! and recorded in the audit log here.

use crate::audit::{self, AuditService};
use crate::auth::Caller;
use crate::error::{ApiError, ErrorCode};
use crate::release_changes::ReleaseService;
use crate::validate;
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;
use updraft_api::management::BundleView;
use updraft_core::analytics::rfc3339;
use updraft_core::model::{Bundle, Clock, ScheduleStatus, ScheduledAction, ScheduledRelease};
use updraft_store::{BundleMetadataPatch, BundleStore, ScheduleStore};

/// Which channels use a bundle, for the views.
#[derive(Default)]
pub struct ChannelUse {
    /// As their stable bundle.
    pub stable: Vec<String>,
    /// As their rollout bundle.
    pub rollout: Vec<String>,
}

/// Every bundle's users, by bundle id.
pub type ChannelUses = HashMap<i64, ChannelUse>;

/// The API view of `bundle`, its download links under `base_url`.
pub fn view(bundle: Bundle, base_url: &str, uses: &ChannelUses) -> BundleView {
    let (stable, rollout) = uses
        .get(&bundle.id)
        .map(|used| (used.stable.clone(), used.rollout.clone()))
        .unwrap_or_default();
    BundleView::new(bundle, base_url, stable, rollout)
}

/// Published bundles: the bundle and schedule stores, the release service
/// (channels, the bundle look-up and the release refresh), the clock and
/// the audit log.
pub struct BundleService {
    bundles: Arc<dyn BundleStore>,
    schedules: Arc<dyn ScheduleStore>,
    releases: Arc<ReleaseService>,
    clock: Arc<dyn Clock>,
    audit: Arc<AuditService>,
}

impl BundleService {
    pub fn new(
        bundles: Arc<dyn BundleStore>,
        schedules: Arc<dyn ScheduleStore>,
        releases: Arc<ReleaseService>,
        clock: Arc<dyn Clock>,
        audit: Arc<AuditService>,
    ) -> BundleService {
        BundleService {
            bundles,
            schedules,
            releases,
            clock,
            audit,
        }
    }

    /// Which channels of the app serve each bundle.
    pub async fn channel_uses(&self, app_id: &str) -> Result<ChannelUses, ApiError> {
        let mut map = ChannelUses::new();
        for channel in self.releases.channels(app_id).await? {
            if let Some(rollout) = &channel.rollout {
                map.entry(rollout.bundle_id)
                    .or_default()
                    .rollout
                    .push(channel.name.clone());
            }
            if let Some(id) = channel.bundle_id {
                map.entry(id).or_default().stable.push(channel.name);
            }
        }
        Ok(map)
    }

    /// The app's bundles as the API shows them (deleted ones too when
    /// `include_deleted`).
    pub async fn list(
        &self,
        app_id: &str,
        include_deleted: bool,
        base_url: &str,
    ) -> Result<Vec<BundleView>, ApiError> {
        let uses = self.channel_uses(app_id).await?;
        Ok(self
            .bundles
            .list_bundles(app_id, include_deleted)
            .await?
            .into_iter()
            .map(|b| view(b, base_url, &uses))
            .collect())
    }

    /// One bundle (deleted or not) as the API shows it, or 404.
    pub async fn show(
        &self,
        app_id: &str,
        version: &str,
        base_url: &str,
    ) -> Result<BundleView, ApiError> {
        let bundle = self.releases.existing_bundle(app_id, version).await?;
        let uses = self.channel_uses(app_id).await?;
        Ok(view(bundle, base_url, &uses))
    }

    /// Changes the link, comment and minimum update version of a live
    /// bundle (409 `bundle_deleted` for a deleted one).
    pub async fn update_metadata(
        &self,
        caller: &Caller,
        app_id: &str,
        version: &str,
        patch: BundleMetadataPatch,
        base_url: &str,
    ) -> Result<BundleView, ApiError> {
        let bundle = self.releases.existing_bundle(app_id, version).await?;
        if bundle.deleted {
            return Err(ApiError::conflict(
                ErrorCode::BundleDeleted,
                format!("bundle {version} is deleted"),
            ));
        }
        if let Some(Some(link)) = &patch.link {
            validate::text("link", link, 2048)?;
        }
        if let Some(Some(comment)) = &patch.comment {
            validate::text("comment", comment, 4096)?;
        }
        if let Some(Some(min)) = &patch.min_update_version {
            validate::bundle_version(min)?;
        }
        let uses = self.channel_uses(app_id).await?;
        let before = audit::view(&view(bundle, base_url, &uses));
        let bundle = self
            .bundles
            .update_bundle_metadata(app_id, version, patch)
            .await?;
        self.releases.refresh(app_id).await;
        let uses = self.channel_uses(app_id).await?;
        let updated = view(bundle, base_url, &uses);
        self.audit
            .log(
                caller,
                Some(app_id),
                "bundle.update",
                version,
                before,
                audit::view(&updated),
            )
            .await;
        Ok(updated)
    }

    /// Soft-deletes a live bundle (its name stays reserved): refused with
    /// 409 `bundle_in_use` while channels serve it or pending schedules name
    /// it, unless `force`.
    pub async fn delete(
        &self,
        caller: &Caller,
        app_id: &str,
        version: &str,
        force: bool,
        base_url: &str,
    ) -> Result<(), ApiError> {
        let bundle = self.releases.existing_bundle(app_id, version).await?;
        if bundle.deleted {
            return Err(ApiError::not_found(
                ErrorCode::BundleNotFound,
                format!("bundle {version} is already deleted"),
            ));
        }
        let uses = self.channel_uses(app_id).await?;
        if !force {
            self.refuse_if_in_use(app_id, &bundle, &uses).await?;
        }
        let before = audit::view(&view(bundle, base_url, &uses));
        self.bundles
            .delete_bundle(app_id, version, self.clock.now())
            .await?;
        self.releases.refresh(app_id).await;
        self.audit
            .log(caller, Some(app_id), "bundle.delete", version, before, None)
            .await;
        Ok(())
    }

    /// 409 `bundle_in_use` when channels serve `bundle` or pending schedules
    /// name it: `channels` ([{"name", "as": "stable"|"rollout"}]) and
    /// `schedules` ([{"id", "channel", "run_at"}]) say which.
    async fn refuse_if_in_use(
        &self,
        app_id: &str,
        bundle: &Bundle,
        uses: &ChannelUses,
    ) -> Result<(), ApiError> {
        let mut users: Vec<serde_json::Value> = Vec::new();
        let mut names: Vec<String> = Vec::new();
        if let Some(used) = uses.get(&bundle.id) {
            for name in &used.stable {
                users.push(json!({"name": name, "as": "stable"}));
                names.push(name.clone());
            }
            for name in &used.rollout {
                users.push(json!({"name": name, "as": "rollout"}));
                names.push(format!("{name} (rollout)"));
            }
        }
        let schedules: Vec<ScheduledRelease> = self
            .schedules
            .list_schedules(app_id, None)
            .await?
            .into_iter()
            .filter(|s| s.status == ScheduleStatus::Pending)
            .filter(|s| match &s.action {
                ScheduledAction::SetBundle { bundle: name }
                | ScheduledAction::StartRollout { bundle: name, .. } => *name == bundle.name,
            })
            .collect();
        if users.is_empty() && schedules.is_empty() {
            return Ok(());
        }
        let mut parts = Vec::new();
        let mut advice = Vec::new();
        if !names.is_empty() {
            parts.push(format!("served by channel {}", names.join(", ")));
            advice.push("point those channels at another bundle");
        }
        if !schedules.is_empty() {
            let ids: Vec<String> = schedules.iter().map(|s| format!("#{}", s.id)).collect();
            parts.push(format!("named by pending schedule {}", ids.join(", ")));
            advice.push("cancel those schedules");
        }
        let schedule_list: Vec<serde_json::Value> = schedules
            .iter()
            .map(|s| json!({"id": s.id, "channel": s.channel, "run_at": rfc3339(s.run_at)}))
            .collect();
        Err(ApiError::conflict(
            ErrorCode::BundleInUse,
            format!(
                "bundle {} is {}; {} first, or delete with force=true",
                bundle.name,
                parts.join(" and "),
                advice.join(" and ")
            ),
        )
        .with("channels", users)
        .with("schedules", schedule_list))
    }
}
