//! The `/updates` decision (reference-server-behaviour.md §1.2 steps 12–22,
//! §1.3–§1.8; plugin-wire-protocol.md §2, §5): which bundle a device
//! gets, or why not, as the exact JSON body to send with HTTP 200.
//!
//! Order: resolve the channel (§1.3); pick its rollout bundle when the
//! device is selected for the rollout (§1.4 with a deterministic bucket,
//! `rollout::selects_rollout`), else its stable bundle; run the checks
//! against that bundle (§1.5); finally refuse devices outside the channel's
//! targeting (`device_not_targeted`).
//!
//! Pure: everything comes from the request and the app's `ReleaseConfig`.

use crate::error::{DeviceError, DeviceErrorCode};
use crate::model::{AutoUpdatePolicy, Bundle, Channel, Platform, ReleaseConfig, BUILTIN};
use crate::request::UpdateRequest;
use crate::rollout::{selects_rollout, targeting_matches, DeviceFacts};
use crate::version;
use serde_json::{json, Map, Value};
use std::cmp::Ordering;

/// The URL the plugin requires even when it downloads a manifest (or reverts
/// to builtin); it is validated as a URL but never fetched in those cases.
pub const PLACEHOLDER_URL: &str = "https://404.capgo.app/no.zip";

/// Outcome of `answer_manifest_size` when sizes were answered.
pub const MANIFEST_SIZE_OUTCOME: &str = "manifest_size";

#[derive(Clone, Debug, PartialEq)]
pub struct UpdateAnswer {
    /// Exactly what to send with HTTP 200.
    pub body: Value,
    /// What was answered (`get`, or the refusal).
    pub outcome: UpdateOutcome,
    /// Name of the bundle offered ("builtin" for a revert), if any.
    pub offered_version: Option<String>,
}

/// How the plugin classifies a refusal (wire §2.3): it only knows these three.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefusalKind {
    UpToDate,
    Blocked,
    Failed,
}

impl RefusalKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RefusalKind::UpToDate => "up_to_date",
            RefusalKind::Blocked => "blocked",
            RefusalKind::Failed => "failed",
        }
    }
}

/// Why `/updates` offers nothing: every refusal code the decision answers
/// with (wire §2.3), each with its kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Refusal {
    AppNotFound,
    UnsupportedPluginVersion,
    NoChannel,
    BundleDeleted,
    NoBundle,
    NoBundleUrl,
    KeyIdMismatch,
    NoNewVersionAvailable,
    AlreadyOnBuiltin,
    EncryptionRequired,
    DisabledPlatformIos,
    DisabledPlatformAndroid,
    DisabledPlatformElectron,
    DisableAutoUpdateToMajor,
    DisableAutoUpdateToMinor,
    DisableAutoUpdateToPatch,
    DisableAutoUpdateToMetadata,
    DisableAutoUpdateUnderNative,
    MisconfiguredChannel,
    CannotUpdateViaPrivateChannel,
    DisableProdBuild,
    DisableDevBuild,
    DisableDevice,
    DisableEmulator,
    DeviceNotTargeted,
    RevertToBuiltinPluginVersionTooOld,
}

