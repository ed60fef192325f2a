//! Native compatibility: does a bundle need native code the channel's live
//! (stable) bundle does not have? A JavaScript bundle that calls a plugin the
//! installed app lacks, or expects another version of it, breaks on devices.

use crate::model::NativePackage;
use serde::Serialize;
use std::collections::BTreeMap;

/// The new bundle needs a plugin the live bundle does not have.
pub const NEW_PLUGIN: &str = "new_plugin";
/// Both have the plugin, at different versions.
pub const VERSION_MISMATCH: &str = "version_mismatch";
/// Only the live bundle has the plugin (harmless: the native code stays).
pub const REMOVED: &str = "removed";

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PackageComparison {
    pub name: String,
    pub bundle_version: Option<String>,
    pub live_version: Option<String>,
    pub compatible: bool,
    /// `new_plugin`, `version_mismatch`, `removed`; `None` when both agree
    /// (or the live bundle is unknown).
    pub reason: Option<&'static str>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CompatibilityReport {
    pub compatible: bool,
    /// False when the live bundle's native packages are unknown: nothing to compare.
    pub live_known: bool,
    /// Sorted by name.
    pub packages: Vec<PackageComparison>,
}

/// Equal when both parse as semver and are equal, else when the trimmed texts are.
fn same_version(a: &str, b: &str) -> bool {
    match (
        crate::version::parse_semver_lenient(a),
        crate::version::parse_semver_lenient(b),
    ) {
        (Some(a), Some(b)) => a == b,
        _ => a.trim() == b.trim(),
    }
}

/// By name; the first entry of a name wins.
fn by_name(packages: &[NativePackage]) -> BTreeMap<&str, &str> {
    let mut map = BTreeMap::new();
    for package in packages {
        map.entry(package.name.as_str())
            .or_insert(package.version.as_str());
    }
    map
}

pub fn compare_native_packages(
    bundle: &[NativePackage],
    live: Option<&[NativePackage]>,
) -> CompatibilityReport {
    let bundle_packages = by_name(bundle);
    let Some(live) = live else {
        return CompatibilityReport {
            compatible: true,
            live_known: false,
            packages: bundle_packages
                .into_iter()
                .map(|(name, version)| PackageComparison {
                    name: name.to_string(),
                    bundle_version: Some(version.to_string()),
                    live_version: None,
                    compatible: true,
                    reason: None,
                })
                .collect(),
        };
    };
    let live_packages = by_name(live);
    let mut names: Vec<&str> = bundle_packages
        .keys()
        .chain(live_packages.keys())
        .copied()
        .collect();
    names.sort_unstable();
    names.dedup();
    let packages: Vec<PackageComparison> = names
        .into_iter()
        .map(|name| {
            let bundle_version = bundle_packages.get(name).copied();
            let live_version = live_packages.get(name).copied();
            let reason = match (bundle_version, live_version) {
                (Some(_), None) => Some(NEW_PLUGIN),
                (None, _) => Some(REMOVED),
                (Some(new), Some(old)) if !same_version(new, old) => Some(VERSION_MISMATCH),
                (Some(_), Some(_)) => None,
            };
            PackageComparison {
                name: name.to_string(),
                bundle_version: bundle_version.map(str::to_string),
                live_version: live_version.map(str::to_string),
                compatible: matches!(reason, None | Some(REMOVED)),
                reason,
            }
        })
        .collect();
    CompatibilityReport {
        compatible: packages.iter().all(|p| p.compatible),
        live_known: true,
        packages,
    }
}
