//! `POST /updates` and `/updates/manifest_size` bodies (reference §1.1), read
//! straight from the body's text into borrowed fields (`body.rs`).

use super::body::{self, into_str, is_absent, str_of, trimmed, DeviceBody, RawBody};
use super::fields::{
    self, check_device_id, Issues, CHANNEL_MAX_CHARS, CUSTOM_ID_MAX_CHARS,
    INSTALL_SOURCE_MAX_CHARS, KEY_ID_MAX_CHARS, PLUGIN_VERSION_MAX_CHARS, VERSION_BUILD_MAX_CHARS,
    VERSION_CODE_MAX_CHARS, VERSION_NAME_MAX_CHARS, VERSION_OS_MAX_CHARS,
};
use super::prelude::typed_prelude;
use super::UpdateRequest;
use crate::error::{DeviceError, DeviceErrorCode};
use crate::stats::body::Field;
use crate::version::parse_semver_lenient;
use serde_json::Value;

const INVALID_BODY: DeviceErrorCode = DeviceErrorCode::InvalidJsonBody;

/// Validates and normalises an update-check body from its raw bytes: not
/// JSON is `invalid_json_parse_body` (as [`super::parse_json`] answers), the
/// rest as [`parse_update_request`]. Strings are borrowed from `bytes`.
pub fn parse_update_bytes(bytes: &[u8]) -> Result<UpdateRequest<'_>, DeviceError> {
    let body = RawBody::from_slice(bytes).map_err(|_| super::invalid_json_parse_body())?;
    validate(body)
}

/// Validates and normalises an already parsed update-check body; every
/// refusal is a 400 with the reference's code and message.
pub fn parse_update_request(body: &Value) -> Result<UpdateRequest<'_>, DeviceError> {
    validate(RawBody::from_value(body))
}

fn validate(body: RawBody<'_>) -> Result<UpdateRequest<'_>, DeviceError> {
    let (body, pre) = typed_prelude(body, INVALID_BODY)?;
    let mut issues = Issues::default();

    let app_id_ok = fields::app_id_field(&body.app_id, &mut issues);
    check_device_id(&mut issues, &pre.device_id);
    let version_name_raw = match &body.version_name {
        Field::Str(name) if !name.is_empty() => Some(name.as_ref()),
        _ => {
            issues.push("version_name", "version_name must be a non-empty string");
            None
        }
    };
    issues.max_chars_opt("version_name", version_name_raw, VERSION_NAME_MAX_CHARS);
    if pre.version_build.is_none() {
        issues.push("version_build", "version_build must be a non-empty string");
    }
    issues.max_chars_opt(
        "version_build",
        str_of(&body.version_build),
        VERSION_BUILD_MAX_CHARS,
    );
    let is_emulator = fields::flag_field(&body.is_emulator, "is_emulator", false, &mut issues);
    let is_prod = fields::flag_field(&body.is_prod, "is_prod", true, &mut issues);
    let platform = fields::platform_field(&body.platform, &mut issues);
    let plugin_version = plugin_version(&body.plugin_version, &mut issues);
    let default_channel =
        fields::optional_str_field(&body.default_channel, "defaultChannel", &mut issues);
    issues.max_chars_opt("defaultChannel", default_channel, CHANNEL_MAX_CHARS);
    let install_source =
        fields::optional_str_field(&body.install_source, "install_source", &mut issues);
    if let Some(source) = install_source {
        issues.max_chars("install_source", source.trim(), INSTALL_SOURCE_MAX_CHARS);
    }
    let key_id = fields::optional_str_field(&body.key_id, "key_id", &mut issues);
    if let Some(key_id) = key_id {
        issues.max_chars("key_id", key_id, KEY_ID_MAX_CHARS);
    }
    let custom_id = fields::optional_str_field(&body.custom_id, "custom_id", &mut issues);
    issues.max_chars_opt("custom_id", custom_id.map(str::trim), CUSTOM_ID_MAX_CHARS);
    let version_code = fields::optional_str_field(&body.version_code, "version_code", &mut issues);
    issues.max_chars_opt("version_code", version_code, VERSION_CODE_MAX_CHARS);
    let version_os = fields::optional_str_field(&body.version_os, "version_os", &mut issues);
    issues.max_chars_opt("version_os", version_os, VERSION_OS_MAX_CHARS);

    let DeviceBody {
        app_id,
        custom_id,
        version_code,
        version_os,
        version_name,
        install_source,
        default_channel,
        key_id,
        ..
    } = body;
    match (
        issues.is_empty() && app_id_ok,
        into_str(app_id),
        into_str(version_name),
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
            version_name: body::resolve_builtin(version_name, Some(&version_build)),
            device_id: pre.device_id,
            app_id,
            custom_id: into_str(custom_id).map(trimmed).unwrap_or_default(),
            version_build,
            version_code: into_str(version_code),
            version_os: into_str(version_os),
            plugin_version,
            is_emulator,
            is_prod,
            install_source: body::install_source(into_str(install_source)),
            default_channel: body::non_blank(into_str(default_channel)),
            key_id: body::non_empty(into_str(key_id)),
        }),
        // Every `None` above pushed an issue, so the list is never empty here.
        _ => Err(issues.into_error(INVALID_BODY)),
    }
}

