//! SKELETON (being implemented): channel updates with history, rollout
//! health and decisions, scheduled releases.

use super::SqliteStore;
use crate::{ChannelUpdate, NewSchedule, RolloutStore, ScheduleStore, StoreError, StoreResult};
use async_trait::async_trait;
use updraft_core::model::{
    Channel, ChannelHistoryEntry, Health, Millis, RolloutDecision, ScheduleStatus, ScheduledRelease,
};

fn pending() -> StoreError {
    StoreError::Backend("not implemented yet".into())
}

impl SqliteStore {
    pub(super) async fn apply_channel_update_impl(
        &self,
        _update: ChannelUpdate,
    ) -> StoreResult<Channel> {
        Err(pending())
    }

    pub(super) async fn channel_history_impl(
        &self,
        _app_id: &str,
        _channel: &str,
        _limit: i64,
    ) -> StoreResult<Vec<ChannelHistoryEntry>> {
        Err(pending())
    }
}

#[async_trait]
impl RolloutStore for SqliteStore {
    async fn rollout_health(
        &self,
        _app_id: &str,
        _channel: &str,
        _bundle: &str,
        _since: Millis,
        _until: Millis,
    ) -> StoreResult<Health> {
        Err(pending())
    }
    async fn record_rollout_decision(
        &self,
        _decision: RolloutDecision,
    ) -> StoreResult<RolloutDecision> {
        Err(pending())
    }
    async fn list_rollout_decisions(
        &self,
        _app_id: &str,
        _channel: Option<&str>,
        _limit: i64,
    ) -> StoreResult<Vec<RolloutDecision>> {
        Err(pending())
    }
    async fn delete_health_before(&self, _before: Millis, _max_rows: i64) -> StoreResult<u64> {
        Err(pending())
    }
}

#[async_trait]
impl ScheduleStore for SqliteStore {
    async fn create_schedule(&self, _schedule: NewSchedule) -> StoreResult<ScheduledRelease> {
        Err(pending())
    }
    async fn list_schedules(
        &self,
        _app_id: &str,
        _channel: Option<&str>,
    ) -> StoreResult<Vec<ScheduledRelease>> {
        Err(pending())
    }
    async fn get_schedule(&self, _app_id: &str, _id: i64) -> StoreResult<Option<ScheduledRelease>> {
        Err(pending())
    }
    async fn cancel_schedule(
        &self,
        _app_id: &str,
        _id: i64,
        _at: Millis,
    ) -> StoreResult<ScheduledRelease> {
        Err(pending())
    }
    async fn due_schedules(&self, _now: Millis, _limit: i64) -> StoreResult<Vec<ScheduledRelease>> {
        Err(pending())
    }
    async fn finish_schedule(
        &self,
        _id: i64,
        _status: ScheduleStatus,
        _result: &str,
        _at: Millis,
    ) -> StoreResult<bool> {
        Err(pending())
    }
}
