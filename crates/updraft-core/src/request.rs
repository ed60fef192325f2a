//! Device request bodies, validated and normalised into typed values
//! (reference-server-behaviour.md §1.1, §2.1, §3.1, §3.5).

mod channel_self;
pub(crate) mod fields;
pub(crate) mod prelude;
mod update;

pub use crate::version::{normalize_version_build, parse_semver_lenient};
pub use channel_self::{parse_channel_list_query, parse_channel_self_request, query_to_body};
pub use update::parse_update_request;

use crate::error::{DeviceError, DeviceErrorCode};
use crate::model::Platform;
use serde_json::Value;

/// A validated `POST /updates` (and `/updates/manifest_size`) body.
#[derive(Clone, Debug, PartialEq)]
pub struct UpdateRequest {
    pub platform: Platform,
    /// Lower-cased UUID.
    pub device_id: String,
    pub app_id: String,
    /// Trimmed; empty when not sent.
    pub custom_id: String,
    /// Normalised native version (`1.2` → `1.2.0`, `builtin` → `0.0.0`).
    pub version_build: semver::Version,
    pub version_code: Option<String>,
    pub version_os: Option<String>,
    /// The running bundle; `builtin` replaced by the normalised `version_build`.
    pub version_name: String,
    pub plugin_version: semver::Version,
    pub is_emulator: bool,
    pub is_prod: bool,
    pub install_source: Option<String>,
    /// `None` when absent or empty: use the platform's public channel.
    pub default_channel: Option<String>,
    pub key_id: Option<String>,
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

/// A validated `POST`/`PUT`/`DELETE /channel_self` request.
#[derive(Clone, Debug, PartialEq)]
pub struct ChannelSelfRequest {
    pub platform: Platform,
    /// Lower-cased.
    pub device_id: String,
    pub app_id: String,
    pub custom_id: String,
    pub version_build: Option<semver::Version>,
    pub version_name: String,
    /// `None` when absent; an unparsable one is kept as text in `plugin_version_raw`.
    pub plugin_version: Option<semver::Version>,
    pub plugin_version_raw: Option<String>,
    pub is_emulator: bool,
    pub is_prod: bool,
    pub default_channel: Option<String>,
    /// POST only; `None` when absent or empty.
    pub channel: Option<String>,
    pub key_id: Option<String>,
    pub install_source: Option<String>,
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
    serde_json::from_slice(bytes).map_err(|_| {
        DeviceError::bad_request(DeviceErrorCode::InvalidJsonParseBody, "Invalid JSON body")
            .with("e", Value::Object(Default::default()))
    })
}
