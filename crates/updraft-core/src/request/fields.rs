//! Field checks shared by the device request parsers: the schema issues list,
//! the shapes of `app_id` and `device_id`, and typed reads of JSON fields.

use crate::error::{DeviceError, DeviceErrorCode};
use crate::stats::body::Field;
use serde_json::{json, Map, Value};

pub(crate) const PARSE_BODY_MESSAGE: &str = "Cannot parse body";
pub(crate) const APP_ID_ISSUE: &str = "App ID must be a reverse domain string";
pub(crate) const DEVICE_ID_ISSUE: &str = "Device ID must be a valid UUID string";
pub(crate) const PLATFORM_ISSUE: &str = "Platform is not supported or invalid";
// Field lengths (characters) of every device body, refused past them with
// `invalid_json_body` / `String must contain at most N character(s)`. From the
// hosted service's schema where it has one (`device_id`, `custom_id`,
// `install_source`, `key_id`), else its database columns (`plugin_version`,
// `version_os`, `version_build`, `defaultChannel`), else Updraft's own
// (docs/device-api.md, "Field limits").
pub(crate) const DEVICE_ID_MAX_CHARS: usize = 36;
pub(crate) const INSTALL_SOURCE_MAX_CHARS: usize = 64;
pub(crate) const KEY_ID_MAX_CHARS: usize = 20;
pub(crate) const CUSTOM_ID_MAX_CHARS: usize = 36;
pub(crate) const PLUGIN_VERSION_MAX_CHARS: usize = 20;
pub(crate) const VERSION_OS_MAX_CHARS: usize = 20;
pub(crate) const VERSION_BUILD_MAX_CHARS: usize = 70;
pub(crate) const CHANNEL_MAX_CHARS: usize = 255;
/// Updraft's: a bundle version, or `"{version}:{file path}"` in per-file failures.
pub(crate) const VERSION_NAME_MAX_CHARS: usize = 1024;
/// Updraft's: Android's integer `versionCode` or iOS's `CFBundleVersion`.
pub(crate) const VERSION_CODE_MAX_CHARS: usize = 70;
/// Updraft's: `/stats` accepts any platform string (`ios`, `android`, `electron`).
pub(crate) const PLATFORM_MAX_CHARS: usize = 32;

/// Schema failures of one body, reported together as the reference does:
/// `moreInfo.parseResult.error.issues[] = {message, path, code:"custom"}`.
#[derive(Debug, Default)]
pub(crate) struct Issues(Vec<Value>);