impl Refusal {
    /// Every refusal, for tests and documentation.
    pub const ALL: &'static [Refusal] = &[
        Refusal::AppNotFound,
        Refusal::UnsupportedPluginVersion,
        Refusal::NoChannel,
        Refusal::BundleDeleted,
        Refusal::NoBundle,
        Refusal::NoBundleUrl,
        Refusal::KeyIdMismatch,
        Refusal::NoNewVersionAvailable,
        Refusal::AlreadyOnBuiltin,
        Refusal::EncryptionRequired,
        Refusal::DisabledPlatformIos,
        Refusal::DisabledPlatformAndroid,
        Refusal::DisabledPlatformElectron,
        Refusal::DisableAutoUpdateToMajor,
        Refusal::DisableAutoUpdateToMinor,
        Refusal::DisableAutoUpdateToPatch,
        Refusal::DisableAutoUpdateToMetadata,
        Refusal::DisableAutoUpdateUnderNative,
        Refusal::MisconfiguredChannel,
        Refusal::CannotUpdateViaPrivateChannel,
        Refusal::DisableProdBuild,
        Refusal::DisableDevBuild,
        Refusal::DisableDevice,
        Refusal::DisableEmulator,
        Refusal::DeviceNotTargeted,
        Refusal::RevertToBuiltinPluginVersionTooOld,
    ];

    /// The `error` code on the wire.
    pub fn code(self) -> &'static str {
        match self {
            Refusal::AppNotFound => "app_not_found",
            Refusal::UnsupportedPluginVersion => "unsupported_plugin_version",
            Refusal::NoChannel => "no_channel",
            Refusal::BundleDeleted => "bundle_deleted",
            Refusal::NoBundle => "no_bundle",
            Refusal::NoBundleUrl => "no_bundle_url",
            Refusal::KeyIdMismatch => "key_id_mismatch",
            Refusal::NoNewVersionAvailable => "no_new_version_available",
            Refusal::AlreadyOnBuiltin => "already_on_builtin",
            Refusal::EncryptionRequired => "encryption_required",
            Refusal::DisabledPlatformIos => "disabled_platform_ios",
            Refusal::DisabledPlatformAndroid => "disabled_platform_android",
            Refusal::DisabledPlatformElectron => "disabled_platform_electron",
            Refusal::DisableAutoUpdateToMajor => "disable_auto_update_to_major",
            Refusal::DisableAutoUpdateToMinor => "disable_auto_update_to_minor",
            Refusal::DisableAutoUpdateToPatch => "disable_auto_update_to_patch",
            Refusal::DisableAutoUpdateToMetadata => "disable_auto_update_to_metadata",
            Refusal::DisableAutoUpdateUnderNative => "disable_auto_update_under_native",
            Refusal::MisconfiguredChannel => "misconfigured_channel",
            Refusal::CannotUpdateViaPrivateChannel => "cannot_update_via_private_channel",
            Refusal::DisableProdBuild => "disable_prod_build",
            Refusal::DisableDevBuild => "disable_dev_build",
            Refusal::DisableDevice => "disable_device",
            Refusal::DisableEmulator => "disable_emulator",
            Refusal::DeviceNotTargeted => "device_not_targeted",
            Refusal::RevertToBuiltinPluginVersionTooOld => {
                "revert_to_builtin_plugin_version_too_old"
            }
        }
    }

    /// The reference's classification (§1.5 notes), plus Updraft's
    /// `encryption_required` and `bundle_deleted`, deliberate blocks like a
    /// key mismatch (`failed` would make the device send a `download_fail`).
    pub fn kind(self) -> RefusalKind {
        match self {
            Refusal::NoNewVersionAvailable | Refusal::AlreadyOnBuiltin => RefusalKind::UpToDate,
            Refusal::BundleDeleted
            | Refusal::KeyIdMismatch
            | Refusal::EncryptionRequired
            | Refusal::DisabledPlatformIos
            | Refusal::DisabledPlatformAndroid
            | Refusal::DisabledPlatformElectron
            | Refusal::DisableAutoUpdateToMajor
            | Refusal::DisableAutoUpdateToMinor
            | Refusal::DisableAutoUpdateToPatch
            | Refusal::DisableAutoUpdateToMetadata
            | Refusal::DisableAutoUpdateUnderNative
            | Refusal::CannotUpdateViaPrivateChannel
            | Refusal::DisableProdBuild
            | Refusal::DisableDevBuild
            | Refusal::DisableDevice
            | Refusal::DisableEmulator
            | Refusal::DeviceNotTargeted => RefusalKind::Blocked,
            Refusal::AppNotFound
            | Refusal::UnsupportedPluginVersion
            | Refusal::NoChannel
            | Refusal::NoBundle
            | Refusal::NoBundleUrl
            | Refusal::MisconfiguredChannel
            | Refusal::RevertToBuiltinPluginVersionTooOld => RefusalKind::Failed,
        }
    }

    /// A 200 `{"error", "message", ...}` refusal body with this code.
    fn because(self, message: impl Into<String>) -> Refused {
        Refused {
            why: self,
            error: DeviceError::flat(DeviceErrorCode::Refused(self), message),
        }
    }
}

/// A refusal and the error that says so on the wire.
#[derive(Clone, Debug, PartialEq)]
struct Refused {
    why: Refusal,
    error: DeviceError,
}

impl Refused {
    fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.error = self.error.with(key, value);
        self
    }
}

/// What an update check answered: a bundle, sizes, or a refusal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UpdateOutcome {
    /// A bundle (or a builtin revert) is offered.
    Get,
    /// `manifest_size` answered with sizes.
    ManifestSize,
    Refused(Refusal),
}

impl UpdateOutcome {
    /// `get`, `manifest_size`, or the refusal's code.
    pub fn as_str(self) -> &'static str {
        match self {
            UpdateOutcome::Get => "get",
            UpdateOutcome::ManifestSize => MANIFEST_SIZE_OUTCOME,
            UpdateOutcome::Refused(why) => why.code(),
        }
    }

    /// The refusal's kind; `None` when something was answered.
    pub fn kind(self) -> Option<RefusalKind> {
        match self {
            UpdateOutcome::Refused(why) => Some(why.kind()),
            UpdateOutcome::Get | UpdateOutcome::ManifestSize => None,
        }
    }
}

impl PartialEq<&str> for UpdateOutcome {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl std::fmt::Display for UpdateOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a channel points at.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Target<'a> {
    /// The bundle shipped inside the native app ("revert to native").
    Builtin,
    Bundle(&'a Bundle),
}

impl Target<'_> {
    pub fn name(&self) -> &str {
        match self {
            Target::Builtin => BUILTIN,
            Target::Bundle(bundle) => &bundle.name,
        }
    }
}

/// The channel a device gets its updates from (§1.3).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ResolvedChannel<'a> {
    pub channel: &'a Channel,
    pub target: Target<'a>,
    /// Reached through a device override rather than `defaultChannel`/public.
    pub via_override: bool,
}

/// What a channel points at, or `None` when its bundle is deleted or unknown
/// (such channels are invisible to resolution, §1.3 "Common to A and B").
pub fn channel_target<'a>(release: &'a ReleaseConfig, channel: &Channel) -> Option<Target<'a>> {
    match channel.bundle_id {
        None => Some(Target::Builtin),
        Some(id) => bundle_target(release, id),
    }
}

