//! `POST /stats` bodies: one event object or an array of them, all for one
//! app (reference §2, with Updraft's differences of protocol/README.md items 3
//! and 4: a well-formed event with an unknown action is accepted, and malformed
//! input gets a 4xx with a stable code, never a 500).
//!
//! Limits:
//! - at most [`MAX_EVENTS`] (1000) events per body, else 413 `too_many_events`;
//! - `action`: 1 to 64 characters from `[A-Za-z0-9_:.-]`, else `invalid_action`;
//! - `metadata`: an object of at most 30 keys, keys at most 64 characters,
//!   values strings of at most 2048 characters, else `invalid_metadata`;
//! - `timestamp` (epoch ms): a value more than 24 h after the arrival time or
//!   more than 365 days before it is replaced by the arrival time, so a device
//!   clock that is wrong cannot misplace events.

pub(crate) mod body;
#[cfg(test)]
mod legacy_oracle;

use crate::error::{DeviceError, DeviceErrorCode};
use crate::model::{DeviceSighting, Millis, Observed, ObservedAt, StatsEvent};
use crate::request::fields::{
    self, check_device_id, non_blank, non_empty, normalize_install_source, single_issue_error,
    Issues, CHANNEL_MAX_CHARS, DEVICE_ID_ISSUE, INSTALL_SOURCE_MAX_CHARS, KEY_ID_MAX_CHARS,
    PLATFORM_MAX_CHARS, PLUGIN_VERSION_MAX_CHARS, VERSION_BUILD_MAX_CHARS, VERSION_CODE_MAX_CHARS,
    VERSION_NAME_MAX_CHARS, VERSION_OS_MAX_CHARS,
};
use crate::request::prelude::{missing_device_id, resolve_builtin, version_build_of};
use crate::request::{ParsedStatsEvent, StatsBatch, StatsItem};
use body::{EventFields, Field, Metadata, RawEvent};
use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap};

pub const MAX_EVENTS: usize = 1000;
pub const MAX_ACTION_CHARS: usize = 64;
pub const MAX_METADATA_KEYS: usize = 30;
pub const MAX_METADATA_KEY_CHARS: usize = 64;
pub const MAX_METADATA_VALUE_CHARS: usize = 2048;
pub const MAX_CUSTOM_ID_CHARS: usize = 36;
/// How far ahead of the arrival time a device timestamp may be.
pub const MAX_FUTURE_SKEW_MS: Millis = 24 * 60 * 60 * 1000;
/// How old a device timestamp may be (a year: the plugin keeps a queue on disk).
pub const MAX_EVENT_AGE_MS: Millis = 365 * 24 * 60 * 60 * 1000;

const INVALID_BODY: DeviceErrorCode = DeviceErrorCode::InvalidJsonBody;

/// Actions the reference service knows (its `stats_action` enum), except the
/// `download_<n>` progress steps, which [`is_known_action`] matches by shape.
const KNOWN_ACTIONS: &[&str] = &[
    "ping",
    "delete",
    "reset",
    "set",
    "get",
    "set_fail",
    "update_fail",
    "download_fail",
    "windows_path_fail",
    "canonical_path_fail",
    "directory_path_fail",
    "unzip_fail",
    "low_mem_fail",
    "download_complete",
    "download_manifest_start",
    "download_manifest_complete",
    "download_zip_start",
    "download_zip_complete",
    "download_manifest_file_fail",
    "download_manifest_checksum_fail",
    "download_manifest_brotli_fail",
    "finish_download_fail",
    "manifest_path_fail",
    "decrypt_fail",
    "checksum_required",
    "insufficient_disk_space",
    "app_moved_to_foreground",
    "app_moved_to_background",
    "app_launch_start",
    "app_launch_ready",
    "app_launch_timeout",
    "uninstall",
    "needPlanUpgrade",
    "missingBundle",
    "noNew",
    "disablePlatformIos",
    "disablePlatformAndroid",
    "disableAutoUpdateToMajor",
    "cannotUpdateViaPrivateChannel",
    "disableAutoUpdateToMinor",
    "disableAutoUpdateToPatch",
    "channelMisconfigured",
    "disableAutoUpdateMetadata",
    "disableAutoUpdateUnderNative",
    "disableDevBuild",
    "disableProdBuild",
    "disableEmulator",
    "disableDevice",
    "cannotGetBundle",
    "checksum_fail",
    "NoChannelOrOverride",
    "setChannel",
    "getChannel",
    "rateLimited",
    "rate_limit_reached",
    "disableAutoUpdate",
    "keyMismatch",
    "InvalidIp",
    "blocked_by_server_url",
    "backend_refusal",
    "disablePlatformElectron",
    "customIdBlocked",
    "app_crash",
    "app_crash_native",
    "app_anr",
    "app_killed_low_memory",
    "app_killed_excessive_resource_usage",
    "app_initialization_failure",
    "app_memory_warning",
    "webview_javascript_error",
    "webview_unhandled_rejection",
    "webview_resource_error",
    "webview_security_policy_violation",
    "webview_unclean_restart",
    "webview_render_process_gone",
    "webview_content_process_terminated",
    "webview_dom_content_loaded",
    "webview_page_loaded",
    "set_next",
    "os_version_changed",
    "native_app_version_changed",
];

/// Is this a known plugin action (the 91 of reference §2.1 plus download_<n>)? For metrics/analytics only:
/// unknown well-formed actions are still accepted.
pub fn is_known_action(action: &str) -> bool {
    let is_progress_step = action
        .strip_prefix("download_")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    is_progress_step || KNOWN_ACTIONS.contains(&action)
}

/// Validates a raw `/stats` body in one pass over its text (no
/// `serde_json::Value` in between). Not JSON: `invalid_json_parse_body`, as
/// [`crate::request::parse_json`] answers; otherwise as [`parse_stats_body`].
pub fn parse_stats_bytes(bytes: &[u8], now: Millis) -> Result<StatsBatch, DeviceError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let reader = BodyReader {
        now,
        // Sized for the plugin's events (~350 bytes each) to spare regrowing.
        capacity_hint: (bytes.len() / 256).min(MAX_EVENTS),
    };
    let parsed = reader
        .deserialize(&mut deserializer)
        .and_then(|batch| deserializer.end().map(|()| batch));
    parsed.map_err(|_| invalid_json_parse_body())?
}

/// Validates a `/stats` body. `Err` refuses the whole body (nothing is
/// stored); otherwise each item is an accepted event or why it was refused.
pub fn parse_stats_body(body: &Value, now: Millis) -> Result<StatsBatch, DeviceError> {
    let reader = BodyReader {
        now,
        capacity_hint: body
            .as_array()
            .map_or(1, |events| events.len().min(MAX_EVENTS)),
    };
    // A `Value` is always well-formed, so the reader cannot fail on one.
    reader
        .deserialize(body)
        .map_err(|_| invalid_json_parse_body())?
}

fn invalid_json_parse_body() -> DeviceError {
    DeviceError::bad_request(DeviceErrorCode::InvalidJsonParseBody, "Invalid JSON body")
        .with("e", Value::Object(Map::new()))
}

/// Reads a whole body: an array of events, one event object, or (refused)
/// anything else. Its value is the parse result; the deserializer's own error
/// only ever means malformed JSON.
struct BodyReader {
    now: Millis,
    capacity_hint: usize,
}

