//! Analytics: rollups checked against a recount from the raw events of a
//! generated fleet, export paging and filters, retention.

use super::{event, APP, OTHER_APP};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, HashMap};
use updraft_core::analytics::{
    day_of, event_bundle, rollup_action, running_bundle, ActionCount, DeviceCount, Rollups,
    MILLIS_PER_DAY,
};
use updraft_core::model::StatsEvent;
use updraft_store::{EventExportQuery, StatsIngest, Store, StoredEvent};

/// 2026-01-01T00:00:00Z.
const DAY0: i64 = 1_767_225_600_000;

const ACTIONS: &[&str] = &[
    "set",
    "set",
    "update_fail",
    "download_fail",
    "checksum_fail",
    "ping",
    "download_complete",
    "download_40",
    "download_37",
    "app_moved_to_foreground",
    "reset",
    "custom_thing",
    "download_manifest_file_fail",
];

fn generated_fleet(seed: u64, count: usize) -> (Vec<StatsEvent>, Vec<Option<String>>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let bundles = ["1.0.0", "1.1.0", "1.2.0", "1.3.0-beta.1", "2.0.0", ""];
    let channels = [Some("production"), Some("beta"), Some("qa"), None];
    let mut events = Vec::with_capacity(count);
    let mut attributed = Vec::with_capacity(count);
    for _ in 0..count {
        let app = if rng.gen_bool(0.9) { APP } else { OTHER_APP };
        let device = format!("dev-{:04}", rng.gen_range(0..400));
        let action = ACTIONS[rng.gen_range(0..ACTIONS.len())];
        // Timestamps over 6 days, with many ties inside a day.
        let timestamp = DAY0 + rng.gen_range(0..6) * MILLIS_PER_DAY + rng.gen_range(0..50) * 1000;
        let mut e = event(app, &device, action, timestamp);
        let bundle = bundles[rng.gen_range(0..bundles.len())];
        e.version_name = if action == "download_manifest_file_fail" {
            format!("{bundle}:assets/app.js")
        } else {
            bundle.to_string()
        };
        events.push(e);
        attributed.push(channels[rng.gen_range(0..channels.len())].map(str::to_string));
    }
    (events, attributed)
}

async fn all_events<S: Store>(s: &S, app_id: &str) -> Vec<StoredEvent> {
    let mut out = Vec::new();
    let mut after_id = 0;
    loop {
        let page = s
            .export_events(&EventExportQuery {
                app_id: app_id.to_string(),
                after_id,
                limit: 700,
                ..EventExportQuery::default()
            })
            .await
            .unwrap();
        let Some(last) = page.last() else { break };
        after_id = last.id;
        out.extend(page);
    }
    out
}

/// The rollups as a full scan of the raw events would compute them, written
/// independently of the store's in-memory aggregation.
fn recount(events: &[StoredEvent]) -> Rollups {
    let mut actions: BTreeMap<(String, String, String, String), i64> = BTreeMap::new();
    // (day, device) → best (at, bundle, channel), the latest running bundle.
    let mut device_day: BTreeMap<(String, String), (i64, String, String)> = BTreeMap::new();
    for stored in events {
        let e = &stored.event;
        let day = day_of(e.timestamp);
        let channel = stored.channel.clone().unwrap_or_default();
        *actions
            .entry((
                day.clone(),
                channel.clone(),
                event_bundle(&e.version_name).to_string(),
                rollup_action(&e.action).to_string(),
            ))
            .or_default() += 1;
        let running = running_bundle(&e.action, &e.version_name);
        let candidate = (
            if running.is_some() { e.timestamp } else { -1 },
            running.unwrap_or("").to_string(),
            channel,
        );
        let best = device_day
            .entry((day, e.device_id.clone()))
            .or_insert_with(|| candidate.clone());
        if candidate > *best {
            *best = candidate;
        }
    }
    let mut devices: BTreeMap<(String, String, String), i64> = BTreeMap::new();
    for ((day, _), (_, bundle, channel)) in device_day {
        *devices.entry((day, channel, bundle)).or_default() += 1;
    }
    Rollups {
        actions: actions
            .into_iter()
            .map(|((day, channel, bundle, action), events)| ActionCount {
                day,
                channel,
                bundle,
                action,
                events,
            })
            .collect(),
        devices: devices
            .into_iter()
            .map(|((day, channel, bundle), devices)| DeviceCount {
                day,
                channel,
                bundle,
                devices,
            })
            .collect(),
        downloads: Vec::new(),
    }
}

