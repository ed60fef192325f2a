//! The release configuration the update path keeps in memory.

use super::bundles::assemble_bundles;
use super::rows::{self, app_columns, bundle_columns, channel_columns, override_columns};
use super::{begin_snapshot, EngineStore};
use crate::{ReleaseStore, StoreResult};
use async_trait::async_trait;
use std::sync::Arc;
use updraft_core::model::ReleaseConfig;

/// Every bundle the channels of app `$1` point at: stable and rollout.
macro_rules! channel_bundle_ids {
    () => {
        "SELECT bundle_id FROM channels WHERE app_id = $1 AND bundle_id IS NOT NULL \
         UNION SELECT rollout_bundle_id FROM channels WHERE app_id = $1 AND rollout_bundle_id IS NOT NULL"
    };
}

#[async_trait]
impl ReleaseStore for EngineStore {
    async fn load_release(&self, app_id: &str) -> StoreResult<ReleaseConfig> {
        // One read transaction so channels, bundles and overrides are one snapshot.
        let mut tx = begin_snapshot(self.read_pool().await?).await?;
        let app = sqlx::query(concat!(
            "SELECT ",
            app_columns!(),
            " FROM apps WHERE app_id = $1"
        ))
        .bind(app_id)
        .fetch_optional(&mut *tx)
        .await?
        .as_ref()
        .map(rows::app)
        .transpose()?;
        if app.is_none() {
            tx.commit().await?;
            return Ok(ReleaseConfig::default());
        }
        let channels = sqlx::query(concat!(
            "SELECT ",
            channel_columns!(),
            " FROM channels WHERE app_id = $1 ORDER BY name, id"
        ))
        .bind(app_id)
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(rows::channel)
        .collect::<StoreResult<Vec<_>>>()?;
        // Deleted bundles included: a channel still pointing at one must be
        // seen as such, not as builtin. Rollout bundles too, so the decision
        // can tell a rollout whose bundle is gone.
        let bundle_rows = sqlx::query(concat!(
            "SELECT ",
            bundle_columns!(),
            " FROM bundles WHERE id IN (",
            channel_bundle_ids!(),
            ")"
        ))
        .bind(app_id)
        .fetch_all(&mut *tx)
        .await?;
        let manifest_rows = sqlx::query(concat!(
            "SELECT bundle_id, file_name, file_hash, location, size, blob_sha256 FROM manifest_files \
             WHERE bundle_id IN (",
            channel_bundle_ids!(),
            ") ORDER BY bundle_id, position"
        ))
        .bind(app_id)
        .fetch_all(&mut *tx)
        .await?;
        let override_rows = sqlx::query(concat!(
            "SELECT ",
            override_columns!(),
            " FROM device_overrides WHERE app_id = $1"
        ))
        .bind(app_id)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;

        let bundles = assemble_bundles(&bundle_rows, &manifest_rows)?
            .into_iter()
            .map(|bundle| (bundle.id, Arc::new(bundle)))
            .collect();
        let overrides = override_rows
            .iter()
            .map(|row| rows::device_override(row).map(|o| (o.device_id.to_lowercase(), o)))
            .collect::<StoreResult<_>>()?;
        Ok(ReleaseConfig {
            app,
            channels,
            bundles,
            overrides,
        })
    }

    async fn list_app_ids(&self) -> StoreResult<Vec<String>> {
        Ok(
            sqlx::query_scalar("SELECT app_id FROM apps ORDER BY app_id")
                .fetch_all(self.read_pool().await?)
                .await?,
        )
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}