impl Issues {
    pub(crate) fn push(&mut self, field: &str, message: impl Into<String>) {
        self.0.push(json!({
            "message": message.into(),
            "path": [field],
            "code": "custom",
        }));
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub(crate) fn into_error(self, code: DeviceErrorCode) -> DeviceError {
        issues_error(code, self.0)
    }

    /// Appends `String must contain at most {max} character(s)` when `value` is longer.
    pub(crate) fn max_chars(&mut self, field: &str, value: &str, max: usize) {
        // `len()` bounds the count from above: skip counting short strings.
        if value.len() > max && value.chars().count() > max {
            self.push(field, too_long_message(max));
        }
    }

    /// [`Issues::max_chars`] of an optional field.
    pub(crate) fn max_chars_opt(&mut self, field: &str, value: Option<&str>, max: usize) {
        if let Some(value) = value {
            self.max_chars(field, value, max);
        }
    }
}

pub(crate) fn too_long_message(max: usize) -> String {
    format!("String must contain at most {max} character(s)")
}

fn issues_error(code: DeviceErrorCode, issues: Vec<Value>) -> DeviceError {
    DeviceError::bad_request(code, PARSE_BODY_MESSAGE)
        .with("parseResult", json!({ "error": { "issues": issues } }))
}

/// A single-issue `Cannot parse body` error.
pub(crate) fn single_issue_error(code: DeviceErrorCode, field: &str, message: &str) -> DeviceError {
    let mut issues = Issues::default();
    issues.push(field, message);
    issues.into_error(code)
}

/// Adds the `device_id` issues (length, UUID shape) of an already lower-cased id.
pub(crate) fn check_device_id(issues: &mut Issues, device_id: &str) {
    issues.max_chars("device_id", device_id, DEVICE_ID_MAX_CHARS);
    if !is_canonical_uuid(device_id) && !crate::validate::is_uuid(device_id) {
        issues.push("device_id", DEVICE_ID_ISSUE);
    }
}

/// `8-4-4-4-12` hex digits, checked without allocating: the shape every
/// plugin sends, so the general [`crate::validate::is_uuid`] (which this
/// implies) only runs for the rest.
fn is_canonical_uuid(s: &str) -> bool {
    s.len() == 36
        && s.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

/// What a body says about `device_id` before the schema runs.
#[cfg(any(test, feature = "legacy-oracle"))]
#[derive(Debug, PartialEq)]
pub(crate) enum DeviceIdField {
    /// Absent, null or `""`.
    Missing,
    /// A number, boolean, object or array: refused, never a panic.
    NotString,
    /// Lower-cased.
    Text(String),
}

#[cfg(any(test, feature = "legacy-oracle"))]
pub(crate) fn device_id_field(obj: &Map<String, Value>) -> DeviceIdField {
    match obj.get("device_id") {
        None | Some(Value::Null) => DeviceIdField::Missing,
        Some(Value::String(s)) if s.is_empty() => DeviceIdField::Missing,
        Some(Value::String(s)) => DeviceIdField::Text(s.to_lowercase()),
        Some(_) => DeviceIdField::NotString,
    }
}

/// Absent, null and `""` all count as "not sent" for the required ids.
pub(crate) fn is_missing(obj: &Map<String, Value>, field: &str) -> bool {
    match obj.get(field) {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s.is_empty(),
        Some(_) => false,
    }
}

/// An optional string: absent or null is `None`; another type is an issue.
pub(crate) fn optional_str<'a>(
    obj: &'a Map<String, Value>,
    field: &str,
    issues: &mut Issues,
) -> Option<&'a str> {
    match obj.get(field) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(_) => {
            not_a_string(issues, field);
            None
        }
    }
}

/// A required string (possibly empty): absent, null or another type is an issue.
#[cfg(any(test, feature = "legacy-oracle"))]
pub(crate) fn required_str<'a>(
    obj: &'a Map<String, Value>,
    field: &str,
    issues: &mut Issues,
) -> Option<&'a str> {
    match obj.get(field) {
        Some(Value::String(s)) => Some(s),
        _ => {
            not_a_string(issues, field);
            None
        }
    }
}

/// A boolean flag with the reference's default when absent or null.
pub(crate) fn flag(
    obj: &Map<String, Value>,
    field: &str,
    default: bool,
    issues: &mut Issues,
) -> bool {
    match obj.get(field) {
        None | Some(Value::Null) => default,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            not_a_boolean(issues, field);
            default
        }
    }
}

/// The issue of a field that must be a string but is another JSON type.
pub(crate) fn not_a_string(issues: &mut Issues, field: &str) {
    issues.push(field, format!("{field} must be a string"));
}

/// The issue of a field that must be a boolean but is another JSON type.
pub(crate) fn not_a_boolean(issues: &mut Issues, field: &str) {
    issues.push(field, format!("{field} must be a boolean"));
}

/// `app_id` must be a reverse-domain string.
pub(crate) fn app_id<'a>(obj: &'a Map<String, Value>, issues: &mut Issues) -> Option<&'a str> {
    match obj.get("app_id") {
        Some(Value::String(s)) if crate::validate::is_valid_app_id(s) => Some(s),
        _ => {
            issues.push("app_id", APP_ID_ISSUE);
            None
        }
    }
}

/// `platform` must be `ios`, `android` or `electron`.
pub(crate) fn platform(
    obj: &Map<String, Value>,
    issues: &mut Issues,
) -> Option<crate::model::Platform> {
    let parsed = obj
        .get("platform")
        .and_then(Value::as_str)
        .and_then(crate::model::Platform::parse);
    if parsed.is_none() {
        issues.push("platform", PLATFORM_ISSUE);
    }
    parsed
}