/// What a bundle id stands for: `None` when the bundle is deleted or unknown.
fn bundle_target(release: &ReleaseConfig, id: i64) -> Option<Target<'_>> {
    let bundle = release.bundle(id)?;
    if bundle.name == BUILTIN {
        Some(Target::Builtin)
    } else if bundle.deleted {
        None
    } else {
        Some(Target::Bundle(bundle))
    }
}

/// How a device reached its channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChannelSource {
    /// A device override (an admin's, or an old plugin's self-assignment).
    Override,
    /// The `defaultChannel` the device sent: a channel it may use.
    DefaultChannel,
    /// The platform's public channel: no `defaultChannel`, or one the device
    /// may not use (any more).
    Public,
}

/// The channel a device is on, before its bundle is looked at.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DeviceChannel<'a> {
    pub channel: &'a Channel,
    pub source: ChannelSource,
}

/// Whether a device may ask for `channel` by name in its `defaultChannel`.
fn usable_by_name(channel: &Channel, platform: Platform) -> bool {
    channel.allows_platform(platform) && (channel.public || channel.allow_device_self_set)
}

/// The one channel rule, shared by `/updates`, `PUT /channel_self` and stats
/// attribution (§1.3, with one deliberate difference):
/// 1. a device override wins (no visibility filter), unless its channel's
///    bundle is deleted (the reference then ignores it);
/// 2. else the named `defaultChannel`, when it is enabled for the platform and
///    public or self-assignable;
/// 3. else the platform's public channel. Unlike the reference, this also
///    covers a `defaultChannel` the device may not use: the plugin stores the
///    channel of every `getChannel()` answer, so a device that asked while
///    `production` was public sends `defaultChannel: "production"` for ever,
///    and must follow the public channel when it moves instead of being
///    stranded on `no_channel`.
///
/// `release.channels` is ordered by (name, id), the reference's ORDER BY.
/// `device_id` is lower-case, as parsed requests and the override keys both are.
pub fn device_channel<'a>(
    release: &'a ReleaseConfig,
    device_id: &str,
    platform: Platform,
    default_channel: Option<&str>,
) -> Option<DeviceChannel<'a>> {
    let overridden = release
        .overrides
        .get(device_id)
        .and_then(|o| release.channel_by_id(o.channel_id))
        .filter(|channel| channel_target(release, channel).is_some());
    if let Some(channel) = overridden {
        return Some(DeviceChannel {
            channel,
            source: ChannelSource::Override,
        });
    }
    let requested = default_channel
        .filter(|name| !name.is_empty())
        .and_then(|name| {
            first_live(
                release,
                release
                    .channels
                    .iter()
                    .filter(|c| c.name == name && usable_by_name(c, platform)),
            )
        });
    if let Some(channel) = requested {
        return Some(DeviceChannel {
            channel,
            source: ChannelSource::DefaultChannel,
        });
    }
    first_live(
        release,
        release
            .channels
            .iter()
            .filter(|c| c.public && c.allows_platform(platform)),
    )
    .map(|channel| DeviceChannel {
        channel,
        source: ChannelSource::Public,
    })
}

/// The first candidate whose bundle is live, else the first candidate (its
/// deleted bundle is then refused plainly rather than skipped to `no_channel`).
fn first_live<'a>(
    release: &ReleaseConfig,
    mut candidates: impl Iterator<Item = &'a Channel> + Clone,
) -> Option<&'a Channel> {
    candidates
        .clone()
        .find(|c| channel_target(release, c).is_some())
        .or_else(|| candidates.next())
}

/// Why a device has no channel to be served from.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Unresolved<'a> {
    /// No override, no usable `defaultChannel`, no public channel.
    NoChannel,
    /// The device's channel points at a bundle that was deleted.
    BundleDeleted(&'a Channel),
}

/// The device's channel ([`device_channel`]) with what it points at.
pub fn resolve_channel<'a>(
    release: &'a ReleaseConfig,
    device_id: &str,
    platform: Platform,
    default_channel: Option<&str>,
) -> Result<ResolvedChannel<'a>, Unresolved<'a>> {
    resolve_device_channel(
        release,
        device_channel(release, device_id, platform, default_channel),
    )
}

/// What the channel a device is on ([`device_channel`]) points at.
fn resolve_device_channel<'a>(
    release: &'a ReleaseConfig,
    on: Option<DeviceChannel<'a>>,
) -> Result<ResolvedChannel<'a>, Unresolved<'a>> {
    let on = on.ok_or(Unresolved::NoChannel)?;
    let target =
        channel_target(release, on.channel).ok_or(Unresolved::BundleDeleted(on.channel))?;
    Ok(ResolvedChannel {
        channel: on.channel,
        target,
        via_override: on.source == ChannelSource::Override,
    })
}

/// The channel's rollout bundle when the device is selected for the rollout
/// (a rollout whose bundle is unknown or deleted is ignored), else the
/// channel's stable target as resolved.
pub fn choose_target<'a>(
    release: &'a ReleaseConfig,
    resolved: ResolvedChannel<'a>,
    req: &UpdateRequest,
) -> ResolvedChannel<'a> {
    let Some(rollout) = &resolved.channel.rollout else {
        return resolved;
    };
    let Some(target) = bundle_target(release, rollout.bundle_id) else {
        return resolved;
    };
    let device = DeviceFacts::from_request(req);
    if !selects_rollout(rollout, target.name(), &device, &req.version_name) {
        return resolved;
    }
    ResolvedChannel { target, ..resolved }
}

