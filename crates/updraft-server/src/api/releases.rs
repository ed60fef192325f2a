//! Release history, one-call rollback, the control loop's decisions and
//! scheduled releases.

use super::views::{
    ChannelView, CreateSchedule, DecisionList, DecisionView, HistoryEntryView, HistoryList,
    RollbackRequest, RunAtInput, ScheduleList, ScheduleView,
};
use super::{existing_app, ApiQuery, Caller, JsonBody};
use crate::api::Path;
use crate::control::ScheduleRequest;
use crate::error::ApiError;
use crate::error::ErrorCode;
use crate::release_changes::Actor;
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use updraft_core::model::{Millis, Role};

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
        .release_changes
        .history(&app_id, &name, limit + 1)
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
            .map_err(|e| ApiError::bad_request(ErrorCode::InvalidBody, e.to_string()))?
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
    let (decisions, current) = state
        .control
        .decisions(&app_id, query.channel.as_deref(), limit(query.limit)?)
        .await?;
    Ok(Json(DecisionList {
        decisions: decisions.into_iter().map(DecisionView::from).collect(),
        current: current.into_iter().map(DecisionView::from).collect(),
    }))
}

fn run_at(value: &RunAtInput) -> Result<Millis, ApiError> {
    let parsed = match value {
        RunAtInput::Millis(ms) => Some(*ms).filter(|ms| *ms >= 0),
        RunAtInput::Text(text) => updraft_core::analytics::parse_rfc3339(text),
        RunAtInput::Other(_) => None,
    };
    parsed.ok_or_else(|| {
        let given = serde_json::to_string(value).unwrap_or_default();
        ApiError::bad_request(
            ErrorCode::InvalidRunAt,
            format!("run_at must be an RFC 3339 time (2026-12-01T09:00:00Z) or epoch milliseconds, got {given}"),
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
    let run_at = run_at(&body.run_at)?;
    let schedule = state
        .control
        .create_schedule(
            &caller,
            ScheduleRequest {
                app_id,
                channel: body.channel,
                run_at,
                bundle: body.bundle,
                rollout_percentage_bps: body.rollout_percentage_bps,
                accept_incompatible: body.accept_incompatible.unwrap_or(false),
            },
        )
        .await?;
    Ok((StatusCode::CREATED, Json(ScheduleView::from(schedule))))
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
        .control
        .schedules(&app_id, query.channel.as_deref())
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
            ErrorCode::InvalidScheduleId,
            format!("schedule id {id:?} must be a whole number"),
        )
    })?;
    caller.require(Role::Publisher, Some(&app_id))?;
    existing_app(&state, &caller, &app_id).await?;
    let cancelled = state.control.cancel_schedule(&caller, &app_id, id).await?;
    Ok(Json(ScheduleView::from(cancelled)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_at_takes_milliseconds_or_text() {
        let given = |json: serde_json::Value| -> RunAtInput {
            serde_json::from_value(json).unwrap_or_else(|e| panic!("{e}"))
        };
        assert_eq!(run_at(&given(serde_json::json!(1234))).ok(), Some(1234));
        assert_eq!(
            run_at(&given(serde_json::json!("1970-01-01T00:00:01Z"))).ok(),
            Some(1000)
        );
        for bad in [
            serde_json::json!(-1),
            serde_json::json!(true),
            serde_json::json!(1.5),
            serde_json::json!(u64::MAX),
            serde_json::json!("tomorrow"),
            serde_json::json!({"at": 1}),
        ] {
            let err = run_at(&given(bad.clone())).err();
            assert_eq!(
                err.as_ref().map(|e| &e.code),
                Some(&ErrorCode::InvalidRunAt),
                "{bad}"
            );
            let message = err.map(|e| e.message).unwrap_or_default();
            assert!(message.ends_with(&format!("got {bad}")), "{message}");
        }
    }
}
