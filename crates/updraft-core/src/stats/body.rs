//! Typed reading of `/stats` bodies straight from the JSON text, without a
//! `serde_json::Value` in between: every field an event may carry is
//! classified by its JSON type, strings borrowed from the body when they have
//! no escapes. Unknown fields are walked but not kept.
//!
//! The visitors never refuse well-formed JSON (every type is classified), so
//! a deserializer error always means the body is not JSON. They read exactly
//! what `serde_json::Value` would: the last of duplicate keys wins, numbers
//! arrive as u64/i64/f64 the same way, and nested values go through
//! `deserialize_any` so serde_json's nesting limit applies as it did.

use crate::model::Millis;
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

/// One event field as the body gave it.
#[derive(Debug, Default, PartialEq)]
pub(crate) enum Field<'a> {
    #[default]
    Absent,
    Null,
    Str(Cow<'a, str>),
    Bool(bool),
    /// Read as epoch milliseconds the way `Value::as_i64`, else `as_f64`
    /// (truncated, saturating), reads it: only `timestamp` uses the value.
    Number(Millis),
    /// An array or an object.
    Compound,
}

/// `metadata`: kept as a map sorted by key (as `serde_json::Map` is), so
/// validation visits and reports entries in the same order.
#[derive(Debug, Default, PartialEq)]
pub(crate) enum Metadata<'a> {
    #[default]
    Absent,
    Null,
    NotObject,
    Object(BTreeMap<Cow<'a, str>, Field<'a>>),
}

/// The fields of one event object that parsing looks at.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct EventFields<'a> {
    pub(crate) app_id: Field<'a>,
    pub(crate) device_id: Field<'a>,
    pub(crate) action: Field<'a>,
    pub(crate) platform: Field<'a>,
    pub(crate) version_name: Field<'a>,
    pub(crate) version_build: Field<'a>,
    pub(crate) version_os: Field<'a>,
    pub(crate) version_code: Field<'a>,
    pub(crate) old_version_name: Field<'a>,
    pub(crate) plugin_version: Field<'a>,
    pub(crate) default_channel: Field<'a>,
    pub(crate) channel: Field<'a>,
    pub(crate) custom_id: Field<'a>,
    pub(crate) install_source: Field<'a>,
    pub(crate) key_id: Field<'a>,
    pub(crate) is_emulator: Field<'a>,
    pub(crate) is_prod: Field<'a>,
    pub(crate) timestamp: Field<'a>,
    pub(crate) metadata: Metadata<'a>,
}

/// One item of a `/stats` body: an object, or anything else (refused later).
// Items are read one at a time on the stack: boxing would cost an allocation each.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, PartialEq)]
pub(crate) enum RawEvent<'a> {
    Object(EventFields<'a>),
    NotObject,
}

/// Which event field a key names.
enum EventKey {
    AppId,
    DeviceId,
    Action,
    Platform,
    VersionName,
    VersionBuild,
    VersionOs,
    VersionCode,
    OldVersionName,
    PluginVersion,
    DefaultChannel,
    Channel,
    CustomId,
    InstallSource,
    KeyId,
    IsEmulator,
    IsProd,
    Timestamp,
    Metadata,
    Other,
}

impl EventKey {
    fn named(key: &str) -> EventKey {
        match key {
            "app_id" => EventKey::AppId,
            "device_id" => EventKey::DeviceId,
            "action" => EventKey::Action,
            "platform" => EventKey::Platform,
            "version_name" => EventKey::VersionName,
            "version_build" => EventKey::VersionBuild,
            "version_os" => EventKey::VersionOs,
            "version_code" => EventKey::VersionCode,
            "old_version_name" => EventKey::OldVersionName,
            "plugin_version" => EventKey::PluginVersion,
            "defaultChannel" => EventKey::DefaultChannel,
            "channel" => EventKey::Channel,
            "custom_id" => EventKey::CustomId,
            "install_source" => EventKey::InstallSource,
            "key_id" => EventKey::KeyId,
            "is_emulator" => EventKey::IsEmulator,
            "is_prod" => EventKey::IsProd,
            "timestamp" => EventKey::Timestamp,
            "metadata" => EventKey::Metadata,
            _ => EventKey::Other,
        }
    }
}