fn sorted(mut rollups: Rollups) -> Rollups {
    rollups.actions.sort_by(|a, b| {
        (&a.day, &a.channel, &a.bundle, &a.action).cmp(&(&b.day, &b.channel, &b.bundle, &b.action))
    });
    rollups
        .devices
        .sort_by(|a, b| (&a.day, &a.channel, &a.bundle).cmp(&(&b.day, &b.channel, &b.bundle)));
    rollups
}

/// Ingests the fleet in shuffled commits of random size, then compares the
/// rollups with a recount from the raw events read back.
pub async fn suite_rollups_match_recount<S: Store>(s: &S) {
    const EVENTS: usize = 6_000;
    let (events, channels) = generated_fleet(7, EVENTS);
    let mut order: Vec<usize> = (0..EVENTS).collect();
    let mut rng = StdRng::seed_from_u64(11);
    order.shuffle(&mut rng);
    let mut at = 0;
    while at < order.len() {
        let size = rng.gen_range(1..=600).min(order.len() - at);
        let picked = &order[at..at + size];
        let commit_events: Vec<StatsEvent> = picked.iter().map(|&i| events[i].clone()).collect();
        let commit_channels: Vec<Option<String>> =
            picked.iter().map(|&i| channels[i].clone()).collect();
        s.ingest_stats(StatsIngest {
            events: &commit_events,
            channels: &commit_channels,
            sightings: &[],
            active_devices_since: 0,
            max_bundles_per_day: 0,
        })
        .await
        .unwrap();
        at += size;
    }

    let mut total_events = 0;
    for app in [APP, OTHER_APP] {
        let raw = all_events(s, app).await;
        let sent = events.iter().filter(|e| e.app_id == app).count();
        assert_eq!(raw.len(), sent, "every event of {app} stored once");
        total_events += raw.len();
        let expected = sorted(recount(&raw));
        let stored = sorted(
            s.stats_rollups(app, "2025-12-01", "2026-02-01")
                .await
                .unwrap(),
        );
        assert_eq!(stored.actions, expected.actions, "{app} action rollups");
        assert_eq!(stored.devices, expected.devices, "{app} device rollups");
        assert!(stored.downloads.is_empty());
        // The fleet really exercises what it should.
        assert!(expected.actions.iter().any(|a| a.action == "other"));
        assert!(expected.devices.iter().any(|d| d.bundle.is_empty()));
        assert!(expected.devices.iter().any(|d| d.devices > 1));
    }
    assert_eq!(total_events, EVENTS);

    // A day range picks only its days.
    let one_day = s
        .stats_rollups(APP, "2026-01-02", "2026-01-02")
        .await
        .unwrap();
    assert!(!one_day.actions.is_empty());
    assert!(one_day.actions.iter().all(|a| a.day == "2026-01-02"));
    assert!(one_day.devices.iter().all(|d| d.day == "2026-01-02"));
}

/// A device sending many events counts once a day, moves between bundles
/// as it reports running them, and late events before the active-device
/// window count only as events.
pub async fn suite_active_devices<S: Store>(s: &S) {
    let mut events = Vec::new();
    for i in 0..50 {
        let mut e = event(APP, "dev-a", "ping", DAY0 + i * 1000);
        e.version_name = "1.0.0".into();
        events.push(e);
    }
    let mut moved = event(APP, "dev-a", "set", DAY0 + 3_600_000);
    moved.version_name = "1.1.0".into();
    let mut failed = event(APP, "dev-a", "update_fail", DAY0 + 7_200_000);
    failed.version_name = "1.2.0".into();
    events.push(failed);
    let channels = vec![Some("production".to_string()); events.len()];
    s.ingest_stats(StatsIngest {
        events: &events,
        channels: &channels,
        sightings: &[],
        active_devices_since: 0,
        max_bundles_per_day: 0,
    })
    .await
    .unwrap();
    let day = "2026-01-01";
    let devices = |r: &Rollups| -> HashMap<String, i64> {
        r.devices
            .iter()
            .map(|d| (d.bundle.clone(), d.devices))
            .collect()
    };
    let r = s.stats_rollups(APP, day, day).await.unwrap();
    assert_eq!(devices(&r), HashMap::from([("1.0.0".to_string(), 1)]));
    // A later commit moves the device to 1.1.0: the day still has one device.
    s.ingest_stats(StatsIngest {
        events: std::slice::from_ref(&moved),
        channels: &[Some("production".to_string())],
        sightings: &[],
        active_devices_since: 0,
        max_bundles_per_day: 0,
    })
    .await
    .unwrap();
    let r = s.stats_rollups(APP, day, day).await.unwrap();
    assert_eq!(devices(&r), HashMap::from([("1.1.0".to_string(), 1)]));
    let installs: i64 = r
        .actions
        .iter()
        .filter(|a| a.action == "set")
        .map(|a| a.events)
        .sum();
    assert_eq!(installs, 1);
    let failures: Vec<(&str, &str, i64)> = r
        .actions
        .iter()
        .filter(|a| a.action.ends_with("_fail"))
        .map(|a| (a.bundle.as_str(), a.action.as_str(), a.events))
        .collect();
    assert_eq!(failures, [("1.2.0", "update_fail", 1)]);

    // An event older than the window: counted as an event, not as a device.
    let late = event(APP, "dev-b", "ping", DAY0 - MILLIS_PER_DAY);
    s.ingest_stats(StatsIngest {
        events: std::slice::from_ref(&late),
        channels: &[],
        sightings: &[],
        active_devices_since: DAY0,
        max_bundles_per_day: 0,
    })
    .await
    .unwrap();
    let r = s
        .stats_rollups(APP, "2025-12-31", "2025-12-31")
        .await
        .unwrap();
    assert_eq!(r.actions.len(), 1);
    assert_eq!(
        (r.actions[0].channel.as_str(), r.actions[0].events),
        ("", 1)
    );
    assert!(r.devices.is_empty());
}

