//! Raw stats events are kept for a configurable number of days (by arrival),
//! and so is what grows with device traffic beside them: the per-device day
//! rows, the rollouts' per-minute health rows and finished webhook
//! deliveries. The daily rollups, the audit log, channel history and
//! rollout decisions (one row per change, not per check) are kept for good.
//! A background task deletes what is older in small batches, pausing between
//! them so ingest (which shares SQLite's single write lock) never waits long.

use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use updraft_core::analytics::{day_of, MILLIS_PER_DAY};
use updraft_core::model::Clock;
use updraft_store::{AnalyticsStore, RolloutStore, SessionStore, StoreResult, WebhookStore};

/// Rows deleted per statement: a few milliseconds of write lock.
const BATCH_ROWS: i64 = 5_000;
const PAUSE_BETWEEN_BATCHES: Duration = Duration::from_millis(20);

/// What one retention pass removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RetentionPass {
    pub events: u64,
    pub device_days: u64,
    pub health_minutes: u64,
    pub deliveries: u64,
    /// Console sessions past their absolute end or idle timeout.
    pub sessions: u64,
}

/// The stores retention deletes from, the clock it measures age by, and
/// the retention.
pub struct Retention {
    analytics: Arc<dyn AnalyticsStore>,
    rollouts: Arc<dyn RolloutStore>,
    webhooks: Arc<dyn WebhookStore>,
    /// Ended console sessions are pruned too, with this idle timeout (ms).
    sessions: Option<(Arc<dyn SessionStore>, i64)>,
    clock: Arc<dyn Clock>,
    retention_days: u32,
}

impl Retention {
    pub fn new(
        analytics: Arc<dyn AnalyticsStore>,
        rollouts: Arc<dyn RolloutStore>,
        webhooks: Arc<dyn WebhookStore>,
        clock: Arc<dyn Clock>,
        retention_days: u32,
    ) -> Retention {
        Retention {
            analytics,
            rollouts,
            webhooks,
            sessions: None,
            clock,
            retention_days,
        }
    }

    /// Also deletes console sessions that ended (absolute end reached, or
    /// unused for `idle_timeout_secs`); they are refused anyway, this only
    /// keeps the table small.
    pub fn with_sessions(
        mut self,
        sessions: Arc<dyn SessionStore>,
        idle_timeout_secs: u64,
    ) -> Self {
        let idle_ms = i64::try_from(idle_timeout_secs)
            .unwrap_or(i64::MAX / 1000)
            .saturating_mul(1000);
        self.sessions = Some((sessions, idle_ms));
        self
    }

    /// Deletes raw events received more than `retention_days` before now
    /// (by the clock), the per-device day rows of days before that, and the
    /// health minutes and finished deliveries older than that.
    pub async fn run_once(&self) -> StoreResult<RetentionPass> {
        let now = self.clock.now();
        let cutoff = now - i64::from(self.retention_days.max(1)) * MILLIS_PER_DAY;
        let cutoff_day = day_of(cutoff);
        Ok(RetentionPass {
            events: in_batches(|| {
                self.analytics
                    .delete_events_received_before(cutoff, BATCH_ROWS)
            })
            .await?,
            device_days: in_batches(|| {
                self.analytics
                    .delete_device_days_before(&cutoff_day, BATCH_ROWS)
            })
            .await?,
            health_minutes: in_batches(|| self.rollouts.delete_health_before(cutoff, BATCH_ROWS))
                .await?,
            deliveries: in_batches(|| {
                self.webhooks
                    .delete_finished_deliveries_before(cutoff, BATCH_ROWS)
            })
            .await?,
            sessions: match &self.sessions {
                Some((sessions, idle_ms)) => {
                    in_batches(|| {
                        sessions.delete_expired_sessions(
                            now,
                            now.saturating_sub(*idle_ms),
                            BATCH_ROWS,
                        )
                    })
                    .await?
                }
                None => 0,
            },
        })
    }