impl<'de> DeserializeSeed<'de> for BodyReader {
    type Value = Result<StatsBatch, DeviceError>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl BodyReader {
    fn not_a_body<E>(self) -> Result<Result<StatsBatch, DeviceError>, E> {
        Ok(Err(DeviceError::bad_request(
            INVALID_BODY,
            fields::PARSE_BODY_MESSAGE,
        )))
    }
}

impl<'de> Visitor<'de> for BodyReader {
    type Value = Result<StatsBatch, DeviceError>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a stats event or an array of them")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut batch = BatchBuilder::new(self.now, true, self.capacity_hint);
        while batch.count < MAX_EVENTS {
            match seq.next_element::<RawEvent<'de>>()? {
                Some(event) => batch.push(&event),
                None => return Ok(batch.finish()),
            }
        }
        // Past the cap the answer is 413, but only if the rest is JSON.
        while body::skip_element(&mut seq)? {
            batch.count += 1;
        }
        Ok(batch.finish())
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        let event = RawEvent::Object(EventFields::from_map(map)?);
        let mut batch = BatchBuilder::new(self.now, false, 1);
        batch.push(&event);
        Ok(batch.finish())
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        self.not_a_body()
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        self.not_a_body()
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        self.not_a_body()
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        self.not_a_body()
    }
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        self.not_a_body()
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        self.not_a_body()
    }
    fn visit_none<E>(self) -> Result<Self::Value, E> {
        self.not_a_body()
    }
}

/// Folds events into a batch as they are read. Whole-body refusals win over
/// per-item results, in this order: too many events, the first event's
/// `app_id`, mixed app ids.
struct BatchBuilder {
    now: Millis,
    is_batch: bool,
    count: usize,
    /// The first event's app id (or why it is refused); `None` before it.
    app_id: Option<Result<String, DeviceError>>,
    mixed_app_ids: bool,
    items: Vec<StatsItem>,
}

impl BatchBuilder {
    fn new(now: Millis, is_batch: bool, capacity: usize) -> Self {
        BatchBuilder {
            now,
            is_batch,
            count: 0,
            app_id: None,
            mixed_app_ids: false,
            items: Vec::with_capacity(capacity),
        }
    }

    fn push(&mut self, event: &RawEvent) {
        self.count += 1;
        let first = self
            .app_id
            .get_or_insert_with(|| event_app_id(event).map(str::to_owned));
        // Once the body is refused, items no longer matter.
        let Ok(app_id) = first else { return };
        if self.mixed_app_ids {
            return;
        }
        if event_app_id(event).is_ok_and(|other| other != app_id) {
            self.mixed_app_ids = true;
            self.items = Vec::new();
            return;
        }
        self.items.push(parse_event(event, app_id, self.now));
    }

    fn finish(self) -> Result<StatsBatch, DeviceError> {
        let app_id = match self.app_id {
            None => {
                return Ok(StatsBatch {
                    app_id: String::new(),
                    is_batch: self.is_batch,
                    items: Vec::new(),
                })
            }
            Some(_) if self.count > MAX_EVENTS => {
                return Err(DeviceError::bad_request(
                    DeviceErrorCode::TooManyEvents,
                    format!("A stats body may hold at most {MAX_EVENTS} events"),
                )
                .with_status(413))
            }
            Some(first) => first?,
        };
        if self.mixed_app_ids {
            return Err(DeviceError::bad_request(
                DeviceErrorCode::MixedAppIds,
                "All events in a batch must have the same app_id",
            ));
        }
        Ok(StatsBatch {
            app_id,
            is_batch: self.is_batch,
            items: self.items,
        })
    }
}

/// HTTP status and JSON body for a parsed batch once every accepted item is stored
/// (single event: 200 {"status":"ok"} or the item's error with its status; array: 200
/// {"status":"ok","results":[{"status":"ok","index":0} | {"status":"error","error":code,"message":msg,"index":i}]}).
pub fn stats_response(batch: &StatsBatch) -> (u16, Value) {
    if !batch.is_batch {
        return match batch.items.first() {
            Some(Err(error)) => (error.status, error.to_json()),
            _ => (200, json!({ "status": "ok" })),
        };
    }
    let results: Vec<Value> = batch
        .items
        .iter()
        .enumerate()
        .map(|(index, item)| match item {
            Ok(_) => json!({ "status": "ok", "index": index }),
            Err(error) => json!({
                "status": "error",
                "error": error.code.as_str(),
                "message": error.message,
                "index": index,
            }),
        })
        .collect();
    (200, json!({ "status": "ok", "results": results }))
}

/// [`stats_response`] for the wire: the same status and, once serialized,
/// the same JSON text (keys in the same, sorted, order), written straight
/// from the batch instead of through a `Value` per item.
pub fn stats_answer(batch: &StatsBatch) -> (u16, StatsAnswer<'_>) {
    let status = match (batch.is_batch, batch.items.first()) {
        (false, Some(Err(error))) => error.status,
        _ => 200,
    };
    (status, StatsAnswer { batch })
}

/// The JSON answer to a parsed batch; see [`stats_answer`].
#[derive(Debug)]
pub struct StatsAnswer<'a> {
    batch: &'a StatsBatch,
}

impl Serialize for StatsAnswer<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if !self.batch.is_batch {
            return match self.batch.items.first() {
                Some(Err(error)) => error.to_json().serialize(serializer),
                _ => {
                    let mut answer = serializer.serialize_map(Some(1))?;
                    answer.serialize_entry("status", "ok")?;
                    answer.end()
                }
            };
        }
        let mut answer = serializer.serialize_map(Some(2))?;
        answer.serialize_entry("results", &ItemResults(&self.batch.items))?;
        answer.serialize_entry("status", "ok")?;
        answer.end()
    }
}

struct ItemResults<'a>(&'a [StatsItem]);

impl Serialize for ItemResults<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(
            self.0
                .iter()
                .enumerate()
                .map(|(index, item)| ItemResult { index, item }),
        )
    }
}

struct ItemResult<'a> {
    index: usize,
    item: &'a StatsItem,
}

impl Serialize for ItemResult<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.item {
            Ok(_) => {
                let mut result = serializer.serialize_map(Some(2))?;
                result.serialize_entry("index", &self.index)?;
                result.serialize_entry("status", "ok")?;
                result.end()
            }
            Err(error) => {
                let mut result = serializer.serialize_map(Some(4))?;
                result.serialize_entry("error", error.code.as_str())?;
                result.serialize_entry("index", &self.index)?;
                result.serialize_entry("message", &error.message)?;
                result.serialize_entry("status", "error")?;
                result.end()
            }
        }
    }
}

fn event_app_id<'e>(event: &'e RawEvent) -> Result<&'e str, DeviceError> {
    let RawEvent::Object(fields) = event else {
        return Err(invalid_app_id("App ID is required"));
    };
    match &fields.app_id {
        Field::Str(app_id) if crate::validate::is_valid_app_id(app_id) => Ok(app_id),
        Field::Str(app_id) if !app_id.is_empty() => {
            Err(invalid_app_id("App ID must be a reverse domain string"))
        }
        _ => Err(invalid_app_id("App ID is required")),
    }
}

fn invalid_app_id(message: &str) -> DeviceError {
    DeviceError::bad_request(DeviceErrorCode::InvalidAppId, message)
}

