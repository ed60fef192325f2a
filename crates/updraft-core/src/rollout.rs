//! Progressive rollouts: which devices get a channel's rollout bundle
//! (a deterministic, sticky bucket per device), who a channel or rollout
//! targets, and how a requested change turns into a `ChannelPatch`.
//!
//! Unlike the reference service (reference-server-behaviour.md §1.4), which
//! draws a random number per device and caches it, the bucket here is a hash
//! of the rollout id and the device id: the same device always lands in the
//! same bucket of a rollout, so raising the percentage only adds devices and
//! no cache is needed.

use crate::model::{Channel, ChannelPatch, Millis, Platform, Rollout, Targeting, VersionRange};
use crate::request::UpdateRequest;
use sha2::{Digest, Sha256};

/// Basis points in 100 %.
pub const FULL_BPS: u32 = 10_000;

/// 0..10000: first 8 bytes of SHA-256(rollout_id ":" device_id) big-endian, mod 10000.
///
/// The device id is lower-cased while hashing (without allocating), so the
/// bucket does not depend on how a device spells its id.
pub fn device_bucket(rollout_id: &str, device_id: &str) -> u32 {
    let mut hasher = Sha256::new();
    hasher.update(rollout_id.as_bytes());
    hasher.update(b":");
    let mut buffer = [0u8; 64];
    for chunk in device_id.as_bytes().chunks(buffer.len()) {
        let lowered = &mut buffer[..chunk.len()];
        lowered.copy_from_slice(chunk);
        lowered.make_ascii_lowercase();
        hasher.update(&*lowered);
    }
    let digest = hasher.finalize();
    let mut head = [0u8; 8];
    head.copy_from_slice(&digest[..8]);
    (u64::from_be_bytes(head) % u64::from(FULL_BPS)) as u32
}

/// What targeting looks at, borrowed from a parsed request.
///
/// The native and plugin versions are the request's parsed versions (the
/// request keeps no text for them); the OS version is the text the device sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceFacts<'a> {
    pub platform: Platform,
    /// Lower-case.
    pub device_id: &'a str,
    /// Trimmed; empty when the device sends none (iOS devices usually).
    pub custom_id: &'a str,
    /// As sent (`14`, `17.2`, `10.15.7`); empty when not sent.
    pub version_os: &'a str,
    /// The native app's version, normalised.
    pub version_build: &'a semver::Version,
    pub plugin_version: &'a semver::Version,
    /// Trimmed and lower-case; `None` when not sent.
    pub install_source: Option<&'a str>,
}

