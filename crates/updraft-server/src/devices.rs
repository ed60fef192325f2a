//! Devices as the management API sees them: the registry (what each device
//! last reported) and the per-device channel overrides an admin sets.

use crate::audit::{self, AuditService};
use crate::auth::Caller;
use crate::error::{ApiError, ErrorCode};
use crate::release_changes::ReleaseService;
use crate::releases::ReleaseCache;
use crate::writers::RegistryWriter;
use std::collections::HashMap;
use std::sync::Arc;
use updraft_api::management::{DeviceDetail, DeviceView, EventView, OverrideView};
use updraft_api::DeviceExplanation;
use updraft_core::decision::{explain_update, request_from_device};
use updraft_core::model::{Clock, Device, OverrideSource};
use updraft_store::{ChannelStore, DeviceQuery, DeviceStore, OverrideStore, StatsStore};

/// How many of a device's latest events its detail view shows.
const RECENT_EVENTS: i64 = 50;

/// Device look-ups and override changes: the device, override, channel and
/// event stores, the registry writer (flushed before a look-up), the
/// in-memory releases (every override of an app, kept current), the release
/// refresh, the audit log and the clock.
pub struct DeviceService {
    deps: DeviceDeps,
}

/// What the device service is built from.
pub struct DeviceDeps {
    pub devices: Arc<dyn DeviceStore>,
    pub overrides: Arc<dyn OverrideStore>,
    pub channels: Arc<dyn ChannelStore>,
    pub events: Arc<dyn StatsStore>,
    pub registry: Arc<RegistryWriter>,
    pub cache: Arc<ReleaseCache>,
    pub releases: Arc<ReleaseService>,
    pub audit: Arc<AuditService>,
    pub clock: Arc<dyn Clock>,
}

/// One page of an app's devices and how many match in all.
pub struct DevicePage {
    pub devices: Vec<Device>,
    pub total: i64,
}

impl DeviceService {
    pub fn new(deps: DeviceDeps) -> DeviceService {
        DeviceService { deps }
    }

    /// One device as last reported, its override and its latest events
    /// (404 `device_not_found` when it has not been seen for the app).
    pub async fn show(&self, app_id: &str, device_id: &str) -> Result<DeviceDetail, ApiError> {
        let device = self.device(app_id, device_id).await?;
        let channel_override = self.current_override(app_id, device_id);
        let recent_events = self
            .deps
            .events
            .list_events(app_id, Some(device_id), RECENT_EVENTS)
            .await?
            .into_iter()
            .map(EventView::from)
            .collect();
        Ok(DeviceDetail {
            device: DeviceView::new(device, &self.deps.cache.get(app_id)),
            channel_override,
            recent_events,
        })
    }

    /// Why the device gets what `/updates` answers it now: the decision run
    /// on what it last reported (404 `device_not_found` when it has not been
    /// seen for the app, 409 `device_incomplete` when the registry lacks a
    /// field the update check needs). `base_url` as the device would see it.
    pub async fn explain(
        &self,
        app_id: &str,
        device_id: &str,
        base_url: &str,
    ) -> Result<DeviceExplanation, ApiError> {
        let device = self.device(app_id, device_id).await?;
        let request = request_from_device(&device).map_err(|missing| {
            ApiError::conflict(
                ErrorCode::DeviceIncomplete,
                format!("device {device_id} cannot be explained: {missing}"),
            )
        })?;
        let release = self.deps.cache.get(app_id);
        let explanation = explain_update(&request, &release, base_url);
        let channel_override = self.current_override(app_id, device_id);
        Ok(DeviceExplanation::new(
            device,
            &release,
            channel_override,
            explanation,
        ))
    }

