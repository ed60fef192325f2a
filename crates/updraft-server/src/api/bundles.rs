//! Bundles: registered by external URL, or made of blobs uploaded to this
//! server (a zip and/or delta files); listed, annotated and soft-deleted.

use super::views::{BundleList, BundleView, CreateBundle, UpdateBundle};
use super::{compat, existing_app, refresh_release, validate, ApiQuery, Caller, JsonBody};
use crate::api::Path;
use crate::audit;
use crate::bundles;
use crate::error::ApiError;
use crate::error::ErrorCode;
use crate::release_changes::{Actor, ReleaseChange, RolloutRequest};
use crate::state::AppState;
use crate::storage::publish::PublishFiles;
use crate::webhooks;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::Deserialize;

use updraft_core::model::Role;
use updraft_core::validate::normalize_hex;
use updraft_store::{BundleMetadataPatch, NewBundle};

#[derive(Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    include_deleted: bool,
}

#[utoipa::path(get, path = "/api/v1/apps/{app_id}/bundles", tag = "bundles", operation_id = "list_bundles",
    params(("include_deleted" = Option<bool>, Query, description = "also list deleted bundles")),
    responses((status = 200, body = BundleList), (status = 404, body = super::views::ErrorView)))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(app_id): Path<String>,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Json<BundleList>, ApiError> {
    caller.require(Role::Viewer, Some(&app_id))?;
    existing_app(&state, &caller, &app_id).await?;
    let bundles = state
        .bundles
        .list(&app_id, query.include_deleted, &state.base_url(&headers))
        .await?;
    Ok(Json(BundleList { bundles }))
}

/// Where a new bundle's zip comes from.
enum ZipSource<'a> {
    External,
    /// A stored blob, by the SHA-256 the client gave.
    Stored(&'a str),
    /// A manifest-only bundle.
    Absent,
}

fn has_manifest(body: &CreateBundle) -> bool {
    body.manifest.as_ref().is_some_and(|m| !m.is_empty())
}

/// Checks a registration (everything but the stored blobs) and turns it
/// into a storable bundle.
fn new_bundle<'a>(
    app_id: &str,
    body: &'a CreateBundle,
) -> Result<(NewBundle, ZipSource<'a>), ApiError> {
    validate::bundle_version(&body.version)?;
    let source = match (body.external_url.as_deref(), body.zip_sha256.as_deref()) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(
                ErrorCode::InvalidBody,
                "give either external_url or zip_sha256, not both",
            ))
        }
        (Some(url), None) => {
            validate::http_url("external_url", url)?;
            ZipSource::External
        }
        (None, Some(sha)) => ZipSource::Stored(sha),
        (None, None) if has_manifest(body) => ZipSource::Absent,
        (None, None) => {
            return Err(ApiError::bad_request(
                ErrorCode::InvalidBody,
                "a bundle needs external_url, zip_sha256 (an uploaded zip) or a manifest",
            ))
        }
    };
    let session_key = body
        .session_key
        .as_deref()
        .map(str::trim)
        .filter(|k| !k.is_empty());
    if let Some(key) = session_key {
        validate::session_key(key)?;
    }
    let key_id = body
        .key_id
        .as_deref()
        .map(str::trim)
        .filter(|k| !k.is_empty());
    if key_id.is_some_and(|k| k.chars().count() > 20) {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidKeyId,
            "key_id is at most 20 characters",
        ));
    }
    let given_encrypted_checksum = body
        .encrypted_checksum
        .as_deref()
        .map(str::trim)
        .filter(|c| !c.is_empty());
    let checksum = match (body.checksum.as_deref(), &source) {
        (Some(checksum), _) => Some(checksum.trim()),
        (None, ZipSource::Absent) => None,
        // What the Capgo CLI registers for an encrypted bundle hosted elsewhere:
        // devices with the key verify the RSA-encrypted checksum, and devices
        // without one cannot open the bundle anyway.
        (None, ZipSource::External)
            if session_key.is_some() && given_encrypted_checksum.is_some() =>
        {
            None
        }
        (None, ZipSource::External) => {
            return Err(ApiError::bad_request(
                ErrorCode::InvalidBody,
                "checksum is required for an unencrypted external zip: devices verify the SHA-256 \
                 of the zip (64 hex); an encrypted one may give session_key and encrypted_checksum instead",
            ))
        }
        (None, ZipSource::Stored(_)) => {
            return Err(ApiError::bad_request(
                ErrorCode::InvalidBody,
                "checksum is required for a zip bundle: the SHA-256 of the plaintext zip",
            ))
        }
    };
    let (plain, mut encrypted) = if let Some(checksum) = checksum {
        if let Some(plain) = normalize_hex(checksum, 64) {
            (Some(plain), None)
        } else if let Some(rsa) = normalize_hex(checksum, 512) {
            (None, Some(rsa))
        } else {
            return Err(ApiError::bad_request(
                ErrorCode::InvalidChecksum,
                "checksum must be the SHA-256 of the zip as 64 hex characters (or its RSA-encrypted form, 512 hex characters)",
            ));
        }
    } else {
        (None, None)
    };
    if let Some(given) = given_encrypted_checksum {
        encrypted = Some(normalize_hex(given, 512).ok_or_else(|| {
            ApiError::bad_request(
                ErrorCode::InvalidChecksum,
                "encrypted_checksum must be 512 hex characters (an RSA-2048 block)",
            )
        })?);
    }
    match (session_key.is_some(), encrypted.is_some()) {
        // A manifest-only bundle has no zip checksum for devices to verify.
        (true, false) if checksum.is_none() => {}
        (true, false) => {
            return Err(ApiError::bad_request(
                ErrorCode::InvalidChecksum,
                "an encrypted bundle (session_key) needs its RSA-encrypted checksum (512 hex characters) in encrypted_checksum: devices verify that one",
            ))
        }
        (false, true) => {
            return Err(ApiError::bad_request(
                ErrorCode::InvalidChecksum,
                "an RSA-encrypted checksum only makes sense with a session_key; for a plain bundle send the 64-hex SHA-256",
            ))
        }
        _ => {}
    }
    if let Some(min) = body.min_update_version.as_deref() {
        validate::bundle_version(min).map_err(|_| {
            ApiError::bad_request(
                ErrorCode::InvalidVersion,
                format!("min_update_version {min:?} is not semver"),
            )
        })?;
    }
    if let Some(link) = body.link.as_deref() {
        validate::text("link", link, 2048)?;
    }
    if let Some(comment) = body.comment.as_deref() {
        validate::text("comment", comment, 4096)?;
    }
    if let Some(channel) = body.channel.as_deref() {
        validate::channel_name(channel)?;
    }
    let new = NewBundle {
        app_id: app_id.to_string(),
        name: body.version.clone(),
        checksum: plain,
        encrypted_checksum: encrypted,
        session_key: session_key.map(str::to_string),
        key_id: key_id.map(str::to_string),
        external_url: body.external_url.clone(),
        storage_path: None,
        zip_sha256: None,
        size: None,
        manifest: Vec::new(),
        min_update_version: body.min_update_version.clone(),
        link: body.link.clone().filter(|l| !l.is_empty()),
        comment: body.comment.clone().filter(|c| !c.is_empty()),
        native_packages: body.native_packages.clone(),
    };
    Ok((new, source))
}

