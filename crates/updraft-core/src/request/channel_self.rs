//! `/channel_self` requests (reference §3.1, §3.5): POST/PUT JSON bodies,
//! DELETE and GET query strings.

use super::body::{self, into_str, str_of, trimmed, DeviceBody, RawBody};
use super::fields::{
    self, check_device_id, flag, optional_str, Issues, CHANNEL_MAX_CHARS, CUSTOM_ID_MAX_CHARS,
    INSTALL_SOURCE_MAX_CHARS, KEY_ID_MAX_CHARS, PLUGIN_VERSION_MAX_CHARS, VERSION_BUILD_MAX_CHARS,
    VERSION_CODE_MAX_CHARS, VERSION_NAME_MAX_CHARS, VERSION_OS_MAX_CHARS,
};
use super::prelude::{coerce_version_build, typed_prelude};
use super::{ChannelListQuery, ChannelSelfMethod, ChannelSelfRequest};
use crate::error::{DeviceError, DeviceErrorCode};
use crate::version::parse_semver_lenient;
use serde_json::{Map, Value};

const INVALID_BODY: DeviceErrorCode = DeviceErrorCode::InvalidJsonBody;
const INVALID_QUERY: DeviceErrorCode = DeviceErrorCode::InvalidQueryParameters;
const BOOLEAN_QUERY_FIELDS: [(&str, bool); 2] = [("is_emulator", false), ("is_prod", true)];

/// Validates a `/channel_self` request; DELETE bodies come from [`query_to_body`]
/// and are refused with `invalid_query_parameters` instead of `invalid_json_body`.
/// A POST without `channel` is not refused here: the decision layer answers it.
pub fn parse_channel_self_request(
    body: &Value,
    method: ChannelSelfMethod,
) -> Result<ChannelSelfRequest<'_>, DeviceError> {
    validate(RawBody::from_value(body), method)
}

/// [`parse_channel_self_request`] of a POST or PUT body's raw bytes: not JSON
/// is `invalid_json_parse_body` (as [`super::parse_json`] answers). Strings
/// are borrowed from `bytes`.
pub fn parse_channel_self_bytes(
    bytes: &[u8],
    method: ChannelSelfMethod,
) -> Result<ChannelSelfRequest<'_>, DeviceError> {
    let body = RawBody::from_slice(bytes).map_err(|_| super::invalid_json_parse_body())?;
    validate(body, method)
}

fn validate(
    body: RawBody<'_>,
    method: ChannelSelfMethod,
) -> Result<ChannelSelfRequest<'_>, DeviceError> {
    let invalid_code = match method {
        ChannelSelfMethod::Unset => INVALID_QUERY,
        ChannelSelfMethod::Set | ChannelSelfMethod::Get => INVALID_BODY,
    };
    let (body, pre) = typed_prelude(body, invalid_code)?;
    let mut issues = Issues::default();

    let app_id_ok = fields::app_id_field(&body.app_id, &mut issues);
    check_device_id(&mut issues, &pre.device_id);
    let version_name = fields::required_str_field(&body.version_name, "version_name", &mut issues);
    issues.max_chars_opt("version_name", version_name, VERSION_NAME_MAX_CHARS);
    let version_name_ok = version_name.is_some();
    // May be "" (then `None`); a non-empty one was already coerced by the prelude.
    let version_build =
        fields::required_str_field(&body.version_build, "version_build", &mut issues);
    issues.max_chars_opt("version_build", version_build, VERSION_BUILD_MAX_CHARS);
    let is_emulator = fields::flag_field(&body.is_emulator, "is_emulator", false, &mut issues);
    let is_prod = fields::flag_field(&body.is_prod, "is_prod", true, &mut issues);
    let platform = fields::platform_field(&body.platform, &mut issues);
    let default_channel =
        fields::optional_str_field(&body.default_channel, "defaultChannel", &mut issues);
    issues.max_chars_opt("defaultChannel", default_channel, CHANNEL_MAX_CHARS);
    let channel = fields::optional_str_field(&body.channel, "channel", &mut issues);
    issues.max_chars_opt("channel", channel, CHANNEL_MAX_CHARS);
    let plugin_version_raw =
        fields::optional_str_field(&body.plugin_version, "plugin_version", &mut issues);
    issues.max_chars_opt(
        "plugin_version",
        plugin_version_raw,
        PLUGIN_VERSION_MAX_CHARS,
    );
    // Not validated by type, as below, but bounded like everywhere else.
    issues.max_chars_opt(
        "version_code",
        str_of(&body.version_code),
        VERSION_CODE_MAX_CHARS,
    );
    issues.max_chars_opt("version_os", str_of(&body.version_os), VERSION_OS_MAX_CHARS);
    let install_source =
        fields::optional_str_field(&body.install_source, "install_source", &mut issues);
    if let Some(source) = install_source {
        issues.max_chars("install_source", source.trim(), INSTALL_SOURCE_MAX_CHARS);
    }
    let key_id = fields::optional_str_field(&body.key_id, "key_id", &mut issues);
    if let Some(key_id) = key_id {
        issues.max_chars("key_id", key_id, KEY_ID_MAX_CHARS);
    }
    // Not in the reference's schema: a custom_id of another type is ignored.
    let custom_id = str_of(&body.custom_id).unwrap_or("");
    issues.max_chars("custom_id", custom_id.trim(), CUSTOM_ID_MAX_CHARS);
    let plugin_version = plugin_version_raw.and_then(parse_semver_lenient);

    let DeviceBody {
        app_id,
        custom_id,
        version_name,
        plugin_version: plugin_version_raw,
        install_source,
        default_channel,
        key_id,
        channel,
        ..
    } = body;
    match (
        issues.is_empty() && app_id_ok && version_name_ok,
        into_str(app_id),
        into_str(version_name),
        platform,
    ) {
        (true, Some(app_id), Some(version_name), Some(platform)) => Ok(ChannelSelfRequest {
            platform,
            device_id: pre.device_id,
            app_id,
            custom_id: into_str(custom_id).map(trimmed).unwrap_or_default(),
            version_name: body::resolve_builtin(version_name, pre.version_build.as_ref()),
            version_build: pre.version_build,
            plugin_version,
            plugin_version_raw: into_str(plugin_version_raw),
            is_emulator,
            is_prod,
            default_channel: body::non_blank(into_str(default_channel)),
            channel: body::non_empty(into_str(channel)),
            key_id: body::non_empty(into_str(key_id)),
            install_source: body::install_source(into_str(install_source)),
        }),
        // Every `None` above pushed an issue, so the list is never empty here.
        _ => Err(issues.into_error(invalid_code)),
    }
}

