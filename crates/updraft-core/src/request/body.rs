//! Typed reading of `/updates` and `/channel_self` bodies straight from the
//! JSON text (or from a `serde_json::Value`, for bodies that came from a query
//! string or are needed whole): every field the parsers look at is classified
//! by its JSON type, strings borrowed from the body when they have no escapes.
//! Unknown fields are walked but not kept.
//!
//! It reads exactly what a `serde_json::Value` would (the stats reader's
//! rules, `stats/body.rs`): the last of duplicate keys wins, nested values go
//! through `deserialize_any` so serde_json's nesting limit applies, and a
//! deserializer error always means the body is not JSON.

use crate::stats::body::{Field, Skip};
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use std::borrow::Cow;
use std::fmt;

/// The fields of a device body that the `/updates` and `/channel_self`
/// parsers look at.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct DeviceBody<'a> {
    /// Whether the object had any key at all (`{}` is refused as empty).
    pub(crate) has_keys: bool,
    pub(crate) platform: Field<'a>,
    pub(crate) device_id: Field<'a>,
    pub(crate) app_id: Field<'a>,
    pub(crate) custom_id: Field<'a>,
    pub(crate) version_build: Field<'a>,
    pub(crate) version_code: Field<'a>,
    pub(crate) version_os: Field<'a>,
    pub(crate) version_name: Field<'a>,
    pub(crate) plugin_version: Field<'a>,
    pub(crate) is_emulator: Field<'a>,
    pub(crate) is_prod: Field<'a>,
    pub(crate) install_source: Field<'a>,
    pub(crate) default_channel: Field<'a>,
    pub(crate) key_id: Field<'a>,
    pub(crate) channel: Field<'a>,
}

/// A whole body: an object, or anything else (refused as `Cannot parse body`).
// Read once on the stack: boxing would cost an allocation per request.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, PartialEq)]
pub(crate) enum RawBody<'a> {
    Object(DeviceBody<'a>),
    NotObject,
}

/// Which field a key names.
enum BodyKey {
    Platform,
    DeviceId,
    AppId,
    CustomId,
    VersionBuild,
    VersionCode,
    VersionOs,
    VersionName,
    PluginVersion,
    IsEmulator,
    IsProd,
    InstallSource,
    DefaultChannel,
    KeyId,
    Channel,
    Other,
}

impl BodyKey {
    fn named(key: &str) -> BodyKey {
        match key {
            "platform" => BodyKey::Platform,
            "device_id" => BodyKey::DeviceId,
            "app_id" => BodyKey::AppId,
            "custom_id" => BodyKey::CustomId,
            "version_build" => BodyKey::VersionBuild,
            "version_code" => BodyKey::VersionCode,
            "version_os" => BodyKey::VersionOs,
            "version_name" => BodyKey::VersionName,
            "plugin_version" => BodyKey::PluginVersion,
            "is_emulator" => BodyKey::IsEmulator,
            "is_prod" => BodyKey::IsProd,
            "install_source" => BodyKey::InstallSource,
            "defaultChannel" => BodyKey::DefaultChannel,
            "key_id" => BodyKey::KeyId,
            "channel" => BodyKey::Channel,
            _ => BodyKey::Other,
        }
    }
}

impl<'de> Deserialize<'de> for BodyKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = BodyKey;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object key")
            }
            fn visit_str<E: de::Error>(self, key: &str) -> Result<BodyKey, E> {
                Ok(BodyKey::named(key))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

impl<'de> DeviceBody<'de> {
    fn from_map<A: MapAccess<'de>>(mut map: A) -> Result<Self, A::Error> {
        let mut body = DeviceBody::default();
        while let Some(key) = map.next_key::<BodyKey>()? {
            body.has_keys = true;
            let slot = match key {
                BodyKey::Platform => &mut body.platform,
                BodyKey::DeviceId => &mut body.device_id,
                BodyKey::AppId => &mut body.app_id,
                BodyKey::CustomId => &mut body.custom_id,
                BodyKey::VersionBuild => &mut body.version_build,
                BodyKey::VersionCode => &mut body.version_code,
                BodyKey::VersionOs => &mut body.version_os,
                BodyKey::VersionName => &mut body.version_name,
                BodyKey::PluginVersion => &mut body.plugin_version,
                BodyKey::IsEmulator => &mut body.is_emulator,
                BodyKey::IsProd => &mut body.is_prod,
                BodyKey::InstallSource => &mut body.install_source,
                BodyKey::DefaultChannel => &mut body.default_channel,
                BodyKey::KeyId => &mut body.key_id,
                BodyKey::Channel => &mut body.channel,
                BodyKey::Other => {
                    map.next_value::<Skip>()?;
                    continue;
                }
            };
            // A repeated key overwrites, as in `serde_json::Map`.
            *slot = map.next_value()?;
        }
        Ok(body)
    }
}

