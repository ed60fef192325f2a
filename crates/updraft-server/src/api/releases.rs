//! Release history, one-call rollback, the control loop's decisions and
//! scheduled releases.

use super::views::{
    ChannelView, CreateSchedule, DecisionList, DecisionView, HistoryEntryView, HistoryList,
    RollbackRequest, ScheduleList, ScheduleView,
};
use super::{existing_app, ApiQuery, Caller, JsonBody};
use crate::api::Path;
use crate::error::ApiError;
use crate::release_changes::Actor;
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use updraft_core::model::{Millis, Role, ScheduledAction, BUILTIN};
use updraft_store::{NewSchedule, StoreError};

const DEFAULT_LIMIT: i64 = 50;
const MAX_LIMIT: i64 = 1000;

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// At most 1000; default 50.
    pub limit: Option<i64>,
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DecisionQuery {
    /// Only this channel's decisions.
    pub channel: Option<String>,
    /// At most 1000; default 50.
    pub limit: Option<i64>,
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ScheduleQuery {
    /// Only this channel's schedules.
    pub channel: Option<String>,
}

fn limit(limit: Option<i64>) -> Result<i64, ApiError> {
    super::validate::page_limit(limit, DEFAULT_LIMIT, MAX_LIMIT)
}

#[utoipa::path(get, path = "/api/v1/apps/{app_id}/channels/{name}/history", tag = "releases", operation_id = "channel_history",
    params(HistoryQuery),
    responses((status = 200, body = HistoryList), (status = 404, body = super::views::ErrorView)))]
pub async fn history(
    State(state): State<AppState>,
    caller: Caller,
    Path((app_id, name)): Path<(String, String)>,
    ApiQuery(query): ApiQuery<HistoryQuery>,
) -> Result<Json<HistoryList>, ApiError> {
    caller.require(Role::Viewer, Some(&app_id))?;
    existing_app(&state, &caller, &app_id).await?;
    state
        .release_changes
        .existing_channel(&app_id, &name)
        .await?;
    let limit = limit(query.limit)?;
    // One more than shown: the oldest shown entry's previous bundles.
    let entries = state
        .store
        .channel_history(&app_id, &name, limit + 1)
        .await?;
    let mut history: Vec<HistoryEntryView> = Vec::with_capacity(entries.len());
    for (i, entry) in entries.iter().enumerate().take(limit as usize) {
        let mut view = HistoryEntryView::from(entry.clone());
        if let Some(older) = entries.get(i + 1) {
            view.previous_bundle = Some(older.bundle.clone());
            view.previous_rollout_bundle = older.rollout_bundle.clone();
        }
        history.push(view);
    }
    Ok(Json(HistoryList {
        channel: name,
        history,
    }))
}

#[utoipa::path(post, path = "/api/v1/apps/{app_id}/channels/{name}/rollback", tag = "releases", operation_id = "rollback_channel",
    request_body = RollbackRequest,
    responses((status = 200, body = ChannelView), (status = 404, body = super::views::ErrorView), (status = 409, body = super::views::ErrorView)))]
pub async fn rollback(
    State(state): State<AppState>,
    caller: Caller,
    Path((app_id, name)): Path<(String, String)>,
    body: Bytes,
) -> Result<Json<ChannelView>, ApiError> {
    caller.require(Role::Publisher, Some(&app_id))?;
    existing_app(&state, &caller, &app_id).await?;
    // The body is optional: no body = back to the previous stable bundle.
    let request: RollbackRequest = if body.iter().all(u8::is_ascii_whitespace) {
        RollbackRequest::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request("invalid_body", e.to_string()))?
    };
    let channel = state
        .release_changes
        .rollback_channel(
            Actor::Key(&caller),
            &app_id,
            &name,
            request.to.as_deref(),
            request.accept_unencrypted.unwrap_or(false),
        )
        .await?;
    Ok(Json(state.release_changes.view(channel).await?))
}

