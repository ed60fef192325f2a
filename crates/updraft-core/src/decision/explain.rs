//! "Why does this device not update?" (`updraft device explain`): the update
//! decision for one device, rule by rule, with what would change its answer.
//!
//! The rules are not written again here: [`super::decide`], which
//! `answer_update` is, tells an [`Observer`] each rule it applies and its
//! verdict. `answer_update` observes with `()`, whose methods do nothing (the
//! hot path is the unobserved code after monomorphisation); [`explain_update`]
//! records them in a [`Trace`]. This module only describes what was decided.

use super::{
    decide, usable_by_name, ChannelSource, DeviceChannel, Refusal, Refused, ResolvedChannel,
    Target, UpdateAnswer,
};
use crate::model::{AutoUpdatePolicy, Channel, Device, Platform, ReleaseConfig, BUILTIN};
use crate::request::UpdateRequest;
use crate::version;
use serde_json::Value;
use std::borrow::Cow;

/// One rule of the update decision. Declared (and so ordered) as the
/// decision applies them; the first that refuses decides.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Rule {
    /// The app exists (`app_not_found`).
    App,
    /// The plugin is not a v4 one (`unsupported_plugin_version`).
    PluginVersion,
    /// The device has a channel whose bundle exists (`no_channel`, `bundle_deleted`).
    Channel,
    /// The channel's rollout bundle or its stable one (never refuses).
    Rollout,
    /// The bundle has a zip or a manifest (`no_bundle`).
    BundleFiles,
    /// The device's key id matches the bundle's (`key_id_mismatch`).
    KeyId,
    /// The device does not run it already (`no_new_version_available`).
    NewVersion,
    /// A device with a key gets only encrypted bundles (`encryption_required`).
    Encryption,
    /// The channel serves the platform (`disabled_platform_*`).
    Platform,
    /// `disable_auto_update: major` (`disable_auto_update_to_major`).
    MajorPolicy,
    /// A private channel only through an override (`cannot_update_via_private_channel`).
    PrivateChannel,
    /// `disable_auto_update: minor | patch | metadata` (`…_to_minor`, `…_to_patch`,
    /// `…_to_metadata`, `misconfigured_channel`).
    VersionPolicy,
    /// No bundle below the native version when the channel forbids it
    /// (`disable_auto_update_under_native`).
    UnderNative,
    /// Production/development builds, physical devices/emulators (`disable_prod_build`,
    /// `disable_dev_build`, `disable_device`, `disable_emulator`).
    BuildKind,
    /// The channel's targeting includes the device (`device_not_targeted`).
    Targeting,
    /// Reverting to the builtin bundle (`revert_to_builtin_plugin_version_too_old`,
    /// `already_on_builtin`).
    BuiltinRevert,
    /// The bundle has a download URL (`no_bundle_url`).
    BundleUrl,
}

impl Rule {
    /// Every rule, in the order the decision applies them.
    pub const ALL: &'static [Rule] = &[
        Rule::App,
        Rule::PluginVersion,
        Rule::Channel,
        Rule::Rollout,
        Rule::BundleFiles,
        Rule::KeyId,
        Rule::NewVersion,
        Rule::Encryption,
        Rule::Platform,
        Rule::MajorPolicy,
        Rule::PrivateChannel,
        Rule::VersionPolicy,
        Rule::UnderNative,
        Rule::BuildKind,
        Rule::Targeting,
        Rule::BuiltinRevert,
        Rule::BundleUrl,
    ];

    /// Stable name (API and `--json`).
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::App => "app",
            Rule::PluginVersion => "plugin_version",
            Rule::Channel => "channel",
            Rule::Rollout => "rollout",
            Rule::BundleFiles => "bundle_files",
            Rule::KeyId => "key_id",
            Rule::NewVersion => "new_version",
            Rule::Encryption => "encryption",
            Rule::Platform => "platform",
            Rule::MajorPolicy => "major_policy",
            Rule::PrivateChannel => "private_channel",
            Rule::VersionPolicy => "version_policy",
            Rule::UnderNative => "under_native",
            Rule::BuildKind => "build_kind",
            Rule::Targeting => "targeting",
            Rule::BuiltinRevert => "builtin_revert",
            Rule::BundleUrl => "bundle_url",
        }
    }
}

impl ChannelSource {
    /// Stable name (API and `--json`).
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelSource::Override => "override",
            ChannelSource::DefaultChannel => "default_channel",
            ChannelSource::Public => "public",
        }
    }
}

