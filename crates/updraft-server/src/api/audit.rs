//! The audit log: every management change, newest first, a page at a time.

use super::views::ErrorView;
use super::ApiQuery;
use super::Caller;
use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use updraft_core::model::Role;
use updraft_store::AuditQuery;

const DEFAULT_LIMIT: i64 = 50;
const MAX_LIMIT: i64 = 500;

pub use updraft_api::audit::{AuditEntryView, AuditList};

#[derive(Deserialize)]
pub struct ListQuery {
    app_id: Option<String>,
    action: Option<String>,
    actor: Option<String>,
    since: Option<String>,
    until: Option<String>,
    before_id: Option<i64>,
    limit: Option<i64>,
}

fn non_blank(value: Option<String>) -> Option<String> {
    value
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", operation_id = "list_audit",
    params(("app_id" = Option<String>, Query, pattern = r"^([A-Za-z0-9]+(\.[A-Za-z0-9_-]+)+)?$", max_length = 255, description = "empty or absent: every app; only this app's changes (an app-scoped key always sees only its app)"),
           ("action" = Option<String>, Query, description = "exact action, or a prefix ending in '.' (channel.)"),
           ("actor" = Option<String>, Query, description = "key:<name>, control-loop, schedule:<id>, cli:offline"),
           ("since" = Option<String>, Query, description = "7d, 24h, YYYY-MM-DD or epoch ms"),
           ("until" = Option<String>, Query, description = "7d, 24h, YYYY-MM-DD or epoch ms"),
           ("before_id" = Option<i64>, Query, description = "only entries older than this id (next_before_id of the previous page)"),
           ("limit" = Option<i64>, Query, description = "default 50, at most 500")),
    responses((status = 200, body = AuditList), (status = 400, body = ErrorView), (status = 403, body = ErrorView)))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<AuditList>, ApiError> {
    let app_id = super::validate::app_id_filter(q.app_id)?.or_else(|| caller.sole_app());
    caller.require(Role::Viewer, app_id.as_deref())?;
    let now = state.clock.now();
    let limit = super::validate::page_limit(q.limit, DEFAULT_LIMIT, MAX_LIMIT)?;
    let query = AuditQuery {
        app_id,
        action: non_blank(q.action),
        actor: non_blank(q.actor),
        since: super::validate::time_bound("since", q.since.as_deref(), now)?,
        until: super::validate::time_bound("until", q.until.as_deref(), now)?,
        before_id: q.before_id,
        limit,
    };
    let entries = state.audit.list(&query).await?;
    let next_before_id = if entries.len() as i64 >= limit {
        entries.last().map(|e| e.id)
    } else {
        None
    };
    Ok(Json(AuditList {
        entries: entries.into_iter().map(AuditEntryView::from).collect(),
        next_before_id,
    }))
}