impl<'de> Deserialize<'de> for EventKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = EventKey;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object key")
            }
            fn visit_str<E: de::Error>(self, key: &str) -> Result<EventKey, E> {
                Ok(EventKey::named(key))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

/// An object key kept as text (metadata keys), borrowed when unescaped.
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object key")
            }
            fn visit_borrowed_str<E: de::Error>(self, key: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(key)))
            }
            fn visit_str<E: de::Error>(self, key: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(key.to_owned())))
            }
            fn visit_string<E: de::Error>(self, key: String) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(key)))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

/// Any JSON value, walked and dropped.
pub(crate) struct Skip;

impl<'de> Deserialize<'de> for Skip {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(SkipVisitor)
    }
}

struct SkipVisitor;

impl<'de> Visitor<'de> for SkipVisitor {
    type Value = Skip;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_str<E>(self, _: &str) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_unit<E>(self) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_none<E>(self) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Skip, A::Error> {
        while seq.next_element::<Skip>()?.is_some() {}
        Ok(Skip)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Skip, A::Error> {
        while map.next_key::<Skip>()?.is_some() {
            map.next_value::<Skip>()?;
        }
        Ok(Skip)
    }
}

/// `u64` epoch millis as `Value` reads them: `as_i64`, else `as_f64` cast.
fn millis_of_u64(value: u64) -> Millis {
    Millis::try_from(value).unwrap_or(value as f64 as Millis)
}

impl<'de> Deserialize<'de> for Field<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct FieldVisitor;
        impl<'de> Visitor<'de> for FieldVisitor {
            type Value = Field<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_bool<E>(self, value: bool) -> Result<Field<'de>, E> {
                Ok(Field::Bool(value))
            }
            fn visit_i64<E>(self, value: i64) -> Result<Field<'de>, E> {
                Ok(Field::Number(value))
            }
            fn visit_u64<E>(self, value: u64) -> Result<Field<'de>, E> {
                Ok(Field::Number(millis_of_u64(value)))
            }
            fn visit_f64<E>(self, value: f64) -> Result<Field<'de>, E> {
                Ok(Field::Number(value as Millis))
            }
            fn visit_borrowed_str<E>(self, value: &'de str) -> Result<Field<'de>, E> {
                Ok(Field::Str(Cow::Borrowed(value)))
            }
            fn visit_str<E>(self, value: &str) -> Result<Field<'de>, E> {
                Ok(Field::Str(Cow::Owned(value.to_owned())))
            }
            fn visit_string<E>(self, value: String) -> Result<Field<'de>, E> {
                Ok(Field::Str(Cow::Owned(value)))
            }
            fn visit_unit<E>(self) -> Result<Field<'de>, E> {
                Ok(Field::Null)
            }
            fn visit_none<E>(self) -> Result<Field<'de>, E> {
                Ok(Field::Null)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Field<'de>, A::Error> {
                SkipVisitor.visit_seq(seq).map(|_| Field::Compound)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Field<'de>, A::Error> {
                SkipVisitor.visit_map(map).map(|_| Field::Compound)
            }
        }
        deserializer.deserialize_any(FieldVisitor)
    }
}

impl<'de> Deserialize<'de> for Metadata<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MetadataVisitor;
        impl<'de> Visitor<'de> for MetadataVisitor {
            type Value = Metadata<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_bool<E>(self, _: bool) -> Result<Metadata<'de>, E> {
                Ok(Metadata::NotObject)
            }
            fn visit_i64<E>(self, _: i64) -> Result<Metadata<'de>, E> {
                Ok(Metadata::NotObject)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Metadata<'de>, E> {
                Ok(Metadata::NotObject)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Metadata<'de>, E> {
                Ok(Metadata::NotObject)
            }
            fn visit_str<E>(self, _: &str) -> Result<Metadata<'de>, E> {
                Ok(Metadata::NotObject)
            }
            fn visit_unit<E>(self) -> Result<Metadata<'de>, E> {
                Ok(Metadata::Null)
            }
            fn visit_none<E>(self) -> Result<Metadata<'de>, E> {
                Ok(Metadata::Null)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Metadata<'de>, A::Error> {
                SkipVisitor.visit_seq(seq).map(|_| Metadata::NotObject)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Metadata<'de>, A::Error> {
                let mut entries = BTreeMap::new();
                while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
                    // Last one wins, as in `serde_json::Map`.
                    entries.insert(key, map.next_value::<Field<'de>>()?);
                }
                Ok(Metadata::Object(entries))
            }
        }
        deserializer.deserialize_any(MetadataVisitor)
    }
}

