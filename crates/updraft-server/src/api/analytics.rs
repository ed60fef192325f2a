//! Release analytics and raw event export, read from the rollups the stats
//! writer keeps current (never a scan of the raw events).

use super::analytics_views::StatsReportView;
use super::{existing_app, ApiQuery, Caller};
use crate::analytics::AnalyticsService;
use crate::api::Path;
use crate::error::{ApiError, ErrorCode};
use crate::state::AppState;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;
use updraft_core::analytics::{day_of, rfc3339, ReportFilter, MILLIS_PER_DAY};
use updraft_core::model::Role;
use updraft_store::{EventExportQuery, StoredEvent};

/// Longest report range: the rollups go back further, but a year of days is
/// already a large answer.
const MAX_REPORT_DAYS: i64 = 400;
/// Events read per page while streaming an export.
const EXPORT_PAGE: i64 = 2_000;

#[derive(Deserialize)]
pub struct StatsQuery {
    channel: Option<String>,
    bundle: Option<String>,
    since: Option<String>,
    until: Option<String>,
}

fn non_blank(value: Option<String>) -> Option<String> {
    value
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

#[utoipa::path(get, path = "/api/v1/apps/{app_id}/stats", tag = "analytics", operation_id = "app_stats",
    params(("channel" = Option<String>, Query, description = "only events and devices attributed to this channel"),
           ("bundle" = Option<String>, Query, description = "only this bundle (adoption shares stay of all active devices)"),
           ("since" = Option<String>, Query, description = "7d (default), 24h, 2w, YYYY-MM-DD or epoch ms"),
           ("until" = Option<String>, Query, description = "same forms; default now")),
    responses((status = 200, body = StatsReportView), (status = 400, body = super::views::ErrorView),
              (status = 404, body = super::views::ErrorView)))]
pub async fn stats(
    State(state): State<AppState>,
    caller: Caller,
    Path(app_id): Path<String>,
    ApiQuery(q): ApiQuery<StatsQuery>,
) -> Result<Json<StatsReportView>, ApiError> {
    caller.require(Role::Viewer, Some(&app_id))?;
    existing_app(&state, &caller, &app_id).await?;
    let now = state.clock.now();
    let since = super::validate::time_bound("since", q.since.as_deref(), now)?
        .unwrap_or(now - 7 * MILLIS_PER_DAY);
    let until = super::validate::time_bound("until", q.until.as_deref(), now)?.unwrap_or(now);
    if since > until {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidTime,
            "since is after until",
        ));
    }
    if until - since > MAX_REPORT_DAYS * MILLIS_PER_DAY {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidTime,
            format!("a report covers at most {MAX_REPORT_DAYS} days"),
        ));
    }
    let (from_day, to_day) = (day_of(since), day_of(until));
    let filter = ReportFilter {
        channel: non_blank(q.channel),
        bundle: non_blank(q.bundle),
    };
    let report = state
        .analytics
        .report(&app_id, &from_day, &to_day, &filter)
        .await?;
    Ok(Json(report.into()))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum ExportFormat {
    Csv,
    Ndjson,
}

#[derive(Deserialize)]
pub struct ExportQuery {
    format: Option<String>,
    since: Option<String>,
    until: Option<String>,
    device_id: Option<String>,
}

/// Times as RFC 3339 (UTC, milliseconds) for people and spreadsheets, each
/// with its epoch milliseconds in the next column for scripts.
const CSV_HEADER: &str =
    "id,timestamp,timestamp_ms,received_at,received_at_ms,app_id,device_id,action,version_name,\
old_version_name,channel,platform,plugin_version,version_build,is_prod,is_emulator,metadata\n";

/// One CSV field, quoted when it has to be (RFC 4180).
fn csv_field(out: &mut String, value: &str) {
    if value.contains([',', '"', '\n', '\r']) {
        out.push('"');
        out.push_str(&value.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(value);
    }
}

fn write_event(out: &mut String, format: ExportFormat, stored: &StoredEvent) {
    let e = &stored.event;
    let metadata = e
        .metadata
        .as_ref()
        .and_then(|m| serde_json::to_string(m).ok());
    match format {
        ExportFormat::Ndjson => {
            let line = json!({
                "id": stored.id,
                "timestamp": e.timestamp,
                "received_at": e.received_at,
                "app_id": e.app_id,
                "device_id": e.device_id,
                "action": e.action,
                "version_name": e.version_name,
                "old_version_name": e.old_version_name,
                "channel": stored.channel,
                "platform": e.platform,
                "plugin_version": e.plugin_version,
                "version_build": e.version_build,
                "is_prod": e.is_prod,
                "is_emulator": e.is_emulator,
                "metadata": e.metadata,
            });
            out.push_str(&line.to_string());
            out.push('\n');
        }
        ExportFormat::Csv => {
            let fields: [&str; 17] = [
                &stored.id.to_string(),
                &rfc3339(e.timestamp),
                &e.timestamp.to_string(),
                &rfc3339(e.received_at),
                &e.received_at.to_string(),
                &e.app_id,
                &e.device_id,
                &e.action,
                &e.version_name,
                e.old_version_name.as_deref().unwrap_or(""),
                stored.channel.as_deref().unwrap_or(""),
                &e.platform,
                e.plugin_version.as_deref().unwrap_or(""),
                e.version_build.as_deref().unwrap_or(""),
                if e.is_prod { "true" } else { "false" },
                if e.is_emulator { "true" } else { "false" },
                metadata.as_deref().unwrap_or(""),
            ];
            for (i, field) in fields.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                csv_field(out, field);
            }
            out.push('\n');
        }
    }
}