/// A 200 refusal: `{"error", "message", ...extras, "kind"}`.
fn refuse(refused: Refused) -> UpdateAnswer {
    let mut body = refused.error.to_json();
    if let Value::Object(map) = &mut body {
        map.insert(
            "kind".into(),
            Value::String(refused.why.kind().as_str().into()),
        );
    }
    UpdateAnswer {
        body,
        outcome: UpdateOutcome::Refused(refused.why),
        offered_version: None,
    }
}

fn app_not_found(app_id: &str) -> Refused {
    Refused {
        why: Refusal::AppNotFound,
        error: DeviceError::app_not_found(app_id).with_status(200),
    }
}

fn no_channel() -> Refused {
    Refusal::NoChannel.because("no default channel or override")
}

/// The device's channel serves a bundle that was deleted (deleting a served
/// bundle needs `force`): a deliberate block, not a failure the device retries.
fn bundle_deleted(release: &ReleaseConfig, channel: &Channel) -> Refused {
    let bundle = channel
        .bundle_id
        .and_then(|id| release.bundle(id))
        .map(|b| b.name.as_str());
    let what = match bundle {
        Some(name) => format!("bundle {name}, which was deleted"),
        None => "a bundle that was deleted".to_string(),
    };
    let error = Refusal::BundleDeleted
        .because(format!(
            "Channel \"{}\" serves {what}. Point the channel at another bundle.",
            channel.name
        ))
        .with("channel", channel.name.as_str());
    match bundle {
        Some(name) => error.with("version", name),
        None => error,
    }
}

fn unresolved(release: &ReleaseConfig, why: Unresolved<'_>) -> Refused {
    match why {
        Unresolved::NoChannel => no_channel(),
        Unresolved::BundleDeleted(channel) => bundle_deleted(release, channel),
    }
}

fn no_bundle() -> Refused {
    Refusal::NoBundle.because("Cannot get bundle")
}

fn non_empty(value: &Option<String>) -> Option<&str> {
    value.as_deref().filter(|s| !s.is_empty())
}

fn is_http_url(text: &str) -> bool {
    let has_prefix = |prefix: &str| {
        text.get(..prefix.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(prefix))
    };
    has_prefix("http://") || has_prefix("https://")
}

/// An absolute URL for a stored path: absolute ones verbatim, others under `base_url`.
fn resolve_against(base_url: &str, path: &str) -> String {
    if is_http_url(path) {
        return path.to_string();
    }
    let base = base_url.trim_end_matches('/');
    if path.starts_with('/') {
        format!("{base}{path}")
    } else {
        format!("{base}/{path}")
    }
}

/// The zip URL of a bundle (§1.7): external URL verbatim, else the stored
/// object under Updraft's base URL, else the placeholder for manifest bundles.
pub fn bundle_url(bundle: &Bundle, base_url: &str) -> Option<String> {
    if let Some(external) = non_empty(&bundle.external_url).filter(|u| is_http_url(u)) {
        return Some(external.to_string());
    }
    if let Some(path) = non_empty(&bundle.storage_path) {
        return Some(resolve_against(base_url, path));
    }
    if !bundle.manifest.is_empty() {
        return Some(PLACEHOLDER_URL.to_string());
    }
    None
}

/// Precedence comparison (build metadata ignored, prerelease below release).
fn precedence(a: &semver::Version, b: &semver::Version) -> Ordering {
    a.cmp_precedence(b)
}