impl<'a> DeviceFacts<'a> {
    pub fn from_request(req: &'a UpdateRequest) -> DeviceFacts<'a> {
        DeviceFacts {
            platform: req.platform,
            device_id: &req.device_id,
            custom_id: &req.custom_id,
            version_os: req.version_os.as_deref().unwrap_or_default(),
            version_build: &req.version_build,
            plugin_version: &req.plugin_version,
            install_source: req.install_source.as_deref(),
        }
    }
}

/// Devices send OS versions with one to four numeric parts (`14`, `17.2`,
/// `10.15.7`, `6.0.1.2`): read them as semver, missing parts zero, extra parts
/// ignored. `None` when not even a major number is there.
fn parse_lenient_version(text: &str) -> Option<semver::Version> {
    let trimmed = text.trim();
    let trimmed = trimmed.strip_prefix(['v', 'V']).unwrap_or(trimmed);
    if let Ok(version) = semver::Version::parse(trimmed) {
        return Some(version);
    }
    let core_end = trimmed
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(trimmed.len());
    let mut parts = trimmed[..core_end].split('.');
    let mut number = |required: bool| -> Option<u64> {
        match parts.next() {
            Some(part) if !part.is_empty() => part.parse().ok(),
            Some(_) => None,
            None if required => None,
            None => Some(0),
        }
    };
    let major = number(true)?;
    let minor = number(false)?;
    let patch = number(false)?;
    Some(semver::Version::new(major, minor, patch))
}

/// Range matching by precedence: a prerelease also matches when the release
/// just below its own version does (`8.41.0-beta.1` is within `>=8.40`),
/// which `semver` alone refuses unless the range names that prerelease.
fn range_matches(range: &VersionRange, version: &semver::Version) -> bool {
    if range.req.matches(version) {
        return true;
    }
    if version.pre.is_empty() {
        return false;
    }
    let just_below = match (version.major, version.minor, version.patch) {
        (0, 0, 0) => return false,
        (major, 0, 0) => semver::Version::new(major - 1, u64::MAX, u64::MAX),
        (major, minor, 0) => semver::Version::new(major, minor - 1, u64::MAX),
        (major, minor, patch) => semver::Version::new(major, minor, patch - 1),
    };
    range.req.matches(&just_below)
}

fn optional_range_matches(range: &Option<VersionRange>, version: Option<&semver::Version>) -> bool {
    match (range, version) {
        (None, _) => true,
        (Some(range), Some(version)) => range_matches(range, version),
        (Some(_), None) => false,
    }
}

/// The identity criterion: listed by custom id, custom id prefix or device
/// id. Empty entries never match (an empty custom id is "none").
fn identity_matches(targeting: &Targeting, device: &DeviceFacts<'_>) -> bool {
    let prefix = targeting
        .custom_id_prefix
        .as_deref()
        .filter(|p| !p.is_empty());
    let has_identity_criterion =
        !targeting.custom_ids.is_empty() || prefix.is_some() || !targeting.device_ids.is_empty();
    if !has_identity_criterion {
        return true;
    }
    let custom_id = device.custom_id;
    let by_custom_id = !custom_id.is_empty()
        && (targeting.custom_ids.iter().any(|id| id == custom_id)
            || prefix.is_some_and(|p| custom_id.starts_with(p)));
    let by_device_id = !device.device_id.is_empty()
        && targeting
            .device_ids
            .iter()
            .any(|id| id.eq_ignore_ascii_case(device.device_id));
    by_custom_id || by_device_id
}

/// Every criterion that is set must match (see `Targeting`).
pub fn targeting_matches(targeting: &Targeting, device: &DeviceFacts<'_>) -> bool {
    if !targeting.platforms.is_empty() && !targeting.platforms.contains(&device.platform) {
        return false;
    }
    if targeting.os_version.is_some() {
        let os = parse_lenient_version(device.version_os);
        if !optional_range_matches(&targeting.os_version, os.as_ref()) {
            return false;
        }
    }
    if !optional_range_matches(&targeting.native_version, Some(device.version_build)) {
        return false;
    }
    if !optional_range_matches(&targeting.plugin_version, Some(device.plugin_version)) {
        return false;
    }
    if !targeting.install_sources.is_empty() {
        let source = device.install_source.unwrap_or_default().trim();
        if !targeting
            .install_sources
            .iter()
            .any(|s| s.trim().eq_ignore_ascii_case(source))
        {
            return false;
        }
    }
    identity_matches(targeting, device)
}

/// Does this device get the rollout bundle? A device already running it keeps
/// it (even while paused); otherwise the rollout must be running, above 0 %,
/// target the device, and the device's bucket must be under the percentage.
/// Whether the rollout bundle exists is the caller's business.
pub fn selects_rollout(
    rollout: &Rollout,
    rollout_bundle_name: &str,
    device: &DeviceFacts<'_>,
    running_version: &str,
) -> bool {
    if running_version == rollout_bundle_name {
        return true;
    }
    if rollout.paused_at.is_some() || rollout.percentage_bps == 0 {
        return false;
    }
    if !targeting_matches(&rollout.targeting, device) {
        return false;
    }
    device_bucket(&rollout.rollout_id, device.device_id) < rollout.percentage_bps
}

/// A change someone (or the control loop) asks for on a channel's rollout.
// Built once per management request, never stored in bulk: boxing the
// targeting would only make callers' code noisier.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RolloutChange {
    Start { bundle_id: i64, percentage_bps: u32 },
    SetPercentage(u32),
    SetTargeting(Targeting),
    Pause,
    Resume,
    Promote,
    Rollback,
}

/// Why a rollout change is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RolloutErrorCode {
    /// The percentage is outside 0..=10000 basis points.
    InvalidPercentage,
    /// The bundle to roll out is already the channel's stable bundle.
    RolloutSameAsStable,
    /// The change needs a rollout and the channel has none.
    NoRollout,
}

impl RolloutErrorCode {
    pub const ALL: &'static [RolloutErrorCode] = &[
        RolloutErrorCode::InvalidPercentage,
        RolloutErrorCode::RolloutSameAsStable,
        RolloutErrorCode::NoRollout,
    ];

    /// The code as the management API names it.
    pub fn as_str(self) -> &'static str {
        match self {
            RolloutErrorCode::InvalidPercentage => "invalid_percentage",
            RolloutErrorCode::RolloutSameAsStable => "rollout_same_as_stable",
            RolloutErrorCode::NoRollout => "no_rollout",
        }
    }
}

impl std::fmt::Display for RolloutErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{message}")]
pub struct RolloutError {
    pub code: RolloutErrorCode,
    pub message: String,
}

impl RolloutError {
    fn invalid_percentage(percentage_bps: u32) -> RolloutError {
        RolloutError {
            code: RolloutErrorCode::InvalidPercentage,
            message: format!(
                "rollout percentage must be between 0 and 10000 basis points, got {percentage_bps}"
            ),
        }
    }

    fn no_rollout(channel: &Channel) -> RolloutError {
        RolloutError {
            code: RolloutErrorCode::NoRollout,
            message: format!("channel {} has no rollout", channel.name),
        }
    }
}

/// A rollout percentage as asked (basis points, any integer): 0..=10000 or
/// `invalid_percentage`.
pub fn percentage_bps(requested: i64) -> Result<u32, RolloutError> {
    u32::try_from(requested)
        .ok()
        .filter(|bps| *bps <= FULL_BPS)
        .ok_or_else(|| RolloutError {
            code: RolloutErrorCode::InvalidPercentage,
            message: format!(
                "rollout percentage must be between 0 and {FULL_BPS} basis points, got {requested}"
            ),
        })
}

