//! `updraft stats` (release analytics as tables) and `updraft events export`
//! (raw events, streamed to a file or stdout).

use crate::app_id::resolve_app_id;
use crate::args::{EventsExportArgs, ExportFormatArg, StatsArgs};
use crate::client::ApiClient;
use crate::error::{CliError, LocalCode};
use crate::output::Outcome;
use crate::table::Table;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use updraft_api::StatsReportView;

/// Adoption columns shown in the table (the newest days of the range).
const ADOPTION_DAYS: usize = 7;

pub async fn stats(
    client: &ApiClient,
    args: &StatsArgs,
    work_dir: &Path,
) -> Result<Outcome, CliError> {
    let app_id = resolve_app_id(args.app_id.as_deref(), work_dir)?;
    let mut query = vec![("since", args.since.clone())];
    for (key, value) in [
        ("until", &args.until),
        ("channel", &args.channel),
        ("bundle", &args.bundle),
    ] {
        if let Some(value) = value {
            query.push((key, value.clone()));
        }
    }
    let report = client
        .get::<StatsReportView>(&["apps", &app_id, "stats"], &query)
        .await?;
    let text = render_report(&report.value);
    Ok(Outcome::new(report.json, text))
}

fn percent(rate: Option<f64>) -> String {
    rate.map_or_else(|| "-".to_string(), |rate| format!("{:.1}%", rate * 100.0))
}

/// 1234567 → "1.2 MB".
pub fn human_bytes(bytes: i64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut size = bytes as f64;
    let mut unit = 0;
    while size >= 1000.0 && unit < UNITS.len() - 1 {
        size /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{size:.1} {}", UNITS[unit])
    }
}

