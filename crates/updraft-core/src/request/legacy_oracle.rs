//! The `Value`-based `/updates` and `/channel_self` parsers used before the
//! typed reader (`body.rs`), kept for tests only: the typed parsers must give
//! the same result for every body (differential tests in `differential.rs`
//! and `updraft-server`'s device tests). Verbatim but for the output types,
//! whose strings are now `Cow`s.

use super::fields::{
    self, check_device_id, flag, non_blank, non_empty, normalize_install_source, optional_str,
    required_str, Issues, CHANNEL_MAX_CHARS, CUSTOM_ID_MAX_CHARS, INSTALL_SOURCE_MAX_CHARS,
    KEY_ID_MAX_CHARS, PLUGIN_VERSION_MAX_CHARS, VERSION_BUILD_MAX_CHARS, VERSION_CODE_MAX_CHARS,
    VERSION_NAME_MAX_CHARS, VERSION_OS_MAX_CHARS,
};
use super::prelude::{prelude, resolve_builtin};
use super::{ChannelSelfMethod, ChannelSelfRequest, UpdateRequest};
use crate::error::{DeviceError, DeviceErrorCode};
use crate::version::parse_semver_lenient;
use serde_json::{Map, Value};

const INVALID_BODY: DeviceErrorCode = DeviceErrorCode::InvalidJsonBody;
const INVALID_QUERY: DeviceErrorCode = DeviceErrorCode::InvalidQueryParameters;

/// Validates and normalises an update-check body; every refusal is a 400
/// with the reference's code and message.
pub fn parse_update_request(body: &Value) -> Result<UpdateRequest<'static>, DeviceError> {
    let pre = prelude(body, INVALID_BODY)?;
    let obj = pre.obj;
    let mut issues = Issues::default();

    let app_id = fields::app_id(obj, &mut issues);
    check_device_id(&mut issues, &pre.device_id);
    let version_name_raw = non_empty_str(obj, "version_name", &mut issues);
    issues.max_chars_opt("version_name", version_name_raw, VERSION_NAME_MAX_CHARS);
    let version_name =
        version_name_raw.map(|name| resolve_builtin(name, pre.version_build.as_ref()));
    if pre.version_build.is_none() {
        issues.push("version_build", "version_build must be a non-empty string");
    }
    issues.max_chars_opt(
        "version_build",
        obj.get("version_build").and_then(Value::as_str),
        VERSION_BUILD_MAX_CHARS,
    );
    let is_emulator = flag(obj, "is_emulator", false, &mut issues);
    let is_prod = flag(obj, "is_prod", true, &mut issues);
    let platform = fields::platform(obj, &mut issues);
    let plugin_version = plugin_version(obj, &mut issues);
    let default_channel = optional_str(obj, "defaultChannel", &mut issues);
    issues.max_chars_opt("defaultChannel", default_channel, CHANNEL_MAX_CHARS);
    let install_source = optional_str(obj, "install_source", &mut issues);
    if let Some(source) = install_source {
        issues.max_chars("install_source", source.trim(), INSTALL_SOURCE_MAX_CHARS);
    }
    let key_id = optional_str(obj, "key_id", &mut issues);
    if let Some(key_id) = key_id {
        issues.max_chars("key_id", key_id, KEY_ID_MAX_CHARS);
    }
    let custom_id = optional_str(obj, "custom_id", &mut issues);
    issues.max_chars_opt("custom_id", custom_id.map(str::trim), CUSTOM_ID_MAX_CHARS);
    let version_code = optional_str(obj, "version_code", &mut issues);
    issues.max_chars_opt("version_code", version_code, VERSION_CODE_MAX_CHARS);
    let version_os = optional_str(obj, "version_os", &mut issues);
    issues.max_chars_opt("version_os", version_os, VERSION_OS_MAX_CHARS);

    match (
        issues.is_empty(),
        app_id,
        version_name,
        pre.version_build,
        platform,
        plugin_version,
    ) {
        (
            true,
            Some(app_id),
            Some(version_name),
            Some(version_build),
            Some(platform),
            Some(plugin_version),
        ) => Ok(UpdateRequest {
            platform,
            device_id: pre.device_id.into(),
            app_id: app_id.to_string().into(),
            custom_id: custom_id
                .map(str::trim)
                .unwrap_or_default()
                .to_string()
                .into(),
            version_build,
            version_code: version_code.map(|s| s.to_string().into()),
            version_os: version_os.map(|s| s.to_string().into()),
            version_name: version_name.into(),
            plugin_version,
            is_emulator,
            is_prod,
            install_source: normalize_install_source(install_source).map(Into::into),
            default_channel: non_blank(default_channel).map(Into::into),
            key_id: non_empty(key_id).map(Into::into),
        }),
        // Every `None` above pushed an issue, so the list is never empty here.
        _ => Err(issues.into_error(INVALID_BODY)),
    }
}