/// Checks the fields that put a new bundle on its channel; returns the rollout
/// percentage asked for.
fn release_fields(body: &CreateBundle) -> Result<Option<u32>, ApiError> {
    if let Some(packages) = body.native_packages.as_deref() {
        compat::validate_native_packages(packages)?;
    }
    let wants_channel = body.rollout_percentage_bps.is_some()
        || body.accept_incompatible.is_some()
        || body.create_channel.is_some();
    if wants_channel && body.channel.is_none() {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidBody,
            "rollout_percentage_bps, accept_incompatible and create_channel need a channel",
        ));
    }
    body.rollout_percentage_bps
        .map(|bps| {
            u32::try_from(bps)
                .ok()
                .filter(|bps| *bps <= 10_000)
                .ok_or_else(|| {
                    ApiError::bad_request(
                        ErrorCode::InvalidPercentage,
                        format!("rollout_percentage_bps must be 0 to 10000, not {bps}"),
                    )
                })
        })
        .transpose()
}

#[utoipa::path(post, path = "/api/v1/apps/{app_id}/bundles", tag = "bundles", operation_id = "create_bundles", request_body = CreateBundle,
    responses((status = 201, body = BundleView), (status = 400, body = super::views::ErrorView), (status = 409, body = super::views::ErrorView),
        (status = 422, body = super::views::ErrorView, description = "a stored zip or manifest is refused (missing blob, invalid zip, checksum mismatch)")))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(app_id): Path<String>,
    JsonBody(body): JsonBody<CreateBundle>,
) -> Result<(StatusCode, Json<BundleView>), ApiError> {
    caller.require(Role::Publisher, Some(&app_id))?;
    existing_app(&state, &caller, &app_id).await?;
    let (new, source) = new_bundle(&app_id, &body)?;
    let rollout_bps = release_fields(&body)?;
    let accept_incompatible = body.accept_incompatible.unwrap_or(false);
    state.publish.version_free(&app_id, &new.name).await?;
    let create_channel = body.create_channel.unwrap_or(false);
    // Refused before anything is stored; the change itself checks again.
    if let Some(name) = body.channel.as_deref() {
        match state.release_changes.find_channel(&app_id, name).await? {
            Some(channel) => {
                state
                    .release_changes
                    .check_compatible(
                        &channel,
                        &new.name,
                        new.native_packages.as_deref(),
                        accept_incompatible,
                    )
                    .await?
            }
            // A typo must not create a channel that no device uses.
            None if !create_channel => {
                return Err(state.release_changes.unknown_channel(&app_id, name).await?)
            }
            None => {}
        }
    }
    let zip_sha256 = match source {
        ZipSource::Stored(sha) => Some(sha),
        _ => None,
    };
    let files = PublishFiles {
        zip_sha256,
        manifest: body.manifest.as_deref().unwrap_or_default(),
    };
    let bundle = state.publish.publish(new, files).await?;
    // Recorded as created, before any channel points at it.
    let created = audit::view(&bundles::view(
        bundle.clone(),
        &state.base_url(&headers),
        &bundles::ChannelUses::new(),
    ));
    state
        .audit
        .log(
            &caller,
            Some(&app_id),
            "bundle.create",
            &bundle.name,
            None,
            created.clone(),
        )
        .await;
    state
        .webhooks
        .emit(
            &app_id,
            webhooks::events::BUNDLE_UPLOADED,
            serde_json::json!({"app_id": app_id, "version": bundle.name, "bundle": created}),
        )
        .await;
    if let Some(channel) = body.channel.as_deref() {
        if create_channel {
            state
                .release_changes
                .ensure_channel(&caller, &app_id, channel, bundle.created_at)
                .await?;
        }
        let version = bundle.name.clone();
        let change = match rollout_bps {
            Some(percentage_bps) => ReleaseChange::Rollout(RolloutRequest::Start {
                version,
                percentage_bps,
            }),
            None => ReleaseChange::SetBundle { version },
        };
        state
            .release_changes
            .change_release(
                Actor::Key(&caller),
                &app_id,
                channel,
                change,
                accept_incompatible,
            )
            .await?;
    }
    refresh_release(&state, &app_id).await;
    let uses = state.bundles.channel_uses(&app_id).await?;
    Ok((
        StatusCode::CREATED,
        Json(bundles::view(bundle, &state.base_url(&headers), &uses)),
    ))
}