fn failure_kinds(failures: &BTreeMap<String, i64>) -> String {
    failures
        .iter()
        .map(|(kind, n)| format!("{kind} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The report as a summary, a per-day table and an adoption table.
pub fn render_report(report: &StatsReportView) -> String {
    let all = |text: Option<&str>| text.unwrap_or("all").to_string();
    let totals = &report.totals;
    let mut out = format!(
        "{}  {} .. {}  channel: {}  bundle: {}\n",
        report.app_id,
        report.from,
        report.to,
        all(report.channel.as_deref()),
        all(report.bundle.as_deref())
    );
    out.push_str(&format!(
        "Active devices: {} (newest day), peak {}\n",
        totals.active_devices_latest, totals.active_devices_peak
    ));
    let kinds = failure_kinds(&totals.failures_by_kind);
    out.push_str(&format!(
        "Installs: {}  Failures: {}{}  Failure rate: {}\n",
        totals.installs,
        totals.failures,
        if kinds.is_empty() {
            String::new()
        } else {
            format!(" ({kinds})")
        },
        percent(totals.failure_rate)
    ));
    out.push_str(&format!(
        "Downloads: {} ({})  Events: {}\n\n",
        totals.downloads,
        human_bytes(totals.bytes),
        totals.events
    ));
    let mut days = Table::new(&[
        "DAY",
        "ACTIVE",
        "INSTALLS",
        "FAILURES",
        "FAIL RATE",
        "DOWNLOADS",
        "BYTES",
    ]);
    for day in &report.days {
        days.push_row(vec![
            day.day.clone(),
            day.active_devices.to_string(),
            day.installs.to_string(),
            day.failures.to_string(),
            percent(day.failure_rate),
            day.downloads.to_string(),
            human_bytes(day.bytes),
        ]);
    }
    out.push_str(&days.render());
    if report.adoption.is_empty() {
        out.push_str("\n\nNo adoption data in this range.");
        return out;
    }
    let shown: Vec<&str> = report
        .days
        .iter()
        .rev()
        .take(ADOPTION_DAYS)
        .rev()
        .map(|d| d.day.as_str())
        .collect();
    let mut headers = vec!["BUNDLE".to_string()];
    headers.extend(shown.iter().map(|d| d.get(5..).unwrap_or(d).to_string()));
    let header_refs: Vec<&str> = headers.iter().map(String::as_str).collect();
    let mut adoption = Table::new(&header_refs);
    for curve in &report.adoption {
        let mut row = vec![curve.bundle.clone()];
        for day in &shown {
            let point = curve.days.iter().find(|p| p.day == *day);
            row.push(point.map_or_else(
                || "-".to_string(),
                |p| format!("{} ({})", percent(p.share), p.devices),
            ));
        }
        adoption.push_row(row);
    }
    out.push_str("\n\nAdoption (share of active devices, devices):\n");
    out.push_str(&adoption.render());
    out
}

/// Streams the export to `--output` or stdout. On stdout the final newline
/// is held back, because printing the (empty) outcome adds one.
pub async fn export(
    client: &ApiClient,
    args: &EventsExportArgs,
    work_dir: &Path,
    json_mode: bool,
) -> Result<Outcome, CliError> {
    let app_id = resolve_app_id(args.app_id.as_deref(), work_dir)?;
    if json_mode && args.output.is_none() {
        return Err(CliError::new(
            LocalCode::InvalidArguments,
            "--json does not apply to an export on stdout; use --format ndjson (or --output FILE)",
        ));
    }
    let format = match args.format {
        ExportFormatArg::Csv => "csv",
        ExportFormatArg::Ndjson => "ndjson",
    };
    let mut query = vec![("format", format.to_string())];
    for (key, value) in [
        ("since", &args.since),
        ("until", &args.until),
        ("device_id", &args.device_id),
    ] {
        if let Some(value) = value {
            query.push((key, value.clone()));
        }
    }
    let mut response = client
        .get_streaming(&["apps", &app_id, "events", "export"], &query)
        .await?;
    let to_stdout = args.output.is_none();
    let write_error = |error: std::io::Error| {
        // `| head`: the reader has what it wanted.
        let code = if to_stdout && error.kind() == std::io::ErrorKind::BrokenPipe {
            LocalCode::StdoutClosed
        } else {
            LocalCode::WriteFailed
        };
        CliError::new(code, format!("cannot write the export: {error}"))
    };
    let mut sink: Box<dyn Write> = match &args.output {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(work_dir.join(path)).map_err(write_error)?,
        )),
        None => Box::new(std::io::stdout().lock()),
    };
    let (mut bytes, mut lines) = (0_u64, 0_u64);
    let mut held_newline = false;
    let failed = |error: CliError| {
        let what = match &args.output {
            Some(path) => format!("; {} holds only part of it", path.display()),
            None => String::new(),
        };
        CliError::new(
            LocalCode::ExportFailed,
            format!("the server failed while exporting: {}{what}", error.message),
        )
    };
    while let Some(chunk) = client.next_chunk(&mut response).await.map_err(failed)? {
        if held_newline {
            sink.write_all(b"\n").map_err(write_error)?;
            held_newline = false;
        }
        bytes += chunk.len() as u64;
        lines += chunk.iter().filter(|b| **b == b'\n').count() as u64;
        let body = match (args.output.is_none(), chunk.split_last()) {
            (true, Some((b'\n', rest))) => {
                held_newline = true;
                rest
            }
            _ => chunk.as_slice(),
        };
        sink.write_all(body).map_err(write_error)?;
    }
    sink.flush().map_err(write_error)?;
    drop(sink);
    let records = if format == "csv" {
        lines.saturating_sub(1)
    } else {
        lines
    };
    match &args.output {
        Some(path) => Ok(Outcome::new(
            json!({"status": "ok", "events": records, "bytes": bytes, "output": path}),
            format!(
                "Exported {records} events of {app_id} to {} ({}).",
                path.display(),
                human_bytes(bytes as i64)
            ),
        )),
        // The data itself was the output; only the held-back newline remains.
        None => Ok(Outcome::new(Value::Null, "")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_renders_summary_series_and_adoption() {
        let report = json!({
            "app_id": "com.example.app", "from": "2026-01-01", "to": "2026-01-02",
            "channel": "production", "bundle": null,
            "totals": {"active_devices_latest": 4, "active_devices_peak": 5, "events": 30, "installs": 3,
                       "failures": 1, "failures_by_kind": {"update_fail": 1}, "failure_rate": 0.25,
                       "downloads": 2, "bytes": 2_500_000},
            "days": [
                {"day": "2026-01-01", "active_devices": 5, "installs": 3, "failures": 1, "failure_rate": 0.25,
                 "downloads": 2, "bytes": 2_500_000, "events": 20, "failures_by_kind": {"update_fail": 1}},
                {"day": "2026-01-02", "active_devices": 4, "installs": 0, "failures": 0, "failure_rate": null,
                 "downloads": 0, "bytes": 0, "events": 10, "failures_by_kind": {}}
            ],
            "adoption": [{"bundle": "1.1.0", "days": [
                {"day": "2026-01-01", "devices": 1, "share": 0.2},
                {"day": "2026-01-02", "devices": 3, "share": 0.75}]}]
        });
        let text = render_report(&serde_json::from_value(report).unwrap());
        assert!(
            text.starts_with(
                "com.example.app  2026-01-01 .. 2026-01-02  channel: production  bundle: all\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("Active devices: 4 (newest day), peak 5"),
            "{text}"
        );
        assert!(
            text.contains("Installs: 3  Failures: 1 (update_fail 1)  Failure rate: 25.0%"),
            "{text}"
        );
        assert!(text.contains("Downloads: 2 (2.5 MB)  Events: 30"), "{text}");
        assert!(
            text.contains("2026-01-01  5       3         1         25.0%      2          2.5 MB"),
            "{text}"
        );
        assert!(
            text.contains("2026-01-02  4       0         0         -"),
            "{text}"
        );
        assert!(text.contains("1.1.0   20.0% (1)  75.0% (3)"), "{text}");
        assert_eq!(human_bytes(999), "999 B");
        assert_eq!(human_bytes(1_000), "1.0 kB");
    }
}
