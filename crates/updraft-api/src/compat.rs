//! Native compatibility of a bundle (or a project's packages) with a channel's live bundle.

use serde::{Deserialize, Serialize};
use updraft_core::compat::PackageComparison;
use updraft_core::model::NativePackage;
use utoipa::ToSchema;

/// A project's packages to compare (what `bundle compatibility` sends).
#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct CompatibilityRequest {
    /// `{"name", "version", "requested_version"?}` per package with native code.
    #[schema(value_type = Vec<Object>)]
    pub native_packages: Vec<NativePackage>,
}

#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
pub struct CompatibilityView {
    pub channel: String,
    /// The compared bundle's version; `null` for packages sent in the request.
    pub bundle: Option<String>,
    /// The channel's live (stable) bundle, or `builtin`.
    pub live_bundle: String,
    pub compatible: bool,
    /// False when the live bundle's packages are unknown: nothing to compare.
    pub live_known: bool,
    /// False when the compared bundle's packages are unknown.
    pub bundle_known: bool,
    /// Per package, sorted by name: `name`, `bundle_version`, `live_version`,
    /// `compatible`, `reason` (`new_plugin`, `version_mismatch`, `removed`).
    #[schema(value_type = Vec<Object>)]
    pub packages: Vec<PackageComparisonView>,
}

/// One package of a comparison.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct PackageComparisonView {
    pub name: String,
    pub bundle_version: Option<String>,
    pub live_version: Option<String>,
    pub compatible: bool,
    /// `new_plugin`, `version_mismatch`, `removed`; `null` when both agree
    /// (or the live bundle is unknown).
    pub reason: Option<String>,
}

impl From<PackageComparison> for PackageComparisonView {
    fn from(p: PackageComparison) -> Self {
        PackageComparisonView {
            name: p.name,
            bundle_version: p.bundle_version,
            live_version: p.live_version,
            compatible: p.compatible,
            reason: p.reason.map(str::to_string),
        }
    }
}
