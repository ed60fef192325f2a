//! Fleet simulations: thousands of devices ask `/updates`, install what they
//! are offered and report `set` or `update_fail` through `/stats`, while a
//! manual clock moves minute by minute and the rollout control loop runs a
//! pass after each minute. In-process: the real router and store, no sockets.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is its failure report

use axum::body::Body;
use axum::http::Request;
use futures_util::future::join_all;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;
use tower::ServiceExt;
use updraft_core::control::wilson_lower_bound;
use updraft_core::model::{Clock, ManualClock, Role, RolloutDecision};
use updraft_server::control::TickReport;
use updraft_server::state::{AppState, ServerConfig};
use updraft_server::{router, Server};
use updraft_store::{ApiKeyStore, AppStore, NewApiKey, SqliteStore};

const APP: &str = "com.example.app";
const MINUTE: i64 = 60_000;
const STABLE: &str = "1.0.0";
const NEXT: &str = "1.1.0";
/// Each device checks for an update every this many minutes (staggered).
const CHECK_EVERY: usize = 10;
const FLEET: usize = 2000;

struct SimDevice {
    id: String,
    running: String,
    /// Installing `NEXT` fails on this device, every time.
    fails_on_next: bool,
}

/// One stats report the simulation sent.
struct Sent {
    at: i64,
    version: String,
    failed: bool,
}

/// What one simulated minute did.
#[derive(Default)]
struct Minute {
    /// Offers by version.
    offers: HashMap<String, usize>,
    /// Devices already on `NEXT` that asked and were offered something else.
    moved_off_next: usize,
    report: TickReport,
}

struct Sim {
    app: axum::Router,
    state: AppState,
    clock: Arc<ManualClock>,
    admin: String,
    devices: Vec<SimDevice>,
    start: i64,
    sent: Vec<Sent>,
    _server: Server,
    _dir: tempfile::TempDir,
}

fn device_id(i: usize) -> String {
    format!("{:08x}-0000-4000-8000-{:012x}", i, i * 7919)
}

fn device_body(id: &str, running: &str) -> Value {
    json!({
        "platform": "android",
        "device_id": id,
        "app_id": APP,
        "custom_id": "",
        "version_build": "1.0.0",
        "version_code": "10",
        "version_os": "14",
        "version_name": running,
        "plugin_version": "8.51.14",
        "is_emulator": false,
        "is_prod": true,
        "install_source": "google_play",
        "defaultChannel": ""
    })
}

impl Sim {
    /// A fleet of `FLEET` devices on `STABLE`; 30 % of them, spread over
    /// the check slots, fail to install `NEXT` when `failing`.
    async fn start(failing: bool) -> Sim {
        let dir = tempfile::tempdir().unwrap();
        let config = ServerConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            data_dir: dir.path().to_path_buf(),
            ..ServerConfig::default()
        };
        let store = SqliteStore::open(dir.path()).await.unwrap();
        store.create_app(APP, "Example", 1).await.unwrap();
        let (_, admin) = store
            .create_api_key(
                NewApiKey {
                    name: "admin".into(),
                    role: Role::Admin,
                    app_id: None,
                    expires_at: None,
                },
                1,
            )
            .await
            .unwrap();
        // Near real time (retention and day rollups look at the wall clock), on a minute.
        let start =
            (updraft_core::model::Clock::now(&updraft_core::model::SystemClock) / MINUTE) * MINUTE;
        let clock = Arc::new(ManualClock::new(start));
        let server = Server::bind_with_clock(config, Arc::new(store), clock.clone())
            .await
            .unwrap();
        let state = server.state().clone();
        let app = router(state.clone());
        let devices = (0..FLEET)
            .map(|i| SimDevice {
                id: device_id(i),
                running: STABLE.to_string(),
                // Not `i % 10`: that would tie failing to the minute a device checks.
                fails_on_next: failing && (i / CHECK_EVERY) % 10 < 3,
            })
            .collect();
        let sim = Sim {
            app,
            state,
            clock,
            admin,
            devices,
            start,
            sent: Vec::new(),
            _server: server,
            _dir: dir,
        };
        for version in [STABLE, NEXT] {
            let (status, body) = sim
                .api(
                    "POST",
                    &format!("/api/v1/apps/{APP}/bundles"),
                    Some(json!({
                        "version": version,
                        "external_url": format!("https://cdn.example.com/{version}.zip"),
                        "checksum": "9f2c5e1d7a3b4c6d8e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d",
                    })),
                )
                .await;
            assert_eq!(status, 201, "{body}");
        }
        let (status, body) = sim
            .api(
                "POST",
                &format!("/api/v1/apps/{APP}/channels"),
                Some(json!({"name": "production", "public": true, "bundle": STABLE})),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        sim
    }

