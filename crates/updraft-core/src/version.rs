//! Plugin-version feature gates and the semver helpers the update decision
//! uses (reference-server-behaviour.md §1.6, §1.7 table, §3.1 step 10).
//!
//! Every comparison uses semver *precedence*: a prerelease sorts below its
//! release (`8.35.0-beta.1 < 8.35.0`) and build metadata is ignored.

use semver::{BuildMetadata, Prerelease, Version};
use std::cmp::Ordering;

/// `a < b` by semver precedence (build metadata ignored).
fn below(a: &Version, b: &Version) -> bool {
    a.cmp_precedence(b) == Ordering::Less
}

/// True when `v` is older than the threshold of its own major. Only majors
/// 5–8 have thresholds; every other major (0–4, ≥ 9) counts as current, as
/// the reference service does.
pub fn is_deprecated_plugin_version(
    v: &Version,
    v5: &Version,
    v6: &Version,
    v7: &Version,
    v8: &Version,
) -> bool {
    let threshold = match v.major {
        5 => v5,
        6 => v6,
        7 => v7,
        8 => v8,
        _ => return false,
    };
    below(v, threshold)
}

/// The plugin downloads delta bundles from a `manifest` array.
pub fn supports_manifest(v: &Version) -> bool {
    !is_deprecated_plugin_version(
        v,
        &Version::new(5, 10, 0),
        &Version::new(6, 25, 0),
        &Version::new(7, 0, 35),
        &Version::new(8, 0, 0),
    )
}

/// The plugin passes the bundle's `link` and `comment` through to JS.
pub fn supports_link_comment(v: &Version) -> bool {
    !is_deprecated_plugin_version(
        v,
        &Version::new(5, 35, 0),
        &Version::new(6, 35, 0),
        &Version::new(7, 35, 0),
        &Version::new(8, 35, 0),
    )
}

/// The plugin understands `"version": "builtin"` (revert to the native bundle).
pub fn supports_builtin_revert(v: &Version) -> bool {
    !below(v, &Version::new(6, 2, 0))
}

/// The plugin sends the full 20-character `key_id`, so a mismatch with the
/// bundle's key is meaningful (shorter ids before that would give false alarms).
pub fn enforces_key_id(v: &Version) -> bool {
    v.cmp_precedence(&Version::new(8, 40, 7)) == Ordering::Greater
}

/// The plugin keeps its self-assigned channel on the device (the server only
/// validates) rather than asking for a server-side override.
///
/// `parsed` is the request's plugin version when it parsed; `raw` the text
/// that was sent. A missing (or empty) version counts as new, as the
/// reference's `plugin_version || "0.0.0"` does; an unparsable one as old.
pub fn uses_local_channel_storage(parsed: Option<&Version>, raw: Option<&str>) -> bool {
    let owned;
    let version = match parsed {
        Some(v) => v,
        None => match raw.map(str::trim).filter(|r| !r.is_empty()) {
            None => return true,
            Some(text) => match parse_semver_lenient(text) {
                Some(v) => {
                    owned = v;
                    &owned
                }
                None => return false,
            },
        },
    };
    !is_deprecated_plugin_version(
        version,
        &Version::new(5, 34, 0),
        &Version::new(6, 34, 0),
        &Version::new(7, 34, 0),
        &Version::new(8, 0, 0),
    )
}

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
            // Already three parts (what devices send): parsed in place.
            _ => return parse_version(raw, false),
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

    fn v(text: &str) -> Version {
        Version::parse(text).unwrap()
    }

    #[test]
    fn deprecation_thresholds_apply_only_to_majors_five_to_eight() {
        let (t5, t6, t7, t8) = (v("5.1.0"), v("6.1.0"), v("7.1.0"), v("8.1.0"));
        let cases = [
            ("5.0.9", true),
            ("5.1.0", false),
            ("6.0.0", true),
            ("6.1.1", false),
            ("7.0.99", true),
            ("8.0.0", true),
            ("8.1.0", false),
            ("8.1.0-rc.1", true),
            ("4.0.0", false),
            ("3.9.9", false),
            ("0.0.0", false),
            ("9.0.0", false),
        ];
        for (version, expected) in cases {
            assert_eq!(
                is_deprecated_plugin_version(&v(version), &t5, &t6, &t7, &t8),
                expected,
                "{version}"
            );
        }
    }

    #[test]
    fn manifest_support_thresholds() {
        let cases = [
            ("5.9.99", false),
            ("5.10.0", true),
            ("6.24.9", false),
            ("6.25.0", true),
            ("7.0.34", false),
            ("7.0.35", true),
            ("8.0.0", true),
            ("8.0.0-beta.1", false),
            ("3.0.0", true),
            ("10.0.0", true),
        ];
        for (version, expected) in cases {
            assert_eq!(supports_manifest(&v(version)), expected, "{version}");
        }
    }

    #[test]
    fn link_comment_support_thresholds_and_prerelease() {
        let cases = [
            ("5.34.9", false),
            ("5.35.0", true),
            ("6.35.0", true),
            ("6.34.0", false),
            ("7.35.0", true),
            ("8.34.99", false),
            ("8.35.0-beta.1", false),
            ("8.35.0", true),
            ("8.35.0+build.7", true),
            ("9.0.0", true),
        ];
        for (version, expected) in cases {
            assert_eq!(supports_link_comment(&v(version)), expected, "{version}");
        }
    }

    #[test]
    fn builtin_revert_needs_6_2_0() {
        assert!(!supports_builtin_revert(&v("6.1.99")));
        assert!(!supports_builtin_revert(&v("6.2.0-alpha.1")));
        assert!(supports_builtin_revert(&v("6.2.0")));
        assert!(supports_builtin_revert(&v("8.0.0")));
        assert!(!supports_builtin_revert(&v("5.99.0")));
    }

    #[test]
    fn key_id_enforced_strictly_above_8_40_7() {
        assert!(!enforces_key_id(&v("8.40.7")));
        assert!(!enforces_key_id(&v("8.40.7+meta")));
        assert!(enforces_key_id(&v("8.40.8-beta.1")));
        assert!(enforces_key_id(&v("8.40.8")));
        assert!(!enforces_key_id(&v("7.99.0")));
        assert!(enforces_key_id(&v("9.0.0")));
    }

    #[test]
    fn local_channel_storage_split() {
        let cases = [
            ("5.33.9", false),
            ("5.34.0", true),
            ("6.34.0", true),
            ("6.33.0", false),
            ("7.34.0", true),
            ("7.33.99", false),
            ("8.0.0", true),
            ("8.0.0-rc.1", false),
            ("4.0.0", true),
        ];
        for (version, expected) in cases {
            let parsed = v(version);
            assert_eq!(
                uses_local_channel_storage(Some(&parsed), Some(version)),
                expected,
                "{version}"
            );
        }
    }

    #[test]
    fn local_channel_storage_missing_is_new_unparsable_is_old() {
        assert!(uses_local_channel_storage(None, None));
        assert!(uses_local_channel_storage(None, Some("  ")));
        assert!(!uses_local_channel_storage(None, Some("not-a-version")));
        assert!(!uses_local_channel_storage(None, Some("7.1")));
        // Like the reference's semver parse, a short "7.34" is not a version.
        assert!(!uses_local_channel_storage(None, Some("7.34")));
        assert!(uses_local_channel_storage(None, Some("v7.34.0")));
    }

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
