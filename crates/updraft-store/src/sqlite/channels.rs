//! Channels, with the one-public-channel-per-platform rule.

use super::rows::{self, channel_columns};
use super::{is_foreign_key_violation, is_unique_violation, SqliteStore};
use crate::{ChannelStore, NewChannel, StoreError, StoreResult};
use async_trait::async_trait;
use sqlx::query::Query;
use sqlx::sqlite::SqliteArguments;
use sqlx::{Sqlite, SqliteConnection};
use updraft_core::model::{AutoUpdatePolicy, Channel, ChannelPatch, Millis};

/// A channel's settings with every patch field resolved.
struct ChannelSettings {
    bundle_id: Option<i64>,
    public: bool,
    ios: bool,
    android: bool,
    electron: bool,
    allow_device_self_set: bool,
    allow_emulator: bool,
    allow_device: bool,
    allow_dev: bool,
    allow_prod: bool,
    disable_auto_update: AutoUpdatePolicy,
    disable_auto_update_under_native: bool,
}

impl ChannelSettings {
    /// The settings of a new channel (the reference service's defaults).
    fn defaults() -> ChannelSettings {
        ChannelSettings {
            bundle_id: None,
            public: false,
            ios: true,
            android: true,
            electron: true,
            allow_device_self_set: false,
            allow_emulator: true,
            allow_device: true,
            allow_dev: true,
            allow_prod: true,
            disable_auto_update: AutoUpdatePolicy::Major,
            disable_auto_update_under_native: true,
        }
    }

    fn of(channel: &Channel) -> ChannelSettings {
        ChannelSettings {
            bundle_id: channel.bundle_id,
            public: channel.public,
            ios: channel.ios,
            android: channel.android,
            electron: channel.electron,
            allow_device_self_set: channel.allow_device_self_set,
            allow_emulator: channel.allow_emulator,
            allow_device: channel.allow_device,
            allow_dev: channel.allow_dev,
            allow_prod: channel.allow_prod,
            disable_auto_update: channel.disable_auto_update,
            disable_auto_update_under_native: channel.disable_auto_update_under_native,
        }
    }

    /// Binds the settings as consecutive parameters, in column order
    /// (`bundle_id` … `disable_auto_update_under_native`).
    fn bind_in_order<'q>(
        &self,
        query: Query<'q, Sqlite, SqliteArguments<'q>>,
    ) -> Query<'q, Sqlite, SqliteArguments<'q>> {
        query
            .bind(self.bundle_id)
            .bind(self.public)
            .bind(self.ios)
            .bind(self.android)
            .bind(self.electron)
            .bind(self.allow_device_self_set)
            .bind(self.allow_emulator)
            .bind(self.allow_device)
            .bind(self.allow_dev)
            .bind(self.allow_prod)
            .bind(self.disable_auto_update.as_str())
            .bind(self.disable_auto_update_under_native)
    }

    fn apply(mut self, patch: &ChannelPatch) -> ChannelSettings {
        fn set<T: Copy>(field: &mut T, value: Option<T>) {
            if let Some(value) = value {
                *field = value;
            }
        }
        set(&mut self.bundle_id, patch.bundle_id);
        set(&mut self.public, patch.public);
        set(&mut self.ios, patch.ios);
        set(&mut self.android, patch.android);
        set(&mut self.electron, patch.electron);
        set(&mut self.allow_device_self_set, patch.allow_device_self_set);
        set(&mut self.allow_emulator, patch.allow_emulator);
        set(&mut self.allow_device, patch.allow_device);
        set(&mut self.allow_dev, patch.allow_dev);
        set(&mut self.allow_prod, patch.allow_prod);
        set(&mut self.disable_auto_update, patch.disable_auto_update);
        set(
            &mut self.disable_auto_update_under_native,
            patch.disable_auto_update_under_native,
        );
        self
    }
}

/// The safety net behind the API's own check: a channel may only point at a
/// live bundle of its own app.
async fn check_bundle_reference(
    conn: &mut SqliteConnection,
    app_id: &str,
    bundle_id: i64,
) -> StoreResult<()> {
    let found: Option<(String, bool)> =
        sqlx::query_as("SELECT app_id, deleted FROM bundles WHERE id = $1")
            .bind(bundle_id)
            .fetch_optional(&mut *conn)
            .await?;
    match found {
        Some((owner, false)) if owner == app_id => Ok(()),
        Some((owner, true)) if owner == app_id => Err(StoreError::Invalid(format!(
            "bundle {bundle_id} is deleted"
        ))),
        _ => Err(StoreError::Invalid(format!(
            "bundle {bundle_id} does not belong to app {app_id}"
        ))),
    }
}

