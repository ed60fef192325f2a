//! Differential tests: the typed `/updates` and `/channel_self` parsers
//! against the `Value`-based ones they replaced (`legacy_oracle.rs`), over a
//! generated corpus of every field with every JSON type, empty, blank,
//! escaped, unicode, at and past its length limit, duplicated, missing, and
//! whole bodies that are empty, not objects, truncated, nested too deep or
//! followed by garbage. Both must give the same request or the same error
//! (status, code, message and every issue).

use super::fields::*;
use super::legacy_oracle;
use super::{
    parse_channel_self_bytes, parse_channel_self_request, parse_json, parse_update_bytes,
    parse_update_request, query_to_body, ChannelSelfMethod,
};
use serde_json::{json, Map, Value};
use std::collections::BTreeSet;

const DEVICE: &str = "6e2c0c9a-3f5b-4c8e-9a43-1f0f4b2d7c11";

/// The fields the parsers read, and one they do not.
const FIELDS: &[&str] = &[
    "platform",
    "device_id",
    "app_id",
    "custom_id",
    "version_build",
    "version_code",
    "version_os",
    "version_name",
    "plugin_version",
    "is_emulator",
    "is_prod",
    "install_source",
    "defaultChannel",
    "key_id",
    "channel",
    "unknown_field",
];

fn update_base() -> Map<String, Value> {
    let Value::Object(map) = json!({
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
    }) else {
        unreachable!()
    };
    map
}

fn channel_base() -> Map<String, Value> {
    let mut map = update_base();
    map.insert("channel".into(), json!("beta"));
    map.insert("defaultChannel".into(), json!(""));
    map
}

