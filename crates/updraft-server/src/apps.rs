//! Apps: registered once, everything else hangs off them.
//!
//! [`AppService`] is the one place that creates, changes and deletes apps:
//! each change is written, the in-memory release refreshed and the audit
//! entry recorded here, so a handler only checks the caller's role and maps
//! the answer.

use crate::audit::{self, AuditService};
use crate::auth::Caller;
use crate::error::{ApiError, ErrorCode};
use crate::release_changes::ReleaseService;
use crate::writers::RegistryWriter;
use std::sync::Arc;
use updraft_api::management::AppView;
use updraft_core::model::{App, Clock};
use updraft_core::validate::is_valid_app_id;
use updraft_store::AppStore;

/// Apps and what changes with them: the app store, the device registry
/// (forgotten when an app's rows go), the release refresh, the clock and
/// the audit log.
pub struct AppService {
    apps: Arc<dyn AppStore>,
    registry: Arc<RegistryWriter>,
    releases: Arc<ReleaseService>,
    clock: Arc<dyn Clock>,
    audit: Arc<AuditService>,
}

impl AppService {
    pub fn new(
        apps: Arc<dyn AppStore>,
        registry: Arc<RegistryWriter>,
        releases: Arc<ReleaseService>,
        clock: Arc<dyn Clock>,
        audit: Arc<AuditService>,
    ) -> AppService {
        AppService {
            apps,
            registry,
            releases,
            clock,
            audit,
        }
    }

    /// Every app the caller may see, by id.
    pub async fn list(&self, caller: &Caller) -> Result<Vec<App>, ApiError> {
        let mut apps = self.apps.list_apps().await?;
        apps.retain(|app| caller.can_see(&app.app_id));
        Ok(apps)
    }

    /// The app, or 404 `app_not_found` — also for apps a scoped key may not
    /// see, so that such a key learns nothing of them.
    pub async fn visible(&self, caller: &Caller, app_id: &str) -> Result<App, ApiError> {
        let not_found = || {
            ApiError::not_found(
                ErrorCode::AppNotFound,
                format!("app {app_id} does not exist"),
            )
        };
        if !caller.can_see(app_id) {
            return Err(not_found());
        }
        self.apps.get_app(app_id).await?.ok_or_else(not_found)
    }

    /// Registers `app_id` (a reverse domain), named `name` (default: its id).
    pub async fn create(
        &self,
        caller: &Caller,
        app_id: &str,
        name: Option<&str>,
        expose_metadata: Option<bool>,
    ) -> Result<AppView, ApiError> {
        if !is_valid_app_id(app_id) {
            return Err(ApiError::bad_request(
                ErrorCode::InvalidAppId,
                format!("app id {app_id:?} must be a reverse domain like com.example.app"),
            ));
        }
        let name = name.unwrap_or(app_id);
        let mut app = self
            .apps
            .create_app(app_id, name.trim(), self.clock.now())
            .await?;
        if let Some(expose) = expose_metadata {
            app = self
                .apps
                .update_app(&app.app_id, None, Some(expose))
                .await?;
        }
        self.releases.refresh(&app.app_id).await;
        let created = AppView::from(app);
        self.audit
            .log(
                caller,
                Some(&created.app_id),
                "app.create",
                &created.app_id,
                None,
                audit::view(&created),
            )
            .await;
        Ok(created)
    }

    /// Renames the app and/or changes whether it exposes its metadata.
    pub async fn update(
        &self,
        caller: &Caller,
        app_id: &str,
        name: Option<&str>,
        expose_metadata: Option<bool>,
    ) -> Result<AppView, ApiError> {
        let before = audit::view(&AppView::from(self.visible(caller, app_id).await?));
        let app = self
            .apps
            .update_app(app_id, name.map(str::trim), expose_metadata)
            .await?;
        self.releases.refresh(app_id).await;
        let updated = AppView::from(app);
        self.audit
            .log(
                caller,
                Some(app_id),
                "app.update",
                app_id,
                before,
                audit::view(&updated),
            )
            .await;
        Ok(updated)
    }

    /// Deletes the app with everything of it and revokes the keys limited
    /// to it, in one store transaction (a key of a deleted app must not come
    /// back to life when the id is reused).
    pub async fn delete(&self, caller: &Caller, app_id: &str) -> Result<(), ApiError> {
        let before = audit::view(&AppView::from(self.visible(caller, app_id).await?));
        self.apps.delete_app(app_id, self.clock.now()).await?;
        // Its device rows are gone: a device seen again is written anew.
        self.registry.forget_all();
        self.releases.refresh(app_id).await;
        self.audit
            .log(caller, Some(app_id), "app.delete", app_id, before, None)
            .await;
        Ok(())
    }
}
