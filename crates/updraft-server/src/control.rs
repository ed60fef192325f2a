//! The rollout control loop: runs due scheduled releases, then judges every
//! running rollout from its health (`updraft_core::control::evaluate`) and
//! advances, pauses, rolls back, promotes or alerts — each decision written
//! with the change it makes, in one transaction.
//!
//! One pass is [`ControlLoop::tick`]; [`ControlLoop::spawn`] runs it every
//! `rollout_control_interval_ms`.
//! The pass is a single function so that, with several nodes, it can later
//! run under a leader lock.

use crate::audit::{self, AuditService};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::error::ErrorCode;
use crate::metrics::Metrics;
use crate::release_changes::{Actor, Commit, ReleaseChange, ReleaseService, RolloutRequest};
use crate::releases::ReleaseCache;
use crate::webhooks::events;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use updraft_api::management::ScheduleView;
use updraft_core::analytics::rfc3339;
use updraft_core::control::{
    evaluate, health_windows, ControlAction, ControlInput, ControlOutcome,
};
use updraft_core::model::BUILTIN;
use updraft_core::model::{
    Channel, Clock, Millis, Rollout, RolloutDecision, ScheduleStatus, ScheduledAction,
    ScheduledRelease,
};
use updraft_core::rollout::RolloutChange;
use updraft_store::{
    ChannelStore, NewSchedule, ReleaseStore, RolloutStore, ScheduleStore, StoreError,
};

/// Most schedules run in one pass (the rest wait for the next).
const SCHEDULES_PER_TICK: i64 = 100;

/// A scheduled release as asked through the API (`run_at` already parsed).
#[derive(Clone, Debug)]
pub struct ScheduleRequest {
    pub app_id: String,
    pub channel: String,
    pub run_at: Millis,
    /// A version or `builtin`.
    pub bundle: String,
    /// Starts a rollout at this share instead of setting the bundle.
    pub rollout_percentage_bps: Option<i64>,
    pub accept_incompatible: bool,
}

/// What one pass did, for tests and logs.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TickReport {
    /// Schedule ids that ran and changed their channel.
    pub schedules_done: Vec<i64>,
    /// Schedule ids refused (marked failed), with why.
    pub schedules_failed: Vec<(i64, String)>,
    /// Decisions written (changes, alerts and new holds), in order.
    pub decisions: Vec<RolloutDecision>,
    /// Holds not written because the rollout's last decision said the same.
    pub holds_skipped: usize,
    /// Rollouts changed by someone else while the loop decided (skipped).
    pub conflicts: usize,
    /// Storage or other failures (logged; retried next pass).
    pub errors: usize,
}

/// The control loop and what it uses: release changes go through the
/// release service; schedules, health and decisions from their stores.
pub struct ControlLoop {
    releases: Arc<ReleaseService>,
    apps: Arc<dyn ReleaseStore>,
    channels: Arc<dyn ChannelStore>,
    schedules: Arc<dyn ScheduleStore>,
    rollouts: Arc<dyn RolloutStore>,
    cache: Arc<ReleaseCache>,
    clock: Arc<dyn Clock>,
    metrics: Arc<Metrics>,
    audit: Arc<AuditService>,
    every: Duration,
}

/// What the control loop is built from.
pub struct ControlDeps {
    pub releases: Arc<ReleaseService>,
    pub apps: Arc<dyn ReleaseStore>,
    pub channels: Arc<dyn ChannelStore>,
    pub schedules: Arc<dyn ScheduleStore>,
    pub rollouts: Arc<dyn RolloutStore>,
    pub cache: Arc<ReleaseCache>,
    pub clock: Arc<dyn Clock>,
    pub metrics: Arc<Metrics>,
    /// Records who created or cancelled a schedule.
    pub audit: Arc<AuditService>,
    /// `rollout_control_interval_ms` (at least 10 ms).
    pub every: Duration,
}

