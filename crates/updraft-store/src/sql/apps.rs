//! Apps.

use super::rows::{self, app_columns};
use super::{is_unique_violation, EngineStore};
use crate::{AppStore, Entity, StoreError, StoreResult};
use async_trait::async_trait;
use updraft_core::model::{App, Millis};

#[async_trait]
impl AppStore for EngineStore {
    async fn create_app(&self, app_id: &str, name: &str, now: Millis) -> StoreResult<App> {
        let inserted = sqlx::query(concat!(
            "INSERT INTO apps (app_id, name, created_at) VALUES ($1, $2, $3) RETURNING ",
            app_columns!()
        ))
        .bind(app_id)
        .bind(name)
        .bind(now)
        .fetch_one(&self.pool)
        .await;
        match inserted {
            Ok(row) => rows::app(&row),
            Err(err) if is_unique_violation(&err) => Err(StoreError::AlreadyExists(Entity::App)),
            Err(err) => Err(err.into()),
        }
    }

    async fn list_apps(&self) -> StoreResult<Vec<App>> {
        sqlx::query(concat!(
            "SELECT ",
            app_columns!(),
            " FROM apps ORDER BY app_id"
        ))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(rows::app)
        .collect()
    }

    async fn get_app(&self, app_id: &str) -> StoreResult<Option<App>> {
        sqlx::query(concat!(
            "SELECT ",
            app_columns!(),
            " FROM apps WHERE app_id = $1"
        ))
        .bind(app_id)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(rows::app)
        .transpose()
    }

    async fn update_app(
        &self,
        app_id: &str,
        name: Option<&str>,
        expose_metadata: Option<bool>,
    ) -> StoreResult<App> {
        let row = sqlx::query(concat!(
            "UPDATE apps SET name = COALESCE($2, name), expose_metadata = COALESCE($3, expose_metadata) \
             WHERE app_id = $1 RETURNING ",
            app_columns!()
        ))
        .bind(app_id)
        .bind(name)
        .bind(expose_metadata)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound(Entity::App))?;
        rows::app(&row)
    }

    async fn delete_app(&self, app_id: &str, now: Millis) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        // Keys limited to the app die with it, in the same transaction: a
        // later app of the same id must not find them alive. Revoking again
        // keeps the first revocation time.
        sqlx::query("UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $2) WHERE app_id = $1")
            .bind(app_id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        // Children first and explicitly: devices and stats have no foreign key,
        // and the order keeps every reference valid at each step.
        for statement in [
            "DELETE FROM stats_events WHERE app_id = $1",
            "DELETE FROM devices WHERE app_id = $1",
            "DELETE FROM device_overrides WHERE app_id = $1",
            "DELETE FROM channels WHERE app_id = $1",
            "DELETE FROM manifest_files WHERE bundle_id IN (SELECT id FROM bundles WHERE app_id = $1)",
            "DELETE FROM bundles WHERE app_id = $1",
        ] {
            sqlx::query(statement).bind(app_id).execute(&mut *tx).await?;
        }
        let deleted = sqlx::query("DELETE FROM apps WHERE app_id = $1")
            .bind(app_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if deleted == 0 {
            // Dropping the transaction rolls it back (nothing was there anyway).
            return Err(StoreError::NotFound(Entity::App));
        }
        tx.commit().await?;
        Ok(())
    }
}