/// The §1.5 checks in their exact order; the first that applies refuses.
fn channel_flag_refusal<'a, O: Observer<'a>>(
    req: &UpdateRequest,
    resolved: &ResolvedChannel<'_>,
    default_channel: Option<&str>,
    obs: &mut O,
) -> Option<Refused> {
    let channel = resolved.channel;
    let target = resolved.target.name();
    let native = &req.version_build;
    let running: &str = &req.version_name;
    let block_vs_running = |why: Refusal, message: &str| {
        why.because(message)
            .with("version", target)
            .with("old", running)
    };
    let block_vs_native = |why: Refusal, message: &str| {
        why.because(message)
            .with("major", true)
            .with("version", target)
            .with("old", native.to_string())
    };
    // Version policies compare the bundle with the native version; builtin
    // and names that are not semver take no part in them.
    let bundle_version = match resolved.target {
        Target::Builtin => None,
        Target::Bundle(bundle) => version::parse_semver_lenient(&bundle.name).map(|v| (bundle, v)),
    };
    let policy = channel.disable_auto_update;

    // Rows 1–3: platform.
    let platform_block = match req.platform {
        Platform::Ios if !channel.ios => Some((
            Refusal::DisabledPlatformIos,
            "Cannot update, ios it's disabled",
        )),
        Platform::Android if !channel.android => Some((
            Refusal::DisabledPlatformAndroid,
            "Cannot update, android is disabled",
        )),
        Platform::Electron if !channel.electron => Some((
            Refusal::DisabledPlatformElectron,
            "Cannot update, electron is disabled",
        )),
        _ => None,
    };
    if let Some((why, message)) = platform_block {
        return Some(obs.refused(Rule::Platform, block_vs_running(why, message)));
    }
    obs.rule(Rule::Platform, None);

    // Row 4: no upgrade across a major.
    if let Some((_, v)) = &bundle_version {
        if policy == AutoUpdatePolicy::Major && v.major > native.major {
            return Some(obs.refused(
                Rule::MajorPolicy,
                block_vs_native(
                    Refusal::DisableAutoUpdateToMajor,
                    "Cannot upgrade major version",
                ),
            ));
        }
        obs.rule(Rule::MajorPolicy, None);
    }

    // Row 5: a private channel is reachable only through an override.
    if !channel.public && !channel.allow_device_self_set && !resolved.via_override {
        let advice = match default_channel {
            Some(dc) => format!(
                "Please ensure your defaultChannel \"{dc}\" has \"Allow devices to self dissociate/associate\" set to true."
            ),
            None => "Please set a defaultChannel with \"Allow devices to self dissociate/associate\" enabled.".to_string(),
        };
        return Some(obs.refused(Rule::PrivateChannel, Refusal::CannotUpdateViaPrivateChannel.because(
            format!(
                "Cannot update via a private channel. The channel \"{}\" does not allow device self-assignment. {advice}",
                channel.name
            ),
        )));
    }
    obs.rule(Rule::PrivateChannel, None);

    // Rows 6–9: the remaining version policies.
    if let Some((bundle, v)) = &bundle_version {
        let same_major = v.major == native.major;
        let same_minor = same_major && v.minor == native.minor;
        let same_patch = same_minor && v.patch == native.patch;
        if policy == AutoUpdatePolicy::Minor && !same_minor {
            return Some(obs.refused(
                Rule::VersionPolicy,
                block_vs_native(
                    Refusal::DisableAutoUpdateToMinor,
                    "Cannot upgrade minor version",
                ),
            ));
        }
        if policy == AutoUpdatePolicy::Patch && !same_patch {
            return Some(obs.refused(
                Rule::VersionPolicy,
                block_vs_native(
                    Refusal::DisableAutoUpdateToPatch,
                    "Cannot upgrade patch version",
                ),
            ));
        }
        if policy == AutoUpdatePolicy::Metadata {
            // An absent or unparsable minimum cannot be honoured either way.
            match non_empty(&bundle.min_update_version)
                .and_then(|m| version::normalize_version_build(m.trim()))
            {
                None => {
                    return Some(
                        obs.refused(
                            Rule::VersionPolicy,
                            Refusal::MisconfiguredChannel
                                .because(format!("Channel {} is misconfigured", channel.name))
                                .with("version", target)
                                .with("old", native.to_string()),
                        ),
                    )
                }
                Some(minimum) if precedence(&minimum, native) == Ordering::Greater => {
                    return Some(obs.refused(
                        Rule::VersionPolicy,
                        block_vs_native(
                            Refusal::DisableAutoUpdateToMetadata,
                            "Cannot upgrade version, min update version > current version",
                        ),
                    ))
                }
                Some(_) => {}
            }
        }
        obs.rule(Rule::VersionPolicy, None);
        if channel.disable_auto_update_under_native && precedence(v, native) == Ordering::Less {
            return Some(obs.refused(
                Rule::UnderNative,
                block_vs_running(
                    Refusal::DisableAutoUpdateUnderNative,
                    "Cannot revert under native version",
                ),
            ));
        }
        obs.rule(Rule::UnderNative, None);
    }

    // Rows 10–13: build and device kind.
    let device_block = if !channel.allow_prod && req.is_prod {
        Some((
            Refusal::DisableProdBuild,
            "Cannot update, prod build is disabled",
        ))
    } else if !channel.allow_dev && !req.is_prod {
        Some((
            Refusal::DisableDevBuild,
            "Cannot update, dev build is disabled",
        ))
    } else if !channel.allow_device && !req.is_emulator {
        Some((Refusal::DisableDevice, "Cannot update, device is disabled"))
    } else if !channel.allow_emulator && req.is_emulator {
        Some((
            Refusal::DisableEmulator,
            "Cannot update, emulator is disabled",
        ))
    } else {
        None
    };
    let refused = device_block.map(|(why, message)| block_vs_running(why, message));
    obs.rule(Rule::BuildKind, refused.as_ref().map(|r| r.why));
    refused
}

/// The success body for a real bundle (§1.7, wire §2.2). Never carries
/// `error`, `kind`, `message`, `breaking` or `major`.
fn offer_bundle(
    req: &UpdateRequest,
    release: &ReleaseConfig,
    bundle: &Bundle,
    url: String,
    base_url: &str,
) -> UpdateAnswer {
    let mut body = Map::new();
    body.insert("version".into(), Value::String(bundle.name.clone()));
    body.insert("url".into(), Value::String(url));
    if let Some(checksum) = bundle.device_checksum() {
        body.insert(
            "checksum".into(),
            Value::String(checksum.to_ascii_lowercase()),
        );
    }
    body.insert(
        "session_key".into(),
        Value::String(bundle.session_key.clone().unwrap_or_default()),
    );
    if version::supports_manifest(&req.plugin_version) {
        let entries: Vec<Value> = bundle
            .manifest
            .iter()
            // Files with nowhere to download from cannot be offered.
            .filter(|file| !file.location.is_empty())
            .map(|file| {
                json!({
                    "file_name": file.file_name,
                    "file_hash": file.file_hash.to_ascii_lowercase(),
                    "download_url": resolve_against(base_url, &file.location),
                })
            })
            .collect();
        // An empty array breaks both platforms: omit the key instead.
        if !entries.is_empty() {
            body.insert("manifest".into(), Value::Array(entries));
        }
    }
    let exposes_metadata = release.app.as_ref().is_some_and(|app| app.expose_metadata)
        && version::supports_link_comment(&req.plugin_version);
    if exposes_metadata {
        if let Some(link) = non_empty(&bundle.link) {
            body.insert("link".into(), Value::String(link.to_string()));
        }
        if let Some(comment) = non_empty(&bundle.comment) {
            body.insert("comment".into(), Value::String(comment.to_string()));
        }
    }
    UpdateAnswer {
        body: Value::Object(body),
        outcome: UpdateOutcome::Get,
        offered_version: Some(bundle.name.clone()),
    }
}