fn parse_event(event: &RawEvent, app_id: &str, now: Millis) -> StatsItem {
    // Later events may still lack a valid app_id (a different valid one was refused before).
    event_app_id(event)?;
    // `event_app_id` only succeeds on objects.
    let RawEvent::Object(fields) = event else {
        return Err(invalid_app_id("App ID is required"));
    };

    let device_id = match &fields.device_id {
        Field::Absent | Field::Null => return Err(missing_device_id()),
        Field::Str(id) if id.is_empty() => return Err(missing_device_id()),
        Field::Str(id) => id.to_lowercase(),
        Field::Bool(_) | Field::Number(_) | Field::Compound => {
            return Err(single_issue_error(
                INVALID_BODY,
                "device_id",
                DEVICE_ID_ISSUE,
            ))
        }
    };
    let action = action(&fields.action)?;
    let version_build = version_build_of(fields.version_build.text())?;

    let mut issues = Issues::default();
    check_device_id(&mut issues, &device_id);
    let platform = required_str(&fields.platform, "platform", &mut issues);
    issues.max_chars_opt("platform", platform, PLATFORM_MAX_CHARS);
    let version_name = required_str(&fields.version_name, "version_name", &mut issues);
    issues.max_chars_opt("version_name", version_name, VERSION_NAME_MAX_CHARS);
    let version_os = optional_str(&fields.version_os, "version_os", &mut issues);
    issues.max_chars_opt("version_os", version_os, VERSION_OS_MAX_CHARS);
    let version_build_raw = optional_str(&fields.version_build, "version_build", &mut issues);
    issues.max_chars_opt("version_build", version_build_raw, VERSION_BUILD_MAX_CHARS);
    let old_version_name = optional_str(&fields.old_version_name, "old_version_name", &mut issues);
    issues.max_chars_opt("old_version_name", old_version_name, VERSION_NAME_MAX_CHARS);
    let version_code = optional_str(&fields.version_code, "version_code", &mut issues);
    issues.max_chars_opt("version_code", version_code, VERSION_CODE_MAX_CHARS);
    let plugin_version = optional_str(&fields.plugin_version, "plugin_version", &mut issues);
    issues.max_chars_opt("plugin_version", plugin_version, PLUGIN_VERSION_MAX_CHARS);
    let default_channel = optional_str(&fields.default_channel, "defaultChannel", &mut issues);
    issues.max_chars_opt("defaultChannel", default_channel, CHANNEL_MAX_CHARS);
    let channel = optional_str(&fields.channel, "channel", &mut issues);
    issues.max_chars_opt("channel", channel, CHANNEL_MAX_CHARS);
    let is_emulator = flag(&fields.is_emulator, "is_emulator", false, &mut issues);
    let is_prod = flag(&fields.is_prod, "is_prod", true, &mut issues);
    let custom_id = optional_str(&fields.custom_id, "custom_id", &mut issues).map(str::trim);
    if let Some(custom_id) = custom_id {
        issues.max_chars("custom_id", custom_id, MAX_CUSTOM_ID_CHARS);
    }
    let install_source = optional_str(&fields.install_source, "install_source", &mut issues);
    if let Some(source) = install_source {
        issues.max_chars("install_source", source.trim(), INSTALL_SOURCE_MAX_CHARS);
    }
    let key_id = optional_str(&fields.key_id, "key_id", &mut issues);
    if let Some(key_id) = key_id {
        issues.max_chars("key_id", key_id, KEY_ID_MAX_CHARS);
    }
    let (Some(platform), Some(version_name), true) = (platform, version_name, issues.is_empty())
    else {
        return Err(issues.into_error(INVALID_BODY));
    };
    let metadata = metadata(&fields.metadata)?;
    let timestamp = event_time(&fields.timestamp, now)?;

    let version_name = resolve_builtin(version_name, version_build.as_ref());
    let version_build = version_build.map(|v| v.to_string());
    let plugin_version = non_empty(plugin_version);
    let running_version = (reports_running_version(action)
        && !version_name.is_empty()
        && !version_name.contains(':'))
    .then(|| version_name.clone());

    Ok(ParsedStatsEvent {
        event: StatsEvent {
            app_id: app_id.to_string(),
            device_id: device_id.clone(),
            action: action.to_string(),
            version_name,
            old_version_name: non_empty(old_version_name),
            platform: platform.to_string(),
            plugin_version: plugin_version.clone(),
            version_build: version_build.clone(),
            is_prod,
            is_emulator,
            metadata,
            timestamp,
            received_at: now,
        },
        sighting: DeviceSighting {
            app_id: app_id.to_string(),
            device_id,
            platform: platform.to_string(),
            plugin_version,
            version_os: non_empty(version_os),
            version_build,
            version_code: non_empty(version_code),
            version_name: running_version,
            custom_id: non_empty(custom_id),
            is_prod,
            is_emulator,
            default_channel: non_blank(default_channel),
            key_id: non_empty(key_id),
            install_source: normalize_install_source(install_source),
            last_offered_version: None,
            last_update_outcome: None,
            seen_at: now,
            observed: Observed::all(ObservedAt::stats_event(now)),
        },
    })
}

impl Field<'_> {
    /// The text of a string field; `None` for every other type.
    fn text(&self) -> Option<&str> {
        match self {
            Field::Str(text) => Some(text),
            _ => None,
        }
    }
}

/// An optional string: absent or null is `None`; another type is an issue.
fn optional_str<'f>(field: &'f Field, name: &str, issues: &mut Issues) -> Option<&'f str> {
    match field {
        Field::Absent | Field::Null => None,
        Field::Str(text) => Some(text),
        Field::Bool(_) | Field::Number(_) | Field::Compound => {
            fields::not_a_string(issues, name);
            None
        }
    }
}

/// A required string (possibly empty): absent, null or another type is an issue.
fn required_str<'f>(field: &'f Field, name: &str, issues: &mut Issues) -> Option<&'f str> {
    let text = field.text();
    if text.is_none() {
        fields::not_a_string(issues, name);
    }
    text
}

/// A boolean flag with the reference's default when absent or null.
fn flag(field: &Field, name: &str, default: bool, issues: &mut Issues) -> bool {
    match field {
        Field::Absent | Field::Null => default,
        Field::Bool(value) => *value,
        Field::Str(_) | Field::Number(_) | Field::Compound => {
            fields::not_a_boolean(issues, name);
            default
        }
    }
}

fn action<'f>(field: &'f Field) -> Result<&'f str, DeviceError> {
    match field {
        Field::Absent | Field::Null => Err(DeviceError::bad_request(
            DeviceErrorCode::MissingAction,
            "Cannot find action",
        )),
        Field::Str(action) if is_well_formed_action(action) => Ok(action),
        _ => Err(DeviceError::bad_request(
            DeviceErrorCode::InvalidAction,
            format!(
                "action must be a string of 1 to {MAX_ACTION_CHARS} characters \
                 from A-Z, a-z, 0-9, '_', ':', '.' and '-'"
            ),
        )),
    }
}

fn is_well_formed_action(action: &str) -> bool {
    !action.is_empty()
        && action.len() <= MAX_ACTION_CHARS
        && action
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b':' | b'.' | b'-'))
}

/// Places each event of a `/stats` body in the server's time for the device
/// registry (`DeviceSighting::observed`; `sightings` parallel to `events`, as
/// [`parse_stats_body`] gives them). A device's clock may be off by minutes:
/// compared raw with the server-stamped update checks, a `set` from a phone
/// running behind would lose to the check that came before it. So a device's
/// newest event in the body counts as observed when the body arrived, and
/// each other event that much earlier as its own timestamp says: the order
/// within the body comes from the device, the order against update checks
/// from arrival, and nothing is placed after its arrival. (A body the plugin
/// held back, say offline, is placed later than it happened, so it can win
/// over a check that came in between; the plugin sends each body within a
/// second of its newest event otherwise.)
pub fn anchor_observations(events: &[StatsEvent], sightings: &mut [DeviceSighting]) {
    let Some(first) = events.first() else { return };
    let one_device = events
        .iter()
        .all(|e| e.device_id == first.device_id && e.app_id == first.app_id);
    let newest: HashMap<(&str, &str), Millis> = if one_device {
        let newest = events
            .iter()
            .map(|e| e.timestamp)
            .max()
            .unwrap_or(first.timestamp);
        HashMap::from([((first.app_id.as_str(), first.device_id.as_str()), newest)])
    } else {
        let mut newest = HashMap::new();
        for e in events {
            newest
                .entry((e.app_id.as_str(), e.device_id.as_str()))
                .and_modify(|n: &mut Millis| *n = (*n).max(e.timestamp))
                .or_insert(e.timestamp);
        }
        newest
    };
    for (event, sighting) in events.iter().zip(sightings.iter_mut()) {
        if sighting.device_id != event.device_id || sighting.app_id != event.app_id {
            continue;
        }
        let newest = newest
            .get(&(event.app_id.as_str(), event.device_id.as_str()))
            .copied()
            .unwrap_or(event.timestamp);
        let lag = newest.saturating_sub(event.timestamp).max(0);
        let at = event.received_at.saturating_sub(lag);
        sighting.observed = Observed::all(ObservedAt::stats_event(at));
    }
}

