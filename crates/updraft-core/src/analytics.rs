//! Release analytics, as pure functions: which rollup bucket an event lands
//! in, UTC days, failure rates and adoption shares, and the `stats` report
//! assembled from the daily rollups the store keeps.
//!
//! Definitions (also in docs/api.md, "Stats and analytics"):
//! - an event's *day* is the UTC day of its timestamp (the device's own time
//!   when plausible, see `stats`), as `YYYY-MM-DD`;
//! - its *bundle* is its `version_name` cut at the first `:` (per-file
//!   failures name `"{version}:{file}"`);
//! - its rollup *action* is the action itself when the plugin knows it, else
//!   [`OTHER_ACTION`], so random action names cannot blow up the rollups
//!   (the raw event keeps the real name);
//! - *installs* are `set` events; *failures* are actions ending in `_fail`;
//!   the failure rate is failures / (installs + failures);
//! - *active devices* of a day are the distinct devices that sent any event
//!   that day; a device is *on* the bundle it last reported running that day
//!   (adoption share = devices on the bundle / active devices).

use crate::decision::device_channel;
use crate::model::{Millis, Platform, ReleaseConfig};
use crate::stats::{is_known_action, reports_running_version};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub const MILLIS_PER_DAY: Millis = 86_400_000;
/// Rollup bucket of every action the plugin does not send.
pub const OTHER_ACTION: &str = "other";
/// Rollup bucket of the bundle names over an app's daily cap (devices can
/// invent any `version_name`; the raw event keeps it).
pub const OTHER_BUNDLE: &str = "other";
/// The action that means "a bundle was installed and applied".
pub const INSTALL_ACTION: &str = "set";

/// The rollup bucket of an action: known actions verbatim (download progress
/// only in steps of 10 up to 100), everything else [`OTHER_ACTION`].
pub fn rollup_action(action: &str) -> &str {
    if let Some(step) = action.strip_prefix("download_") {
        if !step.is_empty() && step.bytes().all(|b| b.is_ascii_digit()) {
            let canonical = matches!(
                step,
                "0" | "10" | "20" | "30" | "40" | "50" | "60" | "70" | "80" | "90" | "100"
            );
            return if canonical { action } else { OTHER_ACTION };
        }
    }
    if is_known_action(action) {
        action
    } else {
        OTHER_ACTION
    }
}

/// Whether a (rollup) action is a failure.
pub fn is_failure(action: &str) -> bool {
    action.ends_with("_fail")
}

/// The bundle an event concerns: its `version_name` up to the first `:`.
pub fn event_bundle(version_name: &str) -> &str {
    version_name.split(':').next().unwrap_or(version_name)
}

/// The bundle the device runs, when the event says so (see `stats`): used for
/// adoption. `None` for failures, downloads and the like.
pub fn running_bundle<'a>(action: &str, version_name: &'a str) -> Option<&'a str> {
    (reports_running_version(action) && !version_name.is_empty() && !version_name.contains(':'))
        .then_some(version_name)
}

