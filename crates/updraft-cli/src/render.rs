//! Human-readable views of the API's answers: tables for lists, short
//! summaries for single objects, from the typed answers of `updraft_api`.
//! Empty or absent values render as `-`. `device show` adds the fields this
//! CLI does not know, as the server sent them.

use crate::table::{sanitize_cell, Table};
use crate::time::short_time;
use serde_json::Value;
use updraft_api::{
    AppList, AutoPauseView, BundleList, BundleView, ChannelList, ChannelView, CompatibilityView,
    DecisionList, DecisionView, DeviceDetail, DeviceList, HistoryEntryView, OverrideView, RampView,
    ScheduleList, ScheduleView, TargetingView,
};

/// A JSON value as a cell: strings as they are, booleans as yes/no, lists
/// joined by commas, null as `-`.
pub fn value_cell(value: &Value) -> String {
    match value {
        Value::Null => "-".to_string(),
        Value::String(text) => text_cell(text),
        Value::Bool(flag) => yes_no(*flag),
        Value::Array(items) if items.is_empty() => "-".to_string(),
        Value::Array(items) => items
            .iter()
            .map(|item| {
                item.as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| item.to_string())
            })
            .collect::<Vec<_>>()
            .join(","),
        other => other.to_string(),
    }
}

/// Text as a cell: `-` when empty.
pub fn text_cell(text: &str) -> String {
    if text.is_empty() {
        "-".to_string()
    } else {
        text.to_string()
    }
}

/// Optional text as a cell: `-` when absent or empty.
pub fn opt_cell(text: Option<&str>) -> String {
    text.map_or_else(|| "-".to_string(), text_cell)
}

/// A flag as a cell.
pub fn yes_no(flag: bool) -> String {
    if flag { "yes" } else { "no" }.to_string()
}

/// A list as a cell: joined by commas, `-` when empty or absent.
fn list_cell(items: Option<&[String]>) -> String {
    match items {
        Some(items) if !items.is_empty() => items.join(","),
        _ => "-".to_string(),
    }
}

/// An RFC 3339 time shortened; `-` when empty.
pub fn time_text(text: &str) -> String {
    if text.is_empty() {
        "-".to_string()
    } else {
        short_time(text)
    }
}

/// An optional RFC 3339 time shortened; `-` when absent.
pub fn opt_time(text: Option<&str>) -> String {
    text.map_or_else(|| "-".to_string(), time_text)
}

/// The names of the flags that are set, joined, or `none`.
fn enabled(flags: &[(bool, &str)]) -> String {
    let names: Vec<&str> = flags
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, name)| *name)
        .collect();
    if names.is_empty() {
        "none".to_string()
    } else {
        names.join(",")
    }
}

pub fn apps_table(list: &AppList) -> String {
    if list.apps.is_empty() {
        return "No apps.".to_string();
    }
    let mut table = Table::new(&["APP ID", "NAME", "EXPOSE METADATA", "CREATED"]);
    for app in &list.apps {
        table.push_row(vec![
            text_cell(&app.app_id),
            text_cell(&app.name),
            yes_no(app.expose_metadata),
            time_text(&app.created_at),
        ]);
    }
    table.render()
}

/// The channels serving a bundle, then those rolling it out: `production,beta (rollout)`.
fn bundle_channels_cell(bundle: &BundleView) -> String {
    let mut parts = bundle.channels.clone();
    parts.extend(
        bundle
            .rollout_channels
            .iter()
            .map(|name| format!("{name} (rollout)")),
    );
    if parts.is_empty() {
        "-".to_string()
    } else {
        parts.join(",")
    }
}

pub fn bundles_table(list: &BundleList, include_deleted: bool) -> String {
    if list.bundles.is_empty() {
        return "No bundles.".to_string();
    }
    let mut headers = vec!["VERSION", "CHANNELS", "ENCRYPTED", "MIN UPDATE", "CREATED"];
    if include_deleted {
        headers.push("DELETED");
    }
    headers.push("URL");
    // On a terminal: the version, where it is served, when, and from where.
    let mut table = Table::new(&headers).wide_only(&["ENCRYPTED", "MIN UPDATE", "DELETED"]);
    for bundle in &list.bundles {
        let mut row = vec![
            text_cell(&bundle.version),
            bundle_channels_cell(bundle),
            yes_no(bundle.encrypted),
            opt_cell(bundle.min_update_version.as_deref()),
            time_text(&bundle.created_at),
        ];
        if include_deleted {
            row.push(if bundle.deleted {
                opt_time(bundle.deleted_at.as_deref())
            } else {
                "-".to_string()
            });
        }
        let url = match opt_cell(bundle.url.as_deref()).as_str() {
            "-" => opt_cell(bundle.external_url.as_deref()),
            url => url.to_string(),
        };
        row.push(url);
        table.push_row(row);
    }
    table.render()
}

fn platforms(channel: &ChannelView) -> String {
    enabled(&[
        (channel.ios, "ios"),
        (channel.android, "android"),
        (channel.electron, "electron"),
    ])
}

