//! Checks on what people and CI send to the management API.

use crate::error::{ApiError, ErrorCode};
use updraft_core::analytics::parse_time_bound;
use updraft_core::model::Millis;

pub fn bundle_version(version: &str) -> Result<semver::Version, ApiError> {
    semver::Version::parse(version).map_err(|e| {
        ApiError::bad_request(
            ErrorCode::InvalidVersion,
            format!("bundle version {version:?} is not semver (like 1.4.3 or 2.0.0-beta.1): {e}"),
        )
    })
}

pub fn http_url(field: &str, url: &str) -> Result<(), ApiError> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    let host = rest.map(|r| r.split(['/', '?', '#']).next().unwrap_or(""));
    let ok = host.is_some_and(|h| !h.is_empty())
        && !url.chars().any(|c| c.is_whitespace() || c.is_control())
        && url.len() <= 2048;
    if ok {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            ErrorCode::InvalidUrl,
            format!("{field} must be an absolute http(s) URL, got {url:?}"),
        ))
    }
}

pub fn channel_name(name: &str) -> Result<(), ApiError> {
    if name.is_empty()
        || name.chars().count() > 64
        || name.chars().any(|c| c.is_control())
        || name.trim() != name
    {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidChannelName,
            format!("channel name {name:?} must be 1 to 64 characters, without control characters or surrounding spaces"),
        ));
    }
    Ok(())
}

/// Device ids are lower-cased, as the plugin sends them.
pub fn device_id(device_id: &str) -> Result<String, ApiError> {
    let lowered = device_id.trim().to_ascii_lowercase();
    if lowered.is_empty()
        || lowered.len() > 36
        || !lowered
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidDeviceId,
            format!("device id {device_id:?} must be 1 to 36 letters, digits or dashes (the plugin sends a UUID)"),
        ));
    }
    Ok(lowered)
}

/// `base64(iv):base64(rsa(key))`, standard alphabet.
pub fn session_key(key: &str) -> Result<(), ApiError> {
    let is_b64 = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'=')
    };
    match key.split_once(':') {
        Some((iv, rsa)) if is_b64(iv) && is_b64(rsa) => Ok(()),
        _ => Err(ApiError::bad_request(
            ErrorCode::InvalidSessionKey,
            "session_key must be base64(iv):base64(encrypted key), as `npx @capgo/cli bundle encrypt` prints it",
        )),
    }
}

/// A page size: `default` when absent, refused outside 1..=`max` (it used to
/// be clamped, which hid a caller's mistake and disagreed with the OpenAPI
/// document's bounds).
pub fn page_limit(limit: Option<i64>, default: i64, max: i64) -> Result<i64, ApiError> {
    match limit {
        None => Ok(default),
        Some(n) if (1..=max).contains(&n) => Ok(n),
        Some(n) => Err(ApiError::bad_request(
            ErrorCode::InvalidLimit,
            format!("limit must be between 1 and {max}, got {n}"),
        )),
    }
}

/// A page offset: 0 when absent, refused when negative.
pub fn page_offset(offset: Option<i64>) -> Result<i64, ApiError> {
    match offset {
        None => Ok(0),
        Some(n) if n >= 0 => Ok(n),
        Some(n) => Err(ApiError::bad_request(
            ErrorCode::InvalidOffset,
            format!("offset must be 0 or more, got {n}"),
        )),
    }
}

/// A `since`/`until` query value: absent or empty = none; else `7d`, `24h`,
/// `30m`, `2w`, `YYYY-MM-DD` or epoch milliseconds, exactly (no sign, no
/// surrounding spaces), as the OpenAPI document's pattern says.
pub fn time_bound(
    name: &'static str,
    text: Option<&str>,
    now: Millis,
) -> Result<Option<Millis>, ApiError> {
    let Some(text) = text.filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    let well_formed = text.starts_with(|c: char| c.is_ascii_digit()) && text.trim() == text;
    well_formed
        .then(|| parse_time_bound(text, now))
        .flatten()
        .map(Some)
        .ok_or_else(|| {
            ApiError::bad_request(
                ErrorCode::InvalidTime,
                format!("{name} must be like 7d, 24h, 30m, 2w, YYYY-MM-DD or epoch milliseconds; got {text:?}"),
            )
        })
}