/// `base_url` has no trailing slash, e.g. "http://127.0.0.1:8080"; relative `storage_path` and manifest
/// `location` values (starting with '/') are resolved against it.
pub fn answer_update(req: &UpdateRequest, release: &ReleaseConfig, base_url: &str) -> UpdateAnswer {
    decide(req, release, base_url, &mut ())
}

/// [`answer_update`], telling `obs` each rule it applies and its verdict
/// (`()` observes nothing and costs nothing; [`explain_update`] records).
fn decide<'a, O: Observer<'a>>(
    req: &UpdateRequest,
    release: &'a ReleaseConfig,
    base_url: &str,
    obs: &mut O,
) -> UpdateAnswer {
    if release.app.is_none() {
        return refuse(obs.refused(Rule::App, app_not_found(&req.app_id)));
    }
    obs.rule(Rule::App, None);
    if req.plugin_version.major == 4 {
        return refuse(obs.refused(
            Rule::PluginVersion,
            Refusal::UnsupportedPluginVersion.because(format!(
            "Plugin version {} (v4) is no longer supported. Please upgrade to v5.10.0 or later.",
            req.plugin_version
        )),
        ));
    }
    obs.rule(Rule::PluginVersion, None);
    let default_channel = req.default_channel.as_deref().filter(|dc| !dc.is_empty());
    let on = device_channel(release, &req.device_id, req.platform, default_channel);
    obs.channel(on);
    let resolved = match resolve_device_channel(release, on) {
        Ok(resolved) => resolved,
        Err(why) => return refuse(obs.refused(Rule::Channel, unresolved(release, why))),
    };
    obs.rule(Rule::Channel, None);
    let resolved = choose_target(release, resolved, req);
    obs.target(resolved);
    obs.rule(Rule::Rollout, None);
    let target_name = resolved.target.name();

    if let Target::Bundle(bundle) = resolved.target {
        let has_zip =
            non_empty(&bundle.external_url).is_some() || non_empty(&bundle.storage_path).is_some();
        if !has_zip && bundle.manifest.is_empty() {
            return refuse(obs.refused(Rule::BundleFiles, no_bundle()));
        }
        obs.rule(Rule::BundleFiles, None);
        let device_key = req.key_id.as_deref().filter(|k| !k.is_empty());
        let bundle_key = non_empty(&bundle.key_id);
        if let (Some(device_key), Some(bundle_key)) = (device_key, bundle_key) {
            if device_key != bundle_key && version::enforces_key_id(&req.plugin_version) {
                return refuse(obs.refused(
                    Rule::KeyId,
                    Refusal::KeyIdMismatch.because("Device encryption key does not match bundle encryption key. The device may have a different public key than the one used to encrypt this bundle.",
                    )
                    .with("deviceKeyId", device_key)
                    .with("bundleKeyId", bundle_key),
                ));
            }
        }
        obs.rule(Rule::KeyId, None);
    }

    if req.version_name == target_name {
        return refuse(obs.refused(
            Rule::NewVersion,
            Refusal::NoNewVersionAvailable.because("No new version available"),
        ));
    }
    obs.rule(Rule::NewVersion, None);

    // A device with a public key rejects unencrypted bundles after
    // downloading them (plugin ≥ 8.51.23); refuse up front instead.
    if let (Target::Bundle(bundle), Some(key_id)) = (
        resolved.target,
        req.key_id.as_deref().filter(|k| !k.is_empty()),
    ) {
        if !bundle.is_encrypted() {
            return refuse(obs.refused(
                Rule::Encryption,
                Refusal::EncryptionRequired.because(format!(
                        "The device has an encryption key (key_id {key_id}) but bundle {} is not encrypted; it would reject it. Upload an encrypted bundle to this channel.",
                        bundle.name
                    ),
                )
                .with("version", bundle.name.as_str()),
            ));
        }
    }
    obs.rule(Rule::Encryption, None);

    if let Some(block) = channel_flag_refusal(req, &resolved, default_channel, obs) {
        return refuse(block);
    }

    if !targeting_matches(&resolved.channel.targeting, &DeviceFacts::from_request(req)) {
        return refuse(
            obs.refused(
                Rule::Targeting,
                Refusal::DeviceNotTargeted
                    .because("This channel's release does not target this device")
                    .with("version", target_name)
                    .with("old", &*req.version_name),
            ),
        );
    }
    obs.rule(Rule::Targeting, None);

    match resolved.target {
        Target::Builtin => {
            if !version::supports_builtin_revert(&req.plugin_version) {
                return refuse(
                    obs.refused(
                        Rule::BuiltinRevert,
                        Refusal::RevertToBuiltinPluginVersionTooOld
                            .because("revert_to_builtin used, but plugin version is too old"),
                    ),
                );
            }
            // On the native bundle the plugin reports the native version as its bundle name.
            if req.version_name == req.version_build.to_string() {
                return refuse(
                    obs.refused(
                        Rule::BuiltinRevert,
                        Refusal::AlreadyOnBuiltin
                            .because("Already on builtin")
                            .with("version", BUILTIN),
                    ),
                );
            }
            obs.rule(Rule::BuiltinRevert, None);
            UpdateAnswer {
                body: json!({ "version": BUILTIN, "url": PLACEHOLDER_URL }),
                outcome: UpdateOutcome::Get,
                offered_version: Some(BUILTIN.to_string()),
            }
        }
        Target::Bundle(bundle) => match bundle_url(bundle, base_url) {
            Some(url) => {
                obs.rule(Rule::BundleUrl, None);
                offer_bundle(req, release, bundle, url, base_url)
            }
            None => refuse(obs.refused(
                Rule::BundleUrl,
                Refusal::NoBundleUrl.because("Cannot get bundle url"),
            )),
        },
    }
}

