//! The native-compatibility guard: a web bundle that calls a Capacitor plugin
//! the installed app lacks (or expects another version of it) breaks on
//! devices, so putting one live on a channel is refused unless accepted.
//! Also the `compatibility` endpoints that show the comparison beforehand.

use super::{existing_app, ApiQuery, Caller, JsonBody};
use crate::api::Path;
use crate::error::{ApiError, ErrorCode};
use crate::state::AppState;
use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use updraft_core::compat::{compare_native_packages, CompatibilityReport, PackageComparison};
use updraft_core::model::{Bundle, Channel, NativePackage, Role, BUILTIN};

/// Most packages one bundle may list.
pub const MAX_NATIVE_PACKAGES: usize = 1000;

/// Checks `native_packages` of a new bundle: names and versions non-empty and
/// short, names unique.
pub fn validate_native_packages(packages: &[NativePackage]) -> Result<(), ApiError> {
    if packages.len() > MAX_NATIVE_PACKAGES {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidNativePackages,
            format!("native_packages lists at most {MAX_NATIVE_PACKAGES} packages"),
        ));
    }
    let mut names = std::collections::HashSet::new();
    for package in packages {
        let fields = [
            ("name", package.name.as_str()),
            ("version", package.version.as_str()),
            (
                "requested_version",
                package.requested_version.as_deref().unwrap_or("-"),
            ),
        ];
        for (field, value) in fields {
            if value.trim().is_empty()
                || value.chars().count() > 214
                || value.chars().any(char::is_control)
            {
                return Err(ApiError::bad_request(
                    ErrorCode::InvalidNativePackages,
                    format!(
                        "native_packages: {field} of {:?} must be 1 to 214 printable characters",
                        package.name
                    ),
                ));
            }
        }
        if !names.insert(package.name.as_str()) {
            return Err(ApiError::bad_request(
                ErrorCode::InvalidNativePackages,
                format!("native_packages lists {:?} twice", package.name),
            ));
        }
    }
    Ok(())
}

/// The channel's live (stable) bundle; `None` for the builtin one.
async fn live_bundle(state: &AppState, channel: &Channel) -> Result<Option<Bundle>, ApiError> {
    let Some(id) = channel.bundle_id else {
        return Ok(None);
    };
    if let Some(bundle) = state.releases.get(&channel.app_id).bundle(id) {
        return Ok(Some(bundle.clone()));
    }
    // Not in memory yet (a change in flight): ask the store.
    Ok(state
        .store
        .list_bundles(&channel.app_id, true)
        .await?
        .into_iter()
        .find(|bundle| bundle.id == id))
}

/// The comparison of `packages` (a bundle's, `None` = unknown) with the channel's live bundle.
pub struct Comparison {
    pub report: CompatibilityReport,
    /// The live bundle's name (`builtin` for none).
    pub live_bundle: String,
    /// False when the compared bundle's packages are unknown.
    pub bundle_known: bool,
}

pub async fn compare(
    state: &AppState,
    channel: &Channel,
    packages: Option<&[NativePackage]>,
) -> Result<Comparison, ApiError> {
    let live = live_bundle(state, channel).await?;
    let live_bundle = live
        .as_ref()
        .map(|b| b.name.clone())
        .unwrap_or_else(|| BUILTIN.to_string());
    let live_packages = live.as_ref().and_then(|b| b.native_packages.as_deref());
    let report = match packages {
        Some(packages) => compare_native_packages(packages, live_packages),
        // Nothing known about the bundle: nothing to hold against it.
        None => CompatibilityReport {
            compatible: true,
            live_known: live_packages.is_some(),
            packages: Vec::new(),
        },
    };
    Ok(Comparison {
        report,
        live_bundle,
        bundle_known: packages.is_some(),
    })
}

/// `name 6.0.0 → 7.0.0 (version_mismatch)` for each incompatible package.
fn differences(packages: &[PackageComparison]) -> Vec<String> {
    packages
        .iter()
        .filter(|p| !p.compatible)
        .map(|p| {
            format!(
                "{} {} → {} ({})",
                p.name,
                p.live_version.as_deref().unwrap_or("absent"),
                p.bundle_version.as_deref().unwrap_or("absent"),
                p.reason.unwrap_or("incompatible")
            )
        })
        .collect()
}

/// The 409 for `version` refused on `channel`; lists the packages in the
/// message and, machine-readable, in `details`.
pub fn incompatible_error(channel: &str, version: &str, comparison: &Comparison) -> ApiError {
    let packages: Vec<&PackageComparison> = comparison
        .report
        .packages
        .iter()
        .filter(|p| !p.compatible)
        .collect();
    let details = serde_json::to_value(&packages).unwrap_or_default();
    ApiError::conflict(
        ErrorCode::IncompatibleBundle,
        format!(
            "bundle {version} is not compatible with the native packages of channel {channel}'s live bundle {}: {}; \
             pass accept_incompatible to put it live anyway",
            comparison.live_bundle,
            differences(&comparison.report.packages).join(", ")
        ),
    )
    .with("details", details)
    .with("live_bundle", comparison.live_bundle.clone())
}

