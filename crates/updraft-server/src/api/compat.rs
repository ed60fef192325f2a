//! The `compatibility` endpoints: the native-compatibility guard's
//! comparison (in `release_changes`) shown before a release.

use super::{existing_app, ApiQuery, Caller, JsonBody};
use crate::api::Path;
use crate::error::ApiError;
use crate::error::ErrorCode;
use crate::release_changes::Comparison;
use crate::state::AppState;
use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use updraft_core::model::{Channel, NativePackage, Role};

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

#[derive(Deserialize)]
pub struct CompatibilityQuery {
    bundle: Option<String>,
}

pub use updraft_api::compat::{CompatibilityRequest, CompatibilityView};

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
    let channel = state
        .release_changes
        .existing_channel(&app_id, &name)
        .await?;
    let bundle = state
        .release_changes
        .existing_bundle(&app_id, &version)
        .await?;
    let comparison = state
        .release_changes
        .compare(&channel, bundle.native_packages.as_deref())
        .await?;
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
    let channel = state
        .release_changes
        .existing_channel(&app_id, &name)
        .await?;
    let comparison = state
        .release_changes
        .compare(&channel, Some(&body.native_packages))
        .await?;
    Ok(Json(view(&channel, None, comparison)))
}