/// POST /updates/manifest_size (reference §1.8, wire §5.3): body's `manifest` or `files` array entries,
/// optional `version`; sizes from the bundle's ManifestFile.size matched by file_name/file_hash;
/// answer {"totalSize","knownFiles","unknownFiles","files":[{file_name,file_hash,download_url,size}|{…,"error":"size_unknown"}]}.
/// Unknown app / version → the same refusal shapes as answer_update would give (200 + error + kind).
///
/// Without `version`, the bundle is the one the device would be offered (the
/// channel's rollout bundle when the device is selected for it).
/// A sizes answer has outcome [`MANIFEST_SIZE_OUTCOME`] and no offered version.
pub fn answer_manifest_size(
    req: &UpdateRequest,
    body: &Value,
    release: &ReleaseConfig,
) -> UpdateAnswer {
    if release.app.is_none() {
        return refuse(app_not_found(&req.app_id));
    }
    let requested = body
        .get("version")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|v| !v.is_empty());
    let bundle = match requested {
        Some(name) => release
            .bundles
            .values()
            .map(|b| b.as_ref())
            .find(|b| b.name == name && !b.deleted),
        None => {
            let default_channel = req.default_channel.as_deref().filter(|dc| !dc.is_empty());
            let resolved = resolve_channel(release, &req.device_id, req.platform, default_channel)
                .map(|resolved| choose_target(release, resolved, req));
            match resolved {
                Err(why) => return refuse(unresolved(release, why)),
                Ok(ResolvedChannel {
                    target: Target::Bundle(bundle),
                    ..
                }) => Some(bundle),
                Ok(_) => None,
            }
        }
    };
    let Some(bundle) = bundle else {
        return refuse(no_bundle());
    };

    let entries = body
        .get("manifest")
        .and_then(Value::as_array)
        .or_else(|| body.get("files").and_then(Value::as_array))
        .map(Vec::as_slice)
        .unwrap_or_default();
    let mut total_size: i64 = 0;
    let mut known = 0usize;
    let mut files = Vec::with_capacity(entries.len());
    for entry in entries {
        let field = |key: &str| entry.get(key).and_then(Value::as_str).unwrap_or_default();
        let (file_name, file_hash, download_url) = (
            field("file_name"),
            field("file_hash"),
            field("download_url"),
        );
        let size = bundle
            .manifest
            .iter()
            .find(|f| f.file_name == file_name && f.file_hash.eq_ignore_ascii_case(file_hash))
            .and_then(|f| f.size)
            .filter(|size| *size >= 0);
        let mut out = Map::new();
        out.insert("file_name".into(), Value::String(file_name.to_string()));
        out.insert("file_hash".into(), Value::String(file_hash.to_string()));
        out.insert(
            "download_url".into(),
            Value::String(download_url.to_string()),
        );
        match size {
            Some(size) => {
                total_size = total_size.saturating_add(size);
                known += 1;
                out.insert("size".into(), Value::from(size));
            }
            None => {
                out.insert("error".into(), Value::String("size_unknown".into()));
            }
        }
        files.push(Value::Object(out));
    }
    UpdateAnswer {
        body: json!({
            "totalSize": total_size,
            "knownFiles": known,
            "unknownFiles": files.len() - known,
            "files": files,
        }),
        outcome: UpdateOutcome::ManifestSize,
        offered_version: None,
    }
}

