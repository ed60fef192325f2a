//! Version strings typed by people or sent by devices, turned into semver.

use semver::{BuildMetadata, Prerelease, Version};

/// Longer strings are refused outright, as the reference's semver parser does.
const MAX_VERSION_LEN: usize = 256;

/// The reference's `fixSemver` + `tryParse`, used for `version_build` everywhere:
/// `builtin`/`unknown` → `0.0.0`, `1` → `1.0.0`, `1.2` → `1.2.0`, then a
/// semver parse that tolerates surrounding spaces, a leading `v`, a
/// prerelease and build metadata (`v1.2.3-beta.1+42`).
pub fn normalize_version_build(raw: &str) -> Option<semver::Version> {
    let fixed = match raw {
        "builtin" | "unknown" => return Some(Version::new(0, 0, 0)),
        _ => match raw.matches('.').count() {
            0 => format!("{raw}.0.0"),
            1 => format!("{raw}.0"),
            _ => raw.to_string(),
        },
    };
    parse_version(&fixed, false)
}

/// Lenient semver parse for plugin versions and bundle names typed by people:
/// accepts surrounding spaces and a leading `v` or `=` (`v1.2.3`, `= 1.2.3`).
pub fn parse_semver_lenient(raw: &str) -> Option<semver::Version> {
    parse_version(raw, true)
}

fn parse_version(raw: &str, allow_equals_prefix: bool) -> Option<Version> {
    if raw.len() > MAX_VERSION_LEN {
        return None;
    }
    let mut text = raw.trim();
    if allow_equals_prefix {
        if let Some(rest) = text.strip_prefix('=') {
            text = rest.trim_start();
        }
    }
    let text = text.strip_prefix(['v', 'V']).unwrap_or(text);

    let (without_build, build) = match text.split_once('+') {
        Some((head, build)) => (head, Some(build)),
        None => (text, None),
    };
    let (core, pre) = match without_build.split_once('-') {
        Some((core, pre)) => (core, Some(pre)),
        None => (without_build, None),
    };

    let mut numbers = core.split('.');
    let major = parse_number(numbers.next()?)?;
    let minor = parse_number(numbers.next()?)?;
    let patch = parse_number(numbers.next()?)?;
    if numbers.next().is_some() {
        return None;
    }

    let mut version = Version::new(major, minor, patch);
    if let Some(pre) = pre {
        version.pre = Prerelease::new(pre).ok().filter(|p| !p.is_empty())?;
    }
    if let Some(build) = build {
        version.build = BuildMetadata::new(build).ok().filter(|b| !b.is_empty())?;
    }
    Some(version)
}

/// Digits only; leading zeros are tolerated in the numeric core because devices
/// send native versions like `01.2.3` that the reference passes through.
fn parse_number(part: &str) -> Option<u64> {
    if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    part.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_build_is_coerced_like_the_reference() {
        let cases: &[(&str, Option<&str>)] = &[
            ("1.2.3", Some("1.2.3")),
            ("1.2", Some("1.2.0")),
            ("7", Some("7.0.0")),
            ("v1.2.3", Some("1.2.3")),
            ("v2", Some("2.0.0")),
            (" 1.2.3 ", Some("1.2.3")),
            ("builtin", Some("0.0.0")),
            ("unknown", Some("0.0.0")),
            ("1.2.3-beta.1", Some("1.2.3-beta.1")),
            ("1.2.3+build.7", Some("1.2.3+build.7")),
            ("1.2.3-rc.1+sha.abc", Some("1.2.3-rc.1+sha.abc")),
            ("01.2.3", Some("1.2.3")),
            ("invalid_version", None),
            ("BUILTIN", None),
            ("1.2.3.4", None),
            ("1..3", None),
            ("1.2.x", None),
            ("", None),
            ("=1.2.3", None),
            ("1.2.3-", None),
            ("1.2.3-01", None),
            ("1.2.3+", None),
            ("-1.2.3", None),
        ];
        for (raw, expected) in cases {
            let got = normalize_version_build(raw).map(|v| v.to_string());
            assert_eq!(got.as_deref(), *expected, "version_build {raw:?}");
        }
    }

    #[test]
    fn lenient_parse_accepts_what_people_type() {
        let cases: &[(&str, Option<&str>)] = &[
            ("8.51.14", Some("8.51.14")),
            ("v8.0.0", Some("8.0.0")),
            ("=1.0.0", Some("1.0.0")),
            ("= 1.0.0", Some("1.0.0")),
            ("  6.34.0  ", Some("6.34.0")),
            ("1.0.0-alpha.1", Some("1.0.0-alpha.1")),
            ("1.0", None),
            ("invalid_version", None),
            ("", None),
            ("vv1.0.0", None),
        ];
        for (raw, expected) in cases {
            let got = parse_semver_lenient(raw).map(|v| v.to_string());
            assert_eq!(got.as_deref(), *expected, "plugin version {raw:?}");
        }
    }

    #[test]
    fn overlong_version_is_refused() {
        let long = format!("1.2.3-{}", "a".repeat(300));
        assert_eq!(parse_semver_lenient(&long), None);
        assert_eq!(normalize_version_build(&long), None);
    }
}