#[utoipa::path(get, path = "/api/v1/apps/{app_id}/bundles/{version}", tag = "bundles", operation_id = "show_bundles",
    responses((status = 200, body = BundleView), (status = 404, body = super::views::ErrorView)))]
pub async fn show(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path((app_id, version)): Path<(String, String)>,
) -> Result<Json<BundleView>, ApiError> {
    caller.require(Role::Viewer, Some(&app_id))?;
    existing_app(&state, &caller, &app_id).await?;
    let shown = state
        .bundles
        .show(&app_id, &version, &state.base_url(&headers))
        .await?;
    Ok(Json(shown))
}

#[utoipa::path(patch, path = "/api/v1/apps/{app_id}/bundles/{version}", tag = "bundles", operation_id = "update_bundles", request_body = UpdateBundle,
    responses((status = 200, body = BundleView), (status = 404, body = super::views::ErrorView)))]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path((app_id, version)): Path<(String, String)>,
    JsonBody(body): JsonBody<UpdateBundle>,
) -> Result<Json<BundleView>, ApiError> {
    caller.require(Role::Publisher, Some(&app_id))?;
    existing_app(&state, &caller, &app_id).await?;
    let patch = BundleMetadataPatch {
        link: body.link,
        comment: body.comment,
        min_update_version: body.min_update_version,
    };
    let updated = state
        .bundles
        .update_metadata(&caller, &app_id, &version, patch, &state.base_url(&headers))
        .await?;
    Ok(Json(updated))
}

#[derive(Deserialize)]
pub struct DeleteQuery {
    #[serde(default)]
    force: bool,
}

#[utoipa::path(delete, path = "/api/v1/apps/{app_id}/bundles/{version}", tag = "bundles", operation_id = "delete_bundles",
    params(("force" = Option<bool>, Query, description = "delete even though channels serve it or pending schedules name it")),
    responses((status = 204), (status = 404, body = super::views::ErrorView),
        (status = 409, body = super::views::ErrorView, description = "bundle_in_use: channels serve it or pending schedules name it (listed in channels and schedules)")))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path((app_id, version)): Path<(String, String)>,
    ApiQuery(query): ApiQuery<DeleteQuery>,
) -> Result<StatusCode, ApiError> {
    caller.require(Role::Publisher, Some(&app_id))?;
    existing_app(&state, &caller, &app_id).await?;
    state
        .bundles
        .delete(
            &caller,
            &app_id,
            &version,
            query.force,
            &state.base_url(&headers),
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
