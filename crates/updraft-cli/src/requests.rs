//! The management-API requests the command line builds: from parsed
//! arguments ([`crate::args`]) to the typed bodies of `updraft_api`. Only
//! what was given is sent; the server leaves the rest as it is.

use crate::args::{
    AutoPauseActionArg, BundleUploadArgs, ChannelSetArgs, ChannelState, PlatformArg,
    RolloutTargetingFlags, RunAt, ScheduleAddArgs, TargetingFlags,
};
use crate::error::{CliError, LocalCode};
use updraft_api::{
    AutoPauseSettings, ChannelSettings, ChannelView, CreateBundle, CreateSchedule, RampSettings,
    RollbackRequest, RunAtInput, TargetingSpec, TargetingView,
};
use updraft_core::model::AutoUpdatePolicy;

/// The empty object of a POST that takes no fields (`/gc`, `/webhooks/{id}/test`).
#[derive(serde::Serialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct NoBody {}

/// A release change the server may refuse as an encryption downgrade,
/// sent again accepted once the user agrees.
pub trait AcceptUnencrypted {
    fn accept_unencrypted(&mut self);
}

impl AcceptUnencrypted for ChannelSettings {
    fn accept_unencrypted(&mut self) {
        self.accept_unencrypted = Some(true);
    }
}

impl AcceptUnencrypted for RollbackRequest {
    fn accept_unencrypted(&mut self) {
        self.accept_unencrypted = Some(true);
    }
}

/// `true` when set, else absent: the API's default for every flag below.
fn given(flag: bool) -> Option<bool> {
    flag.then_some(true)
}

impl BundleUploadArgs {
    /// The rollout percentage asked for, in basis points.
    pub fn rollout_bps(&self) -> Option<u32> {
        self.rollout.or(self.rollout_percentage_bps)
    }

    /// A new bundle's version and channel fields (rollout, compatibility
    /// override, channel creation): what every way of uploading sends.
    pub fn new_bundle(&self) -> CreateBundle {
        CreateBundle {
            // Filled from ./package.json before any request when not given.
            version: self.bundle.clone().unwrap_or_default(),
            external_url: None,
            zip_sha256: None,
            manifest: None,
            checksum: None,
            session_key: None,
            key_id: None,
            encrypted_checksum: None,
            min_update_version: self.min_update_version.clone(),
            link: self.link.clone(),
            comment: self.comment.clone(),
            channel: self.channel.clone(),
            create_channel: given(self.create_channel),
            native_packages: None,
            rollout_percentage_bps: self.rollout_bps().map(i64::from),
            accept_incompatible: given(self.accept_incompatible),
        }
    }

    /// The body of `POST /apps/{app_id}/bundles` for a zip hosted elsewhere
    /// (`--external`); only given options are sent.
    pub fn request_body(&self) -> Result<CreateBundle, CliError> {
        let external_url = self
            .external
            .as_deref()
            .ok_or_else(|| CliError::invalid_argument("--external URL is required"))?;
        let session_key = self.session_key.as_ref().or(self.iv_session_key.as_ref());
        let checksum = match (&self.checksum, session_key, &self.encrypted_checksum) {
            (Some(checksum), _, _) => Some(checksum.clone()),
            // The Capgo CLI's encrypted registration: devices verify the
            // RSA-encrypted checksum, so the plain one is not needed.
            (None, Some(_), Some(_)) => None,
            (None, None, Some(_)) => {
                return Err(CliError::invalid_argument(
                    "--encrypted-checksum without --checksum needs --iv-session-key (or \
                     --session-key): only an encrypted bundle may leave out the plain checksum",
                ))
            }
            (None, _, None) => return Err(CliError::invalid_argument(
                "--checksum HEX is required for an unencrypted external bundle: devices verify \
                     the SHA-256 of the zip; an encrypted one gives --iv-session-key and \
                     --encrypted-checksum instead",
            )),
        };
        Ok(CreateBundle {
            external_url: Some(external_url.to_string()),
            checksum,
            session_key: session_key.cloned(),
            key_id: self.key_id.clone(),
            encrypted_checksum: self.encrypted_checksum.clone(),
            ..self.new_bundle()
        })
    }
}

impl RunAt {
    /// The `run_at` of the request: epoch milliseconds, or the RFC 3339 text.
    pub fn to_input(&self, now: i64) -> RunAtInput {
        match self {
            RunAt::In(ms) => RunAtInput::Millis(now.saturating_add(*ms)),
            RunAt::At(ms) => RunAtInput::Millis(*ms),
            RunAt::Text(text) => RunAtInput::Text(text.clone()),
        }
    }
}

impl ScheduleAddArgs {
    /// The body of `POST /apps/{app_id}/schedules`.
    pub fn request_body(&self, now: i64) -> CreateSchedule {
        CreateSchedule {
            channel: self.channel.clone(),
            run_at: self.at.to_input(now),
            bundle: self.bundle.clone(),
            rollout_percentage_bps: self.rollout.or(self.rollout_percentage_bps).map(i64::from),
            accept_incompatible: given(self.accept_incompatible),
        }
    }
}

