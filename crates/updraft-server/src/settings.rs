//! How [`ServerConfig`](crate::state::ServerConfig) reads and writes itself as
//! settings: the serde helpers its fields name (bounds, `0` = off, URLs,
//! seconds), and the key prefixes of its nested groups.
//!
//! `ServerConfig` *is* the settings type: its serde shape, defaults
//! (`Default`) and these helpers are the only declaration of a setting. The
//! `updraft` binary layers defaults, `updraft.toml`, the environment and
//! flags over it (`crates/updraft/src/config.rs`), where every setting is one
//! flat key: a field of a nested group is named by the group's prefix and the
//! field's own name (`zip_limits.max_entries` is `zip_max_entries`).
//!
//! The helpers only reject or normalise; the message says what is wrong and
//! the loader adds which setting, in which of its forms, and from where.

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::time::Duration;

/// The nested groups of `ServerConfig` whose fields are top-level settings,
/// as (field path, key prefix). Every other field is one setting named as the
/// field (a table-valued one such as `storage_options` stays a table).
pub const KEY_GROUPS: &[(&str, &str)] = &[
    ("zip_limits", "zip_"),
    ("connections", ""),
    ("limits", ""),
    ("limits.device_rate", "device_rate_limit_"),
    ("limits.app_rate", "app_rate_limit_"),
    ("limits.auth_failure_rate", "auth_failure_limit_"),
    ("edge", ""),
    ("accounts", ""),
    ("accounts.sign_in_account_rate", "sign_in_account_limit_"),
    ("accounts.sign_in_client_rate", "sign_in_client_limit_"),
];

/// A number below `MIN` counts as `MIN`.
pub fn at_least<'de, const MIN: u64, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Ord + TryFrom<u64>,
{
    let value = T::deserialize(deserializer)?;
    Ok(value.max(bound::<T, D::Error>(MIN)?))
}

/// A number is brought into `MIN..=MAX`.
pub fn between<'de, const MIN: u64, const MAX: u64, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Ord + TryFrom<u64>,
{
    let value = T::deserialize(deserializer)?;
    Ok(value.clamp(bound::<T, D::Error>(MIN)?, bound::<T, D::Error>(MAX)?))
}

fn bound<T: TryFrom<u64>, E: serde::de::Error>(n: u64) -> Result<T, E> {
    T::try_from(n).map_err(|_| E::custom(format!("the bound {n} does not fit the setting's type")))
}

/// `0` (or unset) = off.
pub fn zero_is_none<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default + PartialEq,
{
    Ok(Option::<T>::deserialize(deserializer)?.filter(|n| *n != T::default()))
}

/// A whole number of seconds.
pub fn secs<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    duration.as_secs().serialize(serializer)
}

/// A whole number of seconds, at least `MIN`.
pub fn secs_at_least<'de, const MIN: u64, D>(deserializer: D) -> Result<Duration, D::Error>
where
    D: Deserializer<'de>,
{
    Ok(Duration::from_secs(
        u64::deserialize(deserializer)?.max(MIN),
    ))
}

/// `host:port`.
pub fn host_port<'de, D>(deserializer: D) -> Result<std::net::SocketAddr, D::Error>
where
    D: Deserializer<'de>,
{
    let text = String::deserialize(deserializer)?;
    text.trim()
        .parse()
        .map_err(|_| D::Error::custom(format!("must be host:port, got {text:?}")))
}

/// An optional `host:port` (see [`host_port`]).
pub fn optional_host_port<'de, D>(deserializer: D) -> Result<Option<std::net::SocketAddr>, D::Error>
where
    D: Deserializer<'de>,
{
    Option::<String>::deserialize(deserializer)?
        .map(|text| {
            text.trim()
                .parse()
                .map_err(|_| D::Error::custom(format!("must be host:port, got {text:?}")))
        })
        .transpose()
}

/// An absolute http(s) URL, kept without its trailing `/`.
pub fn check_public_url(url: &str) -> Result<String, String> {
    let trimmed = url.trim().trim_end_matches('/');
    if !(trimmed.starts_with("http://") || trimmed.starts_with("https://")) || trimmed.len() < 10 {
        return Err(format!(
            "public URL must be an absolute http(s) URL, got {url:?}"
        ));
    }
    Ok(trimmed.to_string())
}

/// An optional absolute http(s) URL (see [`check_public_url`]).
pub fn http_url<'de, D>(deserializer: D) -> Result<Option<String>, D::Error>
where
    D: Deserializer<'de>,
{
    Option::<String>::deserialize(deserializer)?
        .map(|url| check_public_url(&url).map_err(D::Error::custom))
        .transpose()
}

/// An optional `s3://bucket[/prefix]`.
pub fn s3_url<'de, D>(deserializer: D) -> Result<Option<String>, D::Error>
where
    D: Deserializer<'de>,
{
    Option::<String>::deserialize(deserializer)?
        .map(|url| {
            let url = url.trim().to_string();
            if !url.starts_with("s3://") || url.len() <= "s3://".len() {
                return Err(D::Error::custom(format!(
                    "storage URL must be s3://bucket[/prefix], got {url:?}"
                )));
            }
            Ok(url)
        })
        .transpose()
}

/// A list, or in the environment one string of comma-separated items.
pub fn list<'de, D>(deserializer: D) -> Result<Vec<String>, D::Error>
where
    D: Deserializer<'de>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum List {
        Items(Vec<String>),
        Joined(String),
    }
    Ok(
        match List::deserialize(deserializer).map_err(|_| {
            D::Error::custom("must be a list of strings (or one comma-separated string)")
        })? {
            List::Items(items) => items,
            List::Joined(text) => text
                .split(',')
                .map(str::trim)
                .filter(|item| !item.is_empty())
                .map(str::to_string)
                .collect(),
        },
    )
}

/// A table of string values, kept as (key, value) pairs in key order.
pub mod pairs {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use std::collections::BTreeMap;

    pub fn serialize<S: Serializer>(
        pairs: &[(String, String)],
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        pairs
            .iter()
            .map(|(k, v)| (k, v))
            .collect::<BTreeMap<_, _>>()
            .serialize(serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<(String, String)>, D::Error> {
        Ok(BTreeMap::<String, String>::deserialize(deserializer)?
            .into_iter()
            .collect())
    }
}

/// The webhook secret key: 32 bytes as hex or base64; blank = unset. It is
/// never written out: serializing a set key is an error.
pub mod secret_key {
    use crate::webhook_secrets::SecretKey;
    use serde::de::Error as _;
    use serde::ser::Error as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(
        key: &Option<SecretKey>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match key {
            None => serializer.serialize_none(),
            Some(_) => Err(S::Error::custom(
                "the webhook secret key is not written out",
            )),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<SecretKey>, D::Error> {
        match Option::<String>::deserialize(deserializer)? {
            Some(text) if !text.trim().is_empty() => {
                SecretKey::parse(&text).map(Some).map_err(D::Error::custom)
            }
            _ => Ok(None),
        }
    }
}
