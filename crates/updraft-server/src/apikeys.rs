//! Management API keys: listed, created and revoked by admins (the first key
//! comes from `updraft apikey create`, which works on the data directory
//! without a server). Authentication with them is [`crate::auth::AuthService`]'s.

use crate::audit::{self, AuditService};
use crate::auth::Caller;
use crate::error::{ApiError, ErrorCode};
use std::sync::Arc;
use updraft_api::management::{ApiKeyView, CreateApiKey, CreatedApiKey, MAX_KEY_DAYS};
use updraft_core::model::{ApiKey, Clock, Millis, Role};
use updraft_core::validate::is_valid_app_id;
use updraft_store::{ApiKeyStore, AppStore, NewApiKey};

const DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// API keys and their audit entries: the key store, the apps (a key limited
/// to an app needs the app), the clock (creation, expiry and revocation
/// times) and the audit log.
pub struct ApiKeyService {
    keys: Arc<dyn ApiKeyStore>,
    apps: Arc<dyn AppStore>,
    clock: Arc<dyn Clock>,
    audit: Arc<AuditService>,
}

impl ApiKeyService {
    pub fn new(
        keys: Arc<dyn ApiKeyStore>,
        apps: Arc<dyn AppStore>,
        clock: Arc<dyn Clock>,
        audit: Arc<AuditService>,
    ) -> ApiKeyService {
        ApiKeyService {
            keys,
            apps,
            clock,
            audit,
        }
    }

    /// Every key, revoked and expired ones too, by id.
    pub async fn list(&self) -> Result<Vec<ApiKey>, ApiError> {
        Ok(self.keys.list_api_keys().await?)
    }

    /// Creates a key as `request` asks (checked first: nothing is stored on
    /// a refusal); its secret is in the answer, once. A key limited to an
    /// app that does not exist is refused `app_not_found`: it could do
    /// nothing, and a typo in the app id would go unnoticed.
    pub async fn create(
        &self,
        caller: &Caller,
        request: &CreateApiKey,
    ) -> Result<CreatedApiKey, ApiError> {
        let now = self.clock.now();
        let new = checked_key(request, now)?;
        if let Some(app_id) = new.app_id.as_deref() {
            if self.apps.get_app(app_id).await?.is_none() {
                return Err(ApiError::not_found(
                    ErrorCode::AppNotFound,
                    format!("app {app_id} does not exist: register it before creating a key limited to it"),
                ));
            }
        }
        let (key, secret) = self.keys.create_api_key(new, now).await?;
        // The view has the key's shown prefix, never its secret.
        let created = ApiKeyView::from(key);
        self.audit
            .log(
                caller,
                created.app_id.as_deref(),
                "apikey.create",
                &created.name,
                None,
                audit::view(&created),
            )
            .await;
        Ok(CreatedApiKey {
            apikey: created,
            key: secret,
        })
    }

    /// Revokes the key with this id, or else this name (404 when neither
    /// exists). Revoking a revoked key keeps its first revocation time and
    /// records nothing.
    pub async fn revoke(&self, caller: &Caller, id_or_name: &str) -> Result<(), ApiError> {
        let before = self.key_by_id_or_name(id_or_name).await?;
        let revoked = self
            .keys
            .revoke_api_key(id_or_name, self.clock.now())
            .await?;
        // Revoking a revoked key changes nothing: nothing to record.
        if before.as_ref().is_none_or(|k| k.revoked_at.is_none()) {
            let before = before.map(ApiKeyView::from);
            let after = ApiKeyView::from(revoked);
            self.audit
                .log(
                    caller,
                    after.app_id.as_deref(),
                    "apikey.revoke",
                    &after.name,
                    before.as_ref().and_then(audit::view),
                    audit::view(&after),
                )
                .await;
        }
        Ok(())
    }

    /// The key `revoke_api_key` will find: by id first, then by name.
    async fn key_by_id_or_name(&self, id_or_name: &str) -> Result<Option<ApiKey>, ApiError> {
        let keys = self.keys.list_api_keys().await?;
        let by_id = id_or_name
            .parse::<i64>()
            .ok()
            .and_then(|id| keys.iter().find(|k| k.id == id));
        Ok(by_id
            .or_else(|| keys.iter().find(|k| k.name == id_or_name))
            .cloned())
    }
}

/// The key a create request asks for at `now`, or why it is refused.
fn checked_key(request: &CreateApiKey, now: Millis) -> Result<NewApiKey, ApiError> {
    let name = request.name.trim();
    if name.is_empty() || request.name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidBody,
            "name must be 1 to 100 characters, without control characters",
        ));
    }
    let role = match request.role.as_deref() {
        None => Role::Admin,
        Some(role) => Role::parse(role).ok_or_else(|| {
            ApiError::bad_request(
                ErrorCode::InvalidRole,
                format!("role must be admin, publisher or viewer, got {role:?}"),
            )
        })?,
    };
    if let Some(app_id) = request.app_id.as_deref() {
        if !is_valid_app_id(app_id) {
            return Err(ApiError::bad_request(
                ErrorCode::InvalidAppId,
                format!("app id {app_id:?} is not a reverse domain"),
            ));
        }
    }
    if let Some(days) = request.expires_in_days {
        if !(1..=MAX_KEY_DAYS).contains(&days) {
            return Err(ApiError::bad_request(
                ErrorCode::InvalidExpiry,
                format!("expires_in_days must be between 1 and {MAX_KEY_DAYS}, got {days}"),
            ));
        }
    }
    Ok(NewApiKey {
        name: name.to_string(),
        role,
        app_id: request.app_id.clone(),
        expires_at: request
            .expires_in_days
            .map(|days| now + i64::from(days) * DAY_MS),
    })
}