/// The body of `POST /apps/{app_id}/channels/{name}/rollback`.
pub fn rollback_request(to: Option<&str>) -> RollbackRequest {
    RollbackRequest {
        to: to.map(str::to_string),
        accept_unencrypted: None,
    }
}

/// A list criterion: given when not empty.
fn list(values: Vec<String>) -> Option<Vec<String>> {
    (!values.is_empty()).then_some(values)
}

fn platforms(list: &[PlatformArg]) -> Vec<String> {
    list.iter().map(|p| p.as_str().to_string()).collect()
}

fn lower(list: &[String]) -> Vec<String> {
    list.iter().map(|v| v.trim().to_lowercase()).collect()
}

/// The targeting to send: `{}` when cleared, else `current` (the channel's
/// targeting, if any) with the given criteria replaced; nothing when no
/// criterion is given.
fn targeting(
    clear: bool,
    given: TargetingSpec,
    current: Option<&TargetingView>,
) -> Option<TargetingSpec> {
    if clear {
        return Some(TargetingSpec::default());
    }
    if given == TargetingSpec::default() {
        return None;
    }
    let current: TargetingSpec = current.cloned().map(Into::into).unwrap_or_default();
    Some(TargetingSpec {
        platforms: given.platforms.or(current.platforms),
        os_version: given.os_version.or(current.os_version),
        native_version: given.native_version.or(current.native_version),
        plugin_version: given.plugin_version.or(current.plugin_version),
        install_sources: given.install_sources.or(current.install_sources),
        custom_ids: given.custom_ids.or(current.custom_ids),
        custom_id_prefix: given.custom_id_prefix.or(current.custom_id_prefix),
        device_ids: given.device_ids.or(current.device_ids),
    })
}

/// The criteria one targeting flag group gives, borrowed from either group
/// (`--target-*` for the channel, `--rollout-target-*` for its rollout): clap
/// needs distinct field names, the API body is the same.
struct TargetingCriteria<'a> {
    platforms: &'a [PlatformArg],
    os_version: Option<&'a String>,
    native_version: Option<&'a String>,
    plugin_version: Option<&'a String>,
    install_sources: &'a [String],
    custom_ids: &'a [String],
    custom_id_prefix: Option<&'a String>,
    device_ids: &'a [String],
}

impl TargetingCriteria<'_> {
    /// The API's targeting with only the given criteria.
    fn given(&self) -> TargetingSpec {
        TargetingSpec {
            platforms: list(platforms(self.platforms)),
            os_version: self.os_version.cloned(),
            native_version: self.native_version.cloned(),
            plugin_version: self.plugin_version.cloned(),
            install_sources: list(lower(self.install_sources)),
            custom_ids: list(self.custom_ids.to_vec()),
            custom_id_prefix: self.custom_id_prefix.cloned(),
            device_ids: list(lower(self.device_ids)),
        }
    }
}

impl TargetingFlags {
    fn given(&self) -> TargetingSpec {
        TargetingCriteria {
            platforms: &self.target_platform,
            os_version: self.target_os_version.as_ref(),
            native_version: self.target_native_version.as_ref(),
            plugin_version: self.target_plugin_version.as_ref(),
            install_sources: &self.target_install_source,
            custom_ids: &self.target_custom_id,
            custom_id_prefix: self.target_custom_id_prefix.as_ref(),
            device_ids: &self.target_device,
        }
        .given()
    }
}

impl RolloutTargetingFlags {
    fn given(&self) -> TargetingSpec {
        TargetingCriteria {
            platforms: &self.rollout_target_platform,
            os_version: self.rollout_target_os_version.as_ref(),
            native_version: self.rollout_target_native_version.as_ref(),
            plugin_version: self.rollout_target_plugin_version.as_ref(),
            install_sources: &self.rollout_target_install_source,
            custom_ids: &self.rollout_target_custom_id,
            custom_id_prefix: self.rollout_target_custom_id_prefix.as_ref(),
            device_ids: &self.rollout_target_device,
        }
        .given()
    }
}

/// `Some(true)` for `--x`, `Some(false)` for `--no-x`, `None` when neither was given.
fn flag_pair(on: bool, off: bool) -> Option<bool> {
    match (on, off) {
        (true, _) => Some(true),
        (false, true) => Some(false),
        (false, false) => None,
    }
}

/// What a channel's targeting change merges into: its own criteria and its
/// rollout's, as the API shows them.
#[derive(serde::Deserialize, Clone, Debug, Default, PartialEq)]
pub struct CurrentTargeting {
    #[serde(default)]
    pub targeting: Option<TargetingView>,
    #[serde(default)]
    pub rollout: Option<CurrentRollout>,
}

#[derive(serde::Deserialize, Clone, Debug, Default, PartialEq)]
pub struct CurrentRollout {
    #[serde(default)]
    pub targeting: Option<TargetingView>,
}

impl From<&ChannelView> for CurrentTargeting {
    fn from(channel: &ChannelView) -> Self {
        CurrentTargeting {
            targeting: Some(channel.targeting.clone()),
            rollout: channel.rollout.as_ref().map(|rollout| CurrentRollout {
                targeting: Some(rollout.targeting.clone()),
            }),
        }
    }
}

