//! Devices as the management API sees them: the registry (what each device
//! last reported) and the per-device channel overrides an admin sets.

use crate::api::views::OverrideView;
use crate::audit::{self, AuditService};
use crate::auth::Caller;
use crate::error::{ApiError, ErrorCode};
use crate::release_changes::ReleaseService;
use crate::releases::ReleaseCache;
use std::collections::HashMap;
use std::sync::Arc;
use updraft_core::model::Device;
use updraft_store::{ChannelStore, DeviceQuery, DeviceStore, OverrideStore};

/// Device look-ups and override changes: the device, override and channel
/// stores, the in-memory releases (every override of an app, kept current),
/// the release refresh and the audit log.
pub struct DeviceService {
    devices: Arc<dyn DeviceStore>,
    overrides: Arc<dyn OverrideStore>,
    channels: Arc<dyn ChannelStore>,
    cache: Arc<ReleaseCache>,
    releases: Arc<ReleaseService>,
    audit: Arc<AuditService>,
}

/// One page of an app's devices and how many match in all.
pub struct DevicePage {
    pub devices: Vec<Device>,
    pub total: i64,
}

impl DeviceService {
    pub fn new(
        devices: Arc<dyn DeviceStore>,
        overrides: Arc<dyn OverrideStore>,
        channels: Arc<dyn ChannelStore>,
        cache: Arc<ReleaseCache>,
        releases: Arc<ReleaseService>,
        audit: Arc<AuditService>,
    ) -> DeviceService {
        DeviceService {
            devices,
            overrides,
            channels,
            cache,
            releases,
            audit,
        }
    }

    /// The page of `app_id`'s devices that `query` asks for, with the count
    /// of all that match it.
    pub async fn list(&self, app_id: &str, query: &DeviceQuery) -> Result<DevicePage, ApiError> {
        let total = self.devices.count_devices(app_id, query).await?;
        let devices = self.devices.list_devices(app_id, query).await?;
        Ok(DevicePage { devices, total })
    }

    /// Every override of the app, with the name of the channel it points at.
    pub async fn overrides(&self, app_id: &str) -> Result<Vec<OverrideView>, ApiError> {
        let names: HashMap<i64, String> = self
            .channels
            .list_channels(app_id)
            .await?
            .into_iter()
            .map(|c| (c.id, c.name))
            .collect();
        Ok(self
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
        let release = self.cache.get(app_id);
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
        if !self.overrides.delete_override(app_id, device_id).await? {
            return Err(ApiError::not_found(
                ErrorCode::OverrideNotFound,
                format!("device {device_id} has no channel override"),
            ));
        }
        self.releases.refresh(app_id).await;
        self.audit
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