/// Whether an event's `version_name` is the bundle the device runs now:
/// failures, downloads and queued or deleted bundles name another bundle.
pub fn reports_running_version(action: &str) -> bool {
    !(action.ends_with("_fail")
        || action.starts_with("download")
        || matches!(
            action,
            "set_next"
                | "delete"
                | "checksum_required"
                | "insufficient_disk_space"
                | "decrypt_fail"
        ))
}

fn metadata(value: &Metadata) -> Result<Option<BTreeMap<String, String>>, DeviceError> {
    let entries = match value {
        Metadata::Absent | Metadata::Null => return Ok(None),
        Metadata::Object(entries) => entries,
        Metadata::NotObject => return Err(invalid_metadata("metadata must be an object".into())),
    };
    if entries.len() > MAX_METADATA_KEYS {
        return Err(invalid_metadata(format!(
            "metadata may hold at most {MAX_METADATA_KEYS} keys"
        )));
    }
    let mut metadata = BTreeMap::new();
    // Sorted by key, as `serde_json::Map` iterates: the first bad entry is reported.
    for (key, value) in entries {
        let key: &str = key;
        if key.chars().count() > MAX_METADATA_KEY_CHARS {
            return Err(invalid_metadata(format!(
                "metadata keys may be at most {MAX_METADATA_KEY_CHARS} characters long"
            )));
        }
        let Some(text) = value.text() else {
            return Err(invalid_metadata(format!(
                "metadata value of {key:?} must be a string"
            )));
        };
        if text.chars().count() > MAX_METADATA_VALUE_CHARS {
            return Err(invalid_metadata(format!(
                "metadata value of {key:?} may be at most {MAX_METADATA_VALUE_CHARS} characters long"
            )));
        }
        metadata.insert(key.to_string(), text.to_string());
    }
    Ok(Some(metadata))
}

fn invalid_metadata(message: String) -> DeviceError {
    DeviceError::bad_request(DeviceErrorCode::InvalidMetadata, message)
}