impl ControlLoop {
    pub fn new(deps: ControlDeps) -> ControlLoop {
        ControlLoop {
            releases: deps.releases,
            apps: deps.apps,
            channels: deps.channels,
            schedules: deps.schedules,
            rollouts: deps.rollouts,
            cache: deps.cache,
            clock: deps.clock,
            metrics: deps.metrics,
            audit: deps.audit,
            every: deps.every.max(Duration::from_millis(10)),
        }
    }

    /// Runs [`ControlLoop::tick`] every `every` until `stop` says so.
    pub fn spawn(self: &Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) -> JoinHandle<()> {
        let every = self.every;
        let state = Arc::clone(self);
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(every);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = ticker.tick() => {}
                    _ = stop.changed() => break,
                }
                if *stop.borrow() {
                    break;
                }
                let report = state.tick().await;
                if report.errors > 0 {
                    tracing::warn!(errors = report.errors, "rollout control pass had failures");
                }
            }
        })
    }

    /// One pass: due schedules, then every rollout.
    pub async fn tick(&self) -> TickReport {
        let mut report = TickReport::default();
        self.run_due_schedules(&mut report).await;
        let app_ids = match self.apps.list_app_ids().await {
            Ok(ids) => ids,
            Err(err) => {
                tracing::error!(error = %err, "rollout control: cannot list apps");
                report.errors += 1;
                return report;
            }
        };
        for app_id in app_ids {
            // The in-memory release says where rollouts run; each is reloaded
            // from the store before acting on it.
            let release = self.cache.get(&app_id);
            let with_rollout: Vec<String> = release
                .channels
                .iter()
                .filter(|c| c.rollout.is_some())
                .map(|c| c.name.clone())
                .collect();
            for channel in with_rollout {
                if let Err(err) = self.control_rollout(&app_id, &channel, &mut report).await {
                    tracing::error!(error = %err, app_id, channel, "rollout control failed");
                    report.errors += 1;
                }
            }
        }
        report
    }

    async fn run_due_schedules(&self, report: &mut TickReport) {
        let now = self.clock.now();
        let due = match self.schedules.due_schedules(now, SCHEDULES_PER_TICK).await {
            Ok(due) => due,
            Err(err) => {
                tracing::error!(error = %err, "rollout control: cannot read due schedules");
                report.errors += 1;
                return;
            }
        };
        for schedule in due {
            self.run_schedule(schedule, report).await;
        }
    }

    async fn run_schedule(&self, schedule: ScheduledRelease, report: &mut TickReport) {
        let result = self
            .releases
            .change_release(
                Actor::Schedule(schedule.id),
                &schedule.app_id,
                &schedule.channel,
                release_change(&schedule.action),
                schedule.accept_incompatible,
            )
            .await;
        match result {
            Ok(_) => {
                tracing::info!(schedule = schedule.id, app_id = %schedule.app_id, channel = %schedule.channel, "scheduled release ran");
                report.schedules_done.push(schedule.id);
            }
            // A refusal (bundle gone, incompatible, channel deleted) will not
            // change by waiting; a storage failure may, so it stays pending.
            Err(err) if err.status.is_client_error() => {
                let message = format!("{}: {}", err.code, err.message);
                tracing::warn!(schedule = schedule.id, app_id = %schedule.app_id, channel = %schedule.channel, reason = %message, "scheduled release refused");
                match self
                    .schedules
                    .finish_schedule(
                        schedule.id,
                        ScheduleStatus::Failed,
                        &message,
                        self.clock.now(),
                    )
                    .await
                {
                    Ok(_) => report.schedules_failed.push((schedule.id, message)),
                    Err(err) => {
                        tracing::error!(error = %err, schedule = schedule.id, "cannot mark schedule failed");
                        report.errors += 1;
                    }
                }
            }
            Err(err) => {
                tracing::error!(error = %err, schedule = schedule.id, "scheduled release failed; retrying next pass");
                report.errors += 1;
            }
        }
    }

    /// Judges and acts on one channel's rollout.
    async fn control_rollout(
        &self,
        app_id: &str,
        channel_name: &str,
        report: &mut TickReport,
    ) -> Result<(), ApiError> {
        let Some(channel) = self.channels.get_channel(app_id, channel_name).await? else {
            return Ok(());
        };
        let Some(rollout) = channel.rollout.clone() else {
            return Ok(());
        };
        let now = self.clock.now();
        let plan = self.releases.plan(channel.clone()).await?;
        let bundle = plan.bundle_name(rollout.bundle_id);
        let Some(outcome) = self.assess_with(&channel, &rollout, &bundle, now).await? else {
            return Ok(());
        };
        self.metrics
            .record_rollout_control_outcome(outcome.action.decision_action(), outcome.reason);
        let decision = decision_of(&channel, &rollout, &bundle, &outcome, now);
        let (change, reason, event): (Option<RolloutChange>, &'static str, &'static str) =
            match outcome.action {
                ControlAction::Hold => {
                    return self.record_hold(decision, report).await;
                }
                ControlAction::Advance { to_bps } => (
                    Some(RolloutChange::SetPercentage(to_bps)),
                    "ramp",
                    events::ROLLOUT_ADVANCED,
                ),
                ControlAction::Promote => (
                    Some(RolloutChange::Promote),
                    "promote",
                    events::ROLLOUT_PROMOTED,
                ),
                ControlAction::Pause => (
                    Some(RolloutChange::Pause),
                    "auto_pause",
                    events::ROLLOUT_PAUSED,
                ),
                ControlAction::Rollback => (
                    Some(RolloutChange::Rollback),
                    "auto_rollback",
                    events::ROLLOUT_ROLLED_BACK,
                ),
                // Changes nothing but the cooldown's start.
                ControlAction::Notify => (None, "auto_pause_alert", events::ROLLOUT_ALERT),
            };
        tracing::info!(
            app_id,
            channel = channel_name,
            bundle = %bundle,
            action = %decision.action,
            reason = %decision.reason,
            from_bps = decision.from_bps,
            to_bps = decision.to_bps,
            attempts = decision.attempts,
            failures = decision.failures,
            wilson_lower_bound = ?decision.wilson_lower_bound,
            "rollout control decision"
        );
        let mut plan = plan;
        match change {
            Some(change) => plan.add_rollout_change(change, now, reason, Some(event))?,
            None => plan.add_event(reason, event),
        }
        if matches!(
            outcome.action,
            ControlAction::Pause | ControlAction::Notify | ControlAction::Rollback
        ) {
            plan.mark_auto_pause_triggered(now);
        }
        let committed = plan
            .commit(
                &self.releases,
                &Actor::ControlLoop,
                Commit {
                    expect_rollout_id: Some(Some(rollout.rollout_id.clone())),
                    decision: Some(decision.clone()),
                    completes_schedule: None,
                },
            )
            .await;
        match committed {
            Ok(_) => {
                report.decisions.push(decision);
                Ok(())
            }
            // Someone ended or replaced the rollout meanwhile: their change wins.
            Err(err) if err.code == ErrorCode::Conflict => {
                tracing::info!(
                    app_id,
                    channel = channel_name,
                    "rollout changed during control; skipped"
                );
                report.conflicts += 1;
                Ok(())
            }
            Err(err) => Err(err),
        }
    }

    /// The loop's judgement of a rollout from its current health.
    async fn assess_with(
        &self,
        channel: &Channel,
        rollout: &Rollout,
        bundle: &str,
        now: Millis,
    ) -> Result<Option<ControlOutcome>, ApiError> {
        let (window_since, step_since) = health_windows(channel, rollout, now);
        let window_health = self
            .rollouts
            .rollout_health(&channel.app_id, &channel.name, bundle, window_since, now)
            .await?;
        let step_health = self
            .rollouts
            .rollout_health(&channel.app_id, &channel.name, bundle, step_since, now)
            .await?;
        Ok(evaluate(&ControlInput {
            channel,
            rollout,
            now,
            window_health,
            step_health,
        }))
    }

    /// What the loop would decide for `channel`'s rollout right now, with the
    /// current figures; nothing is written. (Holds are recorded only when their
    /// reason changes, so the recorded ones can be old.)
    pub async fn assess(&self, channel: &Channel) -> Result<Option<RolloutDecision>, ApiError> {
        let Some(rollout) = channel.rollout.as_ref() else {
            return Ok(None);
        };
        let now = self.clock.now();
        let names = self
            .releases
            .bundle_names(&channel.app_id, [channel])
            .await?;
        let bundle = names
            .get(&rollout.bundle_id)
            .cloned()
            .unwrap_or_else(|| format!("#{}", rollout.bundle_id));
        let outcome = self.assess_with(channel, rollout, &bundle, now).await?;
        Ok(outcome.map(|outcome| decision_of(channel, rollout, &bundle, &outcome, now)))
    }

    /// The decisions recorded for `app_id` (only `channel`'s when given),
    /// newest first, and what the loop would decide now for each running
    /// rollout among those channels.
    pub async fn decisions(
        &self,
        app_id: &str,
        channel: Option<&str>,
        limit: i64,
    ) -> Result<(Vec<RolloutDecision>, Vec<RolloutDecision>), ApiError> {
        let recorded = self
            .rollouts
            .list_rollout_decisions(app_id, channel, limit)
            .await?;
        let mut current = Vec::new();
        for candidate in self.channels.list_channels(app_id).await? {
            if channel.is_some_and(|c| c != candidate.name) {
                continue;
            }
            current.extend(self.assess(&candidate).await?);
        }
        Ok((recorded, current))
    }

    /// The schedules of `app_id` (only `channel`'s when given), by `run_at`
    /// then id, whatever their status.
    pub async fn schedules(
        &self,
        app_id: &str,
        channel: Option<&str>,
    ) -> Result<Vec<ScheduledRelease>, ApiError> {
        Ok(self.schedules.list_schedules(app_id, channel).await?)
    }

    /// Stores a scheduled release: `run_at` must be after now (by the
    /// clock), the channel and bundle must exist (the builtin bundle cannot
    /// be rolled out); it runs in the first pass at or after `run_at`.
    pub async fn create_schedule(
        &self,
        caller: &Caller,
        request: ScheduleRequest,
    ) -> Result<ScheduledRelease, ApiError> {
        let now = self.clock.now();
        let run_at = request.run_at;
        if run_at <= now {
            return Err(ApiError::bad_request(
                ErrorCode::InvalidRunAt,
                format!(
                    "run_at ({}) must be in the future (now is {})",
                    rfc3339(run_at),
                    rfc3339(now)
                ),
            ));
        }
        let percentage_bps = request
            .rollout_percentage_bps
            .map(updraft_core::rollout::percentage_bps)
            .transpose()?;
        let app_id = request.app_id;
        self.releases
            .existing_channel(&app_id, &request.channel)
            .await?;
        let bundle = self
            .releases
            .resolve_bundle(&app_id, &request.bundle)
            .await?;
        let action = match (percentage_bps, bundle) {
            (None, bundle) => ScheduledAction::SetBundle {
                bundle: bundle.map_or_else(|| BUILTIN.to_string(), |b| b.name),
            },
            (Some(percentage_bps), Some(bundle)) => ScheduledAction::StartRollout {
                bundle: bundle.name,
                percentage_bps,
            },
            (Some(_), None) => {
                return Err(ApiError::bad_request(
                    ErrorCode::InvalidRolloutBundle,
                    "the builtin bundle cannot be rolled out; schedule it without a percentage",
                ))
            }
        };
        let schedule = self
            .schedules
            .create_schedule(NewSchedule {
                app_id: app_id.clone(),
                channel: request.channel,
                run_at,
                action,
                accept_incompatible: request.accept_incompatible,
                created_by: crate::audit::actor(caller),
                created_at: now,
            })
            .await?;
        let view = ScheduleView::from(schedule.clone());
        self.audit
            .log(
                caller,
                Some(&app_id),
                "schedule.create",
                &view.id.to_string(),
                None,
                audit::view(&view),
            )
            .await;
        Ok(schedule)
    }

    /// Cancels pending schedule `id` of `app_id`: 404 `schedule_not_found`,
    /// 409 `schedule_not_pending` once it ran, failed or was cancelled.
    pub async fn cancel_schedule(
        &self,
        caller: &Caller,
        app_id: &str,
        id: i64,
    ) -> Result<ScheduledRelease, ApiError> {
        let not_found = || {
            ApiError::not_found(
                ErrorCode::ScheduleNotFound,
                format!("schedule {id} of {app_id} does not exist"),
            )
        };
        let before = self
            .schedules
            .get_schedule(app_id, id)
            .await?
            .ok_or_else(not_found)?;
        let cancelled = match self
            .schedules
            .cancel_schedule(app_id, id, self.clock.now())
            .await
        {
            Ok(schedule) => schedule,
            Err(StoreError::NotFound(_)) => return Err(not_found()),
            Err(StoreError::Conflict(_)) => {
                return Err(ApiError::conflict(
                    ErrorCode::ScheduleNotPending,
                    format!(
                        "schedule {id} is {} and can no longer be cancelled",
                        before.status.as_str()
                    ),
                ))
            }
            Err(err) => return Err(err.into()),
        };
        self.audit
            .log(
                caller,
                Some(app_id),
                "schedule.cancel",
                &id.to_string(),
                audit::view(&ScheduleView::from(before)),
                audit::view(&ScheduleView::from(cancelled.clone())),
            )
            .await;
        Ok(cancelled)
    }

    /// Writes a hold unless the rollout's newest decision already says the same.
    async fn record_hold(
        &self,
        decision: RolloutDecision,
        report: &mut TickReport,
    ) -> Result<(), ApiError> {
        let newest = self
            .rollouts
            .list_rollout_decisions(&decision.app_id, Some(&decision.channel), 1)
            .await?;
        let repeated = newest.first().is_some_and(|last| {
            last.rollout_id == decision.rollout_id
                && last.action == decision.action
                && last.reason == decision.reason
        });
        if repeated {
            report.holds_skipped += 1;
            return Ok(());
        }
        tracing::info!(
            app_id = %decision.app_id,
            channel = %decision.channel,
            reason = %decision.reason,
            attempts = decision.attempts,
            failures = decision.failures,
            "rollout held"
        );
        let stored = self.rollouts.record_rollout_decision(decision).await?;
        report.decisions.push(stored);
        Ok(())
    }
}

