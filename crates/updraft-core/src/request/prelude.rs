//! The checks every device body goes through before its schema (reference
//! §1.1 steps 1–4): a non-empty object, `device_id`, `app_id`, and the
//! `version_build` coercion.

use super::body::{lowercase, str_of, DeviceBody, RawBody};
#[cfg(any(test, feature = "legacy-oracle"))]
use super::fields::{device_id_field, is_missing, DeviceIdField};
use super::fields::{single_issue_error, DEVICE_ID_ISSUE, PARSE_BODY_MESSAGE};
use crate::error::{DeviceError, DeviceErrorCode};
use crate::stats::body::Field;
use crate::version::normalize_version_build;
#[cfg(any(test, feature = "legacy-oracle"))]
use serde_json::Map;
use serde_json::Value;
use std::borrow::Cow;

/// What the typed prelude found: the body's fields and the checked ids.
pub(crate) struct TypedPrelude<'a> {
    /// Lower-cased, not yet shape-checked.
    pub(crate) device_id: Cow<'a, str>,
    /// `Some` when `version_build` is a non-empty string; it then normalised.
    pub(crate) version_build: Option<semver::Version>,
}

/// [`prelude`] of a body read by the typed reader.
pub(crate) fn typed_prelude(
    body: RawBody<'_>,
    invalid_code: DeviceErrorCode,
) -> Result<(DeviceBody<'_>, TypedPrelude<'_>), DeviceError> {
    let mut body = match body {
        RawBody::Object(body) if body.has_keys => body,
        _ => return Err(DeviceError::bad_request(invalid_code, PARSE_BODY_MESSAGE)),
    };
    let device_id = match std::mem::take(&mut body.device_id) {
        Field::Absent | Field::Null => return Err(missing_device_id()),
        Field::Str(id) if id.is_empty() => return Err(missing_device_id()),
        Field::Str(id) => lowercase(id),
        _ => {
            return Err(single_issue_error(
                invalid_code,
                "device_id",
                DEVICE_ID_ISSUE,
            ))
        }
    };
    let app_id_missing = match &body.app_id {
        Field::Absent | Field::Null => true,
        Field::Str(id) => id.is_empty(),
        _ => false,
    };
    if app_id_missing {
        return Err(DeviceError::bad_request(
            DeviceErrorCode::MissingAppId,
            "Cannot find app_id",
        ));
    }
    let version_build = version_build_of(str_of(&body.version_build))?;
    Ok((
        body,
        TypedPrelude {
            device_id,
            version_build,
        },
    ))
}

#[cfg(any(test, feature = "legacy-oracle"))]
pub(crate) struct Prelude<'a> {
    pub(crate) obj: &'a Map<String, Value>,
    /// Lower-cased, not yet shape-checked.
    pub(crate) device_id: String,
    /// `Some` when `version_build` is a non-empty string; it then normalised.
    pub(crate) version_build: Option<semver::Version>,
}

/// `invalid_code` is `invalid_json_body`, or `invalid_query_parameters` for
/// bodies that came from a query string. The `Value`-based original of
/// [`typed_prelude`], kept for the legacy parsers the tests compare with.
#[cfg(any(test, feature = "legacy-oracle"))]
pub(crate) fn prelude<'a>(
    body: &'a Value,
    invalid_code: DeviceErrorCode,
) -> Result<Prelude<'a>, DeviceError> {
    let obj = match body {
        Value::Object(obj) if !obj.is_empty() => obj,
        _ => return Err(DeviceError::bad_request(invalid_code, PARSE_BODY_MESSAGE)),
    };
    let device_id = match device_id_field(obj) {
        DeviceIdField::Missing => return Err(missing_device_id()),
        DeviceIdField::NotString => {
            return Err(single_issue_error(
                invalid_code,
                "device_id",
                DEVICE_ID_ISSUE,
            ))
        }
        DeviceIdField::Text(id) => id,
    };
    if is_missing(obj, "app_id") {
        return Err(DeviceError::bad_request(
            DeviceErrorCode::MissingAppId,
            "Cannot find app_id",
        ));
    }
    let version_build = coerce_version_build(obj.get("version_build"))?;
    Ok(Prelude {
        obj,
        device_id,
        version_build,
    })
}

pub(crate) fn missing_device_id() -> DeviceError {
    DeviceError::bad_request(DeviceErrorCode::MissingDeviceId, "Cannot find device_id")
}

/// A non-empty string `version_build` must normalise, else `semver_error`;
/// anything else is left to the schema.
pub(crate) fn coerce_version_build(
    value: Option<&Value>,
) -> Result<Option<semver::Version>, DeviceError> {
    version_build_of(value.and_then(Value::as_str))
}

/// [`coerce_version_build`] of a field already known to be a string (`Some`) or not.
pub(crate) fn version_build_of(text: Option<&str>) -> Result<Option<semver::Version>, DeviceError> {
    match text {
        Some(raw) if !raw.is_empty() => normalize_version_build(raw)
            .map(Some)
            .ok_or_else(|| semver_error(raw)),
        _ => Ok(None),
    }
}

fn semver_error(raw: &str) -> DeviceError {
    DeviceError::bad_request(
        DeviceErrorCode::SemverError,
        format!(
            "Native version: {raw} doesn't follow semver convention, please check \
             https://capgo.app/semver_tester/ to learn more about semver usage in Capgo"
        ),
    )
    .with("version_build", raw)
}

/// `version_name: "builtin"` stands for the native bundle: name it by the native version.
pub(crate) fn resolve_builtin(
    version_name: &str,
    version_build: Option<&semver::Version>,
) -> String {
    match version_build {
        Some(build) if version_name == crate::model::BUILTIN => build.to_string(),
        _ => version_name.to_string(),
    }
}