/// `defaultChannel`: blank means "use the public channel".
pub(crate) fn non_blank(value: Option<&str>) -> Option<String> {
    value.filter(|s| !s.trim().is_empty()).map(str::to_string)
}

/// `install_source` is stored trimmed and lower-cased; blank keeps the stored value.
pub(crate) fn normalize_install_source(value: Option<&str>) -> Option<String> {
    value
        .map(|s| s.trim().to_lowercase())
        .filter(|s| !s.is_empty())
}

/// `None` for absent and `""`.
pub(crate) fn non_empty(value: Option<&str>) -> Option<String> {
    value.filter(|s| !s.is_empty()).map(str::to_string)
}

/// [`optional_str`] of a field read by the typed reader.
pub(crate) fn optional_str_field<'f>(
    field: &'f Field<'_>,
    name: &str,
    issues: &mut Issues,
) -> Option<&'f str> {
    match field {
        Field::Absent | Field::Null => None,
        Field::Str(text) => Some(text),
        _ => {
            not_a_string(issues, name);
            None
        }
    }
}

/// [`required_str`] of a field read by the typed reader.
pub(crate) fn required_str_field<'f>(
    field: &'f Field<'_>,
    name: &str,
    issues: &mut Issues,
) -> Option<&'f str> {
    match field {
        Field::Str(text) => Some(text),
        _ => {
            not_a_string(issues, name);
            None
        }
    }
}

/// [`flag`] of a field read by the typed reader.
pub(crate) fn flag_field(
    field: &Field<'_>,
    name: &str,
    default: bool,
    issues: &mut Issues,
) -> bool {
    match field {
        Field::Absent | Field::Null => default,
        Field::Bool(value) => *value,
        _ => {
            not_a_boolean(issues, name);
            default
        }
    }
}

/// [`app_id`] of a field read by the typed reader: whether it is valid.
pub(crate) fn app_id_field(field: &Field<'_>, issues: &mut Issues) -> bool {
    let valid = matches!(field, Field::Str(text) if crate::validate::is_valid_app_id(text));
    if !valid {
        issues.push("app_id", APP_ID_ISSUE);
    }
    valid
}

/// [`platform`] of a field read by the typed reader.
pub(crate) fn platform_field(
    field: &Field<'_>,
    issues: &mut Issues,
) -> Option<crate::model::Platform> {
    let parsed = match field {
        Field::Str(text) => crate::model::Platform::parse(text),
        _ => None,
    };
    if parsed.is_none() {
        issues.push("platform", PLATFORM_ISSUE);
    }
    parsed
}

/// Test bodies: a base body with some fields replaced, or one removed.
#[cfg(test)]
pub(crate) mod test_bodies {
    use serde_json::Value;

    pub(crate) fn patched(mut body: Value, changes: Value) -> Value {
        if let (Value::Object(fields), Value::Object(changes)) = (&mut body, changes) {
            fields.extend(changes);
        }
        body
    }

    pub(crate) fn removed(mut body: Value, field: &str) -> Value {
        if let Value::Object(fields) = &mut body {
            fields.remove(field);
        }
        body
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_id_field_classifies_every_json_type() {
        let cases = [
            (json!({}), DeviceIdField::Missing),
            (json!({"device_id": null}), DeviceIdField::Missing),
            (json!({"device_id": ""}), DeviceIdField::Missing),
            (json!({"device_id": 12}), DeviceIdField::NotString),
            (json!({"device_id": false}), DeviceIdField::NotString),
            (json!({"device_id": {"a": 1}}), DeviceIdField::NotString),
            (
                json!({"device_id": "ABC-Def"}),
                DeviceIdField::Text("abc-def".into()),
            ),
        ];
        for (body, expected) in cases {
            let obj = body.as_object().unwrap();
            assert_eq!(device_id_field(obj), expected, "{body}");
        }
    }
}