fn rollout_patch(rollout: Option<Rollout>) -> ChannelPatch {
    ChannelPatch {
        rollout: Some(rollout),
        ..ChannelPatch::default()
    }
}

fn with_percentage(mut rollout: Rollout, percentage_bps: u32, now: Millis) -> Rollout {
    if rollout.percentage_bps != percentage_bps {
        rollout.percentage_bps = percentage_bps;
        rollout.step_started_at = now;
    }
    rollout
}

/// The patch that makes the change on `channel` (only `bundle_id` and/or `rollout` set).
/// Start with the channel's current rollout bundle = set percentage (keeps rollout_id); another bundle =
/// new rollout (rollout_id from `new_rollout_id()`, started_at = step_started_at = now, targeting kept from
/// the previous rollout if any). Errors (codes): `invalid_percentage` (>10000), `rollout_same_as_stable`
/// (bundle is already the stable one), `no_rollout` (change needs an active rollout).
/// SetPercentage changes step_started_at only when the value changes. Pause/Resume idempotent.
/// Promote: bundle_id = rollout bundle, rollout cleared. Rollback: rollout cleared.
pub fn apply_change(
    channel: &Channel,
    change: RolloutChange,
    now: Millis,
    new_rollout_id: impl FnOnce() -> String,
) -> Result<ChannelPatch, RolloutError> {
    let current = channel.rollout.clone();
    let require_rollout = || {
        current
            .clone()
            .ok_or_else(|| RolloutError::no_rollout(channel))
    };
    match change {
        RolloutChange::Start {
            bundle_id,
            percentage_bps,
        } => {
            if percentage_bps > FULL_BPS {
                return Err(RolloutError::invalid_percentage(percentage_bps));
            }
            if channel.bundle_id == Some(bundle_id) {
                return Err(RolloutError {
                    code: RolloutErrorCode::RolloutSameAsStable,
                    message: format!(
                        "that bundle is already the stable bundle of channel {}: a rollout needs another one",
                        channel.name
                    ),
                });
            }
            match current {
                Some(rollout) if rollout.bundle_id == bundle_id => Ok(rollout_patch(Some(
                    with_percentage(rollout, percentage_bps, now),
                ))),
                previous => Ok(rollout_patch(Some(Rollout {
                    bundle_id,
                    percentage_bps,
                    paused_at: None,
                    rollout_id: new_rollout_id(),
                    started_at: now,
                    step_started_at: now,
                    targeting: previous.map(|r| r.targeting).unwrap_or_default(),
                    auto_pause_triggered_at: None,
                }))),
            }
        }
        RolloutChange::SetPercentage(percentage_bps) => {
            if percentage_bps > FULL_BPS {
                return Err(RolloutError::invalid_percentage(percentage_bps));
            }
            let rollout = require_rollout()?;
            Ok(rollout_patch(Some(with_percentage(
                rollout,
                percentage_bps,
                now,
            ))))
        }
        RolloutChange::SetTargeting(targeting) => {
            let rollout = require_rollout()?;
            Ok(rollout_patch(Some(Rollout {
                targeting,
                ..rollout
            })))
        }
        RolloutChange::Pause => {
            let mut rollout = require_rollout()?;
            rollout.paused_at.get_or_insert(now);
            Ok(rollout_patch(Some(rollout)))
        }
        RolloutChange::Resume => {
            let rollout = require_rollout()?;
            Ok(rollout_patch(Some(Rollout {
                paused_at: None,
                ..rollout
            })))
        }
        RolloutChange::Promote => {
            let rollout = require_rollout()?;
            Ok(ChannelPatch {
                bundle_id: Some(Some(rollout.bundle_id)),
                rollout: Some(None),
                ..ChannelPatch::default()
            })
        }
        RolloutChange::Rollback => {
            require_rollout()?;
            Ok(rollout_patch(None))
        }
    }
}

#[cfg(test)]
mod percentage_tests {
    use super::*;

    #[test]
    fn requested_percentages_are_0_to_10000_basis_points() {
        assert_eq!(percentage_bps(0), Ok(0));
        assert_eq!(percentage_bps(10_000), Ok(10_000));
        for bad in [-1, 10_001, i64::MAX, i64::MIN] {
            let err = percentage_bps(bad).err();
            assert_eq!(
                err.as_ref().map(|e| e.code),
                Some(RolloutErrorCode::InvalidPercentage),
                "{bad}"
            );
            assert!(err.is_some_and(|e| e.message.ends_with(&format!("got {bad}"))));
        }
    }

    #[test]
    fn rollout_error_codes_keep_their_wire_strings() {
        let wire: Vec<_> = RolloutErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(
            wire,
            ["invalid_percentage", "rollout_same_as_stable", "no_rollout"]
        );
    }
}