/// The event's time: the device's `timestamp` (epoch ms) when plausible,
/// else the arrival time `now` (see the module doc for the window).
fn event_time(value: &Field, now: Millis) -> Result<Millis, DeviceError> {
    let millis = match value {
        Field::Absent | Field::Null => return Ok(now),
        Field::Number(millis) => *millis,
        Field::Str(_) | Field::Bool(_) | Field::Compound => {
            return Err(DeviceError::bad_request(
                DeviceErrorCode::InvalidTimestamp,
                "timestamp must be a number of milliseconds since the Unix epoch",
            ))
        }
    };
    let too_new = millis > now.saturating_add(MAX_FUTURE_SKEW_MS);
    let too_old = millis < now.saturating_sub(MAX_EVENT_AGE_MS);
    Ok(if too_new || too_old { now } else { millis })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::fields::test_bodies::{patched, removed};

    const NOW: Millis = 1_767_225_700_000;
    const DEVICE: &str = "6e2c0c9a-3f5b-4c8e-9a43-1f0f4b2d7c11";
    const HOUR: Millis = 60 * 60 * 1000;

    fn event() -> Value {
        json!({
            "platform": "ios",
            "device_id": DEVICE,
            "app_id": "com.example.app",
            "custom_id": "",
            "version_build": "1.4.0",
            "version_code": "14",
            "version_os": "17.5",
            "version_name": "1.4.3",
            "old_version_name": "1.4.2",
            "plugin_version": "8.51.14",
            "is_emulator": false,
            "is_prod": true,
            "install_source": "app_store",
            "defaultChannel": "",
            "action": "set",
            "timestamp": 1_767_225_600_000i64
        })
    }

    fn event_with(changes: Value) -> Value {
        patched(event(), changes)
    }

    fn event_without(field: &str) -> Value {
        removed(event(), field)
    }

    fn single(body: Value) -> StatsItem {
        let batch = parse_stats_body(&body, NOW).unwrap();
        assert!(!batch.is_batch);
        assert_eq!(batch.items.len(), 1);
        batch.items.into_iter().next().unwrap()
    }

    #[test]
    fn set_event_becomes_event_and_sighting() {
        let parsed = single(event()).unwrap();
        assert_eq!(
            parsed.event,
            StatsEvent {
                app_id: "com.example.app".into(),
                device_id: DEVICE.into(),
                action: "set".into(),
                version_name: "1.4.3".into(),
                old_version_name: Some("1.4.2".into()),
                platform: "ios".into(),
                plugin_version: Some("8.51.14".into()),
                version_build: Some("1.4.0".into()),
                is_prod: true,
                is_emulator: false,
                metadata: None,
                timestamp: 1_767_225_600_000,
                received_at: NOW,
            }
        );
        assert_eq!(
            parsed.sighting,
            DeviceSighting {
                app_id: "com.example.app".into(),
                device_id: DEVICE.into(),
                platform: "ios".into(),
                plugin_version: Some("8.51.14".into()),
                version_os: Some("17.5".into()),
                version_build: Some("1.4.0".into()),
                version_code: Some("14".into()),
                version_name: Some("1.4.3".into()),
                custom_id: None,
                is_prod: true,
                is_emulator: false,
                default_channel: None,
                key_id: None,
                install_source: Some("app_store".into()),
                last_offered_version: None,
                last_update_outcome: None,
                seen_at: NOW,
                observed: Observed::all(ObservedAt::stats_event(NOW)),
            }
        );
    }

    #[test]
    fn observations_are_anchored_at_arrival_in_the_devices_order() {
        // A phone ten minutes behind sends `set`, then a ping 800 ms later.
        let behind = NOW - 10 * 60 * 1000;
        let other = "7e2c0c9a-3f5b-4c8e-9a43-1f0f4b2d7c12";
        let body = json!([
            patched(event(), json!({"timestamp": behind - 800})),
            patched(event(), json!({"action": "ping", "timestamp": behind})),
            // Another device, a minute ahead, in the same body.
            patched(
                event(),
                json!({"device_id": other, "timestamp": NOW + 60_000})
            ),
        ]);
        let (events, mut sightings): (Vec<_>, Vec<_>) = parse_stats_body(&body, NOW)
            .unwrap()
            .items
            .into_iter()
            .map(|item| {
                let parsed = item.unwrap();
                (parsed.event, parsed.sighting)
            })
            .unzip();
        anchor_observations(&events, &mut sightings);
        let at: Vec<Observed> = sightings.iter().map(|s| s.observed).collect();
        assert_eq!(at[0], Observed::all(ObservedAt::stats_event(NOW - 800)));
        assert_eq!(at[1], Observed::all(ObservedAt::stats_event(NOW)));
        assert_eq!(at[2], Observed::all(ObservedAt::stats_event(NOW)));
        // The arrival stays `last_seen`; the events keep the device's time.
        assert!(sightings.iter().all(|s| s.seen_at == NOW));
        assert_eq!(events[0].timestamp, behind - 800);
        // A stats event outranks an update check of the same millisecond.
        assert!(ObservedAt::stats_event(NOW) > ObservedAt::update_check(NOW));
        assert!(ObservedAt::update_check(NOW + 1) > ObservedAt::stats_event(NOW));
        assert_eq!(ObservedAt::stats_event(NOW).millis(), NOW);
    }

    #[test]
    fn sighting_version_name_only_when_the_device_runs_it() {
        let cases = [
            ("set", "1.4.3", true),
            ("reset", "1.4.3", true),
            ("app_launch_ready", "1.4.3", true),
            ("ping", "1.4.3", true),
            ("some_future_action", "1.4.3", true),
            ("set_fail", "1.4.3", false),
            ("update_fail", "1.4.3", false),
            ("download_fail", "1.4.3", false),
            ("download_10", "1.4.3", false),
            ("download_complete", "1.4.3", false),
            ("download_zip_start", "1.4.3", false),
            ("set_next", "1.4.3", false),
            ("delete", "1.4.3", false),
            ("checksum_required", "1.4.3", false),
            ("insufficient_disk_space", "1.4.3", false),
            ("decrypt_fail", "1.4.3", false),
            ("set", "", false),
            ("app_launch_ready", "1.4.3:www/index.html", false),
        ];
        for (action, version_name, runs) in cases {
            let parsed = single(event_with(
                json!({"action": action, "version_name": version_name}),
            ))
            .unwrap();
            let expected = runs.then(|| version_name.to_string());
            assert_eq!(
                parsed.sighting.version_name, expected,
                "{action} {version_name:?}"
            );
            assert_eq!(
                parsed.event.version_name, version_name,
                "event keeps it verbatim"
            );
        }
    }

    #[test]
    fn normalisations() {
        let parsed = single(event_with(json!({
            "device_id": DEVICE.to_uppercase(),
            "version_build": "2.1",
            "version_name": "builtin",
            "old_version_name": "",
            "custom_id": "  user-1  ",
            "install_source": "  TestFlight ",
            "defaultChannel": "beta",
            "key_id": "abcd",
            "is_emulator": null,
            "is_prod": null,
            "platform": "some-new-os",
            "plugin_version": "",
            "channel": "x",
            "extra": {"ignored": true}
        })))
        .unwrap();
        assert_eq!(parsed.event.device_id, DEVICE);
        assert_eq!(parsed.event.version_build.as_deref(), Some("2.1.0"));
        assert_eq!(parsed.event.version_name, "2.1.0");
        assert_eq!(parsed.event.old_version_name, None);
        assert_eq!(parsed.event.platform, "some-new-os");
        assert_eq!(parsed.event.plugin_version, None);
        assert_eq!(parsed.sighting.version_name.as_deref(), Some("2.1.0"));
        assert_eq!(parsed.sighting.custom_id.as_deref(), Some("user-1"));
        assert_eq!(
            parsed.sighting.install_source.as_deref(),
            Some("testflight")
        );
        assert_eq!(parsed.sighting.default_channel.as_deref(), Some("beta"));
        assert_eq!(parsed.sighting.key_id.as_deref(), Some("abcd"));
        assert!(!parsed.event.is_emulator && parsed.event.is_prod);
    }

    #[test]
    fn android_worker_event_without_optional_fields_is_accepted() {
        let body = json!({"platform":"android","app_id":"com.example.app","plugin_version":"8.51.14",
            "install_source":"","version_name":"1.4.3","old_version_name":"","action":"download_zip_start",
            "device_id":DEVICE,"custom_id":"","version_build":"1.4.0","version_code":"14","version_os":"14",
            "defaultChannel":"","is_prod":true,"is_emulator":false});
        let parsed = single(body).unwrap();
        assert_eq!(parsed.event.timestamp, NOW);
        assert_eq!(parsed.event.action, "download_zip_start");
        assert_eq!(parsed.sighting.install_source, None);
        assert_eq!(parsed.sighting.version_name, None);
    }

    #[test]
    fn per_event_refusals() {
        let cases: Vec<(Value, &str, &str)> = vec![
            (event_without("device_id"), "missing_device_id", ""),
            (
                event_with(json!({"device_id": ""})),
                "missing_device_id",
                "",
            ),
            (
                event_with(json!({"device_id": 5})),
                "invalid_json_body",
                "device_id",
            ),
            (
                event_with(json!({"device_id": "abc"})),
                "invalid_json_body",
                "device_id",
            ),
            (event_without("action"), "missing_action", ""),
            (event_with(json!({"action": null})), "missing_action", ""),
            (event_with(json!({"action": ""})), "invalid_action", ""),
            (event_with(json!({"action": 3})), "invalid_action", ""),
            (event_with(json!({"action": "a b"})), "invalid_action", ""),
            (event_with(json!({"action": "é"})), "invalid_action", ""),
            (
                event_with(json!({"action": "a".repeat(65)})),
                "invalid_action",
                "",
            ),
            (
                event_with(json!({"version_build": "invalid_version"})),
                "semver_error",
                "",
            ),
            (
                event_with(json!({"version_build": 1})),
                "invalid_json_body",
                "version_build",
            ),
            (event_without("platform"), "invalid_json_body", "platform"),
            (
                event_with(json!({"platform": 1})),
                "invalid_json_body",
                "platform",
            ),
            (
                event_without("version_name"),
                "invalid_json_body",
                "version_name",
            ),
            (
                event_with(json!({"version_os": 17})),
                "invalid_json_body",
                "version_os",
            ),
            (
                event_with(json!({"old_version_name": 1})),
                "invalid_json_body",
                "old_version_name",
            ),
            (
                event_with(json!({"version_code": 14})),
                "invalid_json_body",
                "version_code",
            ),
            (
                event_with(json!({"plugin_version": 8})),
                "invalid_json_body",
                "plugin_version",
            ),
            (
                event_with(json!({"defaultChannel": false})),
                "invalid_json_body",
                "defaultChannel",
            ),
            (
                event_with(json!({"channel": []})),
                "invalid_json_body",
                "channel",
            ),
            (
                event_with(json!({"is_emulator": "no"})),
                "invalid_json_body",
                "is_emulator",
            ),
            (
                event_with(json!({"is_prod": 0})),
                "invalid_json_body",
                "is_prod",
            ),
            (
                event_with(json!({"custom_id": "c".repeat(37)})),
                "invalid_json_body",
                "custom_id",
            ),
            (
                event_with(json!({"install_source": "s".repeat(65)})),
                "invalid_json_body",
                "install_source",
            ),
            (
                event_with(json!({"key_id": "k".repeat(21)})),
                "invalid_json_body",
                "key_id",
            ),
            (event_with(json!({"metadata": "x"})), "invalid_metadata", ""),
            (
                event_with(json!({"metadata": {"a": 1}})),
                "invalid_metadata",
                "",
            ),
            (
                event_with(json!({"metadata": {"a": "v".repeat(2049)}})),
                "invalid_metadata",
                "",
            ),
            (
                event_with(json!({"metadata": {"k".repeat(65): "v"}})),
                "invalid_metadata",
                "",
            ),
            (
                event_with(json!({"timestamp": "1767225600000"})),
                "invalid_timestamp",
                "",
            ),
            (
                event_with(json!({"timestamp": true})),
                "invalid_timestamp",
                "",
            ),
        ];
        for (body, code, issue_field) in cases {
            let err = single(body.clone()).unwrap_err();
            assert_eq!((err.status, err.code.as_str()), (400, code), "{body}");
            if !issue_field.is_empty() {
                assert_eq!(
                    err.extra["parseResult"]["error"]["issues"][0]["path"][0],
                    issue_field
                );
            }
        }
    }

    #[test]
    fn limits_accept_their_maximum() {
        let metadata: Map<String, Value> = (0..MAX_METADATA_KEYS)
            .map(|i| {
                (
                    format!("{i:0>64}"),
                    json!("v".repeat(MAX_METADATA_VALUE_CHARS)),
                )
            })
            .collect();
        let parsed = single(event_with(json!({
            "metadata": metadata,
            "action": "a".repeat(MAX_ACTION_CHARS),
            "custom_id": format!("  {}  ", "c".repeat(36)),
            "key_id": "k".repeat(20),
        })))
        .unwrap();
        assert_eq!(
            parsed.event.metadata.map(|m| m.len()),
            Some(MAX_METADATA_KEYS)
        );

        let too_many: Map<String, Value> = (0..=MAX_METADATA_KEYS)
            .map(|i| (i.to_string(), json!("v")))
            .collect();
        let err = single(event_with(json!({ "metadata": too_many }))).unwrap_err();
        assert_eq!(err.code.as_str(), "invalid_metadata");
        assert!(err.message.contains("30 keys"), "{}", err.message);
    }

    /// Every string field a device sends, with its limit: one character over
    /// is refused with the reference's issue, the limit itself is accepted.
    #[test]
    fn every_string_field_is_bounded() {
        let limits = [
            ("platform", PLATFORM_MAX_CHARS),
            ("version_name", VERSION_NAME_MAX_CHARS),
            ("old_version_name", VERSION_NAME_MAX_CHARS),
            ("version_os", VERSION_OS_MAX_CHARS),
            ("version_code", VERSION_CODE_MAX_CHARS),
            ("plugin_version", PLUGIN_VERSION_MAX_CHARS),
            ("defaultChannel", CHANNEL_MAX_CHARS),
            ("channel", CHANNEL_MAX_CHARS),
            ("custom_id", MAX_CUSTOM_ID_CHARS),
            ("install_source", INSTALL_SOURCE_MAX_CHARS),
            ("key_id", KEY_ID_MAX_CHARS),
        ];
        for (field, max) in limits {
            single(event_with(json!({ field: "é".repeat(max) })))
                .unwrap_or_else(|e| panic!("{field} at {max}: {e:?}"));
            let err = single(event_with(json!({ field: "é".repeat(max + 1) }))).unwrap_err();
            assert_eq!(
                (err.status, err.code.as_str()),
                (400, "invalid_json_body"),
                "{field}"
            );
            assert_eq!(
                err.extra["parseResult"]["error"]["issues"],
                json!([{
                    "message": format!("String must contain at most {max} character(s)"),
                    "path": [field],
                    "code": "custom",
                }]),
                "{field}"
            );
        }
        // A valid semver build longer than the column.
        let long_build = format!("1.0.0-{}", "a".repeat(VERSION_BUILD_MAX_CHARS));
        let err = single(event_with(json!({ "version_build": long_build }))).unwrap_err();
        assert_eq!(err.code.as_str(), "invalid_json_body");
        // The issue's million-character version_name.
        let err = single(event_with(json!({ "version_name": "9".repeat(1_000_000) }))).unwrap_err();
        assert_eq!((err.status, err.code.as_str()), (400, "invalid_json_body"));
    }

    #[test]
    fn metadata_is_kept() {
        let parsed = single(event_with(json!({
            "action": "app_launch_ready",
            "metadata": {"duration_ms": "812", "source": "notify_app_ready"}
        })))
        .unwrap();
        let expected: BTreeMap<String, String> =
            [("duration_ms", "812"), ("source", "notify_app_ready")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
        assert_eq!(parsed.event.metadata, Some(expected));
    }

    #[test]
    fn timestamps_outside_the_window_become_arrival_time() {
        let day = 24 * HOUR;
        let cases: Vec<(Value, Millis)> = vec![
            (json!(NOW - HOUR), NOW - HOUR),
            (json!(NOW + 23 * HOUR), NOW + 23 * HOUR),
            (json!(NOW + 25 * HOUR), NOW),
            (json!(NOW - 364 * day), NOW - 364 * day),
            (json!(NOW - 366 * day), NOW),
            (json!(-5), NOW),
            (json!(1.0e300), NOW),
            (json!((NOW - HOUR) as f64 + 0.5), NOW - HOUR),
            (json!(null), NOW),
        ];
        for (timestamp, expected) in cases {
            let parsed = single(event_with(json!({ "timestamp": timestamp }))).unwrap();
            assert_eq!(parsed.event.timestamp, expected, "{timestamp}");
            assert_eq!(parsed.event.received_at, NOW);
        }
    }

    #[test]
    fn whole_body_refusals() {
        let good = event();
        let other_app = event_with(json!({"app_id": "com.other.app"}));
        let cases: Vec<(Value, u16, &str, &str)> = vec![
            (json!("text"), 400, "invalid_json_body", "Cannot parse body"),
            (json!(42), 400, "invalid_json_body", "Cannot parse body"),
            (json!({}), 400, "invalid_app_id", "App ID is required"),
            (
                event_without("app_id"),
                400,
                "invalid_app_id",
                "App ID is required",
            ),
            (
                event_with(json!({"app_id": 5})),
                400,
                "invalid_app_id",
                "App ID is required",
            ),
            (
                event_with(json!({"app_id": "nodots"})),
                400,
                "invalid_app_id",
                "App ID must be a reverse domain string",
            ),
            (
                json!([event_without("app_id"), good.clone()]),
                400,
                "invalid_app_id",
                "App ID is required",
            ),
            (
                json!([1, good.clone()]),
                400,
                "invalid_app_id",
                "App ID is required",
            ),
            (
                json!([good.clone(), other_app]),
                400,
                "mixed_app_ids",
                "All events in a batch must have the same app_id",
            ),
        ];
        for (body, status, code, message) in cases {
            let err = parse_stats_body(&body, NOW).unwrap_err();
            assert_eq!(
                (err.status, err.code.as_str(), err.message.as_str()),
                (status, code, message),
                "{body}"
            );
        }
    }

    #[test]
    fn batch_size_limit() {
        let at_limit = Value::Array(vec![event(); MAX_EVENTS]);
        let batch = parse_stats_body(&at_limit, NOW).unwrap();
        assert_eq!(batch.items.len(), MAX_EVENTS);

        let over = Value::Array(vec![event(); MAX_EVENTS + 1]);
        let err = parse_stats_body(&over, NOW).unwrap_err();
        assert_eq!((err.status, err.code.as_str()), (413, "too_many_events"));
        assert!(err.message.contains("1000"), "{}", err.message);
    }

    #[test]
    fn empty_batch_is_ok() {
        let batch = parse_stats_body(&json!([]), NOW).unwrap();
        assert_eq!(
            batch,
            StatsBatch {
                app_id: String::new(),
                is_batch: true,
                items: vec![]
            }
        );
        assert_eq!(
            stats_response(&batch),
            (200, json!({"status": "ok", "results": []}))
        );
    }

    #[test]
    fn batch_with_bad_items_answers_per_item() {
        let body = json!([
            event(),
            event_without("action"),
            event_with(json!({"app_id": "bad"})),
            event_with(json!({"action": "brand_new_action"})),
            "not an object",
        ]);
        let batch = parse_stats_body(&body, NOW).unwrap();
        assert_eq!(batch.app_id, "com.example.app");
        assert!(batch.is_batch);
        let (status, response) = stats_response(&batch);
        assert_eq!(status, 200);
        assert_eq!(
            response,
            json!({"status": "ok", "results": [
                {"status": "ok", "index": 0},
                {"status": "error", "error": "missing_action", "message": "Cannot find action", "index": 1},
                {"status": "error", "error": "invalid_app_id",
                 "message": "App ID must be a reverse domain string", "index": 2},
                {"status": "ok", "index": 3},
                {"status": "error", "error": "invalid_app_id", "message": "App ID is required", "index": 4},
            ]})
        );
    }

    #[test]
    fn single_event_responses() {
        let ok = parse_stats_body(&event(), NOW).unwrap();
        assert_eq!(stats_response(&ok), (200, json!({"status": "ok"})));

        let bad = parse_stats_body(&event_without("device_id"), NOW).unwrap();
        assert_eq!(
            stats_response(&bad),
            (
                400,
                json!({"error": "missing_device_id", "message": "Cannot find device_id", "moreInfo": {}})
            )
        );
    }

    #[test]
    fn known_actions_are_the_reference_list() {
        let reference = "ping delete reset set get set_fail update_fail download_fail windows_path_fail \
            canonical_path_fail directory_path_fail unzip_fail low_mem_fail download_0 download_10 \
            download_20 download_30 download_40 download_50 download_60 download_70 download_80 download_90 \
            download_complete download_manifest_start download_manifest_complete download_zip_start \
            download_zip_complete download_manifest_file_fail download_manifest_checksum_fail \
            download_manifest_brotli_fail finish_download_fail manifest_path_fail decrypt_fail \
            checksum_required insufficient_disk_space app_moved_to_foreground app_moved_to_background \
            app_launch_start app_launch_ready app_launch_timeout uninstall needPlanUpgrade missingBundle \
            noNew disablePlatformIos disablePlatformAndroid disableAutoUpdateToMajor \
            cannotUpdateViaPrivateChannel disableAutoUpdateToMinor disableAutoUpdateToPatch \
            channelMisconfigured disableAutoUpdateMetadata disableAutoUpdateUnderNative disableDevBuild \
            disableProdBuild disableEmulator disableDevice cannotGetBundle checksum_fail \
            NoChannelOrOverride setChannel getChannel rateLimited rate_limit_reached disableAutoUpdate \
            keyMismatch InvalidIp blocked_by_server_url backend_refusal disablePlatformElectron \
            customIdBlocked app_crash app_crash_native app_anr app_killed_low_memory \
            app_killed_excessive_resource_usage app_initialization_failure app_memory_warning \
            webview_javascript_error webview_unhandled_rejection webview_resource_error \
            webview_security_policy_violation webview_unclean_restart webview_render_process_gone \
            webview_content_process_terminated webview_dom_content_loaded webview_page_loaded set_next \
            os_version_changed native_app_version_changed";
        let names: Vec<&str> = reference.split_whitespace().collect();
        assert_eq!(names.len(), 91);
        for name in &names {
            assert!(is_known_action(name), "{name}");
        }
        // Every entry of our table is in the reference list (no typo'd extras).
        for name in KNOWN_ACTIONS {
            assert!(names.contains(name), "{name}");
        }
        for unknown in ["download_", "download_x", "download_-1", "Set", "pong", ""] {
            assert!(!is_known_action(unknown), "{unknown}");
        }
        assert!(is_known_action("download_5"));
        assert!(is_known_action("download_100"));
    }

    // --- The typed reader against the `Value`-based parser it replaced. ---

    /// What the old handler did with raw bytes: `parse_json`, then the `Value` parser.
    fn legacy(bytes: &[u8]) -> Result<StatsBatch, DeviceError> {
        let body = crate::request::parse_json(bytes)?;
        legacy_oracle::parse_stats_body(&body, NOW)
    }

    /// Parses `bytes` the new way and asserts it matches the old way exactly.
    fn same_as_legacy(bytes: &[u8]) -> Result<StatsBatch, DeviceError> {
        let typed = parse_stats_bytes(bytes, NOW);
        assert_eq!(typed, legacy(bytes), "{}", String::from_utf8_lossy(bytes));
        typed
    }

    /// The base event's JSON text with `changes` (raw `"key":value` pairs) appended.
    fn text_with(changes: &str) -> String {
        let base = event().to_string();
        format!("{},{changes}}}", &base[..base.len() - 1])
    }

    /// Every body the tests above use, plus odd ones, through both readers.
    fn value_corpus() -> Vec<Value> {
        let mut bodies = vec![
            event(),
            json!({}),
            json!([]),
            json!(null),
            json!("text"),
            json!(42),
            json!(true),
            json!([event(), [event()], null, 7, "x", {}]),
            json!([event_with(json!({"app_id": "com.other.app"})), event()]),
            json!([event_with(json!({"app_id": "bad"})), event()]),
            json!([
                event(),
                event_with(json!({"app_id": "bad"})),
                event_without("app_id")
            ]),
            json!([event(), event_with(json!({"app_id": ""}))]),
            event_with(json!({"metadata": {"b": 1, "a": "x".repeat(2049)}})),
            event_with(json!({"metadata": {"b": "ok", "a": 2}})),
            event_with(json!({"metadata": null})),
            event_with(json!({"metadata": [1, 2]})),
            event_with(json!({"metadata": {}})),
            event_with(json!({"timestamp": u64::MAX})),
            event_with(json!({"timestamp": i64::MIN})),
            event_with(json!({"timestamp": -1.0e300})),
            event_with(json!({"timestamp": {"ms": 1}})),
            event_with(json!({"version_build": ""})),
            event_with(json!({"version_build": null})),
            event_with(json!({"version_build": "builtin", "version_name": "builtin"})),
            event_with(json!({"device_id": [DEVICE]})),
            event_with(json!({"device_id": DEVICE.replace('-', "")})),
            event_with(json!({"device_id": format!("{DEVICE}0")})),
            event_with(json!({"platform": null, "version_name": 3, "is_prod": "yes"})),
            event_with(json!({"custom_id": 5, "install_source": {}, "key_id": []})),
            event_with(json!({"action": "download_fail", "version_name": "2.0.0"})),
            event_with(json!({"unknown": {"deep": [[[{"x": null}]]]}})),
        ];
        for field in ["device_id", "action", "platform", "version_name", "app_id"] {
            bodies.push(event_without(field));
            bodies.push(event_with(json!({ field: null })));
            bodies.push(event_with(json!({ field: 1.5 })));
        }
        bodies
    }

    #[test]
    fn typed_reader_matches_the_value_parser() {
        for body in value_corpus() {
            let via_value = parse_stats_body(&body, NOW);
            assert_eq!(
                via_value,
                legacy_oracle::parse_stats_body(&body, NOW),
                "{body}"
            );
            let bytes = serde_json::to_vec(&body).unwrap();
            assert_eq!(same_as_legacy(&bytes), via_value, "{body}");
        }
    }

    #[test]
    fn duplicate_keys_keep_the_last_value() {
        let body = text_with(r#""action":"ping","action":"app_launch_ready""#);
        let parsed = same_as_legacy(body.as_bytes()).unwrap();
        assert_eq!(parsed.items.len(), 1);
        assert_eq!(
            parsed.items[0].as_ref().unwrap().event.action,
            "app_launch_ready"
        );

        // A valid value first does not rescue an invalid last one.
        let body = text_with(r#""is_prod":false,"is_prod":"no""#);
        let refused = same_as_legacy(body.as_bytes()).unwrap();
        assert_eq!(
            refused.items[0].as_ref().unwrap_err().code.as_str(),
            "invalid_json_body"
        );

        // Repeated metadata keys count once toward the 30-key limit.
        let mut entries: Vec<String> = (0..MAX_METADATA_KEYS)
            .map(|i| format!(r#""k{i}":"v""#))
            .collect();
        entries.push(r#""k0":"again""#.to_string());
        let body = text_with(&format!(r#""metadata":{{{}}}"#, entries.join(",")));
        let batch = same_as_legacy(body.as_bytes()).unwrap();
        let metadata = batch.items[0].as_ref().unwrap().event.metadata.clone();
        let metadata = metadata.unwrap();
        assert_eq!(metadata.len(), MAX_METADATA_KEYS);
        assert_eq!(metadata["k0"], "again");
    }

    #[test]
    fn metadata_errors_name_the_first_key_in_sorted_order() {
        let body = text_with(r#""metadata":{"zeta":1,"alpha":true}"#);
        let batch = same_as_legacy(body.as_bytes()).unwrap();
        let err = batch.items[0].as_ref().unwrap_err();
        assert_eq!(err.code.as_str(), "invalid_metadata");
        assert_eq!(err.message, r#"metadata value of "alpha" must be a string"#);
    }

    #[test]
    fn unicode_escapes_are_decoded_in_keys_and_values() {
        let body = text_with(concat!(
            r#""\u0061ction":"app_launch_ready","version_name":"caf\u00e9-\ud83d\ude00","#,
            r#""device_id":"\u0036E2C0C9A-3F5B-4C8E-9A43-1F0F4B2D7C11","#,
            r#""metadata":{"n\u00e4me":"\u00fc"}"#
        ));
        let batch = same_as_legacy(body.as_bytes()).unwrap();
        let parsed = batch.items[0].as_ref().unwrap();
        assert_eq!(parsed.event.action, "app_launch_ready");
        assert_eq!(parsed.event.version_name, "caf\u{e9}-\u{1f600}");
        assert_eq!(parsed.event.device_id, DEVICE);
        let metadata = parsed.event.metadata.as_ref().unwrap();
        assert_eq!(
            metadata.get("n\u{e4}me").map(String::as_str),
            Some("\u{fc}")
        );

        // A lone surrogate is not JSON text: the whole body is refused as before.
        let body = text_with(r#""custom_id":"\ud800""#);
        let err = same_as_legacy(body.as_bytes()).unwrap_err();
        assert_eq!(err.code.as_str(), "invalid_json_parse_body");
    }

    #[test]
    fn numbers_where_strings_are_expected_are_refused_per_field() {
        let body = text_with(r#""version_code":14,"version_os":17.5,"platform":-1"#);
        let batch = same_as_legacy(body.as_bytes()).unwrap();
        let err = batch.items[0].as_ref().unwrap_err();
        assert_eq!(err.code.as_str(), "invalid_json_body");
        let paths: Vec<&Value> = err.extra["parseResult"]["error"]["issues"]
            .as_array()
            .unwrap()
            .iter()
            .map(|issue| &issue["path"][0])
            .collect();
        assert_eq!(
            paths,
            [
                &json!("platform"),
                &json!("version_os"),
                &json!("version_code")
            ]
        );

        for (timestamp, expected) in [
            ("18446744073709551615", NOW),
            ("-9223372036854775809", NOW),
            ("1767225600000.9", 1_767_225_600_000),
            ("1.7672256e12", 1_767_225_600_000),
            ("-0", NOW),
        ] {
            let body = text_with(&format!(r#""timestamp":{timestamp}"#));
            let batch = same_as_legacy(body.as_bytes()).unwrap();
            let parsed = batch.items[0].as_ref().unwrap();
            assert_eq!(parsed.event.timestamp, expected, "{timestamp}");
        }
    }

    #[test]
    fn malformed_text_is_refused_whole_wherever_it_is() {
        let event = event().to_string();
        let many = vec![event.as_str(); MAX_EVENTS + 5].join(",");
        let bodies = [
            String::new(),
            "[".to_string(),
            format!("[{event},]"),
            format!("[{event}] x"),
            format!("{event}{event}"),
            format!(r#"[{event},{{"a":}}]"#),
            format!(r#"[{many},{{"a":tru}}]"#),
            text_with(r#""timestamp":1e400"#),
            text_with(r#""extra":"\x""#),
        ];
        for body in bodies {
            let err = same_as_legacy(body.as_bytes()).unwrap_err();
            assert_eq!(
                (err.status, err.code.as_str()),
                (400, "invalid_json_parse_body")
            );
            assert_eq!(err.extra["e"], json!({}));
        }
        let valid_with_spaces = format!(" \n[ {event} ]\t");
        assert!(same_as_legacy(valid_with_spaces.as_bytes()).is_ok());
    }

    #[test]
    fn nesting_limit_is_unchanged_in_ignored_fields() {
        let nested = |depth: usize| format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        let shallow = text_with(&format!(r#""extra":{}"#, nested(100)));
        assert!(same_as_legacy(shallow.as_bytes()).unwrap().items[0].is_ok());
        let deep = text_with(&format!(r#""extra":{}"#, nested(200)));
        let err = same_as_legacy(deep.as_bytes()).unwrap_err();
        assert_eq!(err.code.as_str(), "invalid_json_parse_body");
        let deep_metadata = text_with(&format!(r#""metadata":{{"a":{}}}"#, nested(200)));
        let err = same_as_legacy(deep_metadata.as_bytes()).unwrap_err();
        assert_eq!(err.code.as_str(), "invalid_json_parse_body");
    }

    #[test]
    fn huge_batches_from_text() {
        let event = event().to_string();
        let batch_of = |count: usize| format!("[{}]", vec![event.as_str(); count].join(","));

        let at_limit = same_as_legacy(batch_of(MAX_EVENTS).as_bytes()).unwrap();
        assert_eq!(at_limit.items.len(), MAX_EVENTS);
        assert!(at_limit.items.iter().all(Result::is_ok));

        for count in [MAX_EVENTS + 1, 5 * MAX_EVENTS] {
            let err = same_as_legacy(batch_of(count).as_bytes()).unwrap_err();
            assert_eq!((err.status, err.code.as_str()), (413, "too_many_events"));
        }
        // The cap wins over a bad first app_id, as before.
        let bad_first = format!(
            "[{},{}]",
            event_with(json!({"app_id": "bad"})),
            vec![event.as_str(); MAX_EVENTS].join(",")
        );
        let err = same_as_legacy(bad_first.as_bytes()).unwrap_err();
        assert_eq!(err.code.as_str(), "too_many_events");
    }

    #[test]
    fn answer_text_is_the_value_answer_serialized() {
        let bodies = [
            event(),
            event_without("device_id"),
            event_with(json!({"is_prod": 1})),
            json!([]),
            json!([
                event(),
                event_without("action"),
                "x",
                event_with(json!({"metadata": 1}))
            ]),
        ];
        for body in bodies {
            let batch = parse_stats_body(&body, NOW).unwrap();
            let (status, value) = stats_response(&batch);
            let (answer_status, answer) = stats_answer(&batch);
            assert_eq!(answer_status, status, "{body}");
            assert_eq!(
                serde_json::to_string(&answer).unwrap(),
                serde_json::to_string(&value).unwrap(),
                "{body}"
            );
        }
    }

    #[test]
    fn not_json_answers_as_parse_json_does() {
        let err = parse_stats_bytes(b"{oops", NOW).unwrap_err();
        assert_eq!(err, crate::request::parse_json(b"{oops").unwrap_err());
    }
}
