//! `bundle upload --version-exists-ok` (the Capgo CLI's flag, for CI jobs that
//! run again on the same commit): a version that is already registered with
//! the same checksum is success, with nothing uploaded; the same version with
//! another checksum is still refused, since a version never changes.

use crate::client::ApiClient;
use crate::error::{CliError, LocalCode};
use crate::output::Outcome;
use serde_json::json;
use updraft_api::{BundleView, ErrorCode};

/// Which checksum of the new bundle to compare with the stored one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Checksum<'a> {
    /// SHA-256 of the plaintext zip (what `--path` computes, `--checksum` gives).
    Plain(&'a str),
    /// An encrypted external bundle registered without a plain checksum.
    Encrypted(&'a str),
}

/// `Ok(Some(outcome))` when `version` exists with the same checksum (the
/// command's success), `Ok(None)` when it does not exist, and an error when
/// it exists with another checksum or was deleted.
pub async fn same_version(
    client: &ApiClient,
    app_id: &str,
    version: &str,
    checksum: Checksum<'_>,
) -> Result<Option<Outcome>, CliError> {
    let existing = match client
        .get::<BundleView>(&["apps", app_id, "bundles", version], &[])
        .await
    {
        Ok(existing) => existing.value,
        Err(error) if error.is(&ErrorCode::BundleNotFound) => return Ok(None),
        Err(error) => return Err(error),
    };
    if existing.deleted {
        return Err(CliError::new(
            ErrorCode::BundleAlreadyExists,
            format!(
                "bundle {version} of {app_id} was deleted and its version cannot be registered \
                 again; bump the version"
            ),
        ));
    }
    let (stored, given) = match checksum {
        Checksum::Plain(given) => (existing.checksum.clone(), given),
        Checksum::Encrypted(given) => (existing.encrypted_checksum.clone(), given),
    };
    if stored
        .as_deref()
        .is_some_and(|stored| stored.eq_ignore_ascii_case(given.trim()))
    {
        let text = format!(
            "Bundle {version} of {app_id} already exists with the same checksum; nothing was \
             uploaded (--version-exists-ok)."
        );
        // The bundle as a fresh upload prints it, marked as one that was there already.
        let mut value = serde_json::to_value(&existing).unwrap_or_else(|_| json!({}));
        if let Some(fields) = value.as_object_mut() {
            fields.insert("status".to_string(), json!("exists"));
        }
        return Ok(Some(Outcome::new(value, text)));
    }
    Err(CliError::new(
        LocalCode::VersionExistsDifferent,
        format!(
            "bundle {version} of {app_id} already exists with another checksum ({}; this upload's \
             is {}): a version cannot change, so bump the version",
            stored.as_deref().unwrap_or("none"),
            given.trim()
        ),
    ))
}
