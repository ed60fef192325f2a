//! Channels, with the one-public-channel-per-platform rule, and every change
//! of one with its history row, decision, schedule completion and audit entry
//! in one transaction.

use super::audit::insert_audit;
use super::release_safety::insert_decision;
use super::rows::{self, channel_columns};
use super::{clamp_limit, is_foreign_key_violation, is_unique_violation, EngineStore};
use super::{Db, DbConnection};
use crate::{ChannelStore, ChannelUpdate, Entity, NewChannel, StoreError, StoreResult};
use async_trait::async_trait;
use sqlx::query::Query;
use updraft_core::model::{
    ChangeContext, Channel, ChannelHistoryEntry, ChannelPatch, Millis, ScheduleStatus,
};

/// History's name for "no bundle": the native one.
/// The actor of changes made through `create_channel`.
const SYSTEM_ACTOR: &str = "system";
/// The result recorded on a schedule completed by the change it made.
const SCHEDULE_APPLIED: &str = "applied";

/// Binds a channel's settings as consecutive parameters, in column order
/// (`bundle_id` … `disable_auto_update_under_native`, then `targeting`,
/// the nine `rollout_*` columns, `auto_pause` and `ramp`).
fn bind_settings<'q>(
    settings: &Channel,
    query: Query<'q, Db, <Db as sqlx::Database>::Arguments<'q>>,
) -> StoreResult<Query<'q, Db, <Db as sqlx::Database>::Arguments<'q>>> {
    let rollout = settings.rollout.as_ref();
    let rollout_targeting = match rollout {
        Some(rollout) => rows::json_unless_default(&rollout.targeting)?,
        None => None,
    };
    Ok(query
        .bind(settings.bundle_id)
        .bind(settings.public)
        .bind(settings.ios)
        .bind(settings.android)
        .bind(settings.electron)
        .bind(settings.allow_device_self_set)
        .bind(settings.allow_emulator)
        .bind(settings.allow_device)
        .bind(settings.allow_dev)
        .bind(settings.allow_prod)
        .bind(settings.disable_auto_update.as_str())
        .bind(settings.disable_auto_update_under_native)
        .bind(rows::json_unless_default(&settings.targeting)?)
        .bind(rollout.map(|r| r.bundle_id))
        .bind(rollout.map(|r| i64::from(r.percentage_bps)))
        .bind(rollout.and_then(|r| r.paused_at))
        .bind(rollout.map(|r| r.rollout_id.clone()))
        .bind(rollout.map(|r| r.started_at))
        .bind(rollout.map(|r| r.step_started_at))
        .bind(rollout_targeting)
        .bind(rollout.and_then(|r| r.auto_pause_triggered_at))
        .bind(rows::json_unless_default(&settings.auto_pause)?)
        .bind(rows::json_unless_default(&settings.ramp)?))
}

