//! Rollout health from the per-minute rollups, the control loop's decisions,
//! and scheduled releases. (Channel updates with their history are in
//! `channels.rs`.)

use super::rows::{self, decision_columns, schedule_columns};
use super::DbConnection;
use super::{clamp_limit, EngineStore};
use crate::{Entity, NewSchedule, RolloutStore, ScheduleStore, StoreError, StoreResult};
use async_trait::async_trait;
use updraft_core::model::{Health, Millis, RolloutDecision, ScheduleStatus, ScheduledRelease};

/// Health rows are per minute of arrival: `minute = received_at / 60000`.
pub(super) const MILLIS_PER_MINUTE: Millis = 60_000;

/// The minute (index) a time falls in.
pub(super) fn minute_of(at: Millis) -> i64 {
    at.div_euclid(MILLIS_PER_MINUTE)
}

/// Writes `decision` (its id is assigned here) on the caller's transaction.
pub(super) async fn insert_decision(
    conn: &mut DbConnection,
    decision: &RolloutDecision,
) -> StoreResult<RolloutDecision> {
    let row = sqlx::query(concat!(
        "INSERT INTO rollout_decisions (app_id, channel, rollout_id, bundle, at, action, reason, message, \
         from_bps, to_bps, attempts, failures, failure_rate, wilson_lower_bound, threshold_bps) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) RETURNING ",
        decision_columns!()
    ))
    .bind(&decision.app_id)
    .bind(&decision.channel)
    .bind(&decision.rollout_id)
    .bind(&decision.bundle)
    .bind(decision.at)
    .bind(&decision.action)
    .bind(&decision.reason)
    .bind(&decision.message)
    .bind(i64::from(decision.from_bps))
    .bind(i64::from(decision.to_bps))
    .bind(decision.attempts)
    .bind(decision.failures)
    .bind(decision.failure_rate)
    .bind(decision.wilson_lower_bound)
    .bind(i64::from(decision.threshold_bps))
    .fetch_one(&mut *conn)
    .await?;
    rows::rollout_decision(&row)
}

#[async_trait]
impl RolloutStore for EngineStore {
    /// Sums the minutes whose start lies in `[floor(since / 1 min), until)`:
    /// the minute `since` falls in counts whole (the rollups cannot split
    /// it), a minute starting at or after `until` does not.
    async fn rollout_health(
        &self,
        app_id: &str,
        channel: &str,
        bundle: &str,
        since: Millis,
        until: Millis,
    ) -> StoreResult<Health> {
        let first_minute = minute_of(since);
        // Minutes m with m * 60000 < until, i.e. m < ceil(until / 60000).
        let end_minute = minute_of(until.saturating_add(MILLIS_PER_MINUTE - 1));
        let (installs, failures): (Option<i64>, Option<i64>) = sqlx::query_as(
            "SELECT CAST(SUM(installs) AS BIGINT), CAST(SUM(failures) AS BIGINT) FROM rollout_health \
             WHERE app_id = $1 AND channel = $2 AND bundle = $3 AND minute >= $4 AND minute < $5",
        )
        .bind(app_id)
        .bind(channel)
        .bind(bundle)
        .bind(first_minute)
        .bind(end_minute)
        .fetch_one(&self.pool)
        .await?;
        Ok(Health {
            installs: installs.unwrap_or(0),
            failures: failures.unwrap_or(0),
        })
    }

    async fn record_rollout_decision(
        &self,
        decision: RolloutDecision,
    ) -> StoreResult<RolloutDecision> {
        let mut conn = self.pool.acquire().await?;
        insert_decision(&mut conn, &decision).await
    }

    async fn list_rollout_decisions(
        &self,
        app_id: &str,
        channel: Option<&str>,
        limit: i64,
    ) -> StoreResult<Vec<RolloutDecision>> {
        sqlx::query(concat!(
            "SELECT ",
            decision_columns!(),
            " FROM rollout_decisions WHERE app_id = $1 AND ($2 IS NULL OR channel = $2) \
              ORDER BY id DESC LIMIT $3"
        ))
        .bind(app_id)
        .bind(channel)
        .bind(clamp_limit(limit))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(rows::rollout_decision)
        .collect()
    }

    /// Deletes minutes that ended at or before `before`.
    async fn delete_health_before(&self, before: Millis, max_rows: i64) -> StoreResult<u64> {
        let mut tx = self.begin_write().await?;
        let deleted = sqlx::query(
            "DELETE FROM rollout_health WHERE (app_id, channel, bundle, minute) IN \
             (SELECT app_id, channel, bundle, minute FROM rollout_health WHERE minute < $1 LIMIT $2)",
        )
        .bind(minute_of(before))
        .bind(max_rows.max(1))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(deleted)
    }
}

