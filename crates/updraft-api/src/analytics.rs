//! The analytics answers (`GET /apps/{app_id}/stats`). The report itself is computed in
//! `updraft_core::analytics`; these mirror it field for field (the `From`
//! conversions keep them honest).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use updraft_core::analytics::{AdoptionPoint, BundleAdoption, DayStats, StatsReport, StatsTotals};
use utoipa::ToSchema;

#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
pub struct StatsTotalsView {
    /// Active devices of the newest day with any.
    pub active_devices_latest: i64,
    /// Most active devices on one day of the range.
    pub active_devices_peak: i64,
    pub events: i64,
    /// `set` events.
    pub installs: i64,
    /// Events whose action ends in `_fail`.
    pub failures: i64,
    pub failures_by_kind: BTreeMap<String, i64>,
    /// failures / (installs + failures); null when both are 0.
    pub failure_rate: Option<f64>,
    /// Bundle downloads served by this server.
    pub downloads: i64,
    pub bytes: i64,
}

#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
pub struct DayStatsView {
    /// `YYYY-MM-DD` (UTC).
    pub day: String,
    pub active_devices: i64,
    pub events: i64,
    pub installs: i64,
    pub failures: i64,
    pub failures_by_kind: BTreeMap<String, i64>,
    pub failure_rate: Option<f64>,
    pub downloads: i64,
    pub bytes: i64,
}

#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
pub struct AdoptionPointView {
    pub day: String,
    pub devices: i64,
    /// Of the day's active devices; null when there were none.
    pub share: Option<f64>,
}

#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
pub struct BundleAdoptionView {
    pub bundle: String,
    pub days: Vec<AdoptionPointView>,
}

#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
pub struct StatsReportView {
    pub app_id: String,
    /// First day of the range, `YYYY-MM-DD`.
    pub from: String,
    /// Last day of the range, `YYYY-MM-DD`.
    pub to: String,
    pub channel: Option<String>,
    pub bundle: Option<String>,
    pub totals: StatsTotalsView,
    /// Every day of the range, oldest first.
    pub days: Vec<DayStatsView>,
    /// One curve per bundle, most-used on the newest day first.
    pub adoption: Vec<BundleAdoptionView>,
}

impl From<StatsTotals> for StatsTotalsView {
    fn from(t: StatsTotals) -> Self {
        StatsTotalsView {
            active_devices_latest: t.active_devices_latest,
            active_devices_peak: t.active_devices_peak,
            events: t.events,
            installs: t.installs,
            failures: t.failures,
            failures_by_kind: t.failures_by_kind,
            failure_rate: t.failure_rate,
            downloads: t.downloads,
            bytes: t.bytes,
        }
    }
}

impl From<DayStats> for DayStatsView {
    fn from(d: DayStats) -> Self {
        DayStatsView {
            day: d.day,
            active_devices: d.active_devices,
            events: d.events,
            installs: d.installs,
            failures: d.failures,
            failures_by_kind: d.failures_by_kind,
            failure_rate: d.failure_rate,
            downloads: d.downloads,
            bytes: d.bytes,
        }
    }
}

impl From<AdoptionPoint> for AdoptionPointView {
    fn from(p: AdoptionPoint) -> Self {
        AdoptionPointView {
            day: p.day,
            devices: p.devices,
            share: p.share,
        }
    }
}

impl From<BundleAdoption> for BundleAdoptionView {
    fn from(b: BundleAdoption) -> Self {
        BundleAdoptionView {
            bundle: b.bundle,
            days: b.days.into_iter().map(Into::into).collect(),
        }
    }
}

impl From<StatsReport> for StatsReportView {
    fn from(r: StatsReport) -> Self {
        StatsReportView {
            app_id: r.app_id,
            from: r.from,
            to: r.to,
            channel: r.channel,
            bundle: r.bundle,
            totals: r.totals.into(),
            days: r.days.into_iter().map(Into::into).collect(),
            adoption: r.adoption.into_iter().map(Into::into).collect(),
        }
    }
}