/// Makes every other public channel of the app that shares an enabled
/// platform with `channel` non-public.
async fn demote_other_public(
    conn: &mut SqliteConnection,
    channel: &Channel,
    now: Millis,
) -> StoreResult<()> {
    sqlx::query(
        "UPDATE channels SET public = FALSE, updated_at = $3 \
         WHERE app_id = $1 AND id <> $2 AND public = TRUE \
         AND ((ios = TRUE AND $4) OR (android = TRUE AND $5) OR (electron = TRUE AND $6))",
    )
    .bind(&channel.app_id)
    .bind(channel.id)
    .bind(now)
    .bind(channel.ios)
    .bind(channel.android)
    .bind(channel.electron)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn fetch_channel(
    conn: &mut SqliteConnection,
    app_id: &str,
    name: &str,
) -> StoreResult<Option<Channel>> {
    sqlx::query(concat!(
        "SELECT ",
        channel_columns!(),
        " FROM channels WHERE app_id = $1 AND name = $2"
    ))
    .bind(app_id)
    .bind(name)
    .fetch_optional(&mut *conn)
    .await?
    .as_ref()
    .map(rows::channel)
    .transpose()
}

#[async_trait]
impl ChannelStore for SqliteStore {
    async fn apply_channel_update(&self, update: crate::ChannelUpdate) -> StoreResult<Channel> {
        self.apply_channel_update_impl(update).await
    }

    async fn channel_history(
        &self,
        app_id: &str,
        channel: &str,
        limit: i64,
    ) -> StoreResult<Vec<updraft_core::model::ChannelHistoryEntry>> {
        self.channel_history_impl(app_id, channel, limit).await
    }

    async fn create_channel(&self, channel: NewChannel, now: Millis) -> StoreResult<Channel> {
        let settings = ChannelSettings::defaults().apply(&channel.settings);
        let mut tx = self.begin_write().await?;
        if let Some(bundle_id) = settings.bundle_id {
            check_bundle_reference(&mut tx, &channel.app_id, bundle_id).await?;
        }
        let query = sqlx::query(concat!(
            "INSERT INTO channels (app_id, name, bundle_id, public, ios, android, electron, allow_device_self_set, \
             allow_emulator, allow_device, allow_dev, allow_prod, disable_auto_update, \
             disable_auto_update_under_native, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $15) RETURNING ",
            channel_columns!()
        ))
        .bind(&channel.app_id)
        .bind(&channel.name);
        let inserted = settings
            .bind_in_order(query)
            .bind(now)
            .fetch_one(&mut *tx)
            .await;
        let created = match inserted {
            Ok(row) => rows::channel(&row)?,
            Err(err) if is_unique_violation(&err) => {
                return Err(StoreError::AlreadyExists("channel"))
            }
            Err(err) if is_foreign_key_violation(&err) => return Err(StoreError::NotFound("app")),
            Err(err) => return Err(err.into()),
        };
        if created.public {
            demote_other_public(&mut tx, &created, now).await?;
        }
        tx.commit().await?;
        Ok(created)
    }

    async fn update_channel(
        &self,
        app_id: &str,
        name: &str,
        patch: ChannelPatch,
        now: Millis,
    ) -> StoreResult<Channel> {
        let mut tx = self.begin_write().await?;
        let current = fetch_channel(&mut tx, app_id, name)
            .await?
            .ok_or(StoreError::NotFound("channel"))?;
        if let Some(Some(bundle_id)) = patch.bundle_id {
            check_bundle_reference(&mut tx, app_id, bundle_id).await?;
        }
        let settings = ChannelSettings::of(&current).apply(&patch);
        let query = sqlx::query(concat!(
            "UPDATE channels SET bundle_id = $2, public = $3, ios = $4, android = $5, electron = $6, \
             allow_device_self_set = $7, allow_emulator = $8, allow_device = $9, allow_dev = $10, \
             allow_prod = $11, disable_auto_update = $12, disable_auto_update_under_native = $13, \
             updated_at = $14 WHERE id = $1 RETURNING ",
            channel_columns!()
        ))
        .bind(current.id);
        let row = settings
            .bind_in_order(query)
            .bind(now)
            .fetch_one(&mut *tx)
            .await?;
        let updated = rows::channel(&row)?;
        // Also when the channel was already public and gained a platform.
        if updated.public {
            demote_other_public(&mut tx, &updated, now).await?;
        }
        tx.commit().await?;
        Ok(updated)
    }

    async fn list_channels(&self, app_id: &str) -> StoreResult<Vec<Channel>> {
        sqlx::query(concat!(
            "SELECT ",
            channel_columns!(),
            " FROM channels WHERE app_id = $1 ORDER BY name, id"
        ))
        .bind(app_id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(rows::channel)
        .collect()
    }

    async fn get_channel(&self, app_id: &str, name: &str) -> StoreResult<Option<Channel>> {
        let mut conn = self.pool.acquire().await?;
        fetch_channel(&mut conn, app_id, name).await
    }

    async fn delete_channel(&self, app_id: &str, name: &str) -> StoreResult<()> {
        // Overrides pointing at the channel go through ON DELETE CASCADE.
        let deleted = sqlx::query("DELETE FROM channels WHERE app_id = $1 AND name = $2")
            .bind(app_id)
            .bind(name)
            .execute(&self.pool)
            .await?
            .rows_affected();
        if deleted == 0 {
            return Err(StoreError::NotFound("channel"));
        }
        Ok(())
    }
}
