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
            cell(bundle, "channels"),
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
    format!(
        "bundle {}, {visibility}, platforms {}, self-assign {}, disable auto update {}, downgrade {}, serves {}",
        cell(channel, "bundle"),
        enabled(channel, &PLATFORMS),
        cell(channel, "allow_device_self_set"),
        cell(channel, "disable_auto_update"),
        downgrade_cell(channel),
        enabled(channel, &AUDIENCES),
    )
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
            {"version": "1.0.1", "channels": ["production", "beta"], "encrypted": false,
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
            "1.0.1    production,beta  no         -           2024-05-02 00:00  https://cdn.example.com/1.0.1.zip"
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
}