#[async_trait]
impl ScheduleStore for EngineStore {
    /// `NotFound(Entity::Channel)` when the app has no such channel.
    async fn create_schedule(&self, schedule: NewSchedule) -> StoreResult<ScheduledRelease> {
        let action = rows::json_text(&schedule.action)?;
        let row = sqlx::query(concat!(
            "INSERT INTO scheduled_releases (app_id, channel, run_at, action, accept_incompatible, status, \
             created_by, created_at) \
             SELECT $1, $2, $3, $4, $5, $6, $7, $8 \
             WHERE EXISTS (SELECT 1 FROM channels WHERE app_id = $1 AND name = $2) RETURNING ",
            schedule_columns!()
        ))
        .bind(&schedule.app_id)
        .bind(&schedule.channel)
        .bind(schedule.run_at)
        .bind(action)
        .bind(schedule.accept_incompatible)
        .bind(ScheduleStatus::Pending.as_str())
        .bind(&schedule.created_by)
        .bind(schedule.created_at)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound(Entity::Channel))?;
        rows::scheduled_release(&row)
    }

    async fn list_schedules(
        &self,
        app_id: &str,
        channel: Option<&str>,
    ) -> StoreResult<Vec<ScheduledRelease>> {
        sqlx::query(concat!(
            "SELECT ",
            schedule_columns!(),
            " FROM scheduled_releases WHERE app_id = $1 AND ($2 IS NULL OR channel = $2) \
              ORDER BY run_at, id"
        ))
        .bind(app_id)
        .bind(channel)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(rows::scheduled_release)
        .collect()
    }

    async fn get_schedule(&self, app_id: &str, id: i64) -> StoreResult<Option<ScheduledRelease>> {
        sqlx::query(concat!(
            "SELECT ",
            schedule_columns!(),
            " FROM scheduled_releases WHERE app_id = $1 AND id = $2"
        ))
        .bind(app_id)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(rows::scheduled_release)
        .transpose()
    }

    /// `executed_at` records when it was cancelled.
    async fn cancel_schedule(
        &self,
        app_id: &str,
        id: i64,
        at: Millis,
    ) -> StoreResult<ScheduledRelease> {
        let mut tx = self.begin_write().await?;
        let cancelled = sqlx::query(concat!(
            "UPDATE scheduled_releases SET status = $3, executed_at = $4 \
             WHERE app_id = $1 AND id = $2 AND status = $5 RETURNING ",
            schedule_columns!()
        ))
        .bind(app_id)
        .bind(id)
        .bind(ScheduleStatus::Cancelled.as_str())
        .bind(at)
        .bind(ScheduleStatus::Pending.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = cancelled else {
            let status: Option<String> = sqlx::query_scalar(
                "SELECT status FROM scheduled_releases WHERE app_id = $1 AND id = $2",
            )
            .bind(app_id)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
            return Err(match status {
                None => StoreError::NotFound(Entity::Schedule),
                Some(status) => StoreError::Conflict(format!("schedule {id} is already {status}")),
            });
        };
        let schedule = rows::scheduled_release(&row)?;
        tx.commit().await?;
        Ok(schedule)
    }

    async fn due_schedules(&self, now: Millis, limit: i64) -> StoreResult<Vec<ScheduledRelease>> {
        sqlx::query(concat!(
            "SELECT ",
            schedule_columns!(),
            " FROM scheduled_releases WHERE status = $1 AND run_at <= $2 ORDER BY run_at, id LIMIT $3"
        ))
        .bind(ScheduleStatus::Pending.as_str())
        .bind(now)
        .bind(clamp_limit(limit))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(rows::scheduled_release)
        .collect()
    }

    async fn finish_schedule(
        &self,
        id: i64,
        status: ScheduleStatus,
        result: &str,
        at: Millis,
    ) -> StoreResult<bool> {
        if status == ScheduleStatus::Pending {
            return Err(StoreError::Invalid(
                "a schedule cannot be finished as pending".into(),
            ));
        }
        let finished = sqlx::query(
            "UPDATE scheduled_releases SET status = $2, result = $3, executed_at = $4 \
             WHERE id = $1 AND status = $5",
        )
        .bind(id)
        .bind(status.as_str())
        .bind(result)
        .bind(at)
        .bind(ScheduleStatus::Pending.as_str())
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(finished > 0)
    }
}