pub async fn suite_export<S: Store>(s: &S) {
    let mut events: Vec<StatsEvent> = (0..25)
        .map(|i| event(APP, &format!("dev-{}", i % 3), "ping", DAY0 + i * 1000))
        .collect();
    events[4].metadata = Some(BTreeMap::from([("k".to_string(), "v".to_string())]));
    events.push(event(OTHER_APP, "dev-0", "ping", DAY0));
    let channels: Vec<Option<String>> = (0..events.len())
        .map(|i| (i % 2 == 0).then(|| "beta".to_string()))
        .collect();
    s.ingest_stats(StatsIngest {
        events: &events,
        channels: &channels,
        sightings: &[],
        active_devices_since: 0,
        max_bundles_per_day: 0,
    })
    .await
    .unwrap();
    let all = all_events(s, APP).await;
    assert_eq!(all.len(), 25);
    let read: Vec<StatsEvent> = all.iter().map(|e| e.event.clone()).collect();
    assert_eq!(read, events[..25]);
    assert_eq!(all[0].channel.as_deref(), Some("beta"));
    assert_eq!(all[1].channel, None);
    assert!(all.windows(2).all(|w| w[0].id < w[1].id));

    let query = |since, until, device: Option<&str>| EventExportQuery {
        app_id: APP.to_string(),
        since,
        until,
        device_id: device.map(str::to_string),
        after_id: 0,
        limit: 100,
    };
    let window = s
        .export_events(&query(Some(DAY0 + 5_000), Some(DAY0 + 10_000), None))
        .await
        .unwrap();
    let times: Vec<i64> = window.iter().map(|e| e.event.timestamp - DAY0).collect();
    assert_eq!(times, [5_000, 6_000, 7_000, 8_000, 9_000]);
    let one_device = s
        .export_events(&query(None, None, Some("dev-1")))
        .await
        .unwrap();
    assert_eq!(one_device.len(), 8);
    assert!(one_device.iter().all(|e| e.event.device_id == "dev-1"));
}

pub async fn suite_retention<S: Store>(s: &S) {
    let mut events: Vec<StatsEvent> = (0..40)
        .map(|i| {
            event(
                APP,
                &format!("dev-{i}"),
                "ping",
                DAY0 - 40 * MILLIS_PER_DAY + i,
            )
        })
        .collect();
    for e in &mut events {
        e.received_at = e.timestamp;
    }
    let fresh: Vec<StatsEvent> = (0..7)
        .map(|i| event(APP, &format!("new-{i}"), "ping", DAY0 + i))
        .collect();
    for batch in [&events, &fresh] {
        s.ingest_stats(StatsIngest {
            events: batch,
            channels: &[],
            sightings: &[],
            active_devices_since: 0,
            max_bundles_per_day: 0,
        })
        .await
        .unwrap();
    }
    let before = s
        .stats_rollups(APP, "2025-01-01", "2027-01-01")
        .await
        .unwrap();
    let cutoff = DAY0 - 30 * MILLIS_PER_DAY;
    let mut deleted = 0;
    let mut rounds = 0;
    loop {
        let n = s.delete_events_received_before(cutoff, 15).await.unwrap();
        if n == 0 {
            break;
        }
        assert!(n <= 15, "at most one batch per call: {n}");
        deleted += n;
        rounds += 1;
    }
    assert_eq!((deleted, rounds), (40, 3));
    let left = all_events(s, APP).await;
    assert_eq!(left.len(), 7);
    assert!(left.iter().all(|e| e.event.device_id.starts_with("new-")));

    let cutoff_day = day_of(cutoff);
    let mut pruned = 0;
    loop {
        let n = s.delete_device_days_before(&cutoff_day, 16).await.unwrap();
        if n == 0 {
            break;
        }
        pruned += n;
    }
    assert_eq!(pruned, 40);
    // Rollups are kept.
    let after = s
        .stats_rollups(APP, "2025-01-01", "2027-01-01")
        .await
        .unwrap();
    assert_eq!(sorted(after), sorted(before));
}

