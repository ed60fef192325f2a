//! Entry-name rules of the plugin's `resolvePathInsideDirectory` (protocol §3.2).
//!
//! We do not use the zip crate's `enclosed_name()`: it silently turns `/abs` and
//! `C:/x` into relative paths, which would accept zips the plugin refuses.

use crate::error::{BundleError, UnsafeNameRule};
use std::collections::HashMap;

fn unsafe_name(name: &str, rule: UnsafeNameRule) -> BundleError {
    BundleError::UnsafeEntryName {
        name: name.to_string(),
        rule,
    }
}

/// `C:` at the start, the Windows drive form that Java and Swift treat as absolute.
fn has_drive_prefix(name: &str) -> bool {
    let bytes = name.as_bytes();
    bytes.len() >= 2 && bytes[0].is_ascii_alphabetic() && bytes[1] == b':'
}

/// Checks one zip entry name or manifest `file_name` the way the plugin does:
/// empty, NUL, absolute (`/x`, `C:/x`, `C:\x`), backslash, and any `..` that
/// climbs above the extraction directory are refused. A `..` that stays inside
/// (`a/../b`) is accepted, as the plugin canonicalises before comparing; a name
/// whose canonical form is a drive form (`./C:/x`, `a/../C:x`) is refused as
/// absolute, like the drive form itself.
pub fn check_entry_name(name: &str) -> Result<(), BundleError> {
    normalize_entry_name(name).map(|_| ())
}

/// Checks `name` like [`check_entry_name`] and returns its canonical form: `/`-joined
/// components with `.`, empty components and in-bounds `..` resolved. A trailing `/`
/// (directory entry) is dropped; the result is empty only for names like `./`.
/// The result, when not empty, is itself accepted and returned unchanged.
pub fn normalize_entry_name(name: &str) -> Result<String, BundleError> {
    if name.is_empty() {
        return Err(unsafe_name(name, UnsafeNameRule::Empty));
    }
    if name.contains('\0') {
        return Err(unsafe_name(name, UnsafeNameRule::Nul));
    }
    // Tabs, newlines, escapes, DEL and the C1 range: no real bundle has
    // them, and they forge log lines and confuse tools reading the names.
    if let Some(c) = name.chars().find(|c| c.is_control()) {
        return Err(BundleError::ControlCharacterInName {
            name: name.escape_debug().to_string(),
            code: u32::from(c),
        });
    }
    if name.starts_with('/') || has_drive_prefix(name) {
        return Err(unsafe_name(name, UnsafeNameRule::Absolute));
    }
    if name.contains('\\') {
        return Err(unsafe_name(name, UnsafeNameRule::Backslash));
    }
    let mut components: Vec<&str> = Vec::new();
    for component in name.split('/') {
        match component {
            "" | "." => {}
            ".." => {
                if components.pop().is_none() {
                    return Err(unsafe_name(name, UnsafeNameRule::DotDot));
                }
            }
            other => components.push(other),
        }
    }
    let normal = components.join("/");
    // Resolving `.`, `..` and empty components can bring a drive form to the
    // front (`./C:/x` → `C:/x`): the canonical form is what gets unpacked,
    // listed in a manifest and checked again, so it must pass the same rules.
    if has_drive_prefix(&normal) {
        return Err(unsafe_name(name, UnsafeNameRule::Absolute));
    }
    Ok(normal)
}

/// Paths (normalised, `/`-joined) and their folders, seen case-insensitively:
/// iOS's file system (APFS, HFS+) folds case, so `App.js` and `app.js` — or a
/// folder `Assets` next to `assets` — would overwrite each other there while
/// Android keeps both.
#[derive(Debug, Default)]
pub struct CaseFolds(HashMap<String, String>);

