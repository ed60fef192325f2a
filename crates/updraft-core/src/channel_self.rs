//! `/channel_self` answers (reference-server-behaviour.md §3, wire §7).
//!
//! Two semantics, chosen by plugin version
//! ([`version::uses_local_channel_storage`]): new plugins keep their channel
//! on the device and the server only validates; old plugins get a
//! server-side device override, whose change is returned as an
//! [`OverrideEffect`] for the caller to store.

use crate::decision::{device_channel, ChannelSource};
use crate::error::{DeviceError, DeviceErrorCode};
use crate::model::{Channel, DeviceOverride, Platform, ReleaseConfig};
use crate::request::{ChannelListQuery, ChannelSelfRequest};
use crate::version;
use serde_json::{json, Value};

/// What the caller must do to the device's stored override.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OverrideEffect {
    None,
    Set { channel_id: i64 },
    Delete,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ChannelSelfAnswer {
    pub status: u16,
    pub body: Value,
    pub effect: OverrideEffect,
}

impl ChannelSelfAnswer {
    fn ok(body: Value) -> Self {
        ChannelSelfAnswer {
            status: 200,
            body,
            effect: OverrideEffect::None,
        }
    }

    fn with_effect(mut self, effect: OverrideEffect) -> Self {
        self.effect = effect;
        self
    }

    /// The reference's "200 errors": `{"error", "message", ...extras}`, no `kind`.
    fn refuse(error: DeviceError) -> Self {
        ChannelSelfAnswer {
            status: error.status,
            body: error.to_json(),
            effect: OverrideEffect::None,
        }
    }
}

fn app_not_found(app_id: &str) -> ChannelSelfAnswer {
    ChannelSelfAnswer::refuse(DeviceError::app_not_found(app_id))
}

fn cannot_override() -> ChannelSelfAnswer {
    ChannelSelfAnswer::refuse(DeviceError::flat(
        DeviceErrorCode::CannotOverride,
        "Cannot change device override current channel don't allow it",
    ))
}

fn status_ok() -> Value {
    json!({ "status": "ok" })
}

fn is_new_plugin(req: &ChannelSelfRequest) -> bool {
    version::uses_local_channel_storage(
        req.plugin_version.as_ref(),
        req.plugin_version_raw.as_deref(),
    )
}

/// `device_id` is lower-case already (the request parser lower-cases it).
fn device_override<'a>(release: &'a ReleaseConfig, device_id: &str) -> Option<&'a DeviceOverride> {
    release.overrides.get(device_id)
}

/// Lookup by exact name, first in (name, id) order, no platform check (§3.2 step 2).
fn channel_named<'a>(release: &'a ReleaseConfig, name: &str) -> Option<&'a Channel> {
    release.channels.iter().find(|c| c.name == name)
}

/// The platform's public ("main") channel.
fn public_channel(release: &ReleaseConfig, platform: Platform) -> Option<&Channel> {
    release
        .channels
        .iter()
        .find(|c| c.public && c.allows_platform(platform))
}

/// §3.2 steps 2–3: the requested channel must exist and allow self-assignment.
fn self_assignable_channel<'a>(
    release: &'a ReleaseConfig,
    app_id: &str,
    name: &str,
) -> Result<&'a Channel, ChannelSelfAnswer> {
    let Some(channel) = channel_named(release, name) else {
        return Err(ChannelSelfAnswer::refuse(
            DeviceError::flat(DeviceErrorCode::ChannelNotFound, "Cannot find channel")
                .with("channel", name)
                .with("app_id", app_id),
        ));
    };
    if channel.allow_device_self_set {
        return Ok(channel);
    }
    let refusal = if channel.public {
        DeviceError::flat(
            DeviceErrorCode::PublicChannelSelfSetNotAllowed,
            "This channel is public and does not allow device self-assignment. Unset the channel and the device will automatically use the public channel.",
        )
    } else {
        DeviceError::flat(
            DeviceErrorCode::ChannelSelfSetNotAllowed,
            "This channel does not allow devices to self associate",
        )
    };
    Err(ChannelSelfAnswer::refuse(
        refusal.with("channel", name).with("app_id", app_id),
    ))
}