/// Deleting an app removes its rollups with it.
pub async fn suite_delete_app_removes_analytics<S: Store>(s: &S) {
    s.create_app(APP, "Example", 1).await.unwrap();
    let events = vec![
        event(APP, "dev-1", "set", DAY0),
        event(OTHER_APP, "dev-1", "set", DAY0),
    ];
    s.ingest_stats(StatsIngest {
        events: &events,
        ..StatsIngest::default()
    })
    .await
    .unwrap();
    let day = day_of(DAY0);
    assert_eq!(
        s.stats_rollups(APP, &day, &day)
            .await
            .unwrap()
            .devices
            .len(),
        1
    );
    s.delete_app(APP, 100).await.unwrap();
    assert_eq!(
        s.stats_rollups(APP, &day, &day).await.unwrap(),
        Rollups::default()
    );
    // Other apps keep theirs.
    let other = s.stats_rollups(OTHER_APP, &day, &day).await.unwrap();
    assert_eq!((other.actions.len(), other.devices.len()), (1, 1));
}

/// A flood of invented bundle names (10,000 for one app and day, in many
/// commits) leaves the rollups bounded: the first `CAP` unknown names are
/// kept, the app's own bundles always are, the rest count as `other`, and
/// each commit says how many events it folded. The raw events keep every name.
pub async fn suite_rollup_cardinality_cap<S: Store>(s: &S) {
    const CAP: u32 = 50;
    const FLOOD: usize = 10_000;
    s.create_app(APP, "Example", 1).await.unwrap();
    s.create_bundle(super::new_bundle(APP, "7.7.7"), 1)
        .await
        .unwrap();
    let mut folded = 0;
    for commit in 0..10 {
        let mut events: Vec<StatsEvent> = (0..FLOOD / 10)
            .map(|i| {
                let n = commit * (FLOOD / 10) + i;
                let mut e = event(APP, &format!("dev-{}", n % 20), "ping", DAY0 + n as i64);
                e.version_name = format!("0.0.{n}");
                e
            })
            .collect();
        // A real bundle reported late in the day is still kept by name.
        let mut real = event(APP, "dev-real", "set", DAY0 + 50_000);
        real.version_name = "7.7.7".into();
        events.push(real);
        let outcome = s
            .ingest_stats(StatsIngest {
                events: &events,
                channels: &[],
                sightings: &[],
                active_devices_since: 0,
                max_bundles_per_day: CAP,
            })
            .await
            .unwrap();
        folded += outcome.folded_events;
    }
    assert_eq!(folded, (FLOOD - CAP as usize) as u64);

    let day = day_of(DAY0);
    let r = s.stats_rollups(APP, &day, &day).await.unwrap();
    let mut bundles: Vec<&str> = r.actions.iter().map(|a| a.bundle.as_str()).collect();
    bundles.sort_unstable();
    bundles.dedup();
    // CAP invented names + the real bundle + `other`.
    assert_eq!(bundles.len(), CAP as usize + 2, "{bundles:?}");
    assert!(bundles.contains(&"7.7.7") && bundles.contains(&"other"));
    // Bounded rows: (names) × (ping, set) at most; devices likewise.
    assert!(r.actions.len() <= CAP as usize + 3, "{}", r.actions.len());
    assert!(r.devices.len() <= CAP as usize + 2, "{}", r.devices.len());
    let other: i64 = r
        .actions
        .iter()
        .filter(|a| a.bundle == "other")
        .map(|a| a.events)
        .sum();
    assert_eq!(other, (FLOOD - CAP as usize) as i64);
    let total: i64 = r.actions.iter().map(|a| a.events).sum();
    assert_eq!(total, (FLOOD + 10) as i64, "every event still counted");
    // Names already held keep counting by name.
    let mut again = event(APP, "dev-x", "ping", DAY0 + 60_000);
    again.version_name = "0.0.0".into();
    let outcome = s
        .ingest_stats(StatsIngest {
            events: std::slice::from_ref(&again),
            max_bundles_per_day: CAP,
            ..StatsIngest::default()
        })
        .await
        .unwrap();
    assert_eq!(outcome.folded_events, 0);
    // The raw events are all there, with their own names.
    assert_eq!(all_events(s, APP).await.len(), FLOOD + 11);
}