/// The channel an event is attributed to, from what is known at ingest: the
/// channel the update check would resolve (`decision::device_channel`:
/// override, else a usable `defaultChannel`, else the platform's public
/// channel). The client's `channel` field is not trusted.
pub fn attribute_channel<'a>(
    release: &'a ReleaseConfig,
    device_id: &str,
    platform: &str,
    default_channel: Option<&str>,
) -> Option<&'a str> {
    let platform = Platform::parse(platform)?;
    let requested = default_channel.map(str::trim).filter(|n| !n.is_empty());
    device_channel(release, device_id, platform, requested).map(|on| on.channel.name.as_str())
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian
/// (Howard Hinnant's `civil_from_days`).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// (year, month, day) → days since 1970-01-01 (Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year.rem_euclid(400);
    let month = i64::from(month);
    let day_of_year =
        (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// RFC 3339 in UTC with milliseconds, e.g. `2024-05-01T12:30:05.042Z`, as the API prints times.
pub fn rfc3339(millis: Millis) -> String {
    let days = millis.div_euclid(MILLIS_PER_DAY);
    let in_day = millis.rem_euclid(MILLIS_PER_DAY);
    let (year, month, day) = civil_from_days(days);
    let (hours, minutes) = (in_day / 3_600_000, in_day / 60_000 % 60);
    let (seconds, ms) = (in_day / 1000 % 60, in_day % 1000);
    format!("{year:04}-{month:02}-{day:02}T{hours:02}:{minutes:02}:{seconds:02}.{ms:03}Z")
}

/// The UTC day of an epoch-ms time, `YYYY-MM-DD`.
pub fn day_of(millis: Millis) -> String {
    let (year, month, day) = civil_from_days(millis.div_euclid(MILLIS_PER_DAY));
    format!("{year:04}-{month:02}-{day:02}")
}

/// Midnight UTC of a `YYYY-MM-DD` day, or `None` when it is not one.
pub fn day_start(day: &str) -> Option<Millis> {
    let bytes = day.as_bytes();
    if bytes.len() != 10 || bytes[4] != b'-' || bytes[7] != b'-' {
        return None;
    }
    let year: i64 = day.get(..4)?.parse().ok()?;
    let month: u32 = day.get(5..7)?.parse().ok()?;
    let dom: u32 = day.get(8..10)?.parse().ok()?;
    if !(1..=12).contains(&month) || dom == 0 {
        return None;
    }
    let days = days_from_civil(year, month, dom);
    // Reject 2026-02-31 and the like: the day must round-trip.
    (civil_from_days(days) == (year, month, dom)).then_some(days * MILLIS_PER_DAY)
}

/// `2026-12-01T09:00:00Z`, `2026-12-01T09:00:00.250+02:00` → epoch ms.
pub fn parse_rfc3339(text: &str) -> Option<Millis> {
    let text = text.trim();
    let (date, rest) = text.split_at_checked(10)?;
    let day = day_start(date)?;
    let rest = rest.strip_prefix(['T', 't', ' '])?;
    let number = |s: &str| -> Option<i64> {
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    let hours = number(rest.get(0..2)?)?;
    let minutes = number(rest.get(3..5)?)?;
    let seconds = number(rest.get(6..8)?)?;
    if rest.get(2..3)? != ":"
        || rest.get(5..6)? != ":"
        || hours > 23
        || minutes > 59
        || seconds > 60
    {
        return None;
    }
    let mut rest = rest.get(8..)?;
    let mut millis = 0;
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let padded: String = fraction[..digits]
            .chars()
            .chain("000".chars())
            .take(3)
            .collect();
        millis = number(&padded)?;
        rest = &fraction[digits..];
    }
    let offset_ms = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.get(0..1)? {
                "+" => 1,
                "-" => -1,
                _ => return None,
            };
            if rest.len() != 6 || rest.get(3..4)? != ":" {
                return None;
            }
            let (h, m) = (number(rest.get(1..3)?)?, number(rest.get(4..6)?)?);
            if h > 23 || m > 59 {
                return None;
            }
            sign * (h * 3_600_000 + m * 60_000)
        }
    };
    Some(day + hours * 3_600_000 + minutes * 60_000 + seconds * 1000 + millis - offset_ms)
}

/// A `since`/`until` bound: `7d`, `24h`, `30m` (that long before `now`), a
/// `YYYY-MM-DD` day (its midnight UTC) or epoch milliseconds.
pub fn parse_time_bound(text: &str, now: Millis) -> Option<Millis> {
    let text = text.trim();
    if let Some(day) = day_start(text) {
        return Some(day);
    }
    let unit_ms = match text.chars().last()? {
        'd' => MILLIS_PER_DAY,
        'h' => 3_600_000,
        'm' => 60_000,
        'w' => 7 * MILLIS_PER_DAY,
        _ => return text.parse::<Millis>().ok().filter(|ms| *ms >= 0),
    };
    let count: Millis = text.get(..text.len() - 1)?.parse().ok()?;
    (0..=100_000)
        .contains(&count)
        .then(|| now - count * unit_ms)
}

/// failures / (installs + failures), `None` when there was neither.
pub fn failure_rate(installs: i64, failures: i64) -> Option<f64> {
    let attempts = installs + failures;
    (attempts > 0).then(|| failures as f64 / attempts as f64)
}

/// part / whole, `None` for an empty whole.
pub fn share(part: i64, whole: i64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

/// Events of one rollup bucket: (day, channel, bundle, action).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionCount {
    pub day: String,
    /// `""` when the channel was not known.
    pub channel: String,
    pub bundle: String,
    pub action: String,
    pub events: i64,
}