/// POST: set the device's channel.
pub fn answer_channel_set(req: &ChannelSelfRequest, release: &ReleaseConfig) -> ChannelSelfAnswer {
    let Some(requested) = req.channel.as_deref().filter(|c| !c.is_empty()) else {
        return ChannelSelfAnswer::refuse(DeviceError::flat(
            DeviceErrorCode::MissingChannel,
            "Cannot find channel in body",
        ));
    };
    if release.app.is_none() {
        return app_not_found(&req.app_id);
    }

    if is_new_plugin(req) {
        if let Err(refusal) = self_assignable_channel(release, &req.app_id, requested) {
            return refusal;
        }
        // The hosted service's answer: the plugin stores the channel it
        // asked for. (`unset: true` would send it back to the build's config
        // `defaultChannel`, e.g. "beta", not to the public channel it asked for.)
        return ChannelSelfAnswer::ok(json!({ "status": "ok", "allowSet": true }));
    }

    // Old plugins: a server-side override (§3.2 steps 1–6).
    let existing = device_override(release, &req.device_id);
    let existing_channel = existing.and_then(|o| release.channel_by_id(o.channel_id));
    if existing_channel.is_some_and(|c| !c.allow_device_self_set) {
        // An override the device may not change was set by an admin.
        return cannot_override();
    }
    let channel = match self_assignable_channel(release, &req.app_id, requested) {
        Ok(channel) => channel,
        Err(refusal) => return refusal,
    };
    if public_channel(release, req.platform).is_some_and(|c| c.name == channel.name) {
        return ChannelSelfAnswer::ok(status_ok()).with_effect(OverrideEffect::Delete);
    }
    if existing.is_some_and(|o| o.channel_id == channel.id) {
        return ChannelSelfAnswer::ok(status_ok());
    }
    ChannelSelfAnswer::ok(status_ok()).with_effect(OverrideEffect::Set {
        channel_id: channel.id,
    })
}

/// PUT: which channel the device is on — the one `/updates` serves it from
/// ([`device_channel`]), for every plugin: new plugins persist the answer as
/// their `defaultChannel`, so it must never name a channel they could not use.
pub fn answer_channel_get(req: &ChannelSelfRequest, release: &ReleaseConfig) -> ChannelSelfAnswer {
    if release.app.is_none() {
        return app_not_found(&req.app_id);
    }
    let default_channel = req.default_channel.as_deref().filter(|dc| !dc.is_empty());
    let new_plugin = is_new_plugin(req);
    let Some(on) = device_channel(release, &req.device_id, req.platform, default_channel) else {
        let not_found = DeviceError::flat(DeviceErrorCode::ChannelNotFound, "Cannot find channel");
        // New plugins: 400 + channel_not_found lets the plugin fall back to
        // its local choice (wire §7.2); old ones get the reference's 200.
        return ChannelSelfAnswer::refuse(if new_plugin {
            not_found.with_status(400)
        } else {
            not_found
        });
    };
    let body = match (on.source, new_plugin) {
        (ChannelSource::Override, _) => json!({
            "channel": on.channel.name,
            "status": "override",
            "allowSet": on.channel.allow_device_self_set,
        }),
        (_, true) => json!({
            "channel": on.channel.name,
            "status": "default",
            "allowSet": true,
        }),
        (_, false) => json!({
            "channel": on.channel.name,
            "status": "default",
        }),
    };
    ChannelSelfAnswer::ok(body)
}

/// DELETE: remove the device's channel.
pub fn answer_channel_unset(
    req: &ChannelSelfRequest,
    release: &ReleaseConfig,
) -> ChannelSelfAnswer {
    if release.app.is_none() {
        return app_not_found(&req.app_id);
    }
    if is_new_plugin(req) {
        // Nothing is stored server-side for these plugins.
        return ChannelSelfAnswer::ok(status_ok());
    }
    let Some(existing) = device_override(release, &req.device_id) else {
        return cannot_override();
    };
    if release
        .channel_by_id(existing.channel_id)
        .is_some_and(|c| !c.allow_device_self_set)
    {
        return cannot_override();
    }
    ChannelSelfAnswer::ok(status_ok()).with_effect(OverrideEffect::Delete)
}

/// GET: the channels this device may pick, as a bare array (wire §7.3).
pub fn answer_channel_list(q: &ChannelListQuery, release: &ReleaseConfig) -> ChannelSelfAnswer {
    if release.app.is_none() {
        return app_not_found(&q.app_id);
    }
    let channels: Vec<Value> = release
        .channels
        .iter()
        .filter(|c| c.allow_device_self_set || c.public)
        .filter(|c| {
            if q.is_emulator {
                c.allow_emulator
            } else {
                c.allow_device
            }
        })
        .filter(|c| if q.is_prod { c.allow_prod } else { c.allow_dev })
        .filter(|c| c.allows_platform(q.platform))
        .map(|c| {
            json!({
                "id": c.id,
                "name": c.name,
                "public": c.public,
                "allow_self_set": c.allow_device_self_set,
            })
        })
        .collect();
    ChannelSelfAnswer::ok(Value::Array(channels))
}
