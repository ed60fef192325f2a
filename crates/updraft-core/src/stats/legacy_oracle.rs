//! The `Value`-based `/stats` parser this module used before the typed
//! reader, kept verbatim for tests only: the typed parser must give the same
//! result for every body (differential tests in `stats.rs`).

use super::reports_running_version;
use super::{INVALID_BODY, MAX_METADATA_KEYS, MAX_METADATA_KEY_CHARS, MAX_METADATA_VALUE_CHARS};
use super::{
    MAX_ACTION_CHARS, MAX_CUSTOM_ID_CHARS, MAX_EVENTS, MAX_EVENT_AGE_MS, MAX_FUTURE_SKEW_MS,
};
use crate::error::{DeviceError, DeviceErrorCode};
use crate::model::{DeviceSighting, Millis, Observed, ObservedAt, StatsEvent};
use crate::request::fields::{
    self, check_device_id, device_id_field, flag, non_blank, non_empty, normalize_install_source,
    optional_str, required_str, single_issue_error, DeviceIdField, Issues, DEVICE_ID_ISSUE,
    INSTALL_SOURCE_MAX_CHARS, KEY_ID_MAX_CHARS,
};
use crate::request::prelude::{coerce_version_build, missing_device_id, resolve_builtin};
use crate::request::{ParsedStatsEvent, StatsBatch, StatsItem};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Validates a `/stats` body. `Err` refuses the whole body (nothing is
/// stored); otherwise each item is an accepted event or why it was refused.
pub fn parse_stats_body(body: &Value, now: Millis) -> Result<StatsBatch, DeviceError> {
    let (events, is_batch) = match body {
        Value::Array(events) => (events.as_slice(), true),
        Value::Object(_) => (std::slice::from_ref(body), false),
        _ => {
            return Err(DeviceError::bad_request(
                INVALID_BODY,
                fields::PARSE_BODY_MESSAGE,
            ))
        }
    };
    let Some(first) = events.first() else {
        return Ok(StatsBatch {
            app_id: String::new(),
            is_batch,
            items: Vec::new(),
        });
    };
    if events.len() > MAX_EVENTS {
        return Err(DeviceError::bad_request(
            DeviceErrorCode::TooManyEvents,
            format!("A stats body may hold at most {MAX_EVENTS} events"),
        )
        .with_status(413));
    }
    let app_id = event_app_id(first)?;
    let mixed = events
        .iter()
        .filter_map(|event| event_app_id(event).ok())
        .any(|other| other != app_id);
    if mixed {
        return Err(DeviceError::bad_request(
            DeviceErrorCode::MixedAppIds,
            "All events in a batch must have the same app_id",
        ));
    }
    let items = events
        .iter()
        .map(|event| parse_event(event, app_id, now))
        .collect();
    Ok(StatsBatch {
        app_id: app_id.to_string(),
        is_batch,
        items,
    })
}

fn event_app_id(event: &Value) -> Result<&str, DeviceError> {
    match event.get("app_id") {
        Some(Value::String(app_id)) if crate::validate::is_valid_app_id(app_id) => Ok(app_id),
        Some(Value::String(app_id)) if !app_id.is_empty() => {
            Err(invalid_app_id("App ID must be a reverse domain string"))
        }
        _ => Err(invalid_app_id("App ID is required")),
    }
}

fn invalid_app_id(message: &str) -> DeviceError {
    DeviceError::bad_request(DeviceErrorCode::InvalidAppId, message)
}

fn parse_event(event: &Value, app_id: &str, now: Millis) -> StatsItem {
    // Later events may still lack a valid app_id (a different valid one was refused before).
    event_app_id(event)?;
    // `event_app_id` only succeeds on objects.
    let Some(obj) = event.as_object() else {
        return Err(invalid_app_id("App ID is required"));
    };

    let device_id = match device_id_field(obj) {
        DeviceIdField::Missing => return Err(missing_device_id()),
        DeviceIdField::NotString => {
            return Err(single_issue_error(
                INVALID_BODY,
                "device_id",
                DEVICE_ID_ISSUE,
            ))
        }
        DeviceIdField::Text(id) => id,
    };
    let action = action(obj)?;
    let version_build = coerce_version_build(obj.get("version_build"))?;

    let mut issues = Issues::default();
    check_device_id(&mut issues, &device_id);
    let platform = required_str(obj, "platform", &mut issues);
    let version_name = required_str(obj, "version_name", &mut issues);
    let version_os = optional_str(obj, "version_os", &mut issues);
    optional_str(obj, "version_build", &mut issues);
    let old_version_name = optional_str(obj, "old_version_name", &mut issues);
    let version_code = optional_str(obj, "version_code", &mut issues);
    let plugin_version = optional_str(obj, "plugin_version", &mut issues);
    let default_channel = optional_str(obj, "defaultChannel", &mut issues);
    optional_str(obj, "channel", &mut issues);
    let is_emulator = flag(obj, "is_emulator", false, &mut issues);
    let is_prod = flag(obj, "is_prod", true, &mut issues);
    let custom_id = optional_str(obj, "custom_id", &mut issues).map(str::trim);
    if let Some(custom_id) = custom_id {
        issues.max_chars("custom_id", custom_id, MAX_CUSTOM_ID_CHARS);
    }
    let install_source = optional_str(obj, "install_source", &mut issues);
    if let Some(source) = install_source {
        issues.max_chars("install_source", source.trim(), INSTALL_SOURCE_MAX_CHARS);
    }
    let key_id = optional_str(obj, "key_id", &mut issues);
    if let Some(key_id) = key_id {
        issues.max_chars("key_id", key_id, KEY_ID_MAX_CHARS);
    }
    let (Some(platform), Some(version_name), true) = (platform, version_name, issues.is_empty())
    else {
        return Err(issues.into_error(INVALID_BODY));
    };
    let metadata = metadata(obj.get("metadata"))?;
    let timestamp = event_time(obj.get("timestamp"), now)?;

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

fn action(obj: &Map<String, Value>) -> Result<&str, DeviceError> {
    match obj.get("action") {
        None | Some(Value::Null) => Err(DeviceError::bad_request(
            DeviceErrorCode::MissingAction,
            "Cannot find action",
        )),
        Some(Value::String(action)) if is_well_formed_action(action) => Ok(action),
        Some(_) => Err(DeviceError::bad_request(
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

fn metadata(value: Option<&Value>) -> Result<Option<BTreeMap<String, String>>, DeviceError> {
    let entries = match value {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Object(entries)) => entries,
        Some(_) => return Err(invalid_metadata("metadata must be an object".into())),
    };
    if entries.len() > MAX_METADATA_KEYS {
        return Err(invalid_metadata(format!(
            "metadata may hold at most {MAX_METADATA_KEYS} keys"
        )));
    }
    let mut metadata = BTreeMap::new();
    for (key, value) in entries {
        if key.chars().count() > MAX_METADATA_KEY_CHARS {
            return Err(invalid_metadata(format!(
                "metadata keys may be at most {MAX_METADATA_KEY_CHARS} characters long"
            )));
        }
        let Some(text) = value.as_str() else {
            return Err(invalid_metadata(format!(
                "metadata value of {key:?} must be a string"
            )));
        };
        if text.chars().count() > MAX_METADATA_VALUE_CHARS {
            return Err(invalid_metadata(format!(
                "metadata value of {key:?} may be at most {MAX_METADATA_VALUE_CHARS} characters long"
            )));
        }
        metadata.insert(key.clone(), text.to_string());
    }
    Ok(Some(metadata))
}

fn invalid_metadata(message: String) -> DeviceError {
    DeviceError::bad_request(DeviceErrorCode::InvalidMetadata, message)
}

/// The event's time: the device's `timestamp` (epoch ms) when plausible,
/// else the arrival time `now` (see the module doc for the window).
fn event_time(value: Option<&Value>, now: Millis) -> Result<Millis, DeviceError> {
    let millis = match value {
        None | Some(Value::Null) => return Ok(now),
        Some(Value::Number(number)) => number
            .as_i64()
            .or_else(|| number.as_f64().map(|f| f as Millis)),
        Some(_) => None,
    };
    let Some(millis) = millis else {
        return Err(DeviceError::bad_request(
            DeviceErrorCode::InvalidTimestamp,
            "timestamp must be a number of milliseconds since the Unix epoch",
        ));
    };
    let too_new = millis > now.saturating_add(MAX_FUTURE_SKEW_MS);
    let too_old = millis < now.saturating_sub(MAX_EVENT_AGE_MS);
    Ok(if too_new || too_old { now } else { millis })
}
