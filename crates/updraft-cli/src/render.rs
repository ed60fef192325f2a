//! Human-readable views of the API's JSON: tables for lists, short summaries
//! for single objects. Unknown or missing fields render as `-` rather than failing,
//! so a newer server does not break an older CLI.

use crate::table::{sanitize_cell, Table};
use crate::time::{rfc3339, short_time};
use serde_json::Value;

/// A cell for `key` of `object`: strings as they are, booleans as yes/no,
/// lists joined by commas, null or missing as `-`.
pub fn cell(object: &Value, key: &str) -> String {
    match object.get(key) {
        None | Some(Value::Null) => "-".to_string(),
        Some(Value::String(text)) if text.is_empty() => "-".to_string(),
        Some(Value::String(text)) => text.clone(),
        Some(Value::Bool(true)) => "yes".to_string(),
        Some(Value::Bool(false)) => "no".to_string(),
        Some(Value::Array(items)) if items.is_empty() => "-".to_string(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| {
                item.as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| item.to_string())
            })
            .collect::<Vec<_>>()
            .join(","),
        Some(other) => other.to_string(),
    }
}

/// A time cell: RFC 3339 text shortened, epoch milliseconds converted.
pub fn time_cell(object: &Value, key: &str) -> String {
    match object.get(key) {
        Some(Value::String(text)) if !text.is_empty() => short_time(text),
        Some(Value::Number(number)) => number
            .as_i64()
            .map(|ms| short_time(&rfc3339(ms)))
            .unwrap_or_else(|| number.to_string()),
        _ => "-".to_string(),
    }
}

fn flag(object: &Value, key: &str) -> bool {
    object.get(key).and_then(Value::as_bool).unwrap_or(false)
}

/// The names of the keys whose value is `true`, joined, or `none`.
fn enabled(object: &Value, keys: &[(&str, &str)]) -> String {
    let names: Vec<&str> = keys
        .iter()
        .filter(|(key, _)| flag(object, key))
        .map(|(_, name)| *name)
        .collect();
    if names.is_empty() {
        "none".to_string()
    } else {
        names.join(",")
    }
}

fn items<'a>(list: &'a Value, key: &str) -> &'a [Value] {
    list.get(key)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

pub fn apps_table(list: &Value) -> String {
    let apps = items(list, "apps");
    if apps.is_empty() {
        return "No apps.".to_string();
    }
    let mut table = Table::new(&["APP ID", "NAME", "EXPOSE METADATA", "CREATED"]);
    for app in apps {
        table.push_row(vec![
            cell(app, "app_id"),
            cell(app, "name"),
            cell(app, "expose_metadata"),
            time_cell(app, "created_at"),
        ]);
    }
    table.render()
}