fn audiences(channel: &ChannelView) -> String {
    enabled(&[
        (channel.allow_dev, "dev"),
        (channel.allow_prod, "prod"),
        (channel.allow_emulator, "emulator"),
        (channel.allow_device, "device"),
    ])
}

/// `disable_auto_update_under_native` blocks downgrades; show whether they are allowed.
fn downgrade_cell(channel: &ChannelView) -> String {
    yes_no(!channel.disable_auto_update_under_native)
}

pub fn channels_table(list: &ChannelList) -> String {
    if list.channels.is_empty() {
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
    ])
    // On a terminal: `channel show` has them all.
    .wide_only(&["SELF-ASSIGN", "DOWNGRADE", "SERVES"]);
    for channel in &list.channels {
        table.push_row(vec![
            text_cell(&channel.name),
            text_cell(&channel.bundle),
            rollout_cell(channel),
            yes_no(channel.public),
            platforms(channel),
            yes_no(channel.allow_device_self_set),
            text_cell(&channel.disable_auto_update),
            downgrade_cell(channel),
            audiences(channel),
        ]);
    }
    table.render()
}

/// One line describing a channel's settings, for confirmations.
pub fn channel_summary(channel: &ChannelView) -> String {
    let visibility = if channel.public { "default" } else { "normal" };
    let rollout = match rollout_cell(channel).as_str() {
        "-" => String::new(),
        text => format!(", rollout {text}"),
    };
    format!(
        "bundle {}{rollout}, {visibility}, platforms {}, self-assign {}, disable auto update {}, downgrade {}, serves {}",
        text_cell(&channel.bundle),
        platforms(channel),
        yes_no(channel.allow_device_self_set),
        text_cell(&channel.disable_auto_update),
        downgrade_cell(channel),
        audiences(channel),
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

fn opt_percent(bps: Option<u32>) -> String {
    bps.map(|bps| percent(u64::from(bps)))
        .unwrap_or_else(|| "-".to_string())
}

/// `1.4.0 @ 5% (paused)`, or `-` without a rollout.
pub fn rollout_cell(channel: &ChannelView) -> String {
    let Some(rollout) = &channel.rollout else {
        return "-".to_string();
    };
    let mut text = format!(
        "{} @ {}",
        text_cell(&rollout.bundle),
        percent(u64::from(rollout.percentage_bps))
    );
    if rollout.paused || rollout.paused_at.is_some() {
        text.push_str(" (paused)");
    }
    text
}

/// Targeting criteria in one line, as people say them:
/// `OS version >=14; platform iOS`, or `every device`.
fn targeting_text(targeting: &TargetingView) -> String {
    let lists = |items: &Option<Vec<String>>| list_cell(items.as_deref()).replace(',', ", ");
    let texts = |text: &Option<String>| opt_cell(text.as_deref());
    let platforms = targeting.platforms.as_ref().map(|names| {
        names
            .iter()
            .map(|name| platform_name(name))
            .collect::<Vec<_>>()
    });
    let criteria = [
        ("platform", lists(&platforms)),
        ("OS version", texts(&targeting.os_version)),
        ("native version", texts(&targeting.native_version)),
        ("plugin version", texts(&targeting.plugin_version)),
        ("install source", lists(&targeting.install_sources)),
        ("custom id", lists(&targeting.custom_ids)),
        (
            "custom id starting with",
            texts(&targeting.custom_id_prefix),
        ),
        ("device", lists(&targeting.device_ids)),
    ];
    let parts: Vec<String> = criteria
        .iter()
        .filter(|(_, value)| value != "-")
        .map(|(key, value)| format!("{key} {value}"))
        .collect();
    if parts.is_empty() {
        "every device".to_string()
    } else {
        parts.join("; ")
    }
}

/// `ios` → `iOS`, as the platforms are written.
fn platform_name(name: &str) -> String {
    match name {
        "ios" => "iOS".to_string(),
        "android" => "Android".to_string(),
        "electron" => "Electron".to_string(),
        other => other.to_string(),
    }
}

/// Minutes as people read them: `45 min`, `2 h`, `1 h 30 min`, `3 days`.
pub fn duration_text(minutes: u64) -> String {
    const HOUR: u64 = 60;
    const DAY: u64 = 24 * HOUR;
    let plural = |n: u64, unit: &str| format!("{n} {unit}{}", if n == 1 { "" } else { "s" });
    match minutes {
        m if m < HOUR => format!("{m} min"),
        m if m < DAY && m % HOUR == 0 => format!("{} h", m / HOUR),
        m if m < DAY => format!("{} h {} min", m / HOUR, m % HOUR),
        m if m % DAY == 0 => plural(m / DAY, "day"),
        m => format!("{} {}", plural(m / DAY, "day"), duration_text(m % DAY)),
    }
}

/// What `disable_auto_update` lets through, relative to the device's native version.
fn auto_update_text(policy: &str) -> String {
    match policy {
        "major" => "up to minor (never a new major version over the native one)".to_string(),
        "minor" => "up to patch (same major.minor as the native version)".to_string(),
        "patch" => "same version only (same major.minor.patch as the native version)".to_string(),
        "metadata" => {
            "when the bundle's minimum update version is at most the native version".to_string()
        }
        "none" => "any version".to_string(),
        other => text_cell(other),
    }
}

/// The auto-pause policy as a sentence, or `off`.
fn auto_pause_text(p: &AutoPauseView) -> String {
    if !p.enabled {
        return "off".to_string();
    }
    let action = match p.action.as_str() {
        "pause" => "pause the rollout",
        "rollback" => "roll the rollout back",
        "notify" => "notify (webhooks) only",
        other => other,
    };
    let confidence = format!("{:.1}", p.confidence * 100.0);
    format!(
        "{action} when more than {} of updates fail over {} ({}% confidence, at least {} attempts and {} failures); then wait {}",
        percent(u64::from(p.failure_rate_bps)),
        duration_text(u64::from(p.window_minutes)),
        confidence.trim_end_matches(".0"),
        p.min_attempts,
        p.min_failures,
        duration_text(u64::from(p.cooldown_minutes)),
    )
}

/// `channel show`: every setting as people read them, then the rollout,
/// targeting, auto-pause and ramp.
pub fn channel_details(channel: &ChannelView) -> String {
    let platforms: Vec<&str> = [
        (channel.ios, "iOS"),
        (channel.android, "Android"),
        (channel.electron, "Electron"),
    ]
    .iter()
    .filter(|(on, _)| *on)
    .map(|(_, name)| *name)
    .collect();
    let builds: Vec<&str> = [
        (channel.allow_prod, "production builds"),
        (channel.allow_dev, "development builds"),
        (channel.allow_device, "physical devices"),
        (channel.allow_emulator, "emulators"),
    ]
    .iter()
    .filter(|(on, _)| *on)
    .map(|(_, name)| *name)
    .collect();
    let none_if_empty = |items: Vec<&str>| {
        if items.is_empty() {
            "none".to_string()
        } else {
            items.join(", ")
        }
    };
    let mut lines: Vec<(String, String)> = vec![
        ("Channel".into(), text_cell(&channel.name)),
        ("Bundle".into(), text_cell(&channel.bundle)),
        (
            "Default".into(),
            if channel.public {
                "yes: devices without a channel of their own get this one".into()
            } else {
                "no: only devices assigned to it".into()
            },
        ),
        ("Platforms".into(), none_if_empty(platforms)),
        ("Serves".into(), none_if_empty(builds)),
        (
            "Self-assign".into(),
            if channel.allow_device_self_set {
                "allowed: devices may pick this channel themselves".into()
            } else {
                "not allowed".into()
            },
        ),
        (
            "Auto-update".into(),
            auto_update_text(&channel.disable_auto_update),
        ),
        (
            "Downgrade".into(),
            if channel.disable_auto_update_under_native {
                "never below the native version".into()
            } else {
                "allowed below the native version".into()
            },
        ),
        ("Targeting".into(), targeting_text(&channel.targeting)),
    ];
    match &channel.rollout {
        Some(rollout) => {
            let mut text = format!(
                "{} at {}",
                text_cell(&rollout.bundle),
                percent(u64::from(rollout.percentage_bps))
            );
            if rollout.paused || rollout.paused_at.is_some() {
                text.push_str(" (paused)");
            }
            lines.push(("Rollout".into(), text));
            lines.push(("Rollout started".into(), time_text(&rollout.started_at)));
            lines.push((
                "Rollout step since".into(),
                time_text(&rollout.step_started_at),
            ));
            lines.push((
                "Rollout targeting".into(),
                targeting_text(&rollout.targeting),
            ));
        }
        None => lines.push(("Rollout".into(), "none".into())),
    }
    lines.push(("Auto-pause".into(), auto_pause_text(&channel.auto_pause)));
    lines.push(("Ramp".into(), ramp_text(&channel.ramp)));
    lines.push(("Updated".into(), time_text(&channel.updated_at)));
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

/// The ramp as a sentence, or `off`.
fn ramp_text(ramp: &RampView) -> String {
    if !ramp.enabled {
        return "off".to_string();
    }
    let steps = ramp
        .steps_bps
        .iter()
        .map(|bps| percent(u64::from(*bps)))
        .collect::<Vec<_>>()
        .join(" → ");
    let end = if ramp.promote_at_end {
        ", then promote"
    } else {
        ""
    };
    format!(
        "{steps}, each step at least {} and {} attempts{end}",
        duration_text(u64::from(ramp.min_dwell_minutes)),
        ramp.min_attempts,
    )
}

pub fn history_table(entries: &[HistoryEntryView]) -> String {
    if entries.is_empty() {
        return "No history.".to_string();
    }
    let mut table = Table::new(&["TIME", "BUNDLE", "ROLLOUT", "ACTOR", "REASON"]);
    for entry in entries {
        let rollout = match opt_cell(entry.rollout_bundle.as_deref()).as_str() {
            "-" => "-".to_string(),
            bundle => {
                let mut text = format!("{bundle} @ {}", opt_percent(entry.rollout_percentage_bps));
                if entry.rollout_paused {
                    text.push_str(" (paused)");
                }
                text
            }
        };
        // What changed: `1.0.2 → 1.0.1` when the stable bundle did.
        let bundle = text_cell(&entry.bundle);
        let bundle = match &entry.previous_bundle {
            Some(previous) if *previous != bundle => format!("{previous} → {bundle}"),
            _ => bundle,
        };
        table.push_row(vec![
            time_text(&entry.at),
            bundle,
            rollout,
            text_cell(&entry.actor),
            text_cell(&entry.reason),
        ]);
    }
    table.render()
}

/// A rate (0..1) as a percentage with one decimal.
fn rate_cell(rate: Option<f64>) -> String {
    rate.map(|rate| format!("{:.1}%", rate * 100.0))
        .unwrap_or_else(|| "-".to_string())
}

pub fn decisions_table(list: &DecisionList) -> String {
    let decisions: &[DecisionView] = &list.decisions;
    // What the loop would decide now, with today's figures (holds are only
    // recorded when their reason changes, so the rows can be old).
    let now_lines: String = list
        .current
        .iter()
        .map(|now| {
            format!(
                "\nNow ({}, {} @ {}): {} {}, {} attempts, {} failures, failure rate {} — {}",
                text_cell(&now.channel),
                text_cell(&now.bundle),
                percent(u64::from(now.from_bps)),
                text_cell(&now.action),
                text_cell(&now.reason),
                now.attempts,
                now.failures,
                rate_cell(now.failure_rate),
                sanitize_cell(&now.message),
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
            time_text(&decision.at),
            text_cell(&decision.bundle),
            text_cell(&decision.action),
            text_cell(&decision.reason),
            percent(u64::from(decision.from_bps)),
            percent(u64::from(decision.to_bps)),
            decision.attempts.to_string(),
            decision.failures.to_string(),
            rate_cell(decision.failure_rate),
            rate_cell(decision.wilson_lower_bound),
            percent(u64::from(decision.threshold_bps)),
        ]);
    }
    let mut text = table.render();
    // The newest decision's sentence, for the why.
    if let Some(message) = decisions
        .first()
        .map(|d| d.message.as_str())
        .filter(|m| !m.is_empty())
    {
        text.push_str(&format!("\nLatest: {}", sanitize_cell(message)));
    }
    text.push_str(&now_lines);
    text
}

/// `set 1.5.0` or `rollout 1.5.0 @ 5%`.
pub fn schedule_action(schedule: &ScheduleView) -> String {
    let bundle = text_cell(&schedule.bundle);
    match schedule.rollout_percentage_bps {
        Some(bps) => format!("rollout {bundle} @ {}", percent(u64::from(bps))),
        None => format!("set {bundle}"),
    }
}

pub fn schedules_table(list: &ScheduleList) -> String {
    if list.schedules.is_empty() {
        return "No scheduled changes.".to_string();
    }
    let mut table = Table::new(&[
        "ID", "CHANNEL", "RUN AT", "ACTION", "STATUS", "BY", "RESULT",
    ]);
    for schedule in &list.schedules {
        table.push_row(vec![
            schedule.id.to_string(),
            text_cell(&schedule.channel),
            time_text(&schedule.run_at),
            schedule_action(schedule),
            text_cell(&schedule.status),
            text_cell(&schedule.created_by),
            opt_cell(schedule.result.as_deref()),
        ]);
    }
    table.render()
}

/// `bundle compatibility`: one row per package and a verdict.
pub fn compatibility_report(report: &CompatibilityView, channel: &str) -> String {
    let live = text_cell(&report.live_bundle);
    let subject = match opt_cell(report.bundle.as_deref()).as_str() {
        "-" => "This project".to_string(),
        bundle => format!("Bundle {bundle}"),
    };
    let mut lines = Vec::new();
    if report.packages.is_empty() {
        lines.push("No native packages on either side.".to_string());
    } else {
        let mut table = Table::new(&["PACKAGE", "BUNDLE", "LIVE", "COMPATIBLE", "REASON"]);
        for package in &report.packages {
            table.push_row(vec![
                text_cell(&package.name),
                opt_cell(package.bundle_version.as_deref()),
                opt_cell(package.live_version.as_deref()),
                yes_no(package.compatible),
                opt_cell(package.reason.as_deref()),
            ]);
        }
        lines.push(table.render());
    }
    let verdict = if !report.live_known {
        format!(
            "The native packages of channel {channel}'s live bundle ({live}) are unknown: nothing to compare, {subject} is accepted."
        )
    } else if report.compatible {
        format!("{subject} is compatible with channel {channel}'s live bundle {live}.")
    } else {
        format!(
            "{subject} is NOT compatible with channel {channel}'s live bundle {live}: setting it needs --accept-incompatible."
        )
    };
    lines.push(verdict);
    lines.join("\n")
}

pub fn devices_table(list: &DeviceList) -> String {
    let devices = &list.devices;
    let total = list.total;
    if devices.is_empty() {
        return if total > 0 {
            format!("No devices on this page ({total} in total).")
        } else {
            "No devices.".to_string()
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
    ])
    // On a terminal: `device show` has them all.
    .wide_only(&["PLUGIN", "PROD", "EMULATOR"]);
    for device in devices {
        table.push_row(vec![
            text_cell(&device.device_id),
            text_cell(&device.platform),
            opt_cell(device.version_name.as_deref()),
            opt_cell(device.version_build.as_deref()),
            opt_cell(device.custom_id.as_deref()),
            opt_cell(device.plugin_version.as_deref()),
            yes_no(device.is_prod),
            yes_no(device.is_emulator),
            time_text(&device.last_seen),
        ]);
    }
    let mut text = table.render();
    text.push_str(&format!("\n{} of {total} devices", devices.len()));
    text
}

/// `device show`: the device, its override and recent events as typed, then
/// the fields of `json` (the answer as the server sent it) that this CLI does
/// not know, alphabetically: a newer server's additions are shown, not lost.
pub fn device_details(detail: &DeviceDetail, json: &Value) -> String {
    let device = &detail.device;
    let opt = |text: &Option<String>| opt_cell(text.as_deref());
    let mut lines: Vec<(String, String)> = [
        ("Device id", text_cell(&device.device_id)),
        ("Platform", text_cell(&device.platform)),
        ("Bundle", opt(&device.version_name)),
        ("Native version", opt(&device.version_build)),
        ("Native build code", opt(&device.version_code)),
        ("OS version", opt(&device.version_os)),
        ("Plugin version", opt(&device.plugin_version)),
        ("Custom id", opt(&device.custom_id)),
        ("Production build", yes_no(device.is_prod)),
        ("Emulator", yes_no(device.is_emulator)),
        ("Default channel", opt(&device.default_channel)),
        ("Channel", opt(&device.channel)),
        ("Install source", opt(&device.install_source)),
        ("Encryption key id", opt(&device.key_id)),
        ("Last offered bundle", opt(&device.last_offered_version)),
        ("Last update outcome", opt(&device.last_update_outcome)),
        ("First seen", time_text(&device.first_seen)),
        ("Last seen", time_text(&device.last_seen)),
        (
            "Channel override",
            override_text(detail.channel_override.as_ref()),
        ),
    ]
    .into_iter()
    .map(|(label, value)| (label.to_string(), value))
    .collect();
    lines.extend(unknown_fields(detail, json));
    let width = lines
        .iter()
        .map(|(label, _)| label.chars().count())
        .max()
        .unwrap_or(0);
    let mut text: Vec<String> = lines
        .iter()
        .map(|(label, value)| format!("{label:<width$}  {}", sanitize_cell(value)))
        .collect();

    text.push(String::new());
    if detail.recent_events.is_empty() {
        text.push("No recent events.".to_string());
    } else {
        text.push("Recent events:".to_string());
        let mut table = Table::new(&["TIME", "ACTION", "BUNDLE", "FROM"]);
        for event in &detail.recent_events {
            table.push_row(vec![
                time_text(&event.timestamp),
                text_cell(&event.action),
                text_cell(&event.version_name),
                opt_cell(event.old_version_name.as_deref()),
            ]);
        }
        text.push(table.render());
    }
    text.join("\n")
}

/// The top-level fields of `json` that `typed` does not have, sorted, as cells.
fn unknown_fields(typed: &impl serde::Serialize, json: &Value) -> Vec<(String, String)> {
    let (Ok(Value::Object(known)), Value::Object(sent)) = (serde_json::to_value(typed), json)
    else {
        return Vec::new();
    };
    let mut extra: Vec<(String, String)> = sent
        .iter()
        .filter(|(key, _)| !known.contains_key(*key))
        .map(|(key, value)| (key.clone(), value_cell(value)))
        .collect();
    extra.sort();
    extra
}

fn override_text(channel_override: Option<&OverrideView>) -> String {
    match channel_override {
        Some(over) => format!(
            "{} (set by {})",
            text_cell(&over.channel),
            text_cell(&over.source)
        ),
        None => "none".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::de::DeserializeOwned;
    use serde_json::json;

    const AT: &str = "2024-05-01T00:00:00.000Z";

    /// `base` with the fields of `given` put over it (objects field by field).
    fn merged(base: Value, given: Value) -> Value {
        match (base, given) {
            (Value::Object(mut base), Value::Object(given)) => {
                for (key, value) in given {
                    let old = base.remove(&key).unwrap_or(Value::Null);
                    base.insert(key, merged(old, value));
                }
                Value::Object(base)
            }
            (_, given) => given,
        }
    }

    /// An answer as the CLI reads it: the fields a test gives over a
    /// complete `base`, read as `T` (what the server sends has them all).
    fn typed<T: DeserializeOwned>(base: Value, given: Value) -> T {
        serde_json::from_value(merged(base, given)).unwrap()
    }

    fn rollout_base() -> Value {
        json!({"bundle": "1.1.0", "percentage_bps": 0, "paused": false, "paused_at": null,
            "rollout_id": "r1", "started_at": AT, "step_started_at": AT, "targeting": {},
            "auto_pause_triggered_at": null})
    }

    fn channel_json(given: Value) -> Value {
        let base = json!({"id": 1, "name": "c", "bundle": "builtin", "public": false,
            "ios": true, "android": true, "electron": true, "allow_device_self_set": false,
            "allow_emulator": true, "allow_device": true, "allow_dev": true, "allow_prod": true,
            "disable_auto_update": "none", "disable_auto_update_under_native": false,
            "targeting": {}, "rollout": null,
            "auto_pause": {"enabled": false, "window_minutes": 60, "failure_rate_bps": 500,
                "confidence": 0.95, "min_attempts": 100, "min_failures": 5, "action": "pause",
                "cooldown_minutes": 60},
            "ramp": {"enabled": false, "steps_bps": [], "min_dwell_minutes": 60,
                "min_attempts": 100, "promote_at_end": false},
            "created_at": AT, "updated_at": AT});
        let mut channel = merged(base, given);
        if channel["rollout"].is_object() {
            channel["rollout"] = merged(rollout_base(), channel["rollout"].take());
        }
        channel
    }

    fn channel(given: Value) -> ChannelView {
        serde_json::from_value(channel_json(given)).unwrap()
    }

    /// `{key: [items…]}` with each item put over `base`, and the list's other fields.
    fn list<T: DeserializeOwned>(given: Value, key: &str, item: impl Fn(Value) -> Value) -> T {
        let mut given = given;
        if let Some(items) = given.get_mut(key).and_then(Value::as_array_mut) {
            for entry in items.iter_mut() {
                *entry = item(entry.take());
            }
        }
        serde_json::from_value(given).unwrap()
    }

    fn bundle_json(given: Value) -> Value {
        merged(
            json!({"id": 1, "version": "1.0.0", "checksum": null, "encrypted_checksum": null,
                "session_key": null, "key_id": null, "external_url": null, "zip_sha256": null,
                "size": null, "manifest_count": 0, "url": null, "encrypted": false,
                "min_update_version": null, "link": null, "comment": null, "deleted": false,
                "created_at": AT, "deleted_at": null, "channels": [], "rollout_channels": [],
                "native_packages": null}),
            given,
        )
    }

    fn device_json(given: Value) -> Value {
        merged(
            json!({"device_id": "d", "platform": "ios", "plugin_version": null,
                "version_os": null, "version_build": null, "version_code": null,
                "version_name": null, "custom_id": null, "is_prod": true, "is_emulator": false,
                "default_channel": null, "channel": null, "key_id": null, "install_source": null,
                "last_offered_version": null, "last_update_outcome": null, "first_seen": AT,
                "last_seen": AT}),
            given,
        )
    }

    fn decision_json(given: Value) -> Value {
        merged(
            json!({"id": 1, "channel": "production", "rollout_id": "r1", "bundle": "1.1.0",
                "at": AT, "action": "held", "reason": "", "message": "", "from_bps": 0,
                "to_bps": 0, "attempts": 0, "failures": 0, "failure_rate": null,
                "wilson_lower_bound": null, "threshold_bps": 0}),
            given,
        )
    }

    fn decisions(given: Value) -> DecisionList {
        let given = merged(json!({"decisions": [], "current": []}), given);
        let mut given = given;
        for key in ["decisions", "current"] {
            if let Some(items) = given[key].as_array_mut() {
                for entry in items.iter_mut() {
                    *entry = decision_json(entry.take());
                }
            }
        }
        serde_json::from_value(given).unwrap()
    }

    fn compatibility(given: Value) -> CompatibilityView {
        typed(
            json!({"channel": "production", "bundle": null, "live_bundle": "builtin",
                "compatible": true, "live_known": false, "bundle_known": false, "packages": []}),
            given,
        )
    }

    #[test]
    fn apps_table_lists_each_app() {
        let list = json!({"apps": [
            {"app_id": "com.example.app", "name": "Example", "expose_metadata": true, "created_at": "2024-05-01T12:30:05Z"},
            {"app_id": "io.other", "name": "Other", "expose_metadata": false, "created_at": "2024-06-02T08:00:00Z"}
        ]});
        assert_eq!(
            apps_table(&typed(json!({}), list)),
            "APP ID           NAME     EXPOSE METADATA  CREATED\n\
             com.example.app  Example  yes              2024-05-01 12:30\n\
             io.other         Other    no               2024-06-02 08:00"
        );
        assert_eq!(
            apps_table(&typed(json!({}), json!({"apps": []}))),
            "No apps."
        );
    }

    #[test]
    fn channels_table_summarises_settings() {
        let list_json = json!({"channels": [{
            "name": "production", "bundle": "1.4.3", "public": true, "ios": true, "android": false,
            "electron": true, "allow_device_self_set": false, "allow_dev": false, "allow_prod": true,
            "allow_emulator": false, "allow_device": true, "disable_auto_update": "minor",
            "disable_auto_update_under_native": false
        }]});
        let lines: Vec<String> = channels_table(&list(list_json, "channels", channel_json))
            .lines()
            .map(str::to_string)
            .collect();
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
        let given = json!({"name": "beta", "bundle": "builtin", "public": false, "ios": false,
            "android": true, "electron": false, "allow_device_self_set": true,
            "disable_auto_update": "major", "disable_auto_update_under_native": true,
            "allow_dev": true, "allow_prod": true, "allow_emulator": true, "allow_device": true});
        assert_eq!(
            channel_summary(&channel(given)),
            "bundle builtin, normal, platforms android, self-assign yes, disable auto update major, \
             downgrade no, serves dev,prod,emulator,device"
        );
    }

    #[test]
    fn channel_show_reads_as_people_say_it() {
        let given = json!({"name": "production", "bundle": "1.0.1", "public": true, "ios": true,
            "android": true, "electron": false, "allow_device_self_set": false,
            "disable_auto_update": "major", "disable_auto_update_under_native": true,
            "allow_dev": false, "allow_prod": true, "allow_emulator": false, "allow_device": true,
            "targeting": {"platforms": ["ios"], "os_version": ">=14"},
            "rollout": {"bundle": "1.0.2", "percentage_bps": 2500, "paused": true,
                "started_at": "2024-05-01T10:00:00.000Z", "step_started_at": "2024-05-01T11:00:00.000Z"},
            "auto_pause": {"enabled": true, "window_minutes": 90, "failure_rate_bps": 500,
                "confidence": 0.95, "min_attempts": 50, "min_failures": 5, "action": "pause",
                "cooldown_minutes": 1440},
            "ramp": {"enabled": true, "steps_bps": [100, 2500, 10000], "min_dwell_minutes": 120,
                "min_attempts": 100, "promote_at_end": true}});
        let shown = channel_details(&channel(given));
        for line in [
            "Channel             production",
            "Bundle              1.0.1",
            "Default             yes: devices without a channel of their own get this one",
            "Platforms           iOS, Android",
            "Serves              production builds, physical devices",
            "Self-assign         not allowed",
            "Auto-update         up to minor (never a new major version over the native one)",
            "Downgrade           never below the native version",
            "Targeting           platform iOS; OS version >=14",
            "Rollout             1.0.2 at 25% (paused)",
            "Rollout started     2024-05-01 10:00",
            "Rollout targeting   every device",
            "Auto-pause          pause the rollout when more than 5% of updates fail over 1 h 30 min \
             (95% confidence, at least 50 attempts and 5 failures); then wait 1 day",
            "Ramp                1% → 25% → 100%, each step at least 2 h and 100 attempts, then promote",
        ] {
            assert!(shown.lines().any(|l| l == line), "no line {line:?} in\n{shown}");
        }
        let off = channel_details(&channel(json!({"rollout": null})));
        for (label, value) in [("Auto-pause", "off"), ("Ramp", "off"), ("Rollout", "none")] {
            assert!(
                off.lines().any(|l| l.starts_with(label)
                    && l.ends_with(&format!("  {value}"))
                    && l[label.len()..].trim() == value),
                "{label} {value}: {off}"
            );
        }
    }

    #[test]
    fn durations_read_in_minutes_hours_and_days() {
        assert_eq!(duration_text(0), "0 min");
        assert_eq!(duration_text(45), "45 min");
        assert_eq!(duration_text(60), "1 h");
        assert_eq!(duration_text(90), "1 h 30 min");
        assert_eq!(duration_text(1440), "1 day");
        assert_eq!(duration_text(2 * 1440 + 60), "2 days 1 h");
    }

    #[test]
    fn bundles_table_shows_deleted_column_only_on_request() {
        let given = json!({"bundles": [
            {"version": "1.0.1", "channels": ["production"], "rollout_channels": ["beta"], "encrypted": false,
             "min_update_version": null, "created_at": "2024-05-02T00:00:00Z", "deleted": false,
             "url": "https://cdn.example.com/1.0.1.zip"},
            {"version": "1.0.0", "channels": [], "encrypted": true, "min_update_version": "1.0.0",
             "created_at": "2024-05-01T00:00:00Z", "deleted": true, "deleted_at": "2024-05-03T10:00:00Z",
             "url": null, "external_url": "https://cdn.example.com/1.0.0.zip"}
        ]});
        let bundles: BundleList = list(given, "bundles", bundle_json);
        let plain = bundles_table(&bundles, false);
        assert!(!plain.contains("DELETED"));
        assert_eq!(
            plain.lines().nth(1).unwrap(),
            "1.0.1    production,beta (rollout)  no         -           2024-05-02 00:00  https://cdn.example.com/1.0.1.zip"
        );
        let with_deleted = bundles_table(&bundles, true);
        let last = with_deleted.lines().nth(2).unwrap();
        assert!(last.contains("2024-05-03 10:00"), "{last}");
        assert!(
            last.ends_with("https://cdn.example.com/1.0.0.zip"),
            "{last}"
        );
    }

    #[test]
    fn devices_table_reports_paging() {
        let given = json!({"devices": [
            {"device_id": "abc", "platform": "ios", "version_name": "1.0.0", "version_build": "2.0",
             "custom_id": null, "plugin_version": "7.1.0", "is_prod": true, "is_emulator": false,
             "last_seen": "2024-05-01T12:30:05.042Z"}
        ], "total": 3});
        let text = devices_table(&list(given, "devices", device_json));
        assert!(text.contains("abc        ios       1.0.0   2.0     -          7.1.0   yes   no        2024-05-01 12:30"), "{text}");
        assert!(text.ends_with("\n1 of 3 devices"), "{text}");
        assert_eq!(
            devices_table(&list(
                json!({"devices": [], "total": 0}),
                "devices",
                device_json
            )),
            "No devices."
        );
    }

    /// `device show` of a device answer, as the CLI reads it and as it came.
    fn show_device(given: Value) -> String {
        let json = merged(
            device_json(json!({"channel_override": null, "recent_events": []})),
            given,
        );
        device_details(&serde_json::from_value(json.clone()).unwrap(), &json)
    }

    #[test]
    fn device_details_show_override_and_events() {
        let text = show_device(json!({"device_id": "abc", "platform": "android",
            "channel": "beta", "custom_id": null,
            "channel_override": {"device_id": "abc", "channel": "beta", "source": "admin",
                "created_at": AT, "zz_new_override_field": 1},
            "recent_events": [{"action": "set", "version_name": "1.0.1", "old_version_name": "1.0.0",
                               "timestamp": "2024-05-01T12:30:05Z", "metadata": null}],
            "zz_new_field": "x"}));
        let line = |label: &str| {
            text.lines()
                .find(|line| line.starts_with(label))
                .map(|line| line[label.len()..].trim().to_string())
        };
        assert_eq!(line("Device id").as_deref(), Some("abc"), "{text}");
        assert_eq!(
            line("Channel override").as_deref(),
            Some("beta (set by admin)")
        );
        assert_eq!(line("Channel ").as_deref(), Some("beta"), "{text}");
        assert_eq!(line("Custom id").as_deref(), Some("-"), "{text}");
        assert_eq!(
            line("First seen").as_deref(),
            Some("2024-05-01 00:00"),
            "{text}"
        );
        // A newer server's field is shown; the typed ones are not repeated raw.
        assert_eq!(line("zz_new_field").as_deref(), Some("x"), "{text}");
        assert_eq!(line("channel_override"), None, "{text}");
        assert_eq!(line("recent_events"), None, "{text}");
        assert!(
            text.contains("2024-05-01 12:30  set     1.0.1   1.0.0"),
            "{text}"
        );
        let bare = show_device(json!({"device_id": "abc"}));
        assert!(bare.contains("Channel override     none"), "{bare}");
        assert!(bare.ends_with("No recent events."), "{bare}");
    }

    #[test]
    fn percentages_and_rollout_cells() {
        assert_eq!(percent(1250), "12.5%");
        assert_eq!(percent(1), "0.01%");
        assert_eq!(percent(10_000), "100%");
        let given = json!({"bundle": "1.0.0", "rollout": {"bundle": "1.1.0", "percentage_bps": 500, "paused": true}});
        assert_eq!(rollout_cell(&channel(given)), "1.1.0 @ 5% (paused)");
        assert_eq!(rollout_cell(&channel(json!({"rollout": null}))), "-");
        let running = json!({"rollout": {"bundle": "1.1.0", "percentage_bps": 2500, "paused": false, "paused_at": null}});
        assert_eq!(rollout_cell(&channel(running)), "1.1.0 @ 25%");
    }

    #[test]
    fn decisions_table_shows_the_numbers() {
        let given = json!({"decisions": [{"at": "2024-05-01T12:30:05Z", "bundle": "1.1.0", "action": "paused",
            "reason": "auto_pause_triggered", "from_bps": 500, "to_bps": 500, "attempts": 120, "failures": 36,
            "failure_rate": 0.3, "wilson_lower_bound": 0.2266, "threshold_bps": 500,
            "message": "paused: 36 of 120 failed"}]});
        let text = decisions_table(&decisions(given));
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
        assert_eq!(
            decisions_table(&decisions(json!({"decisions": []}))),
            "No decisions."
        );
        let with_now = json!({"decisions": [], "current": [{"channel": "production", "bundle": "1.1.0",
            "from_bps": 100, "action": "held", "reason": "not_enough_attempts", "attempts": 19,
            "failures": 9, "failure_rate": 0.4737, "message": "Watching: 19 of 100 attempts needed"}]});
        assert_eq!(
            decisions_table(&decisions(with_now)),
            "No decisions.\nNow (production, 1.1.0 @ 1%): held not_enough_attempts, 19 attempts, 9 failures, failure rate 47.4% — Watching: 19 of 100 attempts needed"
        );
    }

    #[test]
    fn compatibility_report_gives_a_verdict() {
        let report = json!({"channel": "production", "bundle": "1.1.0", "live_bundle": "1.0.0",
            "compatible": false, "live_known": true, "bundle_known": true, "packages": [
                {"name": "@capacitor/camera", "bundle_version": "7.0.0", "live_version": "6.0.0",
                 "compatible": false, "reason": "version_mismatch"}]});
        let text = compatibility_report(&compatibility(report), "production");
        assert!(
            text.contains("@capacitor/camera  7.0.0   6.0.0  no          version_mismatch"),
            "{text}"
        );
        assert!(text.ends_with("Bundle 1.1.0 is NOT compatible with channel production's live bundle 1.0.0: setting it needs --accept-incompatible."), "{text}");
        let unknown = json!({"bundle": null, "live_bundle": "builtin", "compatible": true, "live_known": false, "packages": []});
        assert!(compatibility_report(&compatibility(unknown), "beta").contains("are unknown"));
    }
}