/// DELETE and GET /channel_self carry the info object in the query string: turn decoded
/// (key, value) pairs into a JSON object; "true"/"false" become booleans for is_emulator/is_prod,
/// a missing is_emulator means false and a missing is_prod means true.
///
/// Other values of those two stay strings, so the schema refuses them. A
/// repeated key keeps its last value. `device_id` is lower-cased. No pairs
/// at all give an empty object, which the parsers refuse as an empty body.
pub fn query_to_body(pairs: &[(String, String)]) -> Value {
    let mut obj = Map::new();
    if pairs.is_empty() {
        return Value::Object(obj);
    }
    for (key, value) in pairs {
        let json_value = if key == "device_id" {
            Value::String(value.to_lowercase())
        } else if BOOLEAN_QUERY_FIELDS.iter().any(|(name, _)| name == key) {
            match value.as_str() {
                "true" => Value::Bool(true),
                "false" => Value::Bool(false),
                _ => Value::String(value.clone()),
            }
        } else {
            Value::String(value.clone())
        };
        obj.insert(key.clone(), json_value);
    }
    for (name, default) in BOOLEAN_QUERY_FIELDS {
        obj.entry(name).or_insert(Value::Bool(default));
    }
    Value::Object(obj)
}

/// `GET /channel_self?…` (list the channels a device may pick), reference §3.5.
pub fn parse_channel_list_query(
    pairs: &[(String, String)],
) -> Result<ChannelListQuery, DeviceError> {
    if pairs.is_empty() {
        return Err(DeviceError::bad_request(
            INVALID_QUERY,
            "Invalid query parameters",
        ));
    }
    let body = query_to_body(pairs);
    let Some(obj) = body.as_object() else {
        return Err(DeviceError::bad_request(
            INVALID_QUERY,
            "Invalid query parameters",
        ));
    };
    if fields::is_missing(obj, "app_id") {
        return Err(DeviceError::bad_request(
            DeviceErrorCode::MissingAppId,
            "Cannot find app_id",
        ));
    }
    coerce_version_build(obj.get("version_build"))?;

    let mut issues = Issues::default();
    let app_id = fields::app_id(obj, &mut issues);
    let platform = fields::platform(obj, &mut issues);
    let is_emulator = flag(obj, "is_emulator", false, &mut issues);
    let is_prod = flag(obj, "is_prod", true, &mut issues);
    if let Some(key_id) = optional_str(obj, "key_id", &mut issues) {
        issues.max_chars("key_id", key_id, KEY_ID_MAX_CHARS);
    }
    let device_id = obj
        .get("device_id")
        .and_then(Value::as_str)
        .filter(|id| !id.is_empty())
        .map(str::to_string);
    issues.max_chars_opt(
        "device_id",
        device_id.as_deref(),
        fields::DEVICE_ID_MAX_CHARS,
    );

    match (issues.is_empty(), app_id, platform) {
        (true, Some(app_id), Some(platform)) => Ok(ChannelListQuery {
            app_id: app_id.to_string(),
            platform,
            is_emulator,
            is_prod,
            device_id,
        }),
        _ => Err(issues.into_error(INVALID_QUERY)),
    }
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
            "platform": "ios",
            "device_id": DEVICE,
            "app_id": "com.example.app",
            "custom_id": "",
            "version_build": "1.4.0",
            "version_code": "14",
            "version_os": "17.5",
            "version_name": "1.4.2",
            "plugin_version": "8.51.14",
            "is_emulator": false,
            "is_prod": true,
            "defaultChannel": "",
            "channel": "beta"
        })
    }

    fn with(changes: Value) -> Value {
        patched(valid_body(), changes)
    }

    fn without(field: &str) -> Value {
        removed(valid_body(), field)
    }

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn issue_paths(err: &DeviceError) -> Vec<String> {
        err.extra["parseResult"]["error"]["issues"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["path"][0].as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn set_body_parses() {
        let body = valid_body();
        let req = parse_channel_self_request(&body, ChannelSelfMethod::Set).unwrap();
        assert_eq!(
            req,
            ChannelSelfRequest {
                platform: Platform::Ios,
                device_id: DEVICE.into(),
                app_id: "com.example.app".into(),
                custom_id: "".into(),
                version_build: Some(semver::Version::new(1, 4, 0)),
                version_name: "1.4.2".into(),
                plugin_version: Some(semver::Version::new(8, 51, 14)),
                plugin_version_raw: Some("8.51.14".into()),
                is_emulator: false,
                is_prod: true,
                default_channel: None,
                channel: Some("beta".into()),
                key_id: None,
                install_source: None,
            }
        );
    }

    #[test]
    fn lenient_fields() {
        type Check = fn(&ChannelSelfRequest) -> bool;
        let cases: Vec<(Value, Check, &str)> = vec![
            (
                with(json!({"version_name": ""})),
                |r| r.version_name.is_empty(),
                "empty version_name",
            ),
            (
                with(json!({"version_build": ""})),
                |r| r.version_build.is_none(),
                "empty version_build",
            ),
            (
                with(json!({"version_build": "", "version_name": "builtin"})),
                |r| r.version_name == "builtin",
                "builtin kept without version_build",
            ),
            (
                with(json!({"version_build": "2", "version_name": "builtin"})),
                |r| {
                    r.version_name == "2.0.0"
                        && r.version_build == Some(semver::Version::new(2, 0, 0))
                },
                "builtin replaced",
            ),
            (
                with(json!({"plugin_version": "banana"})),
                |r| r.plugin_version.is_none() && r.plugin_version_raw.as_deref() == Some("banana"),
                "unparsable plugin_version kept raw",
            ),
            (
                without("plugin_version"),
                |r| r.plugin_version.is_none() && r.plugin_version_raw.is_none(),
                "absent plugin_version",
            ),
            (
                with(json!({"channel": ""})),
                |r| r.channel.is_none(),
                "empty channel",
            ),
            (
                without("channel"),
                |r| r.channel.is_none(),
                "absent channel",
            ),
            (
                with(json!({"defaultChannel": "prod"})),
                |r| r.default_channel.as_deref() == Some("prod"),
                "defaultChannel",
            ),
            (
                with(
                    json!({"custom_id": " c1 ", "install_source": " App_Store ", "key_id": "abcd"}),
                ),
                |r| {
                    r.custom_id == "c1"
                        && r.install_source.as_deref() == Some("app_store")
                        && r.key_id.as_deref() == Some("abcd")
                },
                "metadata fields normalised",
            ),
            (
                with(json!({"custom_id": 5})),
                |r| r.custom_id.is_empty(),
                "non-string custom_id ignored",
            ),
            (
                without("is_prod"),
                |r| r.is_prod && !r.is_emulator,
                "flag defaults",
            ),
        ];
        for (body, check, what) in cases {
            let req = parse_channel_self_request(&body, ChannelSelfMethod::Get).unwrap();
            assert!(check(&req), "{what}: {req:?}");
        }
    }

    #[test]
    fn refusals() {
        let cases: Vec<(Value, ChannelSelfMethod, &str, Vec<&str>)> = vec![
            (
                json!({}),
                ChannelSelfMethod::Set,
                "invalid_json_body",
                vec![],
            ),
            (
                json!({}),
                ChannelSelfMethod::Unset,
                "invalid_query_parameters",
                vec![],
            ),
            (
                without("device_id"),
                ChannelSelfMethod::Set,
                "missing_device_id",
                vec![],
            ),
            (
                with(json!({"device_id": 1})),
                ChannelSelfMethod::Get,
                "invalid_json_body",
                vec!["device_id"],
            ),
            (
                without("app_id"),
                ChannelSelfMethod::Get,
                "missing_app_id",
                vec![],
            ),
            (
                with(json!({"version_build": "a.b"})),
                ChannelSelfMethod::Set,
                "semver_error",
                vec![],
            ),
            (
                without("version_name"),
                ChannelSelfMethod::Set,
                "invalid_json_body",
                vec!["version_name"],
            ),
            (
                without("version_build"),
                ChannelSelfMethod::Set,
                "invalid_json_body",
                vec!["version_build"],
            ),
            (
                with(json!({"platform": "web"})),
                ChannelSelfMethod::Unset,
                "invalid_query_parameters",
                vec!["platform"],
            ),
            (
                with(json!({"channel": 3})),
                ChannelSelfMethod::Set,
                "invalid_json_body",
                vec!["channel"],
            ),
            (
                with(json!({"plugin_version": 8})),
                ChannelSelfMethod::Set,
                "invalid_json_body",
                vec!["plugin_version"],
            ),
            (
                with(json!({"key_id": "k".repeat(21)})),
                ChannelSelfMethod::Get,
                "invalid_json_body",
                vec!["key_id"],
            ),
            (
                with(json!({"install_source": "s".repeat(65)})),
                ChannelSelfMethod::Get,
                "invalid_json_body",
                vec!["install_source"],
            ),
            (
                with(json!({"app_id": "x", "device_id": "nope", "is_emulator": "no"})),
                ChannelSelfMethod::Set,
                "invalid_json_body",
                vec!["app_id", "device_id", "is_emulator"],
            ),
        ];
        for (body, method, code, paths) in cases {
            let err = parse_channel_self_request(&body, method).unwrap_err();
            assert_eq!((err.status, err.code.as_str()), (400, code), "{body}");
            if !paths.is_empty() {
                assert_eq!(issue_paths(&err), paths, "{body}");
            }
        }
    }

    #[test]
    fn every_string_field_is_bounded() {
        use crate::request::fields::*;
        let limits = [
            ("version_name", VERSION_NAME_MAX_CHARS),
            ("version_code", VERSION_CODE_MAX_CHARS),
            ("version_os", VERSION_OS_MAX_CHARS),
            ("plugin_version", PLUGIN_VERSION_MAX_CHARS),
            ("defaultChannel", CHANNEL_MAX_CHARS),
            ("channel", CHANNEL_MAX_CHARS),
            ("custom_id", CUSTOM_ID_MAX_CHARS),
            ("install_source", INSTALL_SOURCE_MAX_CHARS),
            ("key_id", KEY_ID_MAX_CHARS),
        ];
        for (field, max) in limits {
            for method in [ChannelSelfMethod::Set, ChannelSelfMethod::Get] {
                parse_channel_self_request(&with(json!({ field: "é".repeat(max) })), method)
                    .unwrap_or_else(|e| panic!("{field} at {max}: {e:?}"));
                let body = with(json!({ field: "é".repeat(max + 1) }));
                let err = parse_channel_self_request(&body, method).unwrap_err();
                assert_eq!(
                    (err.status, err.code.as_str()),
                    (400, "invalid_json_body"),
                    "{field}"
                );
                assert_eq!(issue_paths(&err), vec![field.to_string()], "{field}");
                assert_eq!(
                    err.extra["parseResult"]["error"]["issues"][0]["message"],
                    too_long_message(max)
                );
            }
        }
        let long_device = "a".repeat(DEVICE_ID_MAX_CHARS + 1);
        let query = pairs(&[
            ("app_id", "com.example.app"),
            ("platform", "ios"),
            ("device_id", &long_device),
        ]);
        let err = parse_channel_list_query(&query).unwrap_err();
        assert_eq!(err.code.as_str(), "invalid_query_parameters");
        assert_eq!(issue_paths(&err), vec!["device_id".to_string()]);
    }

    #[test]
    fn query_to_body_converts_flags_and_applies_defaults() {
        let cases: Vec<(Vec<(String, String)>, Value)> = vec![
            (pairs(&[]), json!({})),
            (
                pairs(&[("app_id", "com.a.b"), ("device_id", "ABC")]),
                json!({"app_id": "com.a.b", "device_id": "abc", "is_emulator": false, "is_prod": true}),
            ),
            (
                pairs(&[("is_emulator", "true"), ("is_prod", "false")]),
                json!({"is_emulator": true, "is_prod": false}),
            ),
            (
                pairs(&[("is_emulator", "1"), ("version_name", "1.0.0")]),
                json!({"is_emulator": "1", "is_prod": true, "version_name": "1.0.0"}),
            ),
            (
                pairs(&[("channel", "a"), ("channel", "b")]),
                json!({"channel": "b", "is_emulator": false, "is_prod": true}),
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(query_to_body(&input), expected, "{input:?}");
        }
    }

    #[test]
    fn delete_query_parses_through_query_to_body() {
        let body = query_to_body(&pairs(&[
            ("app_id", "com.example.app"),
            ("device_id", &DEVICE.to_uppercase()),
            ("platform", "android"),
            ("version_name", "1.0.0"),
            ("version_build", "1.0"),
            ("plugin_version", "5.10.0"),
        ]));
        let req = parse_channel_self_request(&body, ChannelSelfMethod::Unset).unwrap();
        assert_eq!(req.device_id, DEVICE);
        assert_eq!(req.version_build, Some(semver::Version::new(1, 0, 0)));
        assert_eq!(req.plugin_version, Some(semver::Version::new(5, 10, 0)));
        assert!(!req.is_emulator);
        assert!(req.is_prod);
        assert_eq!(req.platform, Platform::Android);

        let bad_flag = query_to_body(&pairs(&[
            ("app_id", "com.example.app"),
            ("device_id", DEVICE),
            ("platform", "android"),
            ("version_name", "1.0.0"),
            ("version_build", "1.0.0"),
            ("is_prod", "yes"),
        ]));
        let err = parse_channel_self_request(&bad_flag, ChannelSelfMethod::Unset).unwrap_err();
        assert_eq!(err.code.as_str(), "invalid_query_parameters");
        assert_eq!(issue_paths(&err), vec!["is_prod"]);
    }

    #[test]
    fn list_query_parses() {
        let query = parse_channel_list_query(&pairs(&[
            ("app_id", "com.example.app"),
            ("platform", "ios"),
            ("is_emulator", "true"),
            ("is_prod", "false"),
            ("device_id", "ABCDEF"),
            ("version_build", "1.2"),
        ]))
        .unwrap();
        assert_eq!(
            query,
            ChannelListQuery {
                app_id: "com.example.app".into(),
                platform: Platform::Ios,
                is_emulator: true,
                is_prod: false,
                device_id: Some("abcdef".into()),
            }
        );
        let defaults = parse_channel_list_query(&pairs(&[
            ("app_id", "com.example.app"),
            ("platform", "android"),
        ]))
        .unwrap();
        assert_eq!(
            (defaults.is_emulator, defaults.is_prod, defaults.device_id),
            (false, true, None)
        );
    }

    #[test]
    fn list_query_refusals() {
        let cases: Vec<(Vec<(String, String)>, &str)> = vec![
            (pairs(&[]), "invalid_query_parameters"),
            (pairs(&[("platform", "ios")]), "missing_app_id"),
            (
                pairs(&[("app_id", ""), ("platform", "ios")]),
                "missing_app_id",
            ),
            (
                pairs(&[("app_id", "nodot"), ("platform", "ios")]),
                "invalid_query_parameters",
            ),
            (
                pairs(&[("app_id", "com.a.b"), ("platform", "web")]),
                "invalid_query_parameters",
            ),
            (pairs(&[("app_id", "com.a.b")]), "invalid_query_parameters"),
            (
                pairs(&[
                    ("app_id", "com.a.b"),
                    ("platform", "ios"),
                    ("is_prod", "maybe"),
                ]),
                "invalid_query_parameters",
            ),
            (
                pairs(&[
                    ("app_id", "com.a.b"),
                    ("platform", "ios"),
                    ("key_id", &"k".repeat(21)),
                ]),
                "invalid_query_parameters",
            ),
            (
                pairs(&[
                    ("app_id", "com.a.b"),
                    ("platform", "ios"),
                    ("version_build", "x.y"),
                ]),
                "semver_error",
            ),
        ];
        for (input, code) in cases {
            let err = parse_channel_list_query(&input).unwrap_err();
            assert_eq!((err.status, err.code.as_str()), (400, code), "{input:?}");
        }
    }
}