/// Pages through the events and yields each page as one chunk, so an export
/// of millions of events never sits in memory.
fn export_stream(
    analytics: &Arc<AnalyticsService>,
    query: EventExportQuery,
    format: ExportFormat,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> {
    let header =
        (format == ExportFormat::Csv).then(|| Ok(Bytes::from_static(CSV_HEADER.as_bytes())));
    let pages = analytics.export_pages(query).map(move |page| match page {
        Ok(page) => {
            let mut text = String::with_capacity(page.len() * 256);
            for stored in &page {
                write_event(&mut text, format, stored);
            }
            Ok(Bytes::from(text))
        }
        Err(err) => {
            tracing::error!(error = %err, "event export failed part-way");
            Err(std::io::Error::other(err.to_string()))
        }
    });
    futures_util::stream::iter(header).chain(pages)
}

#[utoipa::path(get, path = "/api/v1/apps/{app_id}/events/export", tag = "analytics", operation_id = "export_events",
    params(("format" = Option<String>, Query, pattern = "^(csv|ndjson|jsonl)?$", description = "csv (default, also when empty) or ndjson (jsonl)"),
           ("since" = Option<String>, Query, description = "event time lower bound: 7d, 24h, YYYY-MM-DD or epoch ms"),
           ("until" = Option<String>, Query, description = "event time upper bound (exclusive)"),
           ("device_id" = Option<String>, Query)),
    responses((status = 200, description = "CSV with a header line, or one JSON object per line", content((String = "text/csv"), (String = "application/x-ndjson"))),
              (status = 400, body = super::views::ErrorView), (status = 404, body = super::views::ErrorView)))]
pub async fn export(
    State(state): State<AppState>,
    caller: Caller,
    Path(app_id): Path<String>,
    ApiQuery(q): ApiQuery<ExportQuery>,
) -> Result<Response, ApiError> {
    caller.require(Role::Viewer, Some(&app_id))?;
    existing_app(&state, &caller, &app_id).await?;
    let format = match q.format.as_deref() {
        None | Some("") | Some("csv") => ExportFormat::Csv,
        Some("ndjson") | Some("jsonl") => ExportFormat::Ndjson,
        Some(other) => {
            return Err(ApiError::bad_request(
                ErrorCode::InvalidFormat,
                format!("format must be csv or ndjson, got {other:?}"),
            ))
        }
    };
    let now = state.clock.now();
    let query = EventExportQuery {
        app_id: app_id.clone(),
        since: super::validate::time_bound("since", q.since.as_deref(), now)?,
        until: super::validate::time_bound("until", q.until.as_deref(), now)?,
        device_id: q
            .device_id
            .filter(|d| !d.is_empty())
            .map(|d| super::validate::device_id(&d))
            .transpose()?,
        after_id: 0,
        limit: EXPORT_PAGE,
    };
    let (content_type, extension) = match format {
        ExportFormat::Csv => ("text/csv; charset=utf-8", "csv"),
        ExportFormat::Ndjson => ("application/x-ndjson", "ndjson"),
    };
    let body = Body::from_stream(export_stream(&state.analytics, query, format));
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(value) = HeaderValue::from_str(&format!(
        "attachment; filename=\"{app_id}-events.{extension}\""
    )) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use updraft_core::model::StatsEvent;

    #[test]
    fn csv_lines_quote_what_needs_it() {
        let stored = StoredEvent {
            id: 7,
            channel: Some("beta".into()),
            event: StatsEvent {
                app_id: "com.example.app".into(),
                device_id: "dev".into(),
                action: "set".into(),
                version_name: "1.0.0".into(),
                old_version_name: None,
                platform: "ios".into(),
                plugin_version: Some("8.0.0".into()),
                version_build: None,
                is_prod: true,
                is_emulator: false,
                metadata: Some(BTreeMap::from([("k".to_string(), "a,\"b\"".to_string())])),
                timestamp: 1_714_566_605_042,
                received_at: 1_714_566_606_000,
            },
        };
        let mut csv = String::new();
        write_event(&mut csv, ExportFormat::Csv, &stored);
        assert_eq!(
            csv,
            "7,2024-05-01T12:30:05.042Z,1714566605042,2024-05-01T12:30:06.000Z,1714566606000,com.example.app,dev,set,1.0.0,,beta,ios,8.0.0,,true,false,\"{\"\"k\"\":\"\"a,\\\"\"b\\\"\"\"\"}\"\n"
        );
        assert_eq!(CSV_HEADER.split(',').count(), 17);
        assert_eq!(
            csv.split(',').count(),
            17 + 1,
            "the quoted metadata holds one comma"
        );
        let mut ndjson = String::new();
        write_event(&mut ndjson, ExportFormat::Ndjson, &stored);
        let line: serde_json::Value = serde_json::from_str(ndjson.trim_end()).unwrap();
        assert_eq!(line["metadata"]["k"], "a,\"b\"");
        assert_eq!(line["channel"], "beta");
        assert_eq!(line["old_version_name"], serde_json::Value::Null);
    }
}