/// An optional `app_id` query filter: absent or empty = none; else a
/// reverse-domain app id (refused otherwise rather than matching nothing).
pub fn app_id_filter(app_id: Option<String>) -> Result<Option<String>, ApiError> {
    match app_id.filter(|a| !a.is_empty()) {
        None => Ok(None),
        Some(app_id) if updraft_core::validate::is_valid_app_id(&app_id) => Ok(Some(app_id)),
        Some(app_id) => Err(ApiError::bad_request(
            ErrorCode::InvalidAppId,
            format!("app id {app_id:?} is not a reverse domain (like com.example.app)"),
        )),
    }
}

pub fn text(field: &str, value: &str, max: usize) -> Result<(), ApiError> {
    if value.chars().count() > max {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidBody,
            format!("{field} is longer than {max} characters"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_must_be_absolute_http() {
        assert!(http_url("u", "https://cdn.example.com/a.zip").is_ok());
        assert!(http_url("u", "http://127.0.0.1:9000/a.zip?x=1").is_ok());
        for bad in [
            "",
            "cdn.example.com/a.zip",
            "ftp://x/a.zip",
            "https://",
            "https:///a.zip",
            "https://a b/c",
        ] {
            assert_eq!(http_url("u", bad).unwrap_err().code, "invalid_url", "{bad}");
        }
    }

    #[test]
    fn session_keys_are_two_base64_parts() {
        assert!(session_key("Dxhg4mYyD8LX9GnjsOXVMg==:S28cNvVjlJ6FuHgR038w").is_ok());
        for bad in ["", "abc", ":abc", "abc:", "a b:c"] {
            assert!(session_key(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn page_bounds_are_refused_not_clamped() {
        assert_eq!(page_limit(None, 50, 500).unwrap(), 50);
        assert_eq!(page_limit(Some(1), 50, 500).unwrap(), 1);
        assert_eq!(page_limit(Some(500), 50, 500).unwrap(), 500);
        for bad in [0, -1, 501, i64::MIN, i64::MAX] {
            assert_eq!(
                page_limit(Some(bad), 50, 500).unwrap_err().code,
                "invalid_limit"
            );
        }
        assert_eq!(page_offset(None).unwrap(), 0);
        assert_eq!(page_offset(Some(7)).unwrap(), 7);
        assert_eq!(page_offset(Some(-1)).unwrap_err().code, "invalid_offset");
    }

    #[test]
    fn time_bounds_are_exact_and_empty_is_none() {
        let day = 86_400_000;
        let now = 100 * day;
        assert_eq!(time_bound("since", None, now).unwrap(), None);
        assert_eq!(time_bound("since", Some(""), now).unwrap(), None);
        assert_eq!(
            time_bound("since", Some("7d"), now).unwrap(),
            Some(93 * day)
        );
        assert_eq!(
            time_bound("since", Some("1970-01-02"), now).unwrap(),
            Some(day)
        );
        assert_eq!(time_bound("since", Some("5"), now).unwrap(), Some(5));
        for bad in [" ", " 7d", "7d ", "+7d", "+5", "-5", "7y", "2026-02-30"] {
            assert_eq!(
                time_bound("since", Some(bad), now).unwrap_err().code,
                "invalid_time",
                "{bad:?}"
            );
        }
    }

    #[test]
    fn device_ids_are_lowercased_and_bounded() {
        assert_eq!(device_id("ABC-1").unwrap(), "abc-1");
        assert!(device_id("").is_err());
        assert!(device_id(&"a".repeat(37)).is_err());
        assert!(device_id("a/b").is_err());
    }
}