/// The channels serving a bundle, then those rolling it out: `production,beta (rollout)`.
fn bundle_channels_cell(bundle: &Value) -> String {
    let names = |key: &str| -> Vec<String> {
        bundle
            .get(key)
            .and_then(Value::as_array)
            .map(|items| {
                items
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut parts = names("channels");
    parts.extend(
        names("rollout_channels")
            .into_iter()
            .map(|name| format!("{name} (rollout)")),
    );
    if parts.is_empty() {
        "-".to_string()
    } else {
        parts.join(",")
    }
}

pub fn bundles_table(list: &Value, include_deleted: bool) -> String {
    let bundles = items(list, "bundles");
    if bundles.is_empty() {
        return "No bundles.".to_string();
    }
    let mut headers = vec!["VERSION", "CHANNELS", "ENCRYPTED", "MIN UPDATE", "CREATED"];
    if include_deleted {
        headers.push("DELETED");
    }
    headers.push("URL");
    let mut table = Table::new(&headers);
    for bundle in bundles {
        let mut row = vec![
            cell(bundle, "version"),
            bundle_channels_cell(bundle),
            cell(bundle, "encrypted"),
            cell(bundle, "min_update_version"),
            time_cell(bundle, "created_at"),
        ];
        if include_deleted {
            row.push(if flag(bundle, "deleted") {
                time_cell(bundle, "deleted_at")
            } else {
                "-".to_string()
            });
        }
        let url = match cell(bundle, "url").as_str() {
            "-" => cell(bundle, "external_url"),
            url => url.to_string(),
        };
        row.push(url);
        table.push_row(row);
    }
    table.render()
}

const PLATFORMS: [(&str, &str); 3] = [
    ("ios", "ios"),
    ("android", "android"),
    ("electron", "electron"),
];
const AUDIENCES: [(&str, &str); 4] = [
    ("allow_dev", "dev"),
    ("allow_prod", "prod"),
    ("allow_emulator", "emulator"),
    ("allow_device", "device"),
];

/// `disable_auto_update_under_native` blocks downgrades; show whether they are allowed.
fn downgrade_cell(channel: &Value) -> String {
    match channel
        .get("disable_auto_update_under_native")
        .and_then(Value::as_bool)
    {
        Some(true) => "no".to_string(),
        Some(false) => "yes".to_string(),
        None => "-".to_string(),
    }
}

pub fn channels_table(list: &Value) -> String {
    let channels = items(list, "channels");
    if channels.is_empty() {
        return "No channels.".to_string();
    }
    let mut table = Table::new(&[
        "NAME",
        "BUNDLE",
        "ROLLOUT",
        "DEFAULT",
        "PLATFORMS",
        "SELF-ASSIGN",
        "DISABLE AUTO UPDATE",
        "DOWNGRADE",
        "SERVES",
    ]);
    for channel in channels {
        table.push_row(vec![
            cell(channel, "name"),
            cell(channel, "bundle"),
            rollout_cell(channel),
            cell(channel, "public"),
            enabled(channel, &PLATFORMS),
            cell(channel, "allow_device_self_set"),
            cell(channel, "disable_auto_update"),
            downgrade_cell(channel),
            enabled(channel, &AUDIENCES),
        ]);
    }
    table.render()
}

/// One line describing a channel's settings, for confirmations.
pub fn channel_summary(channel: &Value) -> String {
    let visibility = if flag(channel, "public") {
        "default"
    } else {
        "normal"
    };
    let rollout = match rollout_cell(channel).as_str() {
        "-" => String::new(),
        text => format!(", rollout {text}"),
    };
    format!(
        "bundle {}{rollout}, {visibility}, platforms {}, self-assign {}, disable auto update {}, downgrade {}, serves {}",
        cell(channel, "bundle"),
        enabled(channel, &PLATFORMS),
        cell(channel, "allow_device_self_set"),
        cell(channel, "disable_auto_update"),
        downgrade_cell(channel),
        enabled(channel, &AUDIENCES),
    )
}

/// Basis points as a percentage: `1250` → `12.5%`.
pub fn percent(bps: u64) -> String {
    if bps.is_multiple_of(100) {
        format!("{}%", bps / 100)
    } else {
        let text = format!("{:.2}", bps as f64 / 100.0);
        format!("{}%", text.trim_end_matches('0').trim_end_matches('.'))
    }
}

fn percent_cell(object: &Value, key: &str) -> String {
    object
        .get(key)
        .and_then(Value::as_u64)
        .map(percent)
        .unwrap_or_else(|| "-".to_string())
}

/// Whether a rollout (or history entry) is paused: a `paused` flag or a `paused_at` time.
fn is_paused(rollout: &Value) -> bool {
    flag(rollout, "paused") || rollout.get("paused_at").is_some_and(|at| !at.is_null())
}

/// `1.4.0 @ 5% (paused)`, or `-` without a rollout.
pub fn rollout_cell(channel: &Value) -> String {
    let Some(rollout) = channel.get("rollout").filter(|r| r.is_object()) else {
        return "-".to_string();
    };
    let bundle = match cell(rollout, "bundle").as_str() {
        "-" => cell(rollout, "bundle_name"),
        name => name.to_string(),
    };
    let mut text = format!("{bundle} @ {}", percent_cell(rollout, "percentage_bps"));
    if is_paused(rollout) {
        text.push_str(" (paused)");
    }
    text
}

/// Targeting criteria in one line: `platforms ios; os_version >=14`, or `everyone`.
fn targeting_text(targeting: Option<&Value>) -> String {
    let Some(whole) = targeting.filter(|t| t.is_object()) else {
        return "everyone".to_string();
    };
    let keys = whole.as_object().map(|o| o.keys()).into_iter().flatten();
    let parts: Vec<String> = keys
        .filter_map(|key| match cell(whole, key).as_str() {
            "-" => None,
            value => Some(format!("{key} {value}")),
        })
        .collect();
    if parts.is_empty() {
        "everyone".to_string()
    } else {
        parts.join("; ")
    }
}

/// Every field of an object as `key value`, in the server's order.
fn fields_text(object: Option<&Value>) -> String {
    match object.and_then(Value::as_object) {
        Some(fields) if !fields.is_empty() => {
            let whole = Value::Object(fields.clone());
            fields
                .keys()
                .map(|key| format!("{key} {}", cell(&whole, key)))
                .collect::<Vec<_>>()
                .join(", ")
        }
        _ => "-".to_string(),
    }
}

/// `channel show`: settings, then the rollout, targeting, auto-pause and ramp.
pub fn channel_details(channel: &Value) -> String {
    let mut lines: Vec<(String, String)> = vec![
        ("Channel".into(), cell(channel, "name")),
        ("Settings".into(), channel_summary(channel)),
        ("Targeting".into(), targeting_text(channel.get("targeting"))),
    ];
    match channel.get("rollout").filter(|r| r.is_object()) {
        Some(rollout) => {
            lines.push(("Rollout".into(), rollout_cell(channel)));
            lines.push(("Rollout started".into(), time_cell(rollout, "started_at")));
            lines.push((
                "Rollout step since".into(),
                time_cell(rollout, "step_started_at"),
            ));
            lines.push((
                "Rollout targeting".into(),
                targeting_text(rollout.get("targeting")),
            ));
        }
        None => lines.push(("Rollout".into(), "none".into())),
    }
    lines.push(("Auto-pause".into(), fields_text(channel.get("auto_pause"))));
    lines.push(("Ramp".into(), ramp_text(channel.get("ramp"))));
    let width = lines
        .iter()
        .map(|(label, _)| label.chars().count())
        .max()
        .unwrap_or(0);
    lines
        .iter()
        .map(|(label, value)| format!("{label:<width$}  {}", sanitize_cell(value)))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The ramp with its steps as percentages.
fn ramp_text(ramp: Option<&Value>) -> String {
    let Some(ramp) = ramp.filter(|r| r.is_object()) else {
        return "-".to_string();
    };
    let steps = ramp
        .get("steps_bps")
        .and_then(Value::as_array)
        .map(|steps| {
            steps
                .iter()
                .filter_map(Value::as_u64)
                .map(percent)
                .collect::<Vec<_>>()
                .join(" → ")
        })
        .unwrap_or_else(|| "-".to_string());
    format!(
        "enabled {}, steps {steps}, dwell {} min, min attempts {}, promote at end {}",
        cell(ramp, "enabled"),
        cell(ramp, "min_dwell_minutes"),
        cell(ramp, "min_attempts"),
        cell(ramp, "promote_at_end"),
    )
}

/// The list under the first of `keys` that holds one, or the value itself when it is a list.
fn list_of<'a>(value: &'a Value, keys: &[&str]) -> &'a [Value] {
    if let Some(list) = value.as_array() {
        return list;
    }
    keys.iter()
        .find_map(|key| value.get(*key).and_then(Value::as_array))
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

pub fn history_table(list: &Value) -> String {
    let entries = list_of(list, &["history", "entries"]);
    if entries.is_empty() {
        return "No history.".to_string();
    }
    let mut table = Table::new(&["TIME", "BUNDLE", "ROLLOUT", "ACTOR", "REASON"]);
    for entry in entries {
        let rollout = match cell(entry, "rollout_bundle").as_str() {
            "-" => "-".to_string(),
            bundle => {
                let mut text = format!(
                    "{bundle} @ {}",
                    percent_cell(entry, "rollout_percentage_bps")
                );
                if flag(entry, "rollout_paused") {
                    text.push_str(" (paused)");
                }
                text
            }
        };
        // What changed: `1.0.2 → 1.0.1` when the stable bundle did.
        let bundle = cell(entry, "bundle");
        let bundle = match entry.get("previous_bundle").and_then(Value::as_str) {
            Some(previous) if previous != bundle => format!("{previous} → {bundle}"),
            _ => bundle,
        };
        table.push_row(vec![
            time_cell(entry, "at"),
            bundle,
            rollout,
            cell(entry, "actor"),
            cell(entry, "reason"),
        ]);
    }
    table.render()
}

/// A rate (0..1) as a percentage with one decimal.
fn rate_cell(object: &Value, key: &str) -> String {
    object
        .get(key)
        .and_then(Value::as_f64)
        .map(|rate| format!("{:.1}%", rate * 100.0))
        .unwrap_or_else(|| "-".to_string())
}

pub fn decisions_table(list: &Value) -> String {
    let decisions = list_of(list, &["decisions"]);
    // What the loop would decide now, with today's figures (holds are only
    // recorded when their reason changes, so the rows can be old).
    let now_lines: String = list_of(list, &["current"])
        .iter()
        .map(|now| {
            format!(
                "\nNow ({}, {} @ {}): {} {}, {} attempts, {} failures, failure rate {} — {}",
                cell(now, "channel"),
                cell(now, "bundle"),
                percent_cell(now, "from_bps"),
                cell(now, "action"),
                cell(now, "reason"),
                cell(now, "attempts"),
                cell(now, "failures"),
                rate_cell(now, "failure_rate"),
                sanitize_cell(now.get("message").and_then(Value::as_str).unwrap_or("")),
            )
        })
        .collect();
    if decisions.is_empty() {
        return format!("No decisions.{now_lines}");
    }
    let mut table = Table::new(&[
        "TIME",
        "BUNDLE",
        "ACTION",
        "REASON",
        "FROM",
        "TO",
        "ATTEMPTS",
        "FAILURES",
        "RATE",
        "WILSON LOW",
        "THRESHOLD",
    ]);
    for decision in decisions {
        table.push_row(vec![
            time_cell(decision, "at"),
            cell(decision, "bundle"),
            cell(decision, "action"),
            cell(decision, "reason"),
            percent_cell(decision, "from_bps"),
            percent_cell(decision, "to_bps"),
            cell(decision, "attempts"),
            cell(decision, "failures"),
            rate_cell(decision, "failure_rate"),
            rate_cell(decision, "wilson_lower_bound"),
            percent_cell(decision, "threshold_bps"),
        ]);
    }
    let mut text = table.render();
    // The newest decision's sentence, for the why.
    if let Some(message) = decisions
        .first()
        .and_then(|d| d.get("message"))
        .and_then(Value::as_str)
        .filter(|m| !m.is_empty())
    {
        text.push_str(&format!("\nLatest: {}", sanitize_cell(message)));
    }
    text.push_str(&now_lines);
    text
}

/// `set 1.5.0` or `rollout 1.5.0 @ 5%`, from a schedule's action (nested or flat).
pub fn schedule_action(schedule: &Value) -> String {
    let action = schedule
        .get("action")
        .filter(|a| a.is_object())
        .unwrap_or(schedule);
    let bundle = cell(action, "bundle");
    let bps = action
        .get("percentage_bps")
        .or_else(|| action.get("rollout_percentage_bps"))
        .and_then(Value::as_u64);
    match bps {
        Some(bps) => format!("rollout {bundle} @ {}", percent(bps)),
        None => format!("set {bundle}"),
    }
}

pub fn schedules_table(list: &Value) -> String {
    let schedules = list_of(list, &["schedules"]);
    if schedules.is_empty() {
        return "No scheduled changes.".to_string();
    }
    let mut table = Table::new(&[
        "ID", "CHANNEL", "RUN AT", "ACTION", "STATUS", "BY", "RESULT",
    ]);
    for schedule in schedules {
        table.push_row(vec![
            cell(schedule, "id"),
            cell(schedule, "channel"),
            time_cell(schedule, "run_at"),
            schedule_action(schedule),
            cell(schedule, "status"),
            cell(schedule, "created_by"),
            cell(schedule, "result"),
        ]);
    }
    table.render()
}

/// `bundle compatibility`: one row per package and a verdict.
pub fn compatibility_report(report: &Value, channel: &str) -> String {
    let live = cell(report, "live_bundle");
    let subject = match cell(report, "bundle").as_str() {
        "-" => "This project".to_string(),
        bundle => format!("Bundle {bundle}"),
    };
    let mut lines = Vec::new();
    let packages = list_of(report, &["packages"]);
    if packages.is_empty() {
        lines.push("No native packages on either side.".to_string());
    } else {
        let mut table = Table::new(&["PACKAGE", "BUNDLE", "LIVE", "COMPATIBLE", "REASON"]);
        for package in packages {
            table.push_row(vec![
                cell(package, "name"),
                cell(package, "bundle_version"),
                cell(package, "live_version"),
                cell(package, "compatible"),
                cell(package, "reason"),
            ]);
        }
        lines.push(table.render());
    }
    let verdict = if report.get("live_known").and_then(Value::as_bool) == Some(false) {
        format!(
            "The native packages of channel {channel}'s live bundle ({live}) are unknown: nothing to compare, {subject} is accepted."
        )
    } else if flag(report, "compatible") {
        format!("{subject} is compatible with channel {channel}'s live bundle {live}.")
    } else {
        format!(
            "{subject} is NOT compatible with channel {channel}'s live bundle {live}: setting it needs --accept-incompatible."
        )
    };
    lines.push(verdict);
    lines.join("\n")
}

pub fn devices_table(list: &Value) -> String {
    let devices = items(list, "devices");
    let total = list.get("total").and_then(Value::as_i64);
    if devices.is_empty() {
        return match total {
            Some(total) if total > 0 => format!("No devices on this page ({total} in total)."),
            _ => "No devices.".to_string(),
        };
    }
    let mut table = Table::new(&[
        "DEVICE ID",
        "PLATFORM",
        "BUNDLE",
        "NATIVE",
        "CUSTOM ID",
        "PLUGIN",
        "PROD",
        "EMULATOR",
        "LAST SEEN",
    ]);
    for device in devices {
        table.push_row(vec![
            cell(device, "device_id"),
            cell(device, "platform"),
            cell(device, "version_name"),
            cell(device, "version_build"),
            cell(device, "custom_id"),
            cell(device, "plugin_version"),
            cell(device, "is_prod"),
            cell(device, "is_emulator"),
            time_cell(device, "last_seen"),
        ]);
    }
    let mut text = table.render();
    if let Some(total) = total {
        text.push_str(&format!("\n{} of {total} devices", devices.len()));
    }
    text
}

/// Field order of `device show`; other fields follow alphabetically.
const DEVICE_FIELDS: [(&str, &str); 18] = [
    ("device_id", "Device id"),
    ("app_id", "App id"),
    ("platform", "Platform"),
    ("version_name", "Bundle"),
    ("version_build", "Native version"),
    ("version_code", "Native build code"),
    ("version_os", "OS version"),
    ("plugin_version", "Plugin version"),
    ("custom_id", "Custom id"),
    ("is_prod", "Production build"),
    ("is_emulator", "Emulator"),
    ("default_channel", "Default channel"),
    ("install_source", "Install source"),
    ("key_id", "Encryption key id"),
    ("last_offered_version", "Last offered bundle"),
    ("last_update_outcome", "Last update outcome"),
    ("first_seen", "First seen"),
    ("last_seen", "Last seen"),
];

pub fn device_details(device: &Value) -> String {
    let mut lines: Vec<(String, String)> = Vec::new();
    // Only fields the server sent: an absent field is not the same as an empty one.
    for (key, label) in DEVICE_FIELDS
        .iter()
        .filter(|(key, _)| device.get(*key).is_some())
    {
        let value = if key.ends_with("_seen") {
            time_cell(device, key)
        } else {
            cell(device, key)
        };
        lines.push((label.to_string(), value));
    }
    lines.push((
        "Channel override".to_string(),
        override_text(device.get("channel_override")),
    ));
    if let Some(object) = device.as_object() {
        let mut extra: Vec<&String> = object
            .keys()
            .filter(|key| {
                !DEVICE_FIELDS.iter().any(|(known, _)| known == key)
                    && !matches!(key.as_str(), "channel_override" | "recent_events")
            })
            .collect();
        extra.sort();
        for key in extra {
            lines.push((key.clone(), cell(device, key)));
        }
    }
    let width = lines
        .iter()
        .map(|(label, _)| label.chars().count())
        .max()
        .unwrap_or(0);
    let mut text: Vec<String> = lines
        .iter()
        .map(|(label, value)| format!("{label:<width$}  {}", sanitize_cell(value)))
        .collect();

    let events = device
        .get("recent_events")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    text.push(String::new());
    if events.is_empty() {
        text.push("No recent events.".to_string());
    } else {
        text.push("Recent events:".to_string());
        let mut table = Table::new(&["TIME", "ACTION", "BUNDLE", "FROM"]);
        for event in events {
            table.push_row(vec![
                time_cell(event, "timestamp"),
                cell(event, "action"),
                cell(event, "version_name"),
                cell(event, "old_version_name"),
            ]);
        }
        text.push(table.render());
    }
    text.join("\n")
}

fn override_text(value: Option<&Value>) -> String {
    match value {
        Some(over @ Value::Object(_)) => format!(
            "{} (set by {})",
            cell(over, "channel"),
            cell(over, "source")
        ),
        Some(Value::String(channel)) => channel.clone(),
        _ => "none".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn apps_table_lists_each_app() {
        let list = json!({"apps": [
            {"app_id": "com.example.app", "name": "Example", "expose_metadata": true, "created_at": "2024-05-01T12:30:05Z"},
            {"app_id": "io.other", "name": "Other", "expose_metadata": false, "created_at": "2024-06-02T08:00:00Z"}
        ]});
        assert_eq!(
            apps_table(&list),
            "APP ID           NAME     EXPOSE METADATA  CREATED\n\
             com.example.app  Example  yes              2024-05-01 12:30\n\
             io.other         Other    no               2024-06-02 08:00"
        );
        assert_eq!(apps_table(&json!({"apps": []})), "No apps.");
    }

    #[test]
    fn channels_table_summarises_settings() {
        let list = json!({"channels": [{
            "name": "production", "bundle": "1.4.3", "public": true, "ios": true, "android": false,
            "electron": true, "allow_device_self_set": false, "allow_dev": false, "allow_prod": true,
            "allow_emulator": false, "allow_device": true, "disable_auto_update": "minor",
            "disable_auto_update_under_native": false
        }]});
        let lines: Vec<String> = channels_table(&list).lines().map(str::to_string).collect();
        assert_eq!(lines.len(), 2);
        let cells: Vec<&str> = lines[1]
            .split("  ")
            .filter(|c| !c.trim().is_empty())
            .map(str::trim)
            .collect();
        assert_eq!(
            cells,
            [
                "production",
                "1.4.3",
                "-",
                "yes",
                "ios,electron",
                "no",
                "minor",
                "yes",
                "prod,device"
            ]
        );
    }

    #[test]
    fn channel_summary_reads_like_a_sentence() {
        let channel = json!({"name": "beta", "bundle": "builtin", "public": false, "ios": false,
            "android": true, "electron": false, "allow_device_self_set": true,
            "disable_auto_update": "major", "disable_auto_update_under_native": true,
            "allow_dev": true, "allow_prod": true, "allow_emulator": true, "allow_device": true});
        assert_eq!(
            channel_summary(&channel),
            "bundle builtin, normal, platforms android, self-assign yes, disable auto update major, \
             downgrade no, serves dev,prod,emulator,device"
        );
    }

    #[test]
    fn bundles_table_shows_deleted_column_only_on_request() {
        let list = json!({"bundles": [
            {"version": "1.0.1", "channels": ["production"], "rollout_channels": ["beta"], "encrypted": false,
             "min_update_version": null, "created_at": "2024-05-02T00:00:00Z", "deleted": false,
             "url": "https://cdn.example.com/1.0.1.zip"},
            {"version": "1.0.0", "channels": [], "encrypted": true, "min_update_version": "1.0.0",
             "created_at": "2024-05-01T00:00:00Z", "deleted": true, "deleted_at": "2024-05-03T10:00:00Z",
             "url": null, "external_url": "https://cdn.example.com/1.0.0.zip"}
        ]});
        let plain = bundles_table(&list, false);
        assert!(!plain.contains("DELETED"));
        assert_eq!(
            plain.lines().nth(1).unwrap(),
            "1.0.1    production,beta (rollout)  no         -           2024-05-02 00:00  https://cdn.example.com/1.0.1.zip"
        );
        let with_deleted = bundles_table(&list, true);
        let last = with_deleted.lines().nth(2).unwrap();
        assert!(last.contains("2024-05-03 10:00"), "{last}");
        assert!(
            last.ends_with("https://cdn.example.com/1.0.0.zip"),
            "{last}"
        );
    }

    #[test]
    fn devices_table_reports_paging() {
        let list = json!({"devices": [
            {"device_id": "abc", "platform": "ios", "version_name": "1.0.0", "version_build": "2.0",
             "custom_id": null, "plugin_version": "7.1.0", "is_prod": true, "is_emulator": false,
             "last_seen": 1_714_566_605_042_i64}
        ], "total": 3});
        let text = devices_table(&list);
        assert!(text.contains("abc        ios       1.0.0   2.0     -          7.1.0   yes   no        2024-05-01 12:30"), "{text}");
        assert!(text.ends_with("\n1 of 3 devices"), "{text}");
        assert_eq!(
            devices_table(&json!({"devices": [], "total": 0})),
            "No devices."
        );
    }

    #[test]
    fn device_details_show_override_and_events() {
        let device = json!({"device_id": "abc", "app_id": "com.x.y", "platform": "android",
            "channel_override": {"device_id": "abc", "channel": "beta", "source": "admin"},
            "recent_events": [{"action": "set", "version_name": "1.0.1", "old_version_name": "1.0.0",
                               "timestamp": "2024-05-01T12:30:05Z"}],
            "zz_new_field": "x"});
        let text = device_details(&device);
        assert!(
            text.contains("Channel override  beta (set by admin)"),
            "{text}"
        );
        assert!(text.contains("zz_new_field      x"), "{text}");
        assert!(
            !text.contains("Custom id"),
            "absent fields are not shown: {text}"
        );
        assert!(
            text.contains("2024-05-01 12:30  set     1.0.1   1.0.0"),
            "{text}"
        );
        let bare = device_details(&json!({"device_id": "abc", "channel_override": null}));
        assert!(bare.contains("Channel override  none"), "{bare}");
        assert!(bare.ends_with("No recent events."), "{bare}");
    }

    #[test]
    fn percentages_and_rollout_cells() {
        assert_eq!(percent(1250), "12.5%");
        assert_eq!(percent(1), "0.01%");
        assert_eq!(percent(10_000), "100%");
        let channel = json!({"bundle": "1.0.0", "rollout": {"bundle": "1.1.0", "percentage_bps": 500, "paused": true}});
        assert_eq!(rollout_cell(&channel), "1.1.0 @ 5% (paused)");
        assert_eq!(rollout_cell(&json!({"rollout": null})), "-");
        let running = json!({"rollout": {"bundle": "1.1.0", "percentage_bps": 2500, "paused": false, "paused_at": null}});
        assert_eq!(rollout_cell(&running), "1.1.0 @ 25%");
    }

    #[test]
    fn decisions_table_shows_the_numbers() {
        let list = json!({"decisions": [{"at": "2024-05-01T12:30:05Z", "bundle": "1.1.0", "action": "paused",
            "reason": "auto_pause_triggered", "from_bps": 500, "to_bps": 500, "attempts": 120, "failures": 36,
            "failure_rate": 0.3, "wilson_lower_bound": 0.2266, "threshold_bps": 500,
            "message": "paused: 36 of 120 failed"}]});
        let text = decisions_table(&list);
        let row = text.lines().nth(1).unwrap();
        let cells: Vec<&str> = row
            .split("  ")
            .filter(|c| !c.trim().is_empty())
            .map(str::trim)
            .collect();
        assert_eq!(
            cells,
            [
                "2024-05-01 12:30",
                "1.1.0",
                "paused",
                "auto_pause_triggered",
                "5%",
                "5%",
                "120",
                "36",
                "30.0%",
                "22.7%",
                "5%"
            ]
        );
        assert!(text.ends_with("Latest: paused: 36 of 120 failed"), "{text}");
        assert_eq!(decisions_table(&json!({"decisions": []})), "No decisions.");
        let with_now = json!({"decisions": [], "current": [{"channel": "production", "bundle": "1.1.0",
            "from_bps": 100, "action": "held", "reason": "not_enough_attempts", "attempts": 19,
            "failures": 9, "failure_rate": 0.4737, "message": "Watching: 19 of 100 attempts needed"}]});
        assert_eq!(
            decisions_table(&with_now),
            "No decisions.\nNow (production, 1.1.0 @ 1%): held not_enough_attempts, 19 attempts, 9 failures, failure rate 47.4% — Watching: 19 of 100 attempts needed"
        );
    }

    #[test]
    fn compatibility_report_gives_a_verdict() {
        let report = json!({"channel": "production", "bundle": "1.1.0", "live_bundle": "1.0.0",
            "compatible": false, "live_known": true, "bundle_known": true, "packages": [
                {"name": "@capacitor/camera", "bundle_version": "7.0.0", "live_version": "6.0.0",
                 "compatible": false, "reason": "version_mismatch"}]});
        let text = compatibility_report(&report, "production");
        assert!(
            text.contains("@capacitor/camera  7.0.0   6.0.0  no          version_mismatch"),
            "{text}"
        );
        assert!(text.ends_with("Bundle 1.1.0 is NOT compatible with channel production's live bundle 1.0.0: setting it needs --accept-incompatible."), "{text}");
        let unknown = json!({"bundle": null, "live_bundle": "builtin", "compatible": true, "live_known": false, "packages": []});
        assert!(compatibility_report(&unknown, "beta").contains("are unknown"));
    }
}