impl<'de> Deserialize<'de> for RawBody<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct BodyVisitor;
        impl<'de> Visitor<'de> for BodyVisitor {
            type Value = RawBody<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_bool<E>(self, _: bool) -> Result<RawBody<'de>, E> {
                Ok(RawBody::NotObject)
            }
            fn visit_i64<E>(self, _: i64) -> Result<RawBody<'de>, E> {
                Ok(RawBody::NotObject)
            }
            fn visit_u64<E>(self, _: u64) -> Result<RawBody<'de>, E> {
                Ok(RawBody::NotObject)
            }
            fn visit_f64<E>(self, _: f64) -> Result<RawBody<'de>, E> {
                Ok(RawBody::NotObject)
            }
            fn visit_str<E>(self, _: &str) -> Result<RawBody<'de>, E> {
                Ok(RawBody::NotObject)
            }
            fn visit_unit<E>(self) -> Result<RawBody<'de>, E> {
                Ok(RawBody::NotObject)
            }
            fn visit_none<E>(self) -> Result<RawBody<'de>, E> {
                Ok(RawBody::NotObject)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawBody<'de>, A::Error> {
                while seq.next_element::<Skip>()?.is_some() {}
                Ok(RawBody::NotObject)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawBody<'de>, A::Error> {
                DeviceBody::from_map(map).map(RawBody::Object)
            }
        }
        deserializer.deserialize_any(BodyVisitor)
    }
}

impl<'a> RawBody<'a> {
    /// Reads a body's text; `Err` when it is not JSON (trailing text included).
    pub(crate) fn from_slice(bytes: &'a [u8]) -> Result<Self, serde_json::Error> {
        let mut deserializer = serde_json::Deserializer::from_slice(bytes);
        let body = RawBody::deserialize(&mut deserializer)?;
        deserializer.end()?;
        Ok(body)
    }

    /// Reads an already parsed body (borrowing its strings).
    pub(crate) fn from_value(value: &'a serde_json::Value) -> Self {
        // A `Value` is well-formed JSON, which the visitors never refuse.
        RawBody::deserialize(value).unwrap_or(RawBody::NotObject)
    }
}

/// The text of a string field.
pub(crate) fn str_of<'f>(field: &'f Field<'_>) -> Option<&'f str> {
    match field {
        Field::Str(text) => Some(text),
        _ => None,
    }
}

/// The text of a string field, taken out of the body.
pub(crate) fn into_str(field: Field<'_>) -> Option<Cow<'_, str>> {
    match field {
        Field::Str(text) => Some(text),
        _ => None,
    }
}

/// Absent and `null`: "not sent".
pub(crate) fn is_absent(field: &Field<'_>) -> bool {
    matches!(field, Field::Absent | Field::Null)
}

/// `text` lower-cased, borrowed when it already is.
pub(crate) fn lowercase(text: Cow<'_, str>) -> Cow<'_, str> {
    if text
        .bytes()
        .all(|b| b.is_ascii() && !b.is_ascii_uppercase())
    {
        return text;
    }
    let lower = text.to_lowercase();
    if lower == *text {
        text
    } else {
        Cow::Owned(lower)
    }
}

/// `text` trimmed, borrowed when it came borrowed.
pub(crate) fn trimmed(text: Cow<'_, str>) -> Cow<'_, str> {
    match text {
        Cow::Borrowed(text) => Cow::Borrowed(text.trim()),
        Cow::Owned(text) if text.trim().len() == text.len() => Cow::Owned(text),
        Cow::Owned(text) => Cow::Owned(text.trim().to_owned()),
    }
}

/// `install_source` as stored: trimmed and lower-cased; blank is `None`.
pub(crate) fn install_source(value: Option<Cow<'_, str>>) -> Option<Cow<'_, str>> {
    value
        .map(|s| lowercase(trimmed(s)))
        .filter(|s| !s.is_empty())
}

/// `defaultChannel`: blank means "use the public channel".
pub(crate) fn non_blank(value: Option<Cow<'_, str>>) -> Option<Cow<'_, str>> {
    value.filter(|s| !s.trim().is_empty())
}

/// `None` for absent and `""`.
pub(crate) fn non_empty(value: Option<Cow<'_, str>>) -> Option<Cow<'_, str>> {
    value.filter(|s| !s.is_empty())
}

/// `version_name: "builtin"` stands for the native bundle: name it by the native version.
pub(crate) fn resolve_builtin<'a>(
    version_name: Cow<'a, str>,
    version_build: Option<&semver::Version>,
) -> Cow<'a, str> {
    match version_build {
        Some(build) if version_name == crate::model::BUILTIN => Cow::Owned(build.to_string()),
        _ => version_name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lowercase_borrows_unless_it_changes_something() {
        let cases = [
            ("abc-def", "abc-def", true),
            ("ABC-Def", "abc-def", false),
            ("é", "é", true),
            ("É", "é", false),
            // Title case: not `is_uppercase`, still changed by `to_lowercase`.
            ("ǅ", "ǆ", false),
        ];
        for (text, expected, borrowed) in cases {
            let lower = lowercase(Cow::Borrowed(text));
            assert_eq!(lower, expected, "{text}");
            assert_eq!(matches!(lower, Cow::Borrowed(_)), borrowed, "{text}");
            assert_eq!(lower, text.to_lowercase(), "{text}");
        }
    }

    #[test]
    fn strings_without_escapes_are_borrowed_from_the_body() {
        let bytes = br#"{"device_id":"abc","app_id":"a\u002eb","x":[1,{"y":null}]}"#;
        let RawBody::Object(body) = RawBody::from_slice(bytes).unwrap() else {
            panic!("an object")
        };
        assert!(matches!(body.device_id, Field::Str(Cow::Borrowed("abc"))));
        assert!(matches!(&body.app_id, Field::Str(Cow::Owned(s)) if s == "a.b"));
        assert!(body.has_keys);
        assert_eq!(
            RawBody::from_slice(b"{}").unwrap(),
            RawBody::Object(DeviceBody::default())
        );
        assert!(RawBody::from_slice(b"{} x").is_err());
        assert_eq!(RawBody::from_slice(b"[{}]").unwrap(), RawBody::NotObject);
    }
}