fn non_empty_str<'a>(
    obj: &'a Map<String, Value>,
    field: &str,
    issues: &mut Issues,
) -> Option<&'a str> {
    match obj.get(field) {
        Some(Value::String(s)) if !s.is_empty() => Some(s),
        _ => {
            issues.push(field, format!("{field} must be a non-empty string"));
            None
        }
    }
}

fn plugin_version(obj: &Map<String, Value>, issues: &mut Issues) -> Option<semver::Version> {
    match obj.get("plugin_version") {
        None | Some(Value::Null) => {
            issues.push("plugin_version", "plugin_version is required");
            None
        }
        Some(Value::String(text)) if text.chars().count() > PLUGIN_VERSION_MAX_CHARS => {
            issues.push(
                "plugin_version",
                fields::too_long_message(PLUGIN_VERSION_MAX_CHARS),
            );
            None
        }
        Some(value) => {
            let parsed = value.as_str().and_then(parse_semver_lenient);
            if parsed.is_none() {
                issues.push("plugin_version", "Plugin version is invalid");
            }
            parsed
        }
    }
}

/// Validates a `/channel_self` request; DELETE bodies come from [`query_to_body`]
/// and are refused with `invalid_query_parameters` instead of `invalid_json_body`.
/// A POST without `channel` is not refused here: the decision layer answers it.
pub fn parse_channel_self_request(
    body: &Value,
    method: ChannelSelfMethod,
) -> Result<ChannelSelfRequest<'static>, DeviceError> {
    let invalid_code = match method {
        ChannelSelfMethod::Unset => INVALID_QUERY,
        ChannelSelfMethod::Set | ChannelSelfMethod::Get => INVALID_BODY,
    };
    let pre = prelude(body, invalid_code)?;
    let obj = pre.obj;
    let mut issues = Issues::default();

    let app_id = fields::app_id(obj, &mut issues);
    check_device_id(&mut issues, &pre.device_id);
    let version_name_raw = required_str(obj, "version_name", &mut issues);
    issues.max_chars_opt("version_name", version_name_raw, VERSION_NAME_MAX_CHARS);
    let version_name =
        version_name_raw.map(|name| resolve_builtin(name, pre.version_build.as_ref()));
    // May be "" (then `None`); a non-empty one was already coerced by the prelude.
    let version_build_raw = required_str(obj, "version_build", &mut issues);
    issues.max_chars_opt("version_build", version_build_raw, VERSION_BUILD_MAX_CHARS);
    let is_emulator = flag(obj, "is_emulator", false, &mut issues);
    let is_prod = flag(obj, "is_prod", true, &mut issues);
    let platform = fields::platform(obj, &mut issues);
    let default_channel = optional_str(obj, "defaultChannel", &mut issues);
    issues.max_chars_opt("defaultChannel", default_channel, CHANNEL_MAX_CHARS);
    let channel = optional_str(obj, "channel", &mut issues);
    issues.max_chars_opt("channel", channel, CHANNEL_MAX_CHARS);
    let plugin_version_raw = optional_str(obj, "plugin_version", &mut issues);
    issues.max_chars_opt(
        "plugin_version",
        plugin_version_raw,
        PLUGIN_VERSION_MAX_CHARS,
    );
    // Not validated by type, as below, but bounded like everywhere else.
    for (field, max) in [
        ("version_code", VERSION_CODE_MAX_CHARS),
        ("version_os", VERSION_OS_MAX_CHARS),
    ] {
        issues.max_chars_opt(field, obj.get(field).and_then(Value::as_str), max);
    }
    let install_source = optional_str(obj, "install_source", &mut issues);
    if let Some(source) = install_source {
        issues.max_chars("install_source", source.trim(), INSTALL_SOURCE_MAX_CHARS);
    }
    let key_id = optional_str(obj, "key_id", &mut issues);
    if let Some(key_id) = key_id {
        issues.max_chars("key_id", key_id, KEY_ID_MAX_CHARS);
    }
    // Not in the reference's schema: a custom_id of another type is ignored.
    let custom_id = obj.get("custom_id").and_then(Value::as_str).unwrap_or("");
    issues.max_chars("custom_id", custom_id.trim(), CUSTOM_ID_MAX_CHARS);

    match (issues.is_empty(), app_id, version_name, platform) {
        (true, Some(app_id), Some(version_name), Some(platform)) => Ok(ChannelSelfRequest {
            platform,
            device_id: pre.device_id.into(),
            app_id: app_id.to_string().into(),
            custom_id: custom_id.trim().to_string().into(),
            version_build: pre.version_build,
            version_name: version_name.into(),
            plugin_version: plugin_version_raw.and_then(parse_semver_lenient),
            plugin_version_raw: plugin_version_raw.map(|s| s.to_string().into()),
            is_emulator,
            is_prod,
            default_channel: non_blank(default_channel).map(Into::into),
            channel: non_empty(channel).map(Into::into),
            key_id: non_empty(key_id).map(Into::into),
            install_source: normalize_install_source(install_source).map(Into::into),
        }),
        // Every `None` above pushed an issue, so the list is never empty here.
        _ => Err(issues.into_error(invalid_code)),
    }
}