impl<'de> EventFields<'de> {
    /// Reads an event object's fields; a repeated key overwrites, as in `serde_json::Map`.
    pub(crate) fn from_map<A: MapAccess<'de>>(mut map: A) -> Result<Self, A::Error> {
        let mut fields = EventFields::default();
        while let Some(key) = map.next_key::<EventKey>()? {
            let slot = match key {
                EventKey::AppId => &mut fields.app_id,
                EventKey::DeviceId => &mut fields.device_id,
                EventKey::Action => &mut fields.action,
                EventKey::Platform => &mut fields.platform,
                EventKey::VersionName => &mut fields.version_name,
                EventKey::VersionBuild => &mut fields.version_build,
                EventKey::VersionOs => &mut fields.version_os,
                EventKey::VersionCode => &mut fields.version_code,
                EventKey::OldVersionName => &mut fields.old_version_name,
                EventKey::PluginVersion => &mut fields.plugin_version,
                EventKey::DefaultChannel => &mut fields.default_channel,
                EventKey::Channel => &mut fields.channel,
                EventKey::CustomId => &mut fields.custom_id,
                EventKey::InstallSource => &mut fields.install_source,
                EventKey::KeyId => &mut fields.key_id,
                EventKey::IsEmulator => &mut fields.is_emulator,
                EventKey::IsProd => &mut fields.is_prod,
                EventKey::Timestamp => &mut fields.timestamp,
                EventKey::Metadata => {
                    fields.metadata = map.next_value()?;
                    continue;
                }
                EventKey::Other => {
                    map.next_value::<Skip>()?;
                    continue;
                }
            };
            *slot = map.next_value()?;
        }
        Ok(fields)
    }
}

impl<'de> Deserialize<'de> for RawEvent<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EventVisitor;
        impl<'de> Visitor<'de> for EventVisitor {
            type Value = RawEvent<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_bool<E>(self, _: bool) -> Result<RawEvent<'de>, E> {
                Ok(RawEvent::NotObject)
            }
            fn visit_i64<E>(self, _: i64) -> Result<RawEvent<'de>, E> {
                Ok(RawEvent::NotObject)
            }
            fn visit_u64<E>(self, _: u64) -> Result<RawEvent<'de>, E> {
                Ok(RawEvent::NotObject)
            }
            fn visit_f64<E>(self, _: f64) -> Result<RawEvent<'de>, E> {
                Ok(RawEvent::NotObject)
            }
            fn visit_str<E>(self, _: &str) -> Result<RawEvent<'de>, E> {
                Ok(RawEvent::NotObject)
            }
            fn visit_unit<E>(self) -> Result<RawEvent<'de>, E> {
                Ok(RawEvent::NotObject)
            }
            fn visit_none<E>(self) -> Result<RawEvent<'de>, E> {
                Ok(RawEvent::NotObject)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<RawEvent<'de>, A::Error> {
                SkipVisitor.visit_seq(seq).map(|_| RawEvent::NotObject)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawEvent<'de>, A::Error> {
                EventFields::from_map(map).map(RawEvent::Object)
            }
        }
        deserializer.deserialize_any(EventVisitor)
    }
}

/// Walks the rest of a body's array without keeping it (items past the cap).
pub(crate) fn skip_element<'de, A: SeqAccess<'de>>(seq: &mut A) -> Result<bool, A::Error> {
    Ok(seq.next_element::<Skip>()?.is_some())
}