    /// The device as last reported, the registry flushed first so a device
    /// seen a moment ago is there (404 `device_not_found` when it is not).
    async fn device(&self, app_id: &str, device_id: &str) -> Result<Device, ApiError> {
        if let Err(err) = self.deps.registry.flush().await {
            tracing::warn!(error = %err, "registry flush before device lookup failed");
        }
        self.deps
            .devices
            .get_device(app_id, device_id)
            .await?
            .ok_or_else(|| {
                ApiError::not_found(
                    ErrorCode::DeviceNotFound,
                    format!("device {device_id} has not been seen for {app_id}"),
                )
            })
    }

    /// Pins the device to `channel` (404 `channel_not_found` when the app has
    /// no such channel), whatever its app's channels would give it.
    pub async fn set_override(
        &self,
        caller: &Caller,
        app_id: &str,
        device_id: &str,
        channel: &str,
    ) -> Result<OverrideView, ApiError> {
        let channel = self
            .deps
            .channels
            .get_channel(app_id, channel)
            .await?
            .ok_or_else(|| {
                ApiError::not_found(
                    ErrorCode::ChannelNotFound,
                    format!("channel {channel} of {app_id} does not exist"),
                )
            })?;
        let before = self.current_override(app_id, device_id);
        let stored = self
            .deps
            .overrides
            .set_override(
                app_id,
                device_id,
                channel.id,
                OverrideSource::Admin,
                self.deps.clock.now(),
            )
            .await?;
        self.deps.releases.refresh(app_id).await;
        let view = OverrideView::new(stored, channel.name);
        self.deps
            .audit
            .log(
                caller,
                Some(app_id),
                "device.override.set",
                device_id,
                before.as_ref().and_then(audit::view),
                audit::view(&view),
            )
            .await;
        Ok(view)
    }

    /// The page of `app_id`'s devices that `query` asks for, with the count
    /// of all that match it.
    pub async fn list(&self, app_id: &str, query: &DeviceQuery) -> Result<DevicePage, ApiError> {
        let total = self.deps.devices.count_devices(app_id, query).await?;
        let devices = self.deps.devices.list_devices(app_id, query).await?;
        Ok(DevicePage { devices, total })
    }

    /// Every override of the app, with the name of the channel it points at.
    pub async fn overrides(&self, app_id: &str) -> Result<Vec<OverrideView>, ApiError> {
        let names: HashMap<i64, String> = self
            .deps
            .channels
            .list_channels(app_id)
            .await?
            .into_iter()
            .map(|c| (c.id, c.name))
            .collect();
        Ok(self
            .deps
            .overrides
            .list_overrides(app_id)
            .await?
            .into_iter()
            .map(|o| {
                let name = names.get(&o.channel_id).cloned().unwrap_or_default();
                OverrideView::new(o, name)
            })
            .collect())
    }

    /// A device's override as the in-memory release holds it (every override
    /// of the app, kept current after each change).
    pub fn current_override(&self, app_id: &str, device_id: &str) -> Option<OverrideView> {
        let release = self.deps.cache.get(app_id);
        let existing = release.overrides.get(device_id)?;
        let name = release
            .channel_by_id(existing.channel_id)
            .map(|c| c.name.clone())
            .unwrap_or_default();
        Some(OverrideView::new(existing.clone(), name))
    }

    /// Removes the device's override (404 `override_not_found` when it has
    /// none): the device follows its app's channels again.
    pub async fn unset_override(
        &self,
        caller: &Caller,
        app_id: &str,
        device_id: &str,
    ) -> Result<(), ApiError> {
        let before = self.current_override(app_id, device_id);
        if !self
            .deps
            .overrides
            .delete_override(app_id, device_id)
            .await?
        {
            return Err(ApiError::not_found(
                ErrorCode::OverrideNotFound,
                format!("device {device_id} has no channel override"),
            ));
        }
        self.deps.releases.refresh(app_id).await;
        self.deps
            .audit
            .log(
                caller,
                Some(app_id),
                "device.override.delete",
                device_id,
                before.as_ref().and_then(audit::view),
                None,
            )
            .await;
        Ok(())
    }
}