/// The safety net behind the API's own check: a channel may only point at a
/// live bundle of its own app.
async fn check_bundle_reference(
    conn: &mut DbConnection,
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
    conn: &mut DbConnection,
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
    conn: &mut DbConnection,
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

/// What devices are served, as far as history cares: the stable bundle and
/// the rollout's bundle, percentage and paused state.
type ReleaseState = (Option<i64>, Option<(i64, u32, bool)>);

fn release_state(channel: &Channel) -> ReleaseState {
    (
        channel.bundle_id,
        channel
            .rollout
            .as_ref()
            .map(|r| (r.bundle_id, r.percentage_bps, r.paused_at.is_some())),
    )
}

/// A bundle's name for history: `builtin` for none.
async fn bundle_name(conn: &mut DbConnection, bundle_id: Option<i64>) -> StoreResult<String> {
    let Some(id) = bundle_id else {
        return Ok(updraft_core::model::BUILTIN.to_string());
    };
    let name: Option<String> = sqlx::query_scalar("SELECT name FROM bundles WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    // The foreign keys keep the row; the id is a readable fallback anyway.
    Ok(name.unwrap_or_else(|| format!("#{id}")))
}

async fn insert_history(
    conn: &mut DbConnection,
    channel: &Channel,
    change: &ChangeContext,
) -> StoreResult<()> {
    let bundle = bundle_name(conn, channel.bundle_id).await?;
    let rollout_bundle = match &channel.rollout {
        Some(rollout) => Some(bundle_name(conn, Some(rollout.bundle_id)).await?),
        None => None,
    };
    sqlx::query(
        "INSERT INTO channel_history (app_id, channel, bundle, rollout_bundle, rollout_percentage_bps, \
         rollout_paused, at, actor, reason) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(&channel.app_id)
    .bind(&channel.name)
    .bind(bundle)
    .bind(rollout_bundle)
    .bind(channel.rollout.as_ref().map(|r| i64::from(r.percentage_bps)))
    .bind(channel.rollout.as_ref().is_some_and(|r| r.paused_at.is_some()))
    .bind(change.at)
    .bind(&change.actor)
    .bind(&change.reason)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Applies `patch` to `current` on the caller's transaction: checks the
/// bundle references, writes the row, demotes other public channels and
/// writes a history row when what devices are served changed.
async fn write_update(
    conn: &mut DbConnection,
    current: &Channel,
    patch: &ChannelPatch,
    change: &ChangeContext,
) -> StoreResult<Channel> {
    if let Some(Some(bundle_id)) = patch.bundle_id {
        check_bundle_reference(conn, &current.app_id, bundle_id).await?;
    }
    if let Some(Some(rollout)) = &patch.rollout {
        if rollout.percentage_bps > updraft_core::rollout::FULL_BPS {
            return Err(StoreError::Invalid(format!(
                "rollout percentage {} bps is above {}",
                rollout.percentage_bps,
                updraft_core::rollout::FULL_BPS
            )));
        }
        // A new rollout bundle must be live; an ongoing rollout may still be
        // paused or ended after its bundle was deleted.
        let ongoing = current.rollout.as_ref().map(|r| r.bundle_id);
        if ongoing != Some(rollout.bundle_id) {
            check_bundle_reference(conn, &current.app_id, rollout.bundle_id).await?;
        }
    }
    let mut settings = current.clone();
    patch.apply_to(&mut settings);
    let query = sqlx::query(concat!(
        "UPDATE channels SET bundle_id = $2, public = $3, ios = $4, android = $5, electron = $6, \
         allow_device_self_set = $7, allow_emulator = $8, allow_device = $9, allow_dev = $10, \
         allow_prod = $11, disable_auto_update = $12, disable_auto_update_under_native = $13, \
         targeting = $14, rollout_bundle_id = $15, rollout_percentage_bps = $16, rollout_paused_at = $17, \
         rollout_id = $18, rollout_started_at = $19, rollout_step_started_at = $20, \
         rollout_targeting = $21, rollout_auto_pause_triggered_at = $22, auto_pause = $23, ramp = $24, \
         updated_at = $25 WHERE id = $1 RETURNING ",
        channel_columns!()
    ))
    .bind(current.id);
    let row = bind_settings(&settings, query)?
        .bind(change.at)
        .fetch_one(&mut *conn)
        .await?;
    let updated = rows::channel(&row)?;
    // Also when the channel was already public and gained a platform.
    if updated.public {
        demote_other_public(conn, &updated, change.at).await?;
    }
    if release_state(current) != release_state(&updated) {
        insert_history(conn, &updated, change).await?;
    }
    Ok(updated)
}

/// Marks the pending schedule `id` of the app done, as part of the change it made.
async fn complete_schedule(
    conn: &mut DbConnection,
    app_id: &str,
    id: i64,
    at: Millis,
) -> StoreResult<()> {
    let done = sqlx::query(
        "UPDATE scheduled_releases SET status = $3, executed_at = $4, result = $5 \
         WHERE id = $1 AND app_id = $2 AND status = $6",
    )
    .bind(id)
    .bind(app_id)
    .bind(ScheduleStatus::Done.as_str())
    .bind(at)
    .bind(SCHEDULE_APPLIED)
    .bind(ScheduleStatus::Pending.as_str())
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if done == 0 {
        return Err(StoreError::Conflict(format!(
            "schedule {id} is not pending"
        )));
    }
    Ok(())
}

fn system_change(at: Millis, reason: &str) -> ChangeContext {
    ChangeContext {
        at,
        actor: SYSTEM_ACTOR.to_string(),
        reason: reason.to_string(),
    }
}

#[async_trait]
impl ChannelStore for EngineStore {
    async fn apply_channel_update(&self, update: ChannelUpdate) -> StoreResult<Channel> {
        let mut tx = self.begin_write().await?;
        let current = fetch_channel(&mut tx, &update.app_id, &update.name)
            .await?
            .ok_or(StoreError::NotFound(Entity::Channel))?;
        if let Some(expected) = &update.expect_rollout_id {
            let actual = current.rollout.as_ref().map(|r| &r.rollout_id);
            if actual != expected.as_ref() {
                return Err(StoreError::Conflict(format!(
                    "the rollout of channel {} changed (expected {:?}, found {:?})",
                    current.name, expected, actual
                )));
            }
        }
        let updated = write_update(&mut tx, &current, &update.patch, &update.change).await?;
        if let Some(decision) = &update.decision {
            insert_decision(&mut tx, decision).await?;
        }
        if let Some(schedule_id) = update.completes_schedule {
            complete_schedule(&mut tx, &update.app_id, schedule_id, update.change.at).await?;
        }
        if let Some(entry) = &update.audit {
            insert_audit(&mut tx, entry).await?;
        }
        tx.commit().await?;
        Ok(updated)
    }

    async fn channel_history(
        &self,
        app_id: &str,
        channel: &str,
        limit: i64,
    ) -> StoreResult<Vec<ChannelHistoryEntry>> {
        sqlx::query(
            "SELECT id, app_id, channel, bundle, rollout_bundle, rollout_percentage_bps, rollout_paused, \
             at, actor, reason FROM channel_history WHERE app_id = $1 AND channel = $2 \
             ORDER BY id DESC LIMIT $3",
        )
        .bind(app_id)
        .bind(channel)
        .bind(clamp_limit(limit))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(rows::channel_history_entry)
        .collect()
    }

    async fn create_channel(&self, channel: NewChannel, now: Millis) -> StoreResult<Channel> {
        let mut tx = self.begin_write().await?;
        // The columns' defaults are a new channel's settings; the patch goes
        // through the same path as every update.
        let inserted = sqlx::query(concat!(
            "INSERT INTO channels (app_id, name, created_at, updated_at) VALUES ($1, $2, $3, $3) RETURNING ",
            channel_columns!()
        ))
        .bind(&channel.app_id)
        .bind(&channel.name)
        .bind(now)
        .fetch_one(&mut *tx)
        .await;
        let blank = match inserted {
            Ok(row) => rows::channel(&row)?,
            Err(err) if is_unique_violation(&err) => {
                return Err(StoreError::AlreadyExists(Entity::Channel))
            }
            Err(err) if is_foreign_key_violation(&err) => {
                return Err(StoreError::NotFound(Entity::App))
            }
            Err(err) => return Err(err.into()),
        };
        let created = write_update(
            &mut tx,
            &blank,
            &channel.settings,
            &system_change(now, "create"),
        )
        .await?;
        tx.commit().await?;
        Ok(created)
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
        let mut tx = self.begin_write().await?;
        // Overrides pointing at the channel go through ON DELETE CASCADE.
        let deleted = sqlx::query("DELETE FROM channels WHERE app_id = $1 AND name = $2")
            .bind(app_id)
            .bind(name)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if deleted == 0 {
            return Err(StoreError::NotFound(Entity::Channel));
        }
        // Its history, decisions, health and schedules go with it: a new
        // channel of the same name starts clean (the audit log keeps the story).
        for statement in [
            "DELETE FROM channel_history WHERE app_id = $1 AND channel = $2",
            "DELETE FROM rollout_decisions WHERE app_id = $1 AND channel = $2",
            "DELETE FROM rollout_health WHERE app_id = $1 AND channel = $2",
            "DELETE FROM scheduled_releases WHERE app_id = $1 AND channel = $2",
        ] {
            sqlx::query(statement)
                .bind(app_id)
                .bind(name)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}