// ---- `updraft device explain`: the decision's rules, recorded (explain.rs) ----
mod explain;
use explain::Observer;
pub use explain::{
    explain_update, request_from_device, Explanation, MissingDeviceFacts, Remedy, Rule, Step,
    StepOutcome,
};
// ---- end of `device explain` ----

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ManifestFile;

    fn private_channel(policy: AutoUpdatePolicy) -> Channel {
        Channel {
            id: 3,
            app_id: "com.example.app".into(),
            name: "internal".into(),
            bundle_id: Some(30),
            public: false,
            ios: true,
            android: true,
            electron: true,
            allow_device_self_set: false,
            allow_emulator: true,
            allow_device: true,
            allow_dev: true,
            allow_prod: true,
            disable_auto_update: policy,
            disable_auto_update_under_native: false,
            targeting: Default::default(),
            rollout: None,
            auto_pause: Default::default(),
            ramp: Default::default(),
            created_at: 0,
            updated_at: 0,
        }
    }

    fn bundle(name: &str) -> Bundle {
        Bundle {
            id: 30,
            app_id: "com.example.app".into(),
            name: name.into(),
            checksum: None,
            encrypted_checksum: None,
            session_key: None,
            key_id: None,
            external_url: None,
            storage_path: Some("/b.zip".into()),
            zip_sha256: None,
            size: None,
            manifest: Vec::<ManifestFile>::new(),
            min_update_version: None,
            link: None,
            comment: None,
            native_packages: None,
            deleted: false,
            created_at: 0,
            deleted_at: None,
        }
    }

    fn request() -> UpdateRequest<'static> {
        UpdateRequest {
            platform: Platform::Ios,
            device_id: "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0".into(),
            app_id: "com.example.app".into(),
            custom_id: "".into(),
            version_build: semver::Version::new(1, 0, 0),
            version_code: None,
            version_os: None,
            version_name: "1.0.0".into(),
            plugin_version: semver::Version::new(8, 51, 14),
            is_emulator: false,
            is_prod: true,
            install_source: None,
            default_channel: None,
            key_id: None,
        }
    }

    /// The refusal with this wire code.
    fn refusal(code: &str) -> Refusal {
        *Refusal::ALL.iter().find(|r| r.code() == code).unwrap()
    }

    #[test]
    fn every_refusal_has_its_own_code() {
        let codes: std::collections::HashSet<&str> =
            Refusal::ALL.iter().map(|r| r.code()).collect();
        assert_eq!(codes.len(), Refusal::ALL.len());
        assert!(!codes.contains("get") && !codes.contains(MANIFEST_SIZE_OUTCOME));
    }

    fn refusal_json(
        channel: &Channel,
        bundle: &Bundle,
        via_override: bool,
        default_channel: Option<&str>,
    ) -> Option<Value> {
        let resolved = ResolvedChannel {
            channel,
            target: Target::Bundle(bundle),
            via_override,
        };
        channel_flag_refusal(&request(), &resolved, default_channel, &mut ())
            .map(|r| r.error.to_json())
    }

    // Row 5 cannot be reached through resolution (private channels resolve
    // only through overrides), so the check itself is exercised here.
    #[test]
    fn row5_private_channel_without_override_is_blocked() {
        let channel = private_channel(AutoUpdatePolicy::None);
        let b = bundle("1.0.1");
        assert_eq!(
            refusal_json(&channel, &b, false, Some("internal")),
            Some(json!({
                "error": "cannot_update_via_private_channel",
                "message": "Cannot update via a private channel. The channel \"internal\" does not allow device self-assignment. Please ensure your defaultChannel \"internal\" has \"Allow devices to self dissociate/associate\" set to true.",
            }))
        );
        assert_eq!(
            refusal_json(&channel, &b, false, None),
            Some(json!({
                "error": "cannot_update_via_private_channel",
                "message": "Cannot update via a private channel. The channel \"internal\" does not allow device self-assignment. Please set a defaultChannel with \"Allow devices to self dissociate/associate\" enabled.",
            }))
        );
        assert_eq!(refusal_json(&channel, &b, true, None), None);
        assert_eq!(
            refusal("cannot_update_via_private_channel").kind(),
            RefusalKind::Blocked
        );
    }

    #[test]
    fn row5_sits_between_major_and_minor() {
        let major = private_channel(AutoUpdatePolicy::Major);
        let to_major = refusal_json(&major, &bundle("2.0.0"), false, None);
        assert_eq!(
            to_major.as_ref().map(|b| &b["error"]),
            Some(&json!("disable_auto_update_to_major"))
        );
        let minor = private_channel(AutoUpdatePolicy::Minor);
        let to_minor = refusal_json(&minor, &bundle("1.1.0"), false, None);
        assert_eq!(
            to_minor.as_ref().map(|b| &b["error"]),
            Some(&json!("cannot_update_via_private_channel"))
        );
    }

    #[test]
    fn refusal_kinds_follow_the_reference_classification() {
        let cases = [
            ("no_new_version_available", "up_to_date"),
            ("already_on_builtin", "up_to_date"),
            ("disable_auto_update_to_metadata", "blocked"),
            ("disabled_platform_electron", "blocked"),
            ("key_id_mismatch", "blocked"),
            ("encryption_required", "blocked"),
            ("misconfigured_channel", "failed"),
            ("no_channel", "failed"),
            ("app_not_found", "failed"),
            ("unsupported_plugin_version", "failed"),
        ];
        for (code, kind) in cases {
            assert_eq!(refusal(code).kind().as_str(), kind, "{code}");
        }
    }

    #[test]
    fn stored_paths_resolve_against_base_url() {
        assert_eq!(
            resolve_against("http://h:8080", "/a/b.zip"),
            "http://h:8080/a/b.zip"
        );
        assert_eq!(
            resolve_against("http://h:8080/", "/a/b.zip"),
            "http://h:8080/a/b.zip"
        );
        assert_eq!(
            resolve_against("http://h:8080", "a/b.zip"),
            "http://h:8080/a/b.zip"
        );
        assert_eq!(
            resolve_against("http://h", "HTTPS://cdn/x"),
            "HTTPS://cdn/x"
        );
    }
}