/// Distinct active devices of (day, channel, bundle they ran).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceCount {
    pub day: String,
    pub channel: String,
    /// `""` when the device reported no running bundle that day.
    pub bundle: String,
    pub devices: i64,
}

/// Bundle downloads served by this server (not per channel).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DownloadCount {
    pub day: String,
    pub bundle: String,
    pub requests: i64,
    pub bytes: i64,
}

/// The rollup rows of one app for a day range.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rollups {
    pub actions: Vec<ActionCount>,
    pub devices: Vec<DeviceCount>,
    pub downloads: Vec<DownloadCount>,
}

/// Filters of a report; rows are already limited to the day range.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportFilter {
    pub channel: Option<String>,
    pub bundle: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DayStats {
    pub day: String,
    pub active_devices: i64,
    pub events: i64,
    pub installs: i64,
    pub failures: i64,
    /// Failure action → events.
    pub failures_by_kind: BTreeMap<String, i64>,
    pub failure_rate: Option<f64>,
    pub downloads: i64,
    pub bytes: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AdoptionPoint {
    pub day: String,
    pub devices: i64,
    /// Of the day's active devices (in the channel filter, if any).
    pub share: Option<f64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BundleAdoption {
    pub bundle: String,
    pub days: Vec<AdoptionPoint>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StatsTotals {
    /// Active devices of the newest day with any.
    pub active_devices_latest: i64,
    /// Most active devices on one day.
    pub active_devices_peak: i64,
    pub events: i64,
    pub installs: i64,
    pub failures: i64,
    pub failures_by_kind: BTreeMap<String, i64>,
    pub failure_rate: Option<f64>,
    pub downloads: i64,
    pub bytes: i64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StatsReport {
    pub app_id: String,
    pub from: String,
    pub to: String,
    pub channel: Option<String>,
    pub bundle: Option<String>,
    pub totals: StatsTotals,
    /// Every day of the range, oldest first, zeros included.
    pub days: Vec<DayStats>,
    /// Bundles by devices on the newest day, then name.
    pub adoption: Vec<BundleAdoption>,
}

/// Every day from `from` to `to` inclusive (both `YYYY-MM-DD`), capped at 3660.
pub fn day_range(from: &str, to: &str) -> Vec<String> {
    let (Some(start), Some(end)) = (day_start(from), day_start(to)) else {
        return Vec::new();
    };
    let mut days = Vec::new();
    let mut at = start;
    while at <= end && days.len() < 3660 {
        days.push(day_of(at));
        at += MILLIS_PER_DAY;
    }
    days
}

/// Builds the report from rollup rows of the range `from..=to`.
pub fn build_report(
    app_id: &str,
    from: &str,
    to: &str,
    filter: &ReportFilter,
    rollups: &Rollups,
) -> StatsReport {
    let channel_ok = |channel: &str| filter.channel.as_deref().is_none_or(|c| c == channel);
    let bundle_ok = |bundle: &str| filter.bundle.as_deref().is_none_or(|b| b == bundle);
    let days = day_range(from, to);
    let mut by_day: BTreeMap<String, DayStats> = days
        .iter()
        .map(|day| {
            (
                day.clone(),
                DayStats {
                    day: day.clone(),
                    ..DayStats::default()
                },
            )
        })
        .collect();
    for row in &rollups.actions {
        if !(channel_ok(&row.channel) && bundle_ok(&row.bundle)) {
            continue;
        }
        let Some(day) = by_day.get_mut(&row.day) else {
            continue;
        };
        day.events += row.events;
        if row.action == INSTALL_ACTION {
            day.installs += row.events;
        } else if is_failure(&row.action) {
            day.failures += row.events;
            *day.failures_by_kind.entry(row.action.clone()).or_default() += row.events;
        }
    }
    // Active devices count every bundle (the share's denominator); the bundle
    // filter only picks which adoption curves are shown.
    let mut on_bundle: BTreeMap<String, BTreeMap<String, i64>> = BTreeMap::new();
    for row in &rollups.devices {
        if !channel_ok(&row.channel) {
            continue;
        }
        let Some(day) = by_day.get_mut(&row.day) else {
            continue;
        };
        day.active_devices += row.devices;
        if !row.bundle.is_empty() && bundle_ok(&row.bundle) {
            *on_bundle
                .entry(row.bundle.clone())
                .or_default()
                .entry(row.day.clone())
                .or_default() += row.devices;
        }
    }
    for row in &rollups.downloads {
        if !bundle_ok(&row.bundle) {
            continue;
        }
        if let Some(day) = by_day.get_mut(&row.day) {
            day.downloads += row.requests;
            day.bytes += row.bytes;
        }
    }
    let mut totals = StatsTotals::default();
    let series: Vec<DayStats> = by_day
        .into_values()
        .map(|mut day| {
            day.failure_rate = failure_rate(day.installs, day.failures);
            totals.events += day.events;
            totals.installs += day.installs;
            totals.failures += day.failures;
            for (kind, n) in &day.failures_by_kind {
                *totals.failures_by_kind.entry(kind.clone()).or_default() += n;
            }
            totals.downloads += day.downloads;
            totals.bytes += day.bytes;
            totals.active_devices_peak = totals.active_devices_peak.max(day.active_devices);
            if day.active_devices > 0 {
                totals.active_devices_latest = day.active_devices;
            }
            day
        })
        .collect();
    totals.failure_rate = failure_rate(totals.installs, totals.failures);
    let active_on: BTreeMap<&str, i64> = series
        .iter()
        .map(|d| (d.day.as_str(), d.active_devices))
        .collect();
    let newest_day = series
        .iter()
        .rev()
        .find(|d| d.active_devices > 0)
        .map(|d| d.day.clone());
    let mut adoption: Vec<BundleAdoption> = on_bundle
        .into_iter()
        .map(|(bundle, per_day)| BundleAdoption {
            bundle,
            days: days
                .iter()
                .map(|day| {
                    let devices = per_day.get(day).copied().unwrap_or(0);
                    AdoptionPoint {
                        day: day.clone(),
                        devices,
                        share: share(devices, active_on.get(day.as_str()).copied().unwrap_or(0)),
                    }
                })
                .collect(),
        })
        .collect();
    let latest_devices = |curve: &BundleAdoption| {
        curve
            .days
            .iter()
            .find(|p| Some(&p.day) == newest_day.as_ref())
            .map_or(0, |p| p.devices)
    };
    adoption.sort_by(|a, b| {
        latest_devices(b)
            .cmp(&latest_devices(a))
            .then_with(|| a.bundle.cmp(&b.bundle))
    });
    StatsReport {
        app_id: app_id.to_string(),
        from: from.to_string(),
        to: to.to_string(),
        channel: filter.channel.clone(),
        bundle: filter.bundle.clone(),
        totals,
        days: series,
        adoption,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_times_parse_with_offsets_and_fractions() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("1970-01-01T00:00:01.5Z"), Some(1500));
        assert_eq!(parse_rfc3339("1970-01-01T01:00:00+01:00"), Some(0));
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00-00:30"), Some(1_800_000));
        assert_eq!(
            parse_rfc3339("2026-12-01T09:00:00Z"),
            Some(1_796_115_600_000)
        );
        for bad in [
            "2026-12-01",
            "2026-12-01T25:00:00Z",
            "2026-12-01T09:00:00",
            "x",
            "2026-02-30T00:00:00Z",
            "2026-12-01T09:00:00.Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn days_round_trip_and_reject_impossible_dates() {
        assert_eq!(day_of(0), "1970-01-01");
        assert_eq!(day_of(1_767_225_600_000), "2026-01-01");
        assert_eq!(day_of(1_767_225_599_999), "2025-12-31");
        assert_eq!(day_of(951_782_400_000), "2000-02-29");
        assert_eq!(day_start("2026-01-01"), Some(1_767_225_600_000));
        assert_eq!(day_start("2000-02-29"), Some(951_782_400_000));
        for bad in [
            "2026-02-30",
            "2026-13-01",
            "2026-00-10",
            "2026-1-01",
            "x",
            "2026-01-01T",
        ] {
            assert_eq!(day_start(bad), None, "{bad}");
        }
        assert_eq!(
            day_range("2025-12-30", "2026-01-02"),
            ["2025-12-30", "2025-12-31", "2026-01-01", "2026-01-02"]
        );
        assert!(day_range("2026-01-02", "2026-01-01").is_empty());
    }

    #[test]
    fn time_bounds() {
        let now = 1_767_225_600_000;
        assert_eq!(parse_time_bound("7d", now), Some(now - 7 * MILLIS_PER_DAY));
        assert_eq!(parse_time_bound("24h", now), Some(now - 86_400_000));
        assert_eq!(parse_time_bound("30m", now), Some(now - 1_800_000));
        assert_eq!(parse_time_bound("2w", now), Some(now - 14 * MILLIS_PER_DAY));
        assert_eq!(parse_time_bound("2026-01-01", now), Some(1_767_225_600_000));
        assert_eq!(
            parse_time_bound("1767225600123", now),
            Some(1_767_225_600_123)
        );
        for bad in ["", "d", "-3d", "7x", "1.5d", "-5", "999999999d"] {
            assert_eq!(parse_time_bound(bad, now), None, "{bad}");
        }
    }

    #[test]
    fn rollup_buckets() {
        assert_eq!(rollup_action("set"), "set");
        assert_eq!(rollup_action("update_fail"), "update_fail");
        assert_eq!(rollup_action("download_40"), "download_40");
        assert_eq!(rollup_action("download_100"), "download_100");
        for other in [
            "download_41",
            "download_040",
            "download_1000",
            "brand_new",
            "Set",
        ] {
            assert_eq!(rollup_action(other), OTHER_ACTION, "{other}");
        }
        assert!(is_failure("checksum_fail") && !is_failure("set"));
        assert_eq!(event_bundle("1.2.0:assets/app.js"), "1.2.0");
        assert_eq!(event_bundle("1.2.0"), "1.2.0");
        assert_eq!(running_bundle("set", "1.2.0"), Some("1.2.0"));
        assert_eq!(running_bundle("update_fail", "1.2.0"), None);
        assert_eq!(running_bundle("download_complete", "1.2.0"), None);
        assert_eq!(running_bundle("ping", ""), None);
    }

    fn channel(
        id: i64,
        name: &str,
        public: bool,
        self_set: bool,
        ios: bool,
    ) -> crate::model::Channel {
        crate::model::Channel {
            id,
            app_id: "a.b".into(),
            name: name.into(),
            bundle_id: None,
            public,
            ios,
            android: true,
            electron: true,
            allow_device_self_set: self_set,
            allow_emulator: true,
            allow_device: true,
            allow_dev: true,
            allow_prod: true,
            disable_auto_update: crate::model::AutoUpdatePolicy::Major,
            disable_auto_update_under_native: true,
            targeting: Default::default(),
            rollout: None,
            auto_pause: Default::default(),
            ramp: Default::default(),
            created_at: 0,
            updated_at: 0,
        }
    }

    #[test]
    fn channel_attribution() {
        let mut release = ReleaseConfig {
            channels: vec![
                channel(1, "beta", false, true, true),
                channel(2, "internal", false, false, true),
                channel(3, "production", true, false, false),
                channel(4, "production-ios", true, false, true),
            ],
            ..ReleaseConfig::default()
        };
        release.overrides.insert(
            "dev-o".into(),
            crate::model::DeviceOverride {
                app_id: "a.b".into(),
                device_id: "dev-o".into(),
                channel_id: 2,
                source: crate::model::OverrideSource::Admin,
                created_at: 0,
            },
        );
        let cases = [
            ("dev-o", "android", Some("beta"), Some("internal")),
            ("dev-1", "android", Some(" beta "), Some("beta")),
            // Private and not self-assignable: falls back to the public channel.
            ("dev-1", "android", Some("internal"), Some("production")),
            ("dev-1", "ios", Some("nope"), Some("production-ios")),
            ("dev-1", "ios", None, Some("production-ios")),
            ("dev-1", "android", Some(""), Some("production")),
            ("dev-1", "symbian", None, None),
        ];
        for (device, platform, default_channel, expected) in cases {
            assert_eq!(
                attribute_channel(&release, device, platform, default_channel),
                expected,
                "{device} {platform} {default_channel:?}"
            );
        }
    }

    #[test]
    fn rates() {
        assert_eq!(failure_rate(0, 0), None);
        assert_eq!(failure_rate(3, 1), Some(0.25));
        assert_eq!(share(1, 4), Some(0.25));
        assert_eq!(share(1, 0), None);
    }

    fn action(day: &str, channel: &str, bundle: &str, action: &str, events: i64) -> ActionCount {
        ActionCount {
            day: day.into(),
            channel: channel.into(),
            bundle: bundle.into(),
            action: action.into(),
            events,
        }
    }

    fn devices(day: &str, channel: &str, bundle: &str, n: i64) -> DeviceCount {
        DeviceCount {
            day: day.into(),
            channel: channel.into(),
            bundle: bundle.into(),
            devices: n,
        }
    }

    #[test]
    fn report_sums_filters_and_shares() {
        let rollups = Rollups {
            actions: vec![
                action("2026-01-01", "prod", "1.1.0", "set", 3),
                action("2026-01-01", "prod", "1.1.0", "update_fail", 1),
                action("2026-01-02", "prod", "1.1.0", "download_fail", 2),
                action("2026-01-02", "prod", "1.1.0", "set", 6),
                action("2026-01-02", "beta", "1.2.0", "set", 5),
                action("2026-01-02", "prod", "1.1.0", "ping", 7),
                // Outside the range: ignored.
                action("2026-01-05", "prod", "1.1.0", "set", 100),
            ],
            devices: vec![
                devices("2026-01-01", "prod", "1.0.0", 3),
                devices("2026-01-01", "prod", "1.1.0", 1),
                devices("2026-01-02", "prod", "1.1.0", 3),
                devices("2026-01-02", "prod", "", 1),
                devices("2026-01-02", "beta", "1.2.0", 4),
            ],
            downloads: vec![DownloadCount {
                day: "2026-01-02".into(),
                bundle: "1.1.0".into(),
                requests: 4,
                bytes: 4000,
            }],
        };
        let filter = ReportFilter {
            channel: Some("prod".into()),
            bundle: None,
        };
        let report = build_report(
            "com.example.app",
            "2026-01-01",
            "2026-01-03",
            &filter,
            &rollups,
        );
        assert_eq!(report.days.len(), 3);
        let day1 = &report.days[0];
        assert_eq!(
            (day1.active_devices, day1.installs, day1.failures),
            (4, 3, 1)
        );
        assert_eq!(day1.failure_rate, Some(0.25));
        let day2 = &report.days[1];
        assert_eq!(
            (
                day2.active_devices,
                day2.installs,
                day2.failures,
                day2.events
            ),
            (4, 6, 2, 15)
        );
        assert_eq!((day2.downloads, day2.bytes), (4, 4000));
        assert_eq!(report.days[2].active_devices, 0);
        assert_eq!(report.days[2].failure_rate, None);
        assert_eq!(report.totals.installs, 9);
        assert_eq!(report.totals.failures, 3);
        assert_eq!(report.totals.failures_by_kind["update_fail"], 1);
        assert_eq!(report.totals.failures_by_kind["download_fail"], 2);
        assert_eq!(report.totals.failure_rate, Some(0.25));
        assert_eq!(
            (
                report.totals.active_devices_latest,
                report.totals.active_devices_peak
            ),
            (4, 4)
        );
        // 1.1.0 first (3 devices on the newest day), then 1.0.0; "" is not a bundle.
        let names: Vec<&str> = report.adoption.iter().map(|a| a.bundle.as_str()).collect();
        assert_eq!(names, ["1.1.0", "1.0.0"]);
        assert_eq!(report.adoption[0].days[0].share, Some(0.25));
        assert_eq!(report.adoption[0].days[1].share, Some(0.75));
        assert_eq!(report.adoption[0].days[2].share, None);

        let only_beta_bundle = ReportFilter {
            channel: None,
            bundle: Some("1.2.0".into()),
        };
        let report = build_report(
            "a.b",
            "2026-01-02",
            "2026-01-02",
            &only_beta_bundle,
            &rollups,
        );
        assert_eq!(report.days[0].installs, 5);
        assert_eq!(report.days[0].active_devices, 8);
        assert_eq!(report.days[0].downloads, 0);
        assert_eq!(report.adoption.len(), 1);
        assert_eq!(report.adoption[0].days[0].share, Some(0.5));
    }
}