fn release_change(action: &ScheduledAction) -> ReleaseChange {
    match action {
        ScheduledAction::SetBundle { bundle } => ReleaseChange::SetBundle {
            version: bundle.clone(),
        },
        ScheduledAction::StartRollout {
            bundle,
            percentage_bps,
        } => ReleaseChange::Rollout(RolloutRequest::Start {
            version: bundle.clone(),
            percentage_bps: *percentage_bps,
        }),
    }
}

fn decision_of(
    channel: &Channel,
    rollout: &Rollout,
    bundle: &str,
    outcome: &ControlOutcome,
    now: Millis,
) -> RolloutDecision {
    RolloutDecision {
        id: 0,
        app_id: channel.app_id.clone(),
        channel: channel.name.clone(),
        rollout_id: rollout.rollout_id.clone(),
        bundle: bundle.to_string(),
        at: now,
        action: outcome.action.decision_action().to_string(),
        reason: outcome.reason.to_string(),
        message: outcome.message.clone(),
        from_bps: outcome.from_bps,
        to_bps: outcome.to_bps,
        attempts: outcome.attempts,
        failures: outcome.failures,
        failure_rate: outcome.failure_rate,
        wilson_lower_bound: outcome.wilson_lower_bound,
        threshold_bps: outcome.threshold_bps,
    }
}