    /// Runs a pass at start and then every `every`.
    pub fn spawn(self: &Arc<Self>, every: Duration) -> JoinHandle<()> {
        let retention = Arc::clone(self);
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(every.max(Duration::from_secs(1)));
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                match retention.run_once().await {
                    Ok(pass) if pass != RetentionPass::default() => tracing::info!(
                        events = pass.events,
                        device_days = pass.device_days,
                        health_minutes = pass.health_minutes,
                        deliveries = pass.deliveries,
                        sessions = pass.sessions,
                        retention_days = retention.retention_days,
                        "old raw stats, health minutes and deliveries deleted"
                    ),
                    Ok(_) => {}
                    Err(err) => {
                        tracing::warn!(error = %err, "stats retention pass failed; will retry")
                    }
                }
            }
        })
    }
}

/// Repeats one batched delete until it deletes nothing; the total deleted.
async fn in_batches<F, Fut>(mut delete_batch: F) -> StoreResult<u64>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = StoreResult<u64>>,
{
    let mut total = 0;
    loop {
        let deleted = delete_batch().await?;
        total += deleted;
        if deleted == 0 {
            return Ok(total);
        }
        tokio::time::sleep(PAUSE_BETWEEN_BATCHES).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use updraft_core::model::{ManualClock, Millis, StatsEvent};
    use updraft_store::{AnalyticsStore, EventExportQuery, SqliteStore, StatsIngest};

    /// Retention over `store`, its clock at `now`.
    fn retention(
        store: &SqliteStore,
        retention_days: u32,
        now: Millis,
    ) -> (Retention, Arc<ManualClock>) {
        let store = Arc::new(store.clone());
        let clock = Arc::new(ManualClock::new(now));
        let retention = Retention::new(
            store.clone(),
            store.clone(),
            store,
            clock.clone(),
            retention_days,
        );
        (retention, clock)
    }

    #[tokio::test]
    async fn ended_console_sessions_are_pruned() {
        use updraft_core::model::Role;
        use updraft_store::{NewSession, NewUser, UserStore};
        let dir = tempfile::TempDir::new().unwrap();
        let store = SqliteStore::open_path(&dir.path().join("t.db"))
            .await
            .unwrap();
        let user = store
            .create_user(
                NewUser {
                    email: "ada@example.com".into(),
                    password_hash: "$argon2id$x".into(),
                    role: Role::Admin,
                    apps: None,
                },
                0,
            )
            .await
            .unwrap();
        for (token, created, expires) in [
            ("ended", 0, 1_000),
            ("idle", 0, 10_000_000),
            ("live", 9_000_000, 20_000_000),
        ] {
            store
                .create_session(NewSession {
                    token_hash: token.into(),
                    user_id: user.id,
                    csrf_token: "c".into(),
                    created_at: created,
                    expires_at: expires,
                })
                .await
                .unwrap();
        }
        let now = 9_500_000;
        let (retention, _clock) = retention(&store, 30, now);
        // Without sessions configured, none are touched.
        assert_eq!(retention.run_once().await.unwrap().sessions, 0);
        let shared = Arc::new(store.clone());
        let retention = retention.with_sessions(shared, 3_600);
        assert_eq!(retention.run_once().await.unwrap().sessions, 2);
        assert!(store.get_session("live").await.unwrap().is_some());
        assert!(store.get_session("idle").await.unwrap().is_none());
    }

    fn event(device: &str, received_at: Millis) -> StatsEvent {
        StatsEvent {
            app_id: "com.example.app".into(),
            device_id: device.into(),
            action: "ping".into(),
            version_name: "1.0.0".into(),
            old_version_name: None,
            platform: "ios".into(),
            plugin_version: None,
            version_build: None,
            is_prod: true,
            is_emulator: false,
            metadata: None,
            timestamp: received_at,
            received_at,
        }
    }

    #[tokio::test]
    async fn a_pass_deletes_what_is_older_than_the_retention() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).await.unwrap();
        let now = 1_767_225_600_000;
        let events: Vec<StatsEvent> = (0..12_000)
            .map(|i| event(&format!("old-{}", i % 10), now - 31 * MILLIS_PER_DAY + i))
            .chain((0..5).map(|i| event("recent", now - 29 * MILLIS_PER_DAY + i)))
            .collect();
        store
            .ingest_stats(StatsIngest {
                events: &events,
                ..StatsIngest::default()
            })
            .await
            .unwrap();
        let (retention, _clock) = retention(&store, 30, now);
        let pass = retention.run_once().await.unwrap();
        assert_eq!(
            pass,
            RetentionPass {
                events: 12_000,
                device_days: 10,
                ..RetentionPass::default()
            }
        );
        let left = store
            .export_events(&EventExportQuery {
                app_id: "com.example.app".into(),
                limit: 100,
                ..EventExportQuery::default()
            })
            .await
            .unwrap();
        assert_eq!(left.len(), 5);
        assert_eq!(
            retention.run_once().await.unwrap(),
            RetentionPass::default()
        );
    }

    /// Forty days of rollout traffic and webhook deliveries with a pass each
    /// day: the health minutes and finished deliveries stay within the
    /// retention instead of growing with every day.
    #[tokio::test]
    async fn health_minutes_and_deliveries_stay_bounded() {
        use updraft_store::{AppStore, DeliveryAttempt, NewWebhook, RolloutStore, WebhookStore};
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).await.unwrap();
        let app = "com.example.app";
        store.create_app(app, "Example", 0).await.unwrap();
        let hook = store
            .create_webhook(NewWebhook {
                app_id: Some(app.into()),
                url: "https://hooks.example.com/a".into(),
                secret: "whsec_test".into(),
                events: Vec::new(),
                enabled: true,
                created_at: 0,
            })
            .await
            .unwrap();
        let start = 1_767_225_600_000;
        let retention_days = 10;
        let (retention, clock) = retention(&store, retention_days, start);
        let channel = Some("production".to_string());
        let installs_kept = |now: Millis| {
            let store = &store;
            async move {
                store
                    .rollout_health(app, "production", "1.1.0", 0, now + MILLIS_PER_DAY)
                    .await
                    .unwrap()
            }
        };
        for day in 0..40 {
            let now = start + day * MILLIS_PER_DAY;
            // Each day: 3 installs in 3 different minutes, one delivery.
            let events: Vec<StatsEvent> = (0..3)
                .map(|i| StatsEvent {
                    action: "set".into(),
                    version_name: "1.1.0".into(),
                    ..event(&format!("d{i}"), now + i * 60_000)
                })
                .collect();
            store
                .ingest_stats(StatsIngest {
                    events: &events,
                    channels: &[channel.clone(), channel.clone(), channel.clone()],
                    ..StatsIngest::default()
                })
                .await
                .unwrap();
            let delivery = store
                .enqueue_event(app, "bundle.uploaded", "{}", now)
                .await
                .unwrap()
                .remove(0);
            store
                .record_delivery_attempt(DeliveryAttempt {
                    delivery_id: delivery.id,
                    at: now,
                    succeeded: true,
                    status_code: Some(200),
                    error: None,
                    retry_at: 0,
                    max_attempts: 3,
                })
                .await
                .unwrap();
            clock.set(now + 3 * 60_000);
            retention.run_once().await.unwrap();
            let kept_days = (day + 1).min(i64::from(retention_days));
            assert_eq!(
                installs_kept(now).await.installs,
                3 * kept_days,
                "day {day}"
            );
            let deliveries = store.list_deliveries(hook.id, 1000).await.unwrap();
            assert_eq!(deliveries.len() as i64, kept_days, "day {day}");
        }
    }
}
