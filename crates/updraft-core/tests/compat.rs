//! Native compatibility of a bundle with a channel's live bundle
//! (release-overview.md "Native compatibility"; `updraft_core::compat`).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is its failure report

use updraft_core::compat::{compare_native_packages, CompatibilityReport, PackageComparison};
use updraft_core::model::NativePackage;

fn package(name: &str, version: &str) -> NativePackage {
    NativePackage {
        name: name.into(),
        version: version.into(),
        requested_version: None,
    }
}

fn row(
    name: &str,
    bundle_version: Option<&str>,
    live_version: Option<&str>,
    reason: Option<&'static str>,
) -> PackageComparison {
    PackageComparison {
        name: name.into(),
        bundle_version: bundle_version.map(str::to_string),
        live_version: live_version.map(str::to_string),
        compatible: matches!(reason, None | Some("removed")),
        reason,
    }
}

#[test]
fn identical_packages_are_compatible() {
    let packages = [
        package("@capacitor/camera", "6.0.1"),
        package("@capgo/capacitor-updater", "8.51.14"),
    ];
    let report = compare_native_packages(&packages, Some(&packages));
    assert_eq!(
        report,
        CompatibilityReport {
            compatible: true,
            live_known: true,
            packages: vec![
                row("@capacitor/camera", Some("6.0.1"), Some("6.0.1"), None),
                row(
                    "@capgo/capacitor-updater",
                    Some("8.51.14"),
                    Some("8.51.14"),
                    None
                ),
            ],
        }
    );
}

#[test]
fn new_plugin_version_mismatch_and_removed_sorted_by_name() {
    let bundle = [
        package("@capacitor/share", "6.0.0"),
        package("@capacitor/camera", "6.1.0"),
        package("@capgo/capacitor-updater", "v8.51.14"),
    ];
    let live = [
        package("@capgo/capacitor-updater", "8.51.14"),
        package("@capacitor/camera", "6.0.1"),
        package("@capacitor/haptics", "6.0.0"),
    ];
    let report = compare_native_packages(&bundle, Some(&live));
    assert_eq!(
        report,
        CompatibilityReport {
            compatible: false,
            live_known: true,
            packages: vec![
                row(
                    "@capacitor/camera",
                    Some("6.1.0"),
                    Some("6.0.1"),
                    Some("version_mismatch")
                ),
                row("@capacitor/haptics", None, Some("6.0.0"), Some("removed")),
                row("@capacitor/share", Some("6.0.0"), None, Some("new_plugin")),
                // `v8.51.14` and `8.51.14` are the same semver version.
                row(
                    "@capgo/capacitor-updater",
                    Some("v8.51.14"),
                    Some("8.51.14"),
                    None
                ),
            ],
        }
    );
    assert!(!report.packages[0].compatible);
    assert!(report.packages[1].compatible);
    assert!(!report.packages[2].compatible);
}

#[test]
fn only_removed_plugins_stay_compatible() {
    let live = [package("a-plugin", "1.0.0"), package("b-plugin", "2.0.0")];
    let bundle = [package("b-plugin", "2.0.0")];
    let report = compare_native_packages(&bundle, Some(&live));
    assert!(report.compatible);
    assert_eq!(report.packages[0].reason, Some("removed"));
}

#[test]
fn non_semver_versions_compare_as_trimmed_text() {
    let live = [
        package("git-plugin", "github:org/plugin#abc"),
        package("file-plugin", "file:../x"),
    ];
    let bundle = [
        package("git-plugin", " github:org/plugin#abc "),
        package("file-plugin", "file:../y"),
    ];
    let report = compare_native_packages(&bundle, Some(&live));
    let reasons: Vec<_> = report
        .packages
        .iter()
        .map(|p| (p.name.as_str(), p.reason))
        .collect();
    assert_eq!(
        reasons,
        vec![
            ("file-plugin", Some("version_mismatch")),
            ("git-plugin", None)
        ]
    );
    // A semver version against a non-semver text is a mismatch unless the texts agree.
    let report = compare_native_packages(&[package("p", "1.0.0")], Some(&[package("p", "^1.0.0")]));
    assert_eq!(report.packages[0].reason, Some("version_mismatch"));
}

#[test]
fn unknown_live_bundle_is_compatible_and_says_so() {
    let bundle = [package("z-plugin", "1.0.0"), package("a-plugin", "2.0.0")];
    let report = compare_native_packages(&bundle, None);
    assert_eq!(
        report,
        CompatibilityReport {
            compatible: true,
            live_known: false,
            packages: vec![
                row("a-plugin", Some("2.0.0"), None, None),
                row("z-plugin", Some("1.0.0"), None, None),
            ],
        }
    );
}

#[test]
fn report_serializes_with_reason_codes() {
    let report = compare_native_packages(&[package("p", "2.0.0")], Some(&[]));
    assert_eq!(
        serde_json::to_value(&report).unwrap(),
        serde_json::json!({
            "compatible": false,
            "live_known": true,
            "packages": [{
                "name": "p",
                "bundle_version": "2.0.0",
                "live_version": null,
                "compatible": false,
                "reason": "new_plugin"
            }]
        })
    );
}