/// JSON texts of values every field is tried with.
fn values() -> Vec<String> {
    let mut texts: Vec<String> = [
        "null",
        "true",
        "false",
        "0",
        "1",
        "-1",
        "8",
        "1.5",
        "-0",
        "1e3",
        "18446744073709551616",
        "[]",
        "[1,\"a\"]",
        "{}",
        "{\"a\":{\"b\":[null]}}",
        "[[[[[[[[[[1]]]]]]]]]]",
        "\"\"",
        "\" \"",
        "\"  x  \"",
        "\"\\t\"",
        "\"android\"",
        "\"ios\"",
        "\"electron\"",
        "\"web\"",
        "\"ANDROID\"",
        "\"builtin\"",
        "\"unknown\"",
        "\"1\"",
        "\"1.2\"",
        "\"v1.2\"",
        "\"V2\"",
        "\"1.2.3.4\"",
        "\"01.2.3\"",
        "\"1.0.0-rc.1+build.5\"",
        "\"1.0.0-\"",
        "\"invalid_version\"",
        "\"= 1.2.3\"",
        "\" 8.51.14 \"",
        "\"8.51.14\"",
        "\"4.0.0\"",
        "\"5.10.0\"",
        "\"com.example.app\"",
        "\"com.example.other\"",
        "\"nodot\"",
        "\"com.\\u00e9x.app\"",
        "\"com\\u002eexample\\u002eapp\"",
        "\"\\\"quoted\\\"\"",
        "\"back\\\\slash\"",
        "\"\\ud83d\\ude00\"",
        "\"😀\"",
        "\"  TestFlight  \"",
        "\"GOOGLE_PLAY\"",
        "\"beta\"",
        "\"production\"",
        "\"   \"",
        "\"É\"",
        "\"ǅ\"",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let device = [
        DEVICE.to_string(),
        DEVICE.to_uppercase(),
        format!("{DEVICE}ab"),
        DEVICE.replace('-', ""),
        format!("{{{DEVICE}}}"),
        "not-a-uuid".to_string(),
        DEVICE.replacen('6', "\\u0036", 1),
        DEVICE.replacen('e', "\\u0045", 1),
    ];
    texts.extend(device.iter().map(|d| format!("\"{d}\"")));
    for max in [
        DEVICE_ID_MAX_CHARS,
        INSTALL_SOURCE_MAX_CHARS,
        KEY_ID_MAX_CHARS,
        CUSTOM_ID_MAX_CHARS,
        PLUGIN_VERSION_MAX_CHARS,
        VERSION_OS_MAX_CHARS,
        VERSION_BUILD_MAX_CHARS,
        CHANNEL_MAX_CHARS,
        VERSION_NAME_MAX_CHARS,
        VERSION_CODE_MAX_CHARS,
    ] {
        for n in [max, max + 1] {
            texts.push(format!("\"{}\"", "é".repeat(n)));
            texts.push(format!("\"{}\"", "a".repeat(n)));
            texts.push(format!("\" {} \"", "b".repeat(n - 1)));
            texts.push(format!("\"1.0.0-{}\"", "a".repeat(n.saturating_sub(6))));
        }
    }
    texts
}

/// `base` as JSON text with `field` left out and `extra` (raw `"key":value`
/// pairs) appended, in that order.
fn body_text(base: &Map<String, Value>, field: &str, extra: &[String]) -> String {
    let mut parts: Vec<String> = base
        .iter()
        .filter(|(key, _)| key.as_str() != field)
        .map(|(key, value)| format!("{}:{}", Value::String(key.clone()), value))
        .collect();
    parts.extend(extra.iter().cloned());
    format!("{{{}}}", parts.join(","))
}

/// Every body of the corpus, built on `base`.
fn corpus(base: &Map<String, Value>) -> Vec<Vec<u8>> {
    let valid = body_text(base, "", &[]);
    let values = values();
    let mut bodies: Vec<String> = vec![valid.clone()];
    for field in FIELDS {
        let key = Value::String(field.to_string());
        let original = base.get(*field).map(Value::to_string);
        bodies.push(body_text(base, field, &[]));
        for value in &values {
            bodies.push(body_text(base, field, &[format!("{key}:{value}")]));
            // Duplicate keys: the last one wins.
            if let Some(original) = &original {
                bodies.push(body_text(base, "", &[format!("{key}:{value}")]));
                bodies.push(body_text(
                    base,
                    field,
                    &[format!("{key}:{value}"), format!("{key}:{original}")],
                ));
            }
        }
        // The key itself escaped.
        let escaped = field.replacen('_', "\\u005f", 1);
        if let Some(original) = &original {
            bodies.push(body_text(
                base,
                field,
                &[format!("\"{escaped}\":{original}")],
            ));
        }
    }
    // Pairs of fields broken at once: issues are listed in the parser's order.
    for (i, a) in FIELDS.iter().enumerate() {
        for b in &FIELDS[i + 1..] {
            bodies.push(body_text(
                base,
                a,
                &[format!("\"{b}\":7"), format!("\"{a}\":[true]")],
            ));
        }
    }
    // Only one field.
    for field in FIELDS {
        if let Some(value) = base.get(*field) {
            bodies.push(format!("{{\"{field}\":{value}}}"));
        }
    }
    let depth = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
    for n in [100, 126, 127, 128, 129, 200] {
        bodies.push(body_text(
            base,
            "",
            &[format!("\"unknown_field\":{}", depth(n))],
        ));
        bodies.push(depth(n));
    }
    for whole in [
        "",
        " ",
        "null",
        "true",
        "1",
        "\"x\"",
        "[]",
        "[{}]",
        "{}",
        "{ }",
        "{\"a\":1}",
        "{\"\":null}",
        "{\"device_id\":null}",
        "{,}",
        "{\"a\"}",
        "{\"a\":}",
        "nul",
        "{}{}",
        "[1,]",
    ] {
        bodies.push(whole.to_string());
    }
    bodies.push(format!("[{valid}]"));
    bodies.push(format!("{valid} "));
    bodies.push(format!("\n\t {valid}\r\n"));
    bodies.push(format!("{valid} x"));
    bodies.push(format!("{valid}}}"));
    bodies.push(format!("{valid}{valid}"));
    bodies.push(format!("{valid},"));
    bodies.push(valid.replacen('{', "{ ", 1).replace(',', " ,\n "));
    // Every truncation of a valid body.
    for end in 0..valid.len() {
        if valid.is_char_boundary(end) {
            bodies.push(valid[..end].to_string());
        }
    }
    let mut bytes: Vec<Vec<u8>> = bodies.into_iter().map(String::into_bytes).collect();
    // Not UTF-8, a BOM, a raw control character and a lone surrogate.
    let mut bom = vec![0xef, 0xbb, 0xbf];
    bom.extend(valid.as_bytes());
    bytes.push(bom);
    bytes.push(valid.replacen("android", "andr\u{1}oid", 1).into_bytes());
    bytes.push(valid.replacen("1.4.2", "1.4.\\ud800", 1).into_bytes());
    let mut invalid = valid.clone().into_bytes();
    if let Some(at) = valid.find("1.4.2") {
        invalid[at] = 0xff;
    }
    bytes.push(invalid);
    bytes
}

/// Something of each answer, to show the corpus reaches every branch.
fn outcome<T>(result: &Result<T, crate::error::DeviceError>) -> String {
    match result {
        Ok(_) => "ok".to_string(),
        Err(err) => {
            let issues = err.extra.get("parseResult").map(|p| {
                p["error"]["issues"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|issue| issue["message"].as_str().unwrap_or_default().to_string())
                    .collect::<Vec<_>>()
                    .join("|")
            });
            format!("{} {}", err.code.as_str(), issues.unwrap_or_default())
        }
    }
}

#[test]
fn typed_update_parser_agrees_with_the_value_parser_on_every_body() {
    let corpus = corpus(&update_base());
    let mut outcomes = BTreeSet::new();
    for bytes in &corpus {
        let legacy = parse_json(bytes).and_then(|body| legacy_oracle::parse_update_request(&body));
        let typed = parse_update_bytes(bytes);
        let text = String::from_utf8_lossy(bytes);
        assert_eq!(typed, legacy, "{text}");
        if let Ok(body) = parse_json(bytes) {
            assert_eq!(parse_update_request(&body), legacy, "from a Value: {text}");
        }
        outcomes.insert(outcome(&typed));
    }
    // The corpus is not vacuous: it reaches acceptance, every early refusal
    // and the issues of each field.
    assert!(corpus.len() > 3000, "{}", corpus.len());
    for expected in [
        "ok",
        "invalid_json_parse_body ",
        "invalid_json_body ",
        "missing_device_id ",
        "missing_app_id ",
        "semver_error ",
    ] {
        assert!(outcomes.contains(expected), "{expected}: {outcomes:#?}");
    }
    for field in FIELDS
        .iter()
        .filter(|f| !["channel", "unknown_field"].contains(f))
    {
        assert!(
            outcomes.iter().any(|o| o.contains(field)
                || o.contains("App ID")
                || o.contains("Device ID")
                || o.contains("Platform")
                || o.contains("Plugin")),
            "{field}"
        );
    }
    assert!(outcomes.len() > 40, "{outcomes:#?}");
}

#[test]
fn typed_channel_self_parser_agrees_with_the_value_parser_on_every_body() {
    let corpus = corpus(&channel_base());
    let mut outcomes = BTreeSet::new();
    for bytes in &corpus {
        let text = String::from_utf8_lossy(bytes);
        for method in [ChannelSelfMethod::Set, ChannelSelfMethod::Get] {
            let legacy = parse_json(bytes)
                .and_then(|body| legacy_oracle::parse_channel_self_request(&body, method));
            let typed = parse_channel_self_bytes(bytes, method);
            assert_eq!(typed, legacy, "{method:?} {text}");
            if let Ok(body) = parse_json(bytes) {
                assert_eq!(
                    parse_channel_self_request(&body, method),
                    legacy,
                    "{method:?} from a Value: {text}"
                );
            }
            outcomes.insert(outcome(&typed));
        }
        // DELETE: the same fields as a query string, every value as text.
        if let Ok(Value::Object(map)) = parse_json(bytes) {
            let pairs: Vec<(String, String)> = map
                .iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        v.as_str().map_or_else(|| v.to_string(), str::to_string),
                    )
                })
                .collect();
            let body = query_to_body(&pairs);
            let method = ChannelSelfMethod::Unset;
            assert_eq!(
                parse_channel_self_request(&body, method),
                legacy_oracle::parse_channel_self_request(&body, method),
                "DELETE {pairs:?}"
            );
        }
    }
    for expected in [
        "ok",
        "invalid_json_parse_body ",
        "invalid_json_body ",
        "missing_device_id ",
        "missing_app_id ",
        "semver_error ",
    ] {
        assert!(outcomes.contains(expected), "{expected}: {outcomes:#?}");
    }
    assert!(outcomes.len() > 40, "{outcomes:#?}");
}

#[test]
fn the_common_body_is_read_without_copying_its_strings() {
    use std::borrow::Cow;
    let body = body_text(&update_base(), "", &[]);
    let req = parse_update_bytes(body.as_bytes()).unwrap();
    for (name, text) in [
        ("device_id", &req.device_id),
        ("app_id", &req.app_id),
        ("custom_id", &req.custom_id),
        ("version_name", &req.version_name),
    ] {
        assert!(matches!(text, Cow::Borrowed(_)), "{name}");
    }
    for (name, text) in [
        ("version_code", &req.version_code),
        ("version_os", &req.version_os),
        ("install_source", &req.install_source),
        ("defaultChannel", &req.default_channel),
        ("key_id", &req.key_id),
    ] {
        assert!(matches!(text, Some(Cow::Borrowed(_))), "{name}");
    }
}