impl CaseFolds {
    /// Adds `path` and each of its folders; refuses a name that differs from
    /// one already added only by case.
    pub fn insert(&mut self, path: &str) -> Result<(), BundleError> {
        let mut end = path.len();
        loop {
            let prefix = &path[..end];
            match self.0.get(&prefix.to_lowercase()) {
                Some(seen) if seen == prefix => break, // its folders are in too
                Some(seen) => {
                    return Err(BundleError::CaseCollision {
                        first: seen.clone(),
                        second: prefix.to_string(),
                    })
                }
                None => {
                    self.0.insert(prefix.to_lowercase(), prefix.to_string());
                }
            }
            match prefix.rfind('/') {
                Some(slash) => end = slash,
                None => break,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule_of(name: &str) -> Option<UnsafeNameRule> {
        match check_entry_name(name) {
            Ok(()) => None,
            Err(BundleError::UnsafeEntryName { rule, .. }) => Some(rule),
            Err(other) => panic!("unexpected error {other}"),
        }
    }

    #[test]
    fn refuses_each_rule() {
        assert_eq!(rule_of(""), Some(UnsafeNameRule::Empty));
        assert_eq!(rule_of("a\0b"), Some(UnsafeNameRule::Nul));
        assert_eq!(rule_of("/etc/passwd"), Some(UnsafeNameRule::Absolute));
        assert_eq!(rule_of("C:/x"), Some(UnsafeNameRule::Absolute));
        assert_eq!(rule_of("C:\\x"), Some(UnsafeNameRule::Absolute));
        assert_eq!(rule_of("assets\\app.js"), Some(UnsafeNameRule::Backslash));
        assert_eq!(rule_of("../x"), Some(UnsafeNameRule::DotDot));
        assert_eq!(rule_of("a/../../x"), Some(UnsafeNameRule::DotDot));
        assert_eq!(rule_of(".."), Some(UnsafeNameRule::DotDot));
    }

    /// Regression (fuzz target `delta_manifest`, input `fuzz/corpus/delta_manifest/
    /// drive-after-dot`): the drive form was checked on the raw name only, so
    /// `./x:/t` was accepted with the canonical form `x:/t`, which is refused.
    #[test]
    fn refuses_names_whose_canonical_form_is_a_drive_form() {
        for name in [
            "./x:/t",
            "a/../C:x",
            "x//..//C:/y",
            "./c:",
            "a/b/../../Z:/y.js",
        ] {
            assert_eq!(rule_of(name), Some(UnsafeNameRule::Absolute), "{name:?}");
        }
        // As before: the raw drive form, even when it resolves away.
        assert_eq!(rule_of("C:/../x"), Some(UnsafeNameRule::Absolute));
        // A drive-like component further in is an ordinary name on a device.
        assert_eq!(normalize_entry_name("./a/x:/t").unwrap(), "a/x:/t");
        assert_eq!(normalize_entry_name("./:x").unwrap(), ":x");
    }

    #[test]
    fn the_canonical_form_is_accepted_and_canonical() {
        for name in [
            "./x:/t",
            "./a//b/../c.js",
            "dist/",
            "a/..",
            "./9:x",
            "x/../:y",
            "a/../b/./c/",
            "file:with:colons",
        ] {
            if let Ok(normal) = normalize_entry_name(name) {
                if !normal.is_empty() {
                    assert_eq!(
                        normalize_entry_name(&normal).ok().as_deref(),
                        Some(normal.as_str()),
                        "{name:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn refuses_control_characters_with_their_own_code() {
        for name in [
            "a\tb.js",
            "a\nb",
            "x\u{1b}[31m.js",
            "del\u{7f}",
            "c1\u{85}.js",
        ] {
            let err = check_entry_name(name).unwrap_err();
            assert_eq!(err.code(), "control_character_in_name", "{name:?}");
        }
        // NUL keeps its older rule.
        assert_eq!(rule_of("a\0b"), Some(UnsafeNameRule::Nul));
        assert_eq!(rule_of("é/ü.js"), None);
    }

    #[test]
    fn case_folds_refuse_names_differing_only_by_case() {
        let mut folds = CaseFolds::default();
        folds.insert("assets/app.js").unwrap();
        folds.insert("assets/other.js").unwrap();
        folds.insert("index.html").unwrap();
        let err = folds.insert("assets/App.js").unwrap_err();
        assert_eq!(err.code(), "case_insensitive_duplicate");
        assert!(err.to_string().contains("\"assets/App.js\""), "{err}");
        // A folder differing by case.
        assert!(folds.insert("Assets/new.js").is_err());
        assert!(folds.insert("INDEX.HTML").is_err());
        // Exact repeats are another rule's business (duplicate_entry).
        folds.insert("assets/app.js").unwrap();
    }

    #[test]
    fn accepts_names_that_stay_inside() {
        assert_eq!(rule_of("index.html"), None);
        assert_eq!(rule_of("dist/"), None);
        assert_eq!(rule_of("a/../b"), None);
        assert_eq!(rule_of("./a/./b.js"), None);
        assert_eq!(rule_of("file:with:colons"), None);
        assert_eq!(normalize_entry_name("./a//b/../c.js").unwrap(), "a/c.js");
        assert_eq!(normalize_entry_name("dist/").unwrap(), "dist");
    }
}