    async fn send(&self, request: Request<Body>) -> (u16, Value) {
        let response = self.app.clone().oneshot(request).await.unwrap();
        let status = response.status().as_u16();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    async fn api(&self, method: &str, uri: &str, body: Option<Value>) -> (u16, Value) {
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .header("authorization", format!("Bearer {}", self.admin))
            .header("content-type", "application/json")
            .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
            .unwrap();
        self.send(request).await
    }

    async fn device_post(&self, path: &str, body: Value) -> (u16, Value) {
        let request = Request::builder()
            .method("POST")
            .uri(path)
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .unwrap();
        self.send(request).await
    }

    async fn patch_production(&self, settings: Value) -> Value {
        let (status, body) = self
            .api(
                "PATCH",
                &format!("/api/v1/apps/{APP}/channels/production"),
                Some(settings),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body
    }

    async fn production(&self) -> Value {
        let (status, body) = self
            .api(
                "GET",
                &format!("/api/v1/apps/{APP}/channels/production"),
                None,
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body
    }

    fn share_on_next(&self) -> f64 {
        let on_next = self.devices.iter().filter(|d| d.running == NEXT).count();
        on_next as f64 / self.devices.len() as f64
    }

    /// The devices due this minute check and report; then the clock moves a
    /// minute and the control loop runs one pass.
    async fn minute(&mut self) -> Minute {
        let now = self.clock.now();
        let slot = ((now - self.start) / MINUTE) as usize % CHECK_EVERY;
        let due: Vec<usize> = (0..self.devices.len())
            .filter(|i| i % CHECK_EVERY == slot)
            .collect();
        let checks = due.iter().map(|&i| {
            let d = &self.devices[i];
            self.device_post("/updates", device_body(&d.id, &d.running))
        });
        let answers = join_all(checks).await;
        let mut minute = Minute::default();
        let mut reports = Vec::new();
        for (&i, (status, answer)) in due.iter().zip(answers) {
            assert_eq!(status, 200, "{answer}");
            let Some(offered) = answer
                .get("url")
                .and(answer.get("version"))
                .and_then(Value::as_str)
            else {
                continue;
            };
            *minute.offers.entry(offered.to_string()).or_default() += 1;
            let device = &mut self.devices[i];
            if device.running == NEXT {
                minute.moved_off_next += 1;
            }
            let failed = offered == NEXT && device.fails_on_next;
            let mut event = device_body(&device.id, &device.running);
            event["action"] = json!(if failed { "update_fail" } else { "set" });
            event["version_name"] = json!(offered);
            event["old_version_name"] = json!(device.running);
            reports.push(event);
            self.sent.push(Sent {
                at: now,
                version: offered.to_string(),
                failed,
            });
            if !failed {
                device.running = offered.to_string();
            }
        }
        let posted = join_all(reports.into_iter().map(|e| self.device_post("/stats", e))).await;
        for (status, body) in posted {
            assert_eq!(status, 200, "{body}");
        }
        self.clock.advance(MINUTE);
        minute.report = self.state.control.tick().await;
        minute
    }

    /// Attempts and failures of `NEXT` the simulation reported in `since..until`.
    fn tally(&self, since: i64, until: i64) -> (i64, i64) {
        let window = self
            .sent
            .iter()
            .filter(|s| s.version == NEXT && s.at >= since && s.at < until);
        window.fold((0, 0), |(attempts, failures), s| {
            (attempts + 1, failures + i64::from(s.failed))
        })
    }

    async fn decisions(&self) -> Vec<RolloutDecision> {
        let mut all = self
            .state
            .store
            .list_rollout_decisions(APP, Some("production"), 1000)
            .await
            .unwrap();
        all.reverse();
        all
    }
}

/// The largest distance from `p` a share of `n` independent devices may
/// plausibly be: 4 binomial standard deviations, plus one device.
fn share_bound(p: f64, n: usize) -> f64 {
    4.0 * (p * (1.0 - p) / n as f64).sqrt() + 1.0 / n as f64
}

fn auto_pause(action: &str, min_attempts: u32, cooldown_minutes: u32) -> Value {
    json!({
        "enabled": true,
        "window_minutes": 60,
        "failure_rate_bps": 500,
        "confidence": 0.95,
        "min_attempts": min_attempts,
        "min_failures": 5,
        "action": action,
        "cooldown_minutes": cooldown_minutes,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_rollout_ramps_through_every_step_and_is_promoted() {
    let mut sim = Sim::start(false).await;
    let started = sim
        .patch_production(json!({
            "rollout_bundle": NEXT,
            "rollout_percentage_bps": 100,
            "auto_pause": auto_pause("pause", 20, 60),
            "ramp": {"enabled": true, "steps_bps": [100, 500, 2500, 10000], "min_dwell_minutes": 30, "min_attempts": 5, "promote_at_end": true},
        }))
        .await;
    assert_eq!(started["rollout"]["bundle"], NEXT);
    assert_eq!(started["rollout"]["percentage_bps"], 100);
    let t0 = sim.clock.now();
    // (percentage of the step, share of the fleet on NEXT when it ended)
    let mut steps: Vec<(u32, f64)> = Vec::new();
    let mut promoted_at = None;
    for _ in 0..200 {
        let share = sim.share_on_next();
        let minute = sim.minute().await;
        assert_eq!(minute.offers.get(STABLE), None, "nobody is sent back");
        assert_eq!(minute.report.errors, 0);
        for d in &minute.report.decisions {
            match d.action.as_str() {
                "advanced" | "promoted" => steps.push((d.from_bps, share)),
                "held" => {}
                other => panic!("unexpected decision {other}: {}", d.message),
            }
            if d.action == "promoted" {
                promoted_at = Some(d.at);
            }
        }
        if promoted_at.is_some() {
            break;
        }
    }
    let promoted_at = promoted_at.expect("the rollout was promoted");
    let percentages: Vec<u32> = steps.iter().map(|(p, _)| *p).collect();
    assert_eq!(percentages, vec![100, 500, 2500, 10_000]);
    for (bps, share) in &steps {
        let p = f64::from(*bps) / 10_000.0;
        assert!(
            (share - p).abs() <= share_bound(p, FLEET),
            "at {bps} bps the fleet share on the rollout was {share}"
        );
    }
    // Four steps of at least 30 minutes each.
    assert!(promoted_at - t0 >= 4 * 30 * MINUTE);
    let changes: Vec<RolloutDecision> = sim
        .decisions()
        .await
        .into_iter()
        .filter(|d| d.action != "held")
        .collect();
    let expected = [
        ("advanced", 100, 500),
        ("advanced", 500, 2500),
        ("advanced", 2500, 10_000),
        ("promoted", 10_000, 10_000),
    ];
    assert_eq!(changes.len(), expected.len());
    let mut step_start = t0;
    for (d, (action, from, to)) in changes.iter().zip(expected) {
        assert_eq!(
            (d.action.as_str(), d.from_bps, d.to_bps),
            (action, from, to)
        );
        assert_eq!(d.threshold_bps, 500);
        assert!(d.at - step_start >= 30 * MINUTE, "dwell respected");
        // The step's numbers are exactly what the devices reported on it.
        let (attempts, failures) = sim.tally(step_start, d.at);
        assert_eq!(
            (d.attempts, d.failures),
            (attempts, failures),
            "{}",
            d.message
        );
        assert!(d.attempts >= 5);
        assert_eq!(d.failure_rate, Some(0.0));
        assert_eq!(
            d.reason,
            if action == "promoted" {
                "ramp_complete"
            } else {
                "healthy"
            }
        );
        step_start = d.at;
    }
    let channel = sim.production().await;
    assert_eq!(channel["bundle"], NEXT);
    assert_eq!(channel["rollout"], Value::Null);
    assert_eq!(sim.share_on_next(), 1.0);
    // Holds are recorded when their reason changes, not every minute.
    let holds = sim.decisions().await.len() - changes.len();
    assert!(holds <= 2 * 4, "{holds} holds recorded");
    let (status, history) = sim
        .api(
            "GET",
            &format!("/api/v1/apps/{APP}/channels/production/history"),
            None,
        )
        .await;
    assert_eq!(status, 200);
    let reasons: Vec<(&str, &str)> = history["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| (h["actor"].as_str().unwrap(), h["reason"].as_str().unwrap()))
        .collect();
    assert_eq!(
        reasons[..5],
        [
            ("control-loop", "promote"),
            ("control-loop", "ramp"),
            ("control-loop", "ramp"),
            ("control-loop", "ramp"),
            ("key:admin", "rollout_start"),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_rollout_pauses_at_the_first_step_and_spreads_no_further() {
    let mut sim = Sim::start(true).await;
    // A first step of 5 %: about 100 of the 2,000 devices, so that the share
    // of failing devices among them (the rollout id, hence the buckets, is
    // random) is never so small that the step looks healthy by chance.
    sim.patch_production(json!({
        "rollout_bundle": NEXT,
        "rollout_percentage_bps": 500,
        "auto_pause": auto_pause("pause", 20, 60),
        "ramp": {"enabled": true, "steps_bps": [500, 2500, 10000], "min_dwell_minutes": 30, "min_attempts": 5},
    }))
    .await;
    let t0 = sim.clock.now();
    let mut paused = None;
    for _ in 0..120 {
        let minute = sim.minute().await;
        if let Some(d) = minute.report.decisions.iter().find(|d| d.action != "held") {
            paused = Some(d.clone());
            break;
        }
    }
    let paused = paused.expect("auto-pause acted");
    assert_eq!(
        (paused.action.as_str(), paused.reason.as_str()),
        ("paused", "auto_pause_triggered")
    );
    assert_eq!(
        (paused.from_bps, paused.to_bps),
        (500, 500),
        "paused on the first step"
    );
    let (attempts, failures) = sim.tally(t0.max(paused.at - 60 * MINUTE), paused.at);
    assert_eq!((paused.attempts, paused.failures), (attempts, failures));
    assert!(
        paused.attempts >= 20 && paused.failures >= 5,
        "{}",
        paused.message
    );
    // It acted at the first pass where the policy's conditions all held.
    let (earlier_attempts, earlier_failures) = sim.tally(t0, paused.at - MINUTE);
    let earlier_bound = wilson_lower_bound(earlier_failures, earlier_attempts, 0.95).unwrap_or(0.0);
    assert!(
        earlier_attempts < 20 || earlier_failures < 5 || earlier_bound <= 0.05,
        "{earlier_failures}/{earlier_attempts} a minute earlier should already have paused"
    );
    assert_eq!(paused.failure_rate, Some(failures as f64 / attempts as f64));
    let bound = wilson_lower_bound(failures, attempts, 0.95).unwrap();
    assert!((paused.wilson_lower_bound.unwrap() - bound).abs() < 1e-12);
    assert!(bound > 0.05, "bound {bound}");
    assert_eq!(paused.threshold_bps, 500);
    let channel = sim.production().await;
    assert_eq!(channel["rollout"]["paused"], true);
    assert!(channel["rollout"]["auto_pause_triggered_at"].is_string());
    // Paused: nobody new gets it, nobody on it is moved off it.
    let on_next = sim.share_on_next();
    assert!(on_next > 0.0);
    for _ in 0..30 {
        let minute = sim.minute().await;
        assert_eq!(
            minute.offers.get(NEXT),
            None,
            "a paused rollout reached a device"
        );
        assert_eq!(minute.moved_off_next, 0);
        assert!(minute.report.decisions.iter().all(|d| d.action == "held"));
    }
    assert_eq!(sim.share_on_next(), on_next);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_action_returns_every_device_to_stable() {
    let mut sim = Sim::start(true).await;
    sim.patch_production(json!({
        "rollout_bundle": NEXT,
        "rollout_percentage_bps": 1000,
        "auto_pause": auto_pause("rollback", 50, 60),
    }))
    .await;
    let mut rolled_back = None;
    for _ in 0..120 {
        let minute = sim.minute().await;
        if let Some(d) = minute.report.decisions.iter().find(|d| d.action != "held") {
            rolled_back = Some(d.clone());
            break;
        }
    }
    let rolled_back = rolled_back.expect("auto-pause acted");
    assert_eq!(rolled_back.action, "rolled_back");
    assert!(rolled_back.attempts >= 50);
    let on_next = sim.devices.iter().filter(|d| d.running == NEXT).count();
    assert!(
        on_next >= 20,
        "{on_next} devices on the rollout; {rolled_back:?}"
    );
    let channel = sim.production().await;
    assert_eq!(channel["rollout"], Value::Null);
    assert_eq!(channel["bundle"], STABLE);
    let mut back = 0;
    for _ in 0..CHECK_EVERY {
        let minute = sim.minute().await;
        assert_eq!(minute.offers.get(NEXT), None);
        back += minute.offers.get(STABLE).copied().unwrap_or(0);
    }
    assert_eq!(sim.share_on_next(), 0.0);
    assert_eq!(back, on_next);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_alerts_once_per_cooldown_and_changes_nothing() {
    let mut sim = Sim::start(true).await;
    sim.patch_production(json!({
        "rollout_bundle": NEXT,
        "rollout_percentage_bps": 1000,
        "auto_pause": auto_pause("notify", 30, 30),
    }))
    .await;
    let mut alerts = Vec::new();
    for _ in 0..130 {
        let minute = sim.minute().await;
        assert_eq!(minute.report.errors, 0);
        alerts.extend(
            minute
                .report
                .decisions
                .iter()
                .filter(|d| d.action == "notified")
                .map(|d| d.at),
        );
    }
    assert!(alerts.len() >= 3, "{alerts:?}");
    for pair in alerts.windows(2) {
        assert_eq!(pair[1] - pair[0], 30 * MINUTE, "{alerts:?}");
    }
    let channel = sim.production().await;
    assert_eq!(channel["rollout"]["paused"], false);
    assert_eq!(channel["rollout"]["percentage_bps"], 1000);
    let last = *alerts.last().unwrap();
    assert_eq!(
        channel["rollout"]["auto_pause_triggered_at"],
        updraft_core::analytics::rfc3339(last)
    );
    let decisions = sim.decisions().await;
    let cooldown_holds = decisions.iter().filter(|d| d.reason == "cooldown").count();
    // One recorded hold per cooldown period, not one per minute.
    assert!(cooldown_holds <= alerts.len(), "{cooldown_holds}");
    assert!(cooldown_holds >= alerts.len() - 1, "{cooldown_holds}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_few_attempts_hold_even_at_a_high_failure_rate() {
    let mut sim = Sim::start(true).await;
    sim.patch_production(json!({
        "rollout_bundle": NEXT,
        "rollout_percentage_bps": 100,
        "auto_pause": auto_pause("pause", 200, 60),
    }))
    .await;
    let t0 = sim.clock.now();
    for _ in 0..90 {
        let minute = sim.minute().await;
        assert!(
            minute.report.decisions.iter().all(|d| d.action == "held"),
            "acted on too few attempts"
        );
    }
    let (attempts, failures) = sim.tally(t0, sim.clock.now());
    assert!(
        failures * 10 > attempts * 2,
        "{failures}/{attempts}: the failure rate is high"
    );
    assert!(attempts > 20 && attempts < 200, "{attempts}");
    let channel = sim.production().await;
    assert_eq!(channel["rollout"]["paused"], false);
    let decisions = sim.decisions().await;
    assert!(!decisions.is_empty());
    assert!(decisions
        .iter()
        .all(|d| (d.action.as_str(), d.reason.as_str()) == ("held", "not_enough_attempts")));
    assert_eq!(decisions.len(), 1, "the same hold is recorded once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_release_runs_at_its_time_and_not_before() {
    let mut sim = Sim::start(false).await;
    let run_at = sim.clock.now() + 30 * MINUTE;
    let (status, created) = sim
        .api(
            "POST",
            &format!("/api/v1/apps/{APP}/schedules"),
            Some(json!({"channel": "production", "run_at": run_at, "bundle": NEXT})),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["status"], "pending");
    let id = created["id"].as_i64().unwrap();
    let (status, past) = sim
        .api(
            "POST",
            &format!("/api/v1/apps/{APP}/schedules"),
            Some(json!({"channel": "production", "run_at": sim.clock.now() - 1, "bundle": NEXT})),
        )
        .await;
    assert_eq!(
        (status, past["error"].as_str()),
        (400, Some("invalid_run_at"))
    );
    let mut ran_at = None;
    for _ in 0..40 {
        let minute = sim.minute().await;
        if minute.report.schedules_done.contains(&id) {
            ran_at = Some(sim.clock.now());
            break;
        }
        assert_eq!(minute.offers.get(NEXT), None, "served before its time");
        assert_eq!(sim.production().await["bundle"], STABLE);
    }
    assert_eq!(
        ran_at,
        Some(run_at),
        "ran at the first pass at or after run_at"
    );
    assert_eq!(sim.production().await["bundle"], NEXT);
    let (_, list) = sim
        .api("GET", &format!("/api/v1/apps/{APP}/schedules"), None)
        .await;
    let schedule = &list["schedules"][0];
    assert_eq!(schedule["status"], "done");
    let (_, history) = sim
        .api(
            "GET",
            &format!("/api/v1/apps/{APP}/channels/production/history?limit=1"),
            None,
        )
        .await;
    assert_eq!(history["history"][0]["actor"], format!("schedule:{id}"));
    assert_eq!(history["history"][0]["reason"], "set");
    assert_eq!(history["history"][0]["bundle"], NEXT);
    let mut offered = 0;
    for _ in 0..CHECK_EVERY {
        offered += sim.minute().await.offers.get(NEXT).copied().unwrap_or(0);
    }
    assert_eq!(offered, FLEET);
}