#[utoipa::path(get, path = "/api/v1/apps/{app_id}/rollouts/decisions", tag = "releases", operation_id = "rollout_decisions",
    params(DecisionQuery),
    responses((status = 200, body = DecisionList), (status = 404, body = super::views::ErrorView)))]
pub async fn decisions(
    State(state): State<AppState>,
    caller: Caller,
    Path(app_id): Path<String>,
    ApiQuery(query): ApiQuery<DecisionQuery>,
) -> Result<Json<DecisionList>, ApiError> {
    caller.require(Role::Viewer, Some(&app_id))?;
    existing_app(&state, &caller, &app_id).await?;
    if let Some(channel) = query.channel.as_deref() {
        state
            .release_changes
            .existing_channel(&app_id, channel)
            .await?;
    }
    let decisions = state
        .store
        .list_rollout_decisions(&app_id, query.channel.as_deref(), limit(query.limit)?)
        .await?;
    let mut current = Vec::new();
    for channel in state.store.list_channels(&app_id).await? {
        if query.channel.as_deref().is_some_and(|c| c != channel.name) {
            continue;
        }
        if let Some(now) = state.control.assess(&channel).await? {
            current.push(DecisionView::from(now));
        }
    }
    Ok(Json(DecisionList {
        decisions: decisions.into_iter().map(DecisionView::from).collect(),
        current,
    }))
}

fn run_at(value: &serde_json::Value) -> Result<Millis, ApiError> {
    let parsed = match value {
        serde_json::Value::Number(n) => n.as_i64().filter(|ms| *ms >= 0),
        serde_json::Value::String(s) => updraft_core::analytics::parse_rfc3339(s),
        _ => None,
    };
    parsed.ok_or_else(|| {
        ApiError::bad_request(
            "invalid_run_at",
            format!("run_at must be an RFC 3339 time (2026-12-01T09:00:00Z) or epoch milliseconds, got {value}"),
        )
    })
}

#[utoipa::path(post, path = "/api/v1/apps/{app_id}/schedules", tag = "releases", operation_id = "create_schedule",
    request_body = CreateSchedule,
    responses((status = 201, body = ScheduleView), (status = 400, body = super::views::ErrorView), (status = 404, body = super::views::ErrorView), (status = 409, body = super::views::ErrorView)))]
pub async fn create_schedule(
    State(state): State<AppState>,
    caller: Caller,
    Path(app_id): Path<String>,
    JsonBody(body): JsonBody<CreateSchedule>,
) -> Result<(StatusCode, Json<ScheduleView>), ApiError> {
    caller.require(Role::Publisher, Some(&app_id))?;
    existing_app(&state, &caller, &app_id).await?;
    let now = state.clock.now();
    let run_at = run_at(&body.run_at)?;
    if run_at <= now {
        return Err(ApiError::bad_request(
            "invalid_run_at",
            format!(
                "run_at ({}) must be in the future (now is {})",
                super::views::rfc3339(run_at),
                super::views::rfc3339(now)
            ),
        ));
    }
    let percentage_bps = match body.rollout_percentage_bps {
        None => None,
        Some(bps) => Some(
            u32::try_from(bps)
                .ok()
                .filter(|b| *b <= 10_000)
                .ok_or_else(|| {
                    ApiError::bad_request(
                "invalid_percentage",
                format!("rollout percentage must be between 0 and 10000 basis points, got {bps}"),
            )
                })?,
        ),
    };
    state
        .release_changes
        .existing_channel(&app_id, &body.channel)
        .await?;
    let bundle = state
        .release_changes
        .resolve_bundle(&app_id, &body.bundle)
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
                "invalid_rollout_bundle",
                "the builtin bundle cannot be rolled out; schedule it without a percentage",
            ))
        }
    };
    let actor = crate::audit::actor(&caller);
    let schedule = state
        .store
        .create_schedule(NewSchedule {
            app_id: app_id.clone(),
            channel: body.channel,
            run_at,
            action,
            accept_incompatible: body.accept_incompatible.unwrap_or(false),
            created_by: actor,
            created_at: now,
        })
        .await?;
    let view = ScheduleView::from(schedule);
    state
        .audit
        .log(
            &caller,
            Some(&app_id),
            "schedule.create",
            &view.id.to_string(),
            None,
            serde_json::to_value(&view).ok(),
        )
        .await;
    Ok((StatusCode::CREATED, Json(view)))
}