/// What the decision told its observer, as it decided.
pub(super) trait Observer<'a> {
    /// The channel the device is on, before its bundle is looked at.
    fn channel(&mut self, _on: Option<DeviceChannel<'a>>) {}
    /// The channel and the bundle (stable or rollout) the checks run against.
    fn target(&mut self, _resolved: ResolvedChannel<'a>) {}
    /// `rule` was applied: `None` when it let the device through.
    fn rule(&mut self, _rule: Rule, _refused: Option<Refusal>) {}
    /// `rule` refused with `refused` (passed through).
    fn refused(&mut self, rule: Rule, refused: Refused) -> Refused {
        self.rule(rule, Some(refused.why));
        refused
    }
}

/// The hot path: observes nothing.
impl Observer<'_> for () {}

/// What [`explain_update`] records.
#[derive(Default)]
struct Trace<'a> {
    on: Option<DeviceChannel<'a>>,
    resolved: Option<ResolvedChannel<'a>>,
    verdicts: Vec<(Rule, Option<Refusal>)>,
}

impl<'a> Observer<'a> for Trace<'a> {
    fn channel(&mut self, on: Option<DeviceChannel<'a>>) {
        self.on = on;
    }
    fn target(&mut self, resolved: ResolvedChannel<'a>) {
        self.resolved = Some(resolved);
    }
    fn rule(&mut self, rule: Rule, refused: Option<Refusal>) {
        self.verdicts.push((rule, refused));
    }
}

/// How one rule went for the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StepOutcome {
    /// Applied; let the device through.
    Ok,
    /// Applied; refused (the decision's answer).
    Refused(Refusal),
    /// Does not apply to this device's target (e.g. key checks for builtin).
    Skipped,
    /// An earlier rule decided.
    NotReached,
}

impl StepOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            StepOutcome::Ok => "ok",
            StepOutcome::Refused(_) => "refused",
            StepOutcome::Skipped => "skipped",
            StepOutcome::NotReached => "not_reached",
        }
    }
}

/// One rule of the explanation.
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    pub rule: Rule,
    pub outcome: StepOutcome,
    /// What the rule looked at, for people.
    pub detail: String,
}

/// Something that would change the answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Remedy {
    /// What to do, for people.
    pub summary: String,
    /// The `updraft …` command that does it, when one does.
    pub command: Option<String>,
}

impl Remedy {
    fn run(summary: impl Into<String>, command: String) -> Remedy {
        Remedy {
            summary: summary.into(),
            command: Some(command),
        }
    }

    fn advice(summary: impl Into<String>) -> Remedy {
        Remedy {
            summary: summary.into(),
            command: None,
        }
    }
}

/// The update decision for one device, explained.
#[derive(Clone, Debug, PartialEq)]
pub struct Explanation {
    /// The channel the device resolves to (even when its bundle was deleted).
    pub channel: Option<String>,
    /// How it got there; `None` without a channel.
    pub source: Option<ChannelSource>,
    /// Why that channel (or none), for people.
    pub channel_reason: String,
    /// What the checks ran against: a bundle name or `builtin` (the
    /// rollout's bundle when the device is selected for it).
    pub target: Option<String>,
    /// Every rule of [`Rule::ALL`], in order.
    pub steps: Vec<Step>,
    /// Exactly what `/updates` answers the device now.
    pub answer: UpdateAnswer,
    /// What would change a refusal (empty when a bundle is offered).
    pub remedies: Vec<Remedy>,
}

impl Explanation {
    /// The rule that refused, if one did.
    pub fn blocking_rule(&self) -> Option<Rule> {
        self.steps
            .iter()
            .find(|step| matches!(step.outcome, StepOutcome::Refused(_)))
            .map(|step| step.rule)
    }
}

