//! Installation-wide settings.

use super::EngineStore;
use crate::{SettingStore, StoreResult};
use async_trait::async_trait;
use updraft_core::model::Millis;

#[async_trait]
impl SettingStore for EngineStore {
    async fn setting_or_insert(
        &self,
        name: &str,
        candidate: &str,
        now: Millis,
    ) -> StoreResult<String> {
        // Whoever inserts first wins; everyone then reads the winner's value.
        sqlx::query(
            "INSERT INTO settings (name, value, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(candidate)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(
            sqlx::query_scalar("SELECT value FROM settings WHERE name = $1")
                .bind(name)
                .fetch_one(&self.pool)
                .await?,
        )
    }

    async fn probe_write(&self, now: Millis) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO settings (name, value, created_at) VALUES ('write_probe', $1, $2) \
             ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        )
        .bind(now.to_string())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }
}