fn plugin_version(field: &Field<'_>, issues: &mut Issues) -> Option<semver::Version> {
    if is_absent(field) {
        issues.push("plugin_version", "plugin_version is required");
        return None;
    }
    if let Some(text) = str_of(field) {
        if text.chars().count() > PLUGIN_VERSION_MAX_CHARS {
            issues.push(
                "plugin_version",
                fields::too_long_message(PLUGIN_VERSION_MAX_CHARS),
            );
            return None;
        }
    }
    let parsed = str_of(field).and_then(parse_semver_lenient);
    if parsed.is_none() {
        issues.push("plugin_version", "Plugin version is invalid");
    }
    parsed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Platform;
    use crate::request::fields::test_bodies::{patched, removed};
    use serde_json::json;

    const DEVICE: &str = "6e2c0c9a-3f5b-4c8e-9a43-1f0f4b2d7c11";

    fn valid_body() -> Value {
        json!({
            "platform": "android",
            "device_id": DEVICE,
            "app_id": "com.example.app",
            "custom_id": "",
            "version_build": "1.4.0",
            "version_code": "14",
            "version_os": "14",
            "version_name": "1.4.2",
            "plugin_version": "8.51.14",
            "is_emulator": false,
            "is_prod": true,
            "install_source": "google_play",
            "defaultChannel": "beta",
            "key_id": "MIIBCgKCAQEAsdxadXKk"
        })
    }

    fn with(changes: Value) -> Value {
        patched(valid_body(), changes)
    }

    fn without(field: &str) -> Value {
        removed(valid_body(), field)
    }

    fn issue_messages(err: &DeviceError) -> Vec<(String, String)> {
        err.extra["parseResult"]["error"]["issues"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| {
                assert_eq!(i["code"], "custom");
                (
                    i["path"][0].as_str().unwrap().to_string(),
                    i["message"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }

    #[test]
    fn plugin_example_body_parses() {
        let body = valid_body();
        let req = parse_update_request(&body).unwrap();
        assert_eq!(
            req,
            UpdateRequest {
                platform: Platform::Android,
                device_id: DEVICE.into(),
                app_id: "com.example.app".into(),
                custom_id: "".into(),
                version_build: semver::Version::new(1, 4, 0),
                version_code: Some("14".into()),
                version_os: Some("14".into()),
                version_name: "1.4.2".into(),
                plugin_version: semver::Version::new(8, 51, 14),
                is_emulator: false,
                is_prod: true,
                install_source: Some("google_play".into()),
                default_channel: Some("beta".into()),
                key_id: Some("MIIBCgKCAQEAsdxadXKk".into()),
            }
        );
    }

    #[test]
    fn every_string_field_is_bounded() {
        use crate::request::fields::*;
        let limits = [
            ("version_name", VERSION_NAME_MAX_CHARS),
            ("version_code", VERSION_CODE_MAX_CHARS),
            ("version_os", VERSION_OS_MAX_CHARS),
            ("defaultChannel", CHANNEL_MAX_CHARS),
            ("custom_id", CUSTOM_ID_MAX_CHARS),
            ("install_source", INSTALL_SOURCE_MAX_CHARS),
            ("key_id", KEY_ID_MAX_CHARS),
        ];
        for (field, max) in limits {
            parse_update_request(&with(json!({ field: "é".repeat(max) })))
                .unwrap_or_else(|e| panic!("{field} at {max}: {e:?}"));
            let err =
                parse_update_request(&with(json!({ field: "é".repeat(max + 1) }))).unwrap_err();
            assert_eq!(
                (err.status, err.code.as_str()),
                (400, "invalid_json_body"),
                "{field}"
            );
            assert_eq!(
                issue_messages(&err),
                vec![(field.to_string(), too_long_message(max))],
                "{field}"
            );
        }
        let long_build = format!("1.0.0-{}", "a".repeat(VERSION_BUILD_MAX_CHARS));
        let err = parse_update_request(&with(json!({ "version_build": long_build }))).unwrap_err();
        assert_eq!(
            issue_messages(&err),
            vec![(
                "version_build".to_string(),
                too_long_message(VERSION_BUILD_MAX_CHARS)
            )]
        );
        let long_plugin = format!("8.0.0-{}", "a".repeat(PLUGIN_VERSION_MAX_CHARS));
        let err =
            parse_update_request(&with(json!({ "plugin_version": long_plugin }))).unwrap_err();
        assert_eq!(
            issue_messages(&err),
            vec![(
                "plugin_version".to_string(),
                too_long_message(PLUGIN_VERSION_MAX_CHARS)
            )]
        );
    }

    #[test]
    fn early_refusals_have_the_reference_codes() {
        let semver_message = "Native version: invalid_version doesn't follow semver convention, \
             please check https://capgo.app/semver_tester/ to learn more about semver usage in Capgo";
        let cases: Vec<(Value, &str, &str)> = vec![
            (json!({}), "invalid_json_body", "Cannot parse body"),
            (json!([]), "invalid_json_body", "Cannot parse body"),
            (
                json!([valid_body()]),
                "invalid_json_body",
                "Cannot parse body",
            ),
            (json!("text"), "invalid_json_body", "Cannot parse body"),
            (json!(null), "invalid_json_body", "Cannot parse body"),
            (
                json!({"platform": "android"}),
                "missing_device_id",
                "Cannot find device_id",
            ),
            (
                with(json!({"device_id": null})),
                "missing_device_id",
                "Cannot find device_id",
            ),
            (
                with(json!({"device_id": ""})),
                "missing_device_id",
                "Cannot find device_id",
            ),
            (without("app_id"), "missing_app_id", "Cannot find app_id"),
            (
                with(json!({"app_id": ""})),
                "missing_app_id",
                "Cannot find app_id",
            ),
            (
                with(json!({"version_build": "invalid_version"})),
                "semver_error",
                semver_message,
            ),
        ];
        for (body, code, message) in cases {
            let err = parse_update_request(&body).unwrap_err();
            assert_eq!(
                (err.status, err.code.as_str(), err.message.as_str()),
                (400, code, message),
                "{body}"
            );
        }
    }

    #[test]
    fn missing_ids_carry_empty_more_info_and_semver_error_names_the_version() {
        let err = parse_update_request(&without("device_id")).unwrap_err();
        assert_eq!(err.to_json()["moreInfo"], json!({}));
        let err = parse_update_request(&with(json!({"version_build": "1.x"}))).unwrap_err();
        assert_eq!(err.extra.get("version_build"), Some(&json!("1.x")));
    }

    #[test]
    fn non_string_device_id_is_a_400_not_a_panic() {
        for device_id in [
            json!(42),
            json!(true),
            json!(false),
            json!({"id": 1}),
            json!([1]),
        ] {
            let err = parse_update_request(&with(json!({ "device_id": device_id }))).unwrap_err();
            assert_eq!(
                (err.status, err.code.as_str()),
                (400, "invalid_json_body"),
                "{device_id}"
            );
            assert_eq!(
                issue_messages(&err),
                vec![(
                    "device_id".to_string(),
                    "Device ID must be a valid UUID string".to_string()
                )]
            );
        }
    }

    #[test]
    fn schema_failures_list_each_issue() {
        let long_device = format!("{DEVICE}ab");
        let cases: Vec<(Value, Vec<(&str, &str)>)> = vec![
            (
                with(json!({"app_id": "example"})),
                vec![("app_id", "App ID must be a reverse domain string")],
            ),
            (
                with(json!({"app_id": 7})),
                vec![("app_id", "App ID must be a reverse domain string")],
            ),
            (
                with(json!({"device_id": long_device})),
                vec![
                    ("device_id", "String must contain at most 36 character(s)"),
                    ("device_id", "Device ID must be a valid UUID string"),
                ],
            ),
            (
                with(json!({"device_id": "not-a-uuid"})),
                vec![("device_id", "Device ID must be a valid UUID string")],
            ),
            (
                with(json!({"platform": "windows"})),
                vec![("platform", "Platform is not supported or invalid")],
            ),
            (
                without("platform"),
                vec![("platform", "Platform is not supported or invalid")],
            ),
            (
                without("plugin_version"),
                vec![("plugin_version", "plugin_version is required")],
            ),
            (
                with(json!({"plugin_version": "invalid_version"})),
                vec![("plugin_version", "Plugin version is invalid")],
            ),
            (
                with(json!({"plugin_version": 8})),
                vec![("plugin_version", "Plugin version is invalid")],
            ),
            (
                with(json!({"key_id": "k".repeat(26)})),
                vec![("key_id", "String must contain at most 20 character(s)")],
            ),
            (
                with(json!({"install_source": "s".repeat(65)})),
                vec![(
                    "install_source",
                    "String must contain at most 64 character(s)",
                )],
            ),
            (
                with(json!({"version_name": ""})),
                vec![("version_name", "version_name must be a non-empty string")],
            ),
            (
                without("version_name"),
                vec![("version_name", "version_name must be a non-empty string")],
            ),
            (
                without("version_build"),
                vec![("version_build", "version_build must be a non-empty string")],
            ),
            (
                with(json!({"version_build": ""})),
                vec![("version_build", "version_build must be a non-empty string")],
            ),
            (
                with(json!({"version_build": 1})),
                vec![("version_build", "version_build must be a non-empty string")],
            ),
            (
                with(json!({"is_emulator": "false"})),
                vec![("is_emulator", "is_emulator must be a boolean")],
            ),
            (
                with(json!({"is_prod": 1})),
                vec![("is_prod", "is_prod must be a boolean")],
            ),
            (
                with(json!({"defaultChannel": 3})),
                vec![("defaultChannel", "defaultChannel must be a string")],
            ),
            (
                with(json!({"custom_id": {}})),
                vec![("custom_id", "custom_id must be a string")],
            ),
            (
                with(json!({"version_code": 14})),
                vec![("version_code", "version_code must be a string")],
            ),
            (
                with(json!({"version_os": 14})),
                vec![("version_os", "version_os must be a string")],
            ),
            (
                with(json!({"app_id": "nodot", "platform": "web", "is_prod": "yes"})),
                vec![
                    ("app_id", "App ID must be a reverse domain string"),
                    ("is_prod", "is_prod must be a boolean"),
                    ("platform", "Platform is not supported or invalid"),
                ],
            ),
        ];
        for (body, expected) in cases {
            let err = parse_update_request(&body).unwrap_err();
            assert_eq!(
                (err.status, err.code.as_str(), err.message.as_str()),
                (400, "invalid_json_body", "Cannot parse body"),
                "{body}"
            );
            let expected: Vec<(String, String)> = expected
                .into_iter()
                .map(|(f, m)| (f.to_string(), m.to_string()))
                .collect();
            assert_eq!(issue_messages(&err), expected, "{body}");
        }
    }

    #[test]
    fn normalisations() {
        let body = with(json!({
            "device_id": DEVICE.to_uppercase(),
            "version_build": "v1.2",
            "version_name": "builtin",
            "plugin_version": "v5.2.0",
            "custom_id": "  user-7  ",
            "install_source": "  TestFlight  ",
            "defaultChannel": "   ",
            "key_id": "",
            "is_emulator": null,
            "is_prod": null,
            "platform": "electron",
            "unknown_field": [1, 2, 3],
        }));
        let req = parse_update_request(&body).unwrap();
        assert_eq!(req.device_id, DEVICE);
        assert_eq!(req.version_build, semver::Version::new(1, 2, 0));
        assert_eq!(req.version_name, "1.2.0");
        assert_eq!(req.plugin_version, semver::Version::new(5, 2, 0));
        assert_eq!(req.custom_id, "user-7");
        assert_eq!(req.install_source.as_deref(), Some("testflight"));
        assert_eq!(req.default_channel, None);
        assert_eq!(req.key_id, None);
        assert!(!req.is_emulator);
        assert!(req.is_prod);
        assert_eq!(req.platform, Platform::Electron);
    }

    #[test]
    fn optional_fields_default_when_absent() {
        let mut body = valid_body();
        let obj = body.as_object_mut().unwrap();
        for field in [
            "custom_id",
            "version_code",
            "version_os",
            "install_source",
            "defaultChannel",
            "key_id",
            "is_emulator",
            "is_prod",
        ] {
            obj.remove(field);
        }
        let req = parse_update_request(&body).unwrap();
        assert_eq!(req.custom_id, "");
        assert_eq!(req.version_code, None);
        assert_eq!(req.version_os, None);
        assert_eq!(req.install_source, None);
        assert_eq!(req.default_channel, None);
        assert_eq!(req.key_id, None);
        assert!(!req.is_emulator);
        assert!(req.is_prod);
    }

    #[test]
    fn builtin_version_build_normalises_to_zero() {
        let body = with(json!({"version_build": "builtin", "version_name": "builtin"}));
        let req = parse_update_request(&body).unwrap();
        assert_eq!(req.version_build, semver::Version::new(0, 0, 0));
        assert_eq!(req.version_name, "0.0.0");
    }
}