/// [`super::answer_update`]'s answer for `req`, with every rule it applied.
pub fn explain_update(req: &UpdateRequest, release: &ReleaseConfig, base_url: &str) -> Explanation {
    let mut trace = Trace::default();
    let answer = decide(req, release, base_url, &mut trace);
    // `Rule` is declared in the order `decide` applies the rules: a check
    // moved there without moving its rule here is caught by every test.
    debug_assert!(
        trace.verdicts.windows(2).all(|pair| pair[0].0 < pair[1].0),
        "rules reported out of their declared order: {:?}",
        trace.verdicts
    );
    let last = trace.verdicts.last().map(|(rule, _)| *rule);
    // Rules after the deciding one were not reached; after an offer, the
    // remaining rules did not apply to its target.
    let refused = answer.outcome.kind().is_some();
    let channel = trace.on.map(|on| on.channel);
    let facts = Facts {
        req,
        release,
        resolved: trace.resolved,
    };
    let steps = Rule::ALL
        .iter()
        .map(|&rule| {
            let verdict = trace.verdicts.iter().find(|(r, _)| *r == rule);
            let (outcome, detail) = match verdict {
                Some((_, None)) => (StepOutcome::Ok, facts.passed(rule)),
                Some((_, Some(why))) => (StepOutcome::Refused(*why), message(&answer.body)),
                None if !refused || last.is_some_and(|last| rule < last) => {
                    (StepOutcome::Skipped, facts.skipped(rule))
                }
                None => (
                    StepOutcome::NotReached,
                    "not reached: an earlier rule decided".to_string(),
                ),
            };
            Step {
                rule,
                outcome,
                detail,
            }
        })
        .collect();
    let remedies = match answer.outcome {
        super::UpdateOutcome::Refused(why) => facts.remedies(why, channel),
        _ => Vec::new(),
    };
    Explanation {
        channel: channel.map(|c| c.name.clone()),
        source: trace.on.map(|on| on.source),
        channel_reason: facts.channel_reason(trace.on),
        target: trace.resolved.map(|r| r.target.name().to_string()),
        steps,
        answer,
        remedies,
    }
}

fn message(body: &Value) -> String {
    body.get("message")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// What the device record lacks to be decided on.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the device has not reported {}", .missing.join(", "))]
pub struct MissingDeviceFacts {
    /// The fields, as the plugin names them.
    pub missing: Vec<&'static str>,
}

/// The update check a registered device makes, from what it last reported:
/// platform, versions, plugin version, build and device kind, stored
/// `defaultChannel` and key id. Unparsable values count as missing.
pub fn request_from_device(device: &Device) -> Result<UpdateRequest<'static>, MissingDeviceFacts> {
    let text = |value: &Option<String>| value.clone().filter(|v| !v.trim().is_empty());
    let owned = |value: &Option<String>| text(value).map(Cow::Owned);
    let platform = Platform::parse(&device.platform);
    let version_build = device
        .version_build
        .as_deref()
        .and_then(version::normalize_version_build);
    let plugin_version = device
        .plugin_version
        .as_deref()
        .and_then(version::parse_semver_lenient);
    let version_name = text(&device.version_name);
    match (platform, version_build, plugin_version, version_name) {
        (Some(platform), Some(version_build), Some(plugin_version), Some(version_name)) => {
            Ok(UpdateRequest {
                platform,
                device_id: device.device_id.to_ascii_lowercase().into(),
                app_id: device.app_id.clone().into(),
                custom_id: device.custom_id.clone().unwrap_or_default().into(),
                version_name: if version_name == BUILTIN {
                    version_build.to_string().into()
                } else {
                    version_name.into()
                },
                version_build,
                version_code: device.version_code.clone().map(Cow::Owned),
                version_os: device.version_os.clone().map(Cow::Owned),
                plugin_version,
                is_emulator: device.is_emulator,
                is_prod: device.is_prod,
                install_source: owned(&device.install_source),
                default_channel: owned(&device.default_channel),
                key_id: owned(&device.key_id),
            })
        }
        (platform, version_build, plugin_version, version_name) => {
            let missing = [
                ("platform", platform.is_none()),
                ("version_build", version_build.is_none()),
                ("plugin_version", plugin_version.is_none()),
                ("version_name", version_name.is_none()),
            ]
            .into_iter()
            .filter_map(|(field, absent)| absent.then_some(field))
            .collect();
            Err(MissingDeviceFacts { missing })
        }
    }
}

/// What the descriptions are made from.
struct Facts<'r, 'a> {
    req: &'r UpdateRequest<'r>,
    release: &'a ReleaseConfig,
    resolved: Option<ResolvedChannel<'a>>,
}

impl Facts<'_, '_> {
    fn app(&self) -> &str {
        &self.req.app_id
    }

    fn device(&self) -> &str {
        &self.req.device_id
    }