impl ChannelSetArgs {
    /// The body of `PATCH /apps/{app_id}/channels/{name}`: only the settings
    /// given on the command line. An empty change is an error.
    pub fn patch_body(&self) -> Result<ChannelSettings, CliError> {
        self.patch_body_with(None)
    }

    /// Whether targeting criteria are given that must be merged into the channel's
    /// current ones (fetch the channel and call [`Self::patch_body_with`]).
    pub fn merges_targeting(&self) -> bool {
        self.targeting.given() != TargetingSpec::default()
            || self.rollout_targeting.given() != TargetingSpec::default()
    }

    /// As [`Self::patch_body`], with given targeting criteria merged into those of
    /// `current` (the channel as the API shows it): a criterion given replaces the
    /// channel's, the others stay.
    pub fn patch_body_with(
        &self,
        current: Option<&CurrentTargeting>,
    ) -> Result<ChannelSettings, CliError> {
        // `--downgrade` allows going under the native version: the stored flag is the opposite.
        let downgrade_blocked =
            flag_pair(self.downgrade, self.no_downgrade).map(|allowed| !allowed);
        let mut body = ChannelSettings {
            bundle: self.bundle.clone(),
            public: self.state.map(|state| state == ChannelState::Default),
            ios: flag_pair(self.ios, self.no_ios),
            android: flag_pair(self.android, self.no_android),
            electron: flag_pair(self.electron, self.no_electron),
            allow_device_self_set: flag_pair(self.self_assign, self.no_self_assign),
            allow_emulator: flag_pair(self.emulator, self.no_emulator),
            allow_device: flag_pair(self.device, self.no_device),
            allow_dev: flag_pair(self.dev, self.no_dev),
            allow_prod: flag_pair(self.prod, self.no_prod),
            disable_auto_update: self
                .disable_auto_update
                .map(|policy| AutoUpdatePolicy::from(policy).as_str().to_string()),
            disable_auto_update_under_native: downgrade_blocked,
            ..ChannelSettings::default()
        };
        self.set_release_fields(&mut body, current);
        if body == ChannelSettings::default() {
            return Err(CliError::new(
                LocalCode::NothingToSet,
                "channel set needs at least one setting, e.g. --bundle 1.2.3, --state default or --no-ios",
            ));
        }
        Ok(body)
    }

    fn set_release_fields(&self, body: &mut ChannelSettings, current: Option<&CurrentTargeting>) {
        let rollout = &self.rollout;
        body.rollout_bundle = rollout.rollout_bundle.clone();
        body.rollout_percentage_bps = rollout
            .rollout_percentage
            .or(rollout.rollout_percentage_bps)
            .map(i64::from);
        body.rollout_action = [
            (rollout.rollout_pause, "pause"),
            (rollout.rollout_resume, "resume"),
            (rollout.rollout_promote, "promote"),
            (rollout.rollout_rollback, "rollback"),
        ]
        .into_iter()
        .find_map(|(given, action)| given.then(|| action.to_string()));

        let pause = &self.auto_pause;
        let auto_pause = AutoPauseSettings {
            enabled: flag_pair(pause.auto_pause_enabled, pause.auto_pause_disabled),
            window_minutes: pause.auto_pause_window_minutes,
            failure_rate_bps: pause.auto_pause_failure_rate_bps,
            confidence: pause.auto_pause_confidence,
            min_attempts: pause.auto_pause_min_attempts,
            min_failures: pause.auto_pause_min_failures,
            action: pause
                .auto_pause_action
                .map(|action| AutoPauseActionArg::as_str(action).to_string()),
            cooldown_minutes: pause.auto_pause_cooldown_minutes,
        };
        body.auto_pause = (auto_pause != AutoPauseSettings::default()).then_some(auto_pause);

        let ramp_flags = &self.ramp;
        let ramp = RampSettings {
            enabled: flag_pair(ramp_flags.ramp_enabled, ramp_flags.ramp_disabled),
            steps_bps: ramp_flags.ramp_steps.as_ref().map(|steps| steps.0.clone()),
            min_dwell_minutes: ramp_flags.ramp_dwell_minutes,
            min_attempts: ramp_flags.ramp_min_attempts,
            promote_at_end: flag_pair(ramp_flags.ramp_promote, ramp_flags.no_ramp_promote),
        };
        body.ramp = (ramp != RampSettings::default()).then_some(ramp);

        body.targeting = targeting(
            self.targeting.clear_targeting,
            self.targeting.given(),
            current.and_then(|c| c.targeting.as_ref()),
        );
        body.rollout_targeting = targeting(
            self.rollout_targeting.clear_rollout_targeting,
            self.rollout_targeting.given(),
            current
                .and_then(|c| c.rollout.as_ref())
                .and_then(|r| r.targeting.as_ref()),
        );
        // Only meaningful next to a change; alone it is "nothing to set".
        if self.rollout.accept_incompatible && *body != ChannelSettings::default() {
            body.accept_incompatible = Some(true);
        }
    }
}