/// Refuses (409 `incompatible_bundle`) to put `bundle` live on `channel`
/// when its native packages differ from those of the channel's live bundle,
/// unless `accept_incompatible`. Unknown packages on either side pass.
pub async fn guard(
    state: &AppState,
    channel: &Channel,
    bundle: &Bundle,
    accept_incompatible: bool,
) -> Result<(), ApiError> {
    check(
        state,
        channel,
        &bundle.name,
        bundle.native_packages.as_deref(),
        accept_incompatible,
    )
    .await
}

/// As [`guard`], for a bundle not stored yet (an upload with `channel`).
pub async fn check(
    state: &AppState,
    channel: &Channel,
    version: &str,
    packages: Option<&[NativePackage]>,
    accept_incompatible: bool,
) -> Result<(), ApiError> {
    if accept_incompatible || packages.is_none() {
        return Ok(());
    }
    let comparison = compare(state, channel, packages).await?;
    if comparison.report.compatible {
        Ok(())
    } else {
        Err(incompatible_error(&channel.name, version, &comparison))
    }
}

#[derive(Deserialize)]
pub struct CompatibilityQuery {
    bundle: Option<String>,
}

pub use updraft_api::compat::{CompatibilityRequest, CompatibilityView};

async fn existing_channel(state: &AppState, app_id: &str, name: &str) -> Result<Channel, ApiError> {
    state.store.get_channel(app_id, name).await?.ok_or_else(|| {
        ApiError::not_found(
            ErrorCode::ChannelNotFound,
            format!("channel {name} of {app_id} does not exist"),
        )
    })
}

fn view(channel: &Channel, bundle: Option<String>, comparison: Comparison) -> CompatibilityView {
    CompatibilityView {
        channel: channel.name.clone(),
        bundle,
        live_bundle: comparison.live_bundle,
        compatible: comparison.report.compatible,
        live_known: comparison.report.live_known,
        bundle_known: comparison.bundle_known,
        packages: comparison
            .report
            .packages
            .into_iter()
            .map(Into::into)
            .collect(),
    }
}

#[utoipa::path(get, path = "/api/v1/apps/{app_id}/channels/{name}/compatibility", tag = "channels",
    operation_id = "bundle_compatibility",
    params(("bundle" = String, Query, min_length = 1, pattern = r"\S", description = "the stored bundle version to compare with the live one")),
    responses((status = 200, body = CompatibilityView), (status = 400, body = super::views::ErrorView),
        (status = 404, body = super::views::ErrorView)))]
pub async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path((app_id, name)): Path<(String, String)>,
    ApiQuery(query): ApiQuery<CompatibilityQuery>,
) -> Result<Json<CompatibilityView>, ApiError> {
    caller.require(Role::Viewer, Some(&app_id))?;
    existing_app(&state, &caller, &app_id).await?;
    let version = query
        .bundle
        .filter(|v| !v.trim().is_empty())
        .ok_or_else(|| {
            ApiError::bad_request(
                ErrorCode::MissingBundle,
                "give the bundle to compare: ?bundle=VERSION (or POST the native_packages)",
            )
        })?;
    let channel = existing_channel(&state, &app_id, &name).await?;
    let bundle = state
        .store
        .get_bundle(&app_id, &version)
        .await?
        .ok_or_else(|| {
            ApiError::not_found(
                ErrorCode::BundleNotFound,
                format!("bundle {version} of {app_id} does not exist"),
            )
        })?;
    let comparison = compare(&state, &channel, bundle.native_packages.as_deref()).await?;
    Ok(Json(view(&channel, Some(bundle.name), comparison)))
}

#[utoipa::path(post, path = "/api/v1/apps/{app_id}/channels/{name}/compatibility", tag = "channels",
    operation_id = "packages_compatibility", request_body = CompatibilityRequest,
    responses((status = 200, body = CompatibilityView), (status = 400, body = super::views::ErrorView),
        (status = 404, body = super::views::ErrorView)))]
pub async fn check_packages(
    State(state): State<AppState>,
    caller: Caller,
    Path((app_id, name)): Path<(String, String)>,
    JsonBody(body): JsonBody<CompatibilityRequest>,
) -> Result<Json<CompatibilityView>, ApiError> {
    caller.require(Role::Viewer, Some(&app_id))?;
    existing_app(&state, &caller, &app_id).await?;
    validate_native_packages(&body.native_packages)?;
    let channel = existing_channel(&state, &app_id, &name).await?;
    let comparison = compare(&state, &channel, Some(&body.native_packages)).await?;
    Ok(Json(view(&channel, None, comparison)))
}