    fn platform(&self) -> &'static str {
        self.req.platform.as_str()
    }

    /// Why the device is on its channel, or on none.
    fn channel_reason(&self, on: Option<DeviceChannel<'_>>) -> String {
        let platform = self.platform();
        let ignored_override = self
            .release
            .overrides
            .get(self.device())
            .and_then(|o| self.release.channel_by_id(o.channel_id))
            .map(|c| {
                format!(
                    " (its override to \"{}\" is ignored: that channel's bundle was deleted)",
                    c.name
                )
            })
            .unwrap_or_default();
        let default_channel = self
            .req
            .default_channel
            .as_deref()
            .filter(|d| !d.is_empty());
        let unusable_default = default_channel
            .map(|name| {
                format!(
                    "; its defaultChannel \"{name}\" is not used: {}",
                    self.why_unusable(name)
                )
            })
            .unwrap_or_default();
        match on {
            Some(DeviceChannel { channel, source: ChannelSource::Override }) => {
                let by = self
                    .release
                    .overrides
                    .get(self.device())
                    .map(|o| o.source.as_str())
                    .unwrap_or("admin");
                format!("device override (set by {by}) to channel \"{}\"", channel.name)
            }
            Some(DeviceChannel { channel, source: ChannelSource::DefaultChannel }) => format!(
                "the device's defaultChannel \"{}\", a channel it may choose ({}, serves {platform}){ignored_override}",
                channel.name,
                if channel.public { "public" } else { "self-assignable" },
            ),
            Some(DeviceChannel { channel, source: ChannelSource::Public }) => format!(
                "the public channel for {platform}, \"{}\"{unusable_default}{ignored_override}",
                channel.name
            ),
            None => format!(
                "no channel: no override, no usable defaultChannel and no public channel serving {platform}{unusable_default}{ignored_override}"
            ),
        }
    }

    /// Why the device may not use the channel it names in `defaultChannel`.
    fn why_unusable(&self, name: &str) -> String {
        let platform = self.req.platform;
        let named: Vec<&Channel> = self
            .release
            .channels
            .iter()
            .filter(|c| c.name == name)
            .collect();
        match named.first() {
            None => "no such channel".to_string(),
            Some(_) if named.iter().any(|c| usable_by_name(c, platform)) => {
                "its bundle was deleted".to_string()
            }
            Some(c) if !c.allows_platform(platform) => {
                format!("it does not serve {}", platform.as_str())
            }
            Some(_) => "it is private and does not allow self-assignment".to_string(),
        }
    }

    fn channel(&self) -> Option<&Channel> {
        self.resolved.map(|r| r.channel)
    }

    fn target(&self) -> String {
        self.resolved
            .map(|r| r.target.name().to_string())
            .unwrap_or_default()
    }

    /// What a rule that let the device through looked at.
    fn passed(&self, rule: Rule) -> String {
        let req = self.req;
        let target = self.target();
        let channel_name = self.channel().map(|c| c.name.as_str()).unwrap_or_default();
        match rule {
            Rule::App => format!("app {} exists", self.app()),
            Rule::PluginVersion => format!("plugin {} is supported", req.plugin_version),
            Rule::Channel => format!("channel \"{channel_name}\" serves {}", self.stable()),
            Rule::Rollout => self.rollout(),
            Rule::BundleFiles => match self.resolved.map(|r| r.target) {
                Some(Target::Bundle(b)) if !b.manifest.is_empty() => {
                    format!(
                        "bundle {target} has a manifest of {} files",
                        b.manifest.len()
                    )
                }
                _ => format!("bundle {target} has a zip"),
            },
            Rule::KeyId => {
                let bundle_key = match self.resolved.map(|r| r.target) {
                    Some(Target::Bundle(b)) => b.key_id.clone().filter(|k| !k.is_empty()),
                    _ => None,
                };
                match (req.key_id.as_deref(), bundle_key) {
                    (None, _) => "the device sends no key id".to_string(),
                    (Some(_), None) => format!("bundle {target} names no key id"),
                    (Some(device), Some(bundle)) if device == bundle => {
                        format!("the device's key id {device} is the bundle's")
                    }
                    (Some(_), Some(_)) => format!(
                        "plugin {} does not send full key ids, so they are not compared",
                        req.plugin_version
                    ),
                }
            }
            Rule::NewVersion => {
                format!(
                    "the device runs {}, the channel offers {target}",
                    req.version_name
                )
            }
            Rule::Encryption => match req.key_id {
                None => "the device has no encryption key".to_string(),
                Some(_) if target == BUILTIN => {
                    "the builtin bundle needs no encryption".to_string()
                }
                Some(_) => format!("bundle {target} is encrypted"),
            },
            Rule::Platform => format!("channel \"{channel_name}\" serves {}", self.platform()),
            Rule::MajorPolicy | Rule::VersionPolicy => {
                let policy = self
                    .channel()
                    .map(|c| c.disable_auto_update)
                    .unwrap_or(AutoUpdatePolicy::None);
                format!(
                    "disable_auto_update is {}; bundle {target} against native {}",
                    policy.as_str(),
                    req.version_build
                )
            }
            Rule::PrivateChannel => match self.channel() {
                Some(c) if c.public => format!("channel \"{}\" is public", c.name),
                Some(c) if c.allow_device_self_set => {
                    format!("channel \"{}\" allows self-assignment", c.name)
                }
                _ => "the device reaches this private channel through its override".to_string(),
            },
            Rule::UnderNative => match self.channel() {
                Some(c) if c.disable_auto_update_under_native => {
                    format!("bundle {target} is not below native {}", req.version_build)
                }
                _ => "the channel allows bundles below the native version".to_string(),
            },
            Rule::BuildKind => format!(
                "the channel serves {} builds on {}",
                if req.is_prod {
                    "production"
                } else {
                    "development"
                },
                if req.is_emulator {
                    "emulators"
                } else {
                    "physical devices"
                }
            ),
            Rule::Targeting => match self.channel() {
                Some(c) if c.targeting.is_everyone() => {
                    "the channel targets every device".to_string()
                }
                _ => "the device matches the channel's targeting".to_string(),
            },
            Rule::BuiltinRevert => format!(
                "plugin {} can revert to builtin; the device runs {}",
                req.plugin_version, req.version_name
            ),
            Rule::BundleUrl => format!("bundle {target} has a download URL"),
        }
    }

    /// The channel's own (stable) target.
    fn stable(&self) -> String {
        self.channel()
            .and_then(|c| super::channel_target(self.release, c))
            .map(|t| t.name().to_string())
            .unwrap_or_default()
    }

    fn rollout(&self) -> String {
        let Some(channel) = self.channel() else {
            return String::new();
        };
        let Some(rollout) = &channel.rollout else {
            return format!("no rollout on channel \"{}\"", channel.name);
        };
        let name = self
            .release
            .bundle(rollout.bundle_id)
            .map(|b| b.name.clone())
            .unwrap_or_else(|| format!("#{}", rollout.bundle_id));
        let percent = f64::from(rollout.percentage_bps) / 100.0;
        let paused = if rollout.paused_at.is_some() {
            ", paused"
        } else {
            ""
        };
        if self.target() != self.stable() {
            format!("the device is in the rollout of {name} ({percent}%{paused})")
        } else {
            format!(
                "the device is not in the rollout of {name} ({percent}%{paused}): it gets the stable {}",
                self.stable()
            )
        }
    }

    /// Why a rule before the deciding one did not apply.
    fn skipped(&self, rule: Rule) -> String {
        let target = self.target();
        match rule {
            Rule::BuiltinRevert => format!("applies to builtin reverts only, not bundle {target}"),
            _ if target == BUILTIN => "does not apply to the builtin bundle".to_string(),
            Rule::MajorPolicy | Rule::VersionPolicy | Rule::UnderNative => {
                format!(
                    "bundle name {target} is not a semantic version: version policies do not apply"
                )
            }
            _ => "does not apply".to_string(),
        }
    }

    /// What would change a refusal.
    fn remedies(&self, why: Refusal, on: Option<&Channel>) -> Vec<Remedy> {
        let (app, device) = (self.app(), self.device());
        let channel = on.map(|c| c.name.as_str()).unwrap_or("CHANNEL");
        let set = |flags: &str| format!("updraft channel set {channel} {app} {flags}");
        let assign = |to: &str| format!("updraft device set {device} {app} --channel {to}");
        let other_bundle = || {
            Remedy::run(
                format!("serve another bundle on \"{channel}\""),
                set("--bundle VERSION"),
            )
        };
        let upload = |extra: &str| {
            Remedy::run(
                format!("upload a new bundle to \"{channel}\""),
                format!("updraft bundle upload {app} --bundle VERSION --path DIST --channel {channel}{extra}"),
            )
        };
        match why {
            Refusal::AppNotFound => vec![Remedy::run(
                "register the app",
                format!("updraft app add {app}"),
            )],
            Refusal::UnsupportedPluginVersion => vec![Remedy::advice(
                "upgrade @capgo/capacitor-updater in the app to 5.10.0 or later",
            )],
            Refusal::NoChannel => {
                let platform = self.req.platform.as_str();
                let channels = &self.release.channels;
                let allows = |c: &&Channel| c.allows_platform(self.req.platform);
                let mut remedies = Vec::new();
                if let Some(c) = channels.iter().find(|c| c.public && !allows(c)) {
                    remedies.push(Remedy::run(
                        format!("serve {platform} on the public channel \"{}\"", c.name),
                        format!("updraft channel set {} {app} --{platform}", c.name),
                    ));
                }
                if let Some(c) = channels.iter().filter(allows).find(|c| !c.public) {
                    remedies.push(Remedy::run(
                        format!("make \"{}\" the public channel", c.name),
                        format!("updraft channel set {} {app} --state default", c.name),
                    ));
                    remedies.push(Remedy::run(
                        format!("assign the device to \"{}\"", c.name),
                        assign(&c.name),
                    ));
                }
                if remedies.is_empty() {
                    remedies.push(Remedy::run(
                        format!("create a public channel (it serves {platform})"),
                        format!("updraft channel add production {app} --default"),
                    ));
                }
                remedies
            }
            Refusal::BundleDeleted => vec![other_bundle()],
            Refusal::NoBundle | Refusal::NoBundleUrl => vec![upload(""), other_bundle()],
            Refusal::KeyIdMismatch => vec![
                Remedy::advice(
                    "encrypt the bundle with the key whose public half the app ships, or ship the app with the bundle's key",
                ),
                upload(" --key-v2 .capgo_key_v2"),
            ],
            Refusal::EncryptionRequired => vec![upload(" --key-v2 .capgo_key_v2")],
            Refusal::NoNewVersionAvailable | Refusal::AlreadyOnBuiltin => vec![upload("")],
            Refusal::DisabledPlatformIos => vec![Remedy::run("serve iOS devices", set("--ios"))],
            Refusal::DisabledPlatformAndroid => {
                vec![Remedy::run("serve Android devices", set("--android"))]
            }
            Refusal::DisabledPlatformElectron => {
                vec![Remedy::run("serve Electron devices", set("--electron"))]
            }
            Refusal::DisableAutoUpdateToMajor
            | Refusal::DisableAutoUpdateToMinor
            | Refusal::DisableAutoUpdateToPatch
            | Refusal::DisableAutoUpdateToMetadata => vec![
                Remedy::run(
                    "lower the channel's auto-update policy",
                    set("--disable-auto-update none"),
                ),
                Remedy::advice("or ship a native build whose version the bundle may update"),
            ],
            Refusal::MisconfiguredChannel => vec![
                upload(" --min-update-version NATIVE_VERSION"),
                Remedy::run(
                    "lower the channel's auto-update policy",
                    set("--disable-auto-update none"),
                ),
            ],
            Refusal::DisableAutoUpdateUnderNative => {
                vec![Remedy::run("allow bundles below the native version", set("--downgrade"))]
            }
            Refusal::CannotUpdateViaPrivateChannel => vec![
                Remedy::run(format!("assign the device to \"{channel}\""), assign(channel)),
                Remedy::run("let devices assign themselves", set("--self-assign")),
            ],
            Refusal::DisableProdBuild => vec![Remedy::run("serve production builds", set("--prod"))],
            Refusal::DisableDevBuild => vec![Remedy::run("serve development builds", set("--dev"))],
            Refusal::DisableDevice => vec![Remedy::run("serve physical devices", set("--device"))],
            Refusal::DisableEmulator => vec![Remedy::run("serve emulators", set("--emulator"))],
            Refusal::DeviceNotTargeted => vec![
                Remedy::run("serve every device", set("--clear-targeting")),
                Remedy::advice(format!(
                    "or widen the targeting (updraft channel show {channel} {app} lists it)"
                )),
            ],
            Refusal::RevertToBuiltinPluginVersionTooOld => vec![
                Remedy::advice("upgrade @capgo/capacitor-updater in the app to 6.2.0 or later"),
                other_bundle(),
            ],
        }
    }
}