#[utoipa::path(get, path = "/api/v1/apps/{app_id}/schedules", tag = "releases", operation_id = "list_schedules",
    params(ScheduleQuery),
    responses((status = 200, body = ScheduleList), (status = 404, body = super::views::ErrorView)))]
pub async fn list_schedules(
    State(state): State<AppState>,
    caller: Caller,
    Path(app_id): Path<String>,
    ApiQuery(query): ApiQuery<ScheduleQuery>,
) -> Result<Json<ScheduleList>, ApiError> {
    caller.require(Role::Viewer, Some(&app_id))?;
    existing_app(&state, &caller, &app_id).await?;
    if let Some(channel) = query.channel.as_deref() {
        state
            .release_changes
            .existing_channel(&app_id, channel)
            .await?;
    }
    let schedules = state
        .store
        .list_schedules(&app_id, query.channel.as_deref())
        .await?;
    Ok(Json(ScheduleList {
        schedules: schedules.into_iter().map(ScheduleView::from).collect(),
    }))
}

#[utoipa::path(delete, path = "/api/v1/apps/{app_id}/schedules/{id}", tag = "releases", operation_id = "cancel_schedule",
    params(("id" = i64, Path, minimum = 1, description = "the schedule's id")),
    responses((status = 200, body = ScheduleView), (status = 404, body = super::views::ErrorView), (status = 409, body = super::views::ErrorView)))]
pub async fn cancel_schedule(
    State(state): State<AppState>,
    caller: Caller,
    Path((app_id, id)): Path<(String, String)>,
) -> Result<Json<ScheduleView>, ApiError> {
    // Decoded here, not by `Path`, so that a bad id gets this API's JSON error.
    let id: i64 = id.parse().map_err(|_| {
        ApiError::bad_request(
            "invalid_schedule_id",
            format!("schedule id {id:?} must be a whole number"),
        )
    })?;
    caller.require(Role::Publisher, Some(&app_id))?;
    existing_app(&state, &caller, &app_id).await?;
    let not_found = || {
        ApiError::not_found(
            "schedule_not_found",
            format!("schedule {id} of {app_id} does not exist"),
        )
    };
    let before = state
        .store
        .get_schedule(&app_id, id)
        .await?
        .ok_or_else(not_found)?;
    let cancelled = match state
        .store
        .cancel_schedule(&app_id, id, state.clock.now())
        .await
    {
        Ok(schedule) => schedule,
        Err(StoreError::NotFound(_)) => return Err(not_found()),
        Err(StoreError::Conflict(_)) => {
            return Err(ApiError::conflict(
                "schedule_not_pending",
                format!(
                    "schedule {id} is {} and can no longer be cancelled",
                    before.status.as_str()
                ),
            ))
        }
        Err(err) => return Err(err.into()),
    };
    let view = ScheduleView::from(cancelled);
    state
        .audit
        .log(
            &caller,
            Some(&app_id),
            "schedule.cancel",
            &id.to_string(),
            serde_json::to_value(ScheduleView::from(before)).ok(),
            serde_json::to_value(&view).ok(),
        )
        .await;
    Ok(Json(view))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_at_takes_milliseconds_or_text() {
        assert_eq!(run_at(&serde_json::json!(1234)).ok(), Some(1234));
        assert_eq!(
            run_at(&serde_json::json!(-1)).err().map(|e| e.code),
            Some("invalid_run_at")
        );
        assert_eq!(
            run_at(&serde_json::json!(true)).err().map(|e| e.code),
            Some("invalid_run_at")
        );
    }
}
