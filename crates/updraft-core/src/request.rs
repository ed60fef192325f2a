//! Device request bodies, validated and normalised into typed values
//! (reference-server-behaviour.md §1.1, §2.1, §3.1, §3.5).

mod body;
mod channel_self;
#[cfg(test)]
mod differential;
pub(crate) mod fields;
#[cfg(any(test, feature = "legacy-oracle"))]
pub mod legacy_oracle;
pub(crate) mod prelude;
mod update;

pub use crate::version::{normalize_version_build, parse_semver_lenient};
pub use channel_self::{
    parse_channel_list_query, parse_channel_self_bytes, parse_channel_self_request, query_to_body,
};
pub use update::{parse_update_bytes, parse_update_request};

use crate::error::{DeviceError, DeviceErrorCode};
use crate::model::Platform;
use serde_json::Value;
use std::borrow::Cow;

/// A validated `POST /updates` (and `/updates/manifest_size`) body. Its
/// strings are borrowed from the body when it had them verbatim (no escapes,
/// no normalisation needed): `UpdateRequest<'static>` owns them all.
#[derive(Clone, Debug, PartialEq)]
pub struct UpdateRequest<'a> {
    pub platform: Platform,
    /// Lower-cased UUID.
    pub device_id: Cow<'a, str>,
    pub app_id: Cow<'a, str>,
    /// Trimmed; empty when not sent.
    pub custom_id: Cow<'a, str>,
    /// Normalised native version (`1.2` → `1.2.0`, `builtin` → `0.0.0`).
    pub version_build: semver::Version,
    pub version_code: Option<Cow<'a, str>>,
    pub version_os: Option<Cow<'a, str>>,
    /// The running bundle; `builtin` replaced by the normalised `version_build`.
    pub version_name: Cow<'a, str>,
    pub plugin_version: semver::Version,
    pub is_emulator: bool,
    pub is_prod: bool,
    pub install_source: Option<Cow<'a, str>>,
    /// `None` when absent or empty: use the platform's public channel.
    pub default_channel: Option<Cow<'a, str>>,
    pub key_id: Option<Cow<'a, str>>,
}

/// Which `/channel_self` method a body came with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChannelSelfMethod {
    /// POST: set channel (body has `channel`).
    Set,
    /// PUT: get channel.
    Get,
    /// DELETE: unset (query string).
    Unset,
}

/// A validated `POST`/`PUT`/`DELETE /channel_self` request, its strings
/// borrowed from the body as in [`UpdateRequest`].
#[derive(Clone, Debug, PartialEq)]
pub struct ChannelSelfRequest<'a> {
    pub platform: Platform,
    /// Lower-cased.
    pub device_id: Cow<'a, str>,
    pub app_id: Cow<'a, str>,
    pub custom_id: Cow<'a, str>,
    pub version_build: Option<semver::Version>,
    pub version_name: Cow<'a, str>,
    /// `None` when absent; an unparsable one is kept as text in `plugin_version_raw`.
    pub plugin_version: Option<semver::Version>,
    pub plugin_version_raw: Option<Cow<'a, str>>,
    pub is_emulator: bool,
    pub is_prod: bool,
    pub default_channel: Option<Cow<'a, str>>,
    /// POST only; `None` when absent or empty.
    pub channel: Option<Cow<'a, str>>,
    pub key_id: Option<Cow<'a, str>>,
    pub install_source: Option<Cow<'a, str>>,
}

/// A validated `GET /channel_self?…` (list compatible channels).
#[derive(Clone, Debug, PartialEq)]
pub struct ChannelListQuery {
    pub app_id: String,
    pub platform: Platform,
    pub is_emulator: bool,
    pub is_prod: bool,
    pub device_id: Option<String>,
}

/// One accepted stats event and what it tells the device registry.
#[derive(Clone, Debug, PartialEq)]
pub struct ParsedStatsEvent {
    pub event: crate::model::StatsEvent,
    /// `version_name` is `None` when the event does not say what the device runs
    /// now (`*_fail`, `download_*`, `set_next`, `delete`, composite names).
    pub sighting: crate::model::DeviceSighting,
}

/// One parsed stats item: the event, or why it was refused.
pub type StatsItem = Result<ParsedStatsEvent, DeviceError>;

/// A `POST /stats` body: one object or an array of them, all for one app.
#[derive(Clone, Debug, PartialEq)]
pub struct StatsBatch {
    pub app_id: String,
    /// True when the body was a JSON array (answer with per-item results).
    pub is_batch: bool,
    pub items: Vec<StatsItem>,
}

/// Helper for handlers: the JSON value of a request body, or the
/// reference's `invalid_json_parse_body`.
pub fn parse_json(bytes: &[u8]) -> Result<Value, DeviceError> {
    serde_json::from_slice(bytes).map_err(|_| invalid_json_parse_body())
}

fn invalid_json_parse_body() -> DeviceError {
    DeviceError::bad_request(DeviceErrorCode::InvalidJsonParseBody, "Invalid JSON body")
        .with("e", Value::Object(Default::default()))
}
