//! Device → channel overrides.

use super::rows::{self, override_columns};
use super::EngineStore;
use crate::{Entity, OverrideStore, StoreError, StoreResult};
use async_trait::async_trait;
use updraft_core::model::{DeviceOverride, Millis, OverrideSource};

#[async_trait]
impl OverrideStore for EngineStore {
    async fn set_override(
        &self,
        app_id: &str,
        device_id: &str,
        channel_id: i64,
        source: OverrideSource,
        now: Millis,
    ) -> StoreResult<DeviceOverride> {
        let mut tx = self.begin_write().await?;
        // The channel must exist and belong to the same app.
        let channel_app: Option<String> =
            sqlx::query_scalar("SELECT app_id FROM channels WHERE id = $1")
                .bind(channel_id)
                .fetch_optional(&mut *tx)
                .await?;
        if channel_app.as_deref() != Some(app_id) {
            return Err(StoreError::NotFound(Entity::Channel));
        }
        // created_at tells when the current assignment was made, so it moves on change.
        let row = sqlx::query(concat!(
            "INSERT INTO device_overrides (app_id, device_id, channel_id, source, created_at) \
             VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (app_id, device_id) DO UPDATE SET \
             channel_id = excluded.channel_id, source = excluded.source, created_at = excluded.created_at \
             RETURNING ",
            override_columns!()
        ))
        .bind(app_id)
        .bind(device_id)
        .bind(channel_id)
        .bind(source.as_str())
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        let stored = rows::device_override(&row)?;
        tx.commit().await?;
        Ok(stored)
    }

    async fn delete_override(&self, app_id: &str, device_id: &str) -> StoreResult<bool> {
        let deleted =
            sqlx::query("DELETE FROM device_overrides WHERE app_id = $1 AND device_id = $2")
                .bind(app_id)
                .bind(device_id)
                .execute(&self.pool)
                .await?
                .rows_affected();
        Ok(deleted > 0)
    }

    async fn list_overrides(&self, app_id: &str) -> StoreResult<Vec<DeviceOverride>> {
        sqlx::query(concat!(
            "SELECT ",
            override_columns!(),
            " FROM device_overrides WHERE app_id = $1 ORDER BY device_id"
        ))
        .bind(app_id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(rows::device_override)
        .collect()
    }
}
