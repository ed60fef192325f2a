//! The public device API the plugin calls: `/updates`, `/updates/manifest_size`,
//! `/stats` and `/channel_self`. Thin: parse, look up the in-memory release,
//! let `updraft-core` decide, hand writes to the background writers.

use crate::error::{json_with_status, DeviceResponse};
use crate::limiter::RetryAfter;
use crate::metrics::{db_operation, rate_scope, UpdateCheckOutcome};
use crate::state::AppState;
use crate::write_health::LOW_DISK_RETRY_AFTER_SECS;
use crate::writers::SightingFields;
use crate::writers::StatsSubmitError;
use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::{json, Value};
use updraft_core::channel_self::{self, ChannelSelfAnswer, OverrideEffect};
use updraft_core::decision::{answer_manifest_size, answer_update};
use updraft_core::error::{DeviceError, DeviceErrorCode};
use updraft_core::model::{DeviceSighting, Millis, Observed, ObservedAt, OverrideSource};
use updraft_core::request::{
    parse_channel_list_query, parse_channel_self_bytes, parse_channel_self_request, parse_json,
    parse_update_bytes, parse_update_request, query_to_body, ChannelSelfMethod, ChannelSelfRequest,
    UpdateRequest,
};
use updraft_core::stats::{parse_stats_bytes, stats_answer};

/// The device routes, with or without the legacy `/plugin` prefix.
pub fn is_device_path(path: &str) -> bool {
    let path = path.strip_prefix("/plugin").unwrap_or(path);
    matches!(
        path,
        "/updates" | "/updates/manifest_size" | "/stats" | "/channel_self"
    )
}

pub fn routes() -> Router<AppState> {
    let device = Router::new()
        .route("/updates", get(health).post(updates))
        .route("/updates/manifest_size", axum::routing::post(manifest_size))
        .route("/stats", get(health).post(stats))
        .route(
            "/channel_self",
            get(channel_list)
                .post(channel_set)
                .put(channel_get)
                .delete(channel_unset),
        );
    // The hosted service's legacy aliases, for apps configured with them.
    Router::new().merge(device.clone()).nest("/plugin", device)
}

/// The per-device and per-app rate limits of the device routes (never per
/// address: carriers put whole regions behind one). A device over its limit
/// does not take from its app's. Refused with the hosted service's 429
/// `too_many_requests`, whose `Retry-After` the plugin honours on every
/// device route (it blocks its calls and keeps its stats queued until then).
fn admit(state: &AppState, app_id: &str, device_id: Option<&str>) -> Result<(), DeviceError> {
    let now = state.clock.now();
    if let Some(device_id) = device_id {
        if let Err(retry) = state.limiters.device.check((app_id, device_id), now) {
            state.metrics.record_rate_limited(rate_scope::DEVICE);
            return Err(too_many_requests(
                "device_rate_limit_exceeded",
                app_id,
                Some(device_id),
                retry,
                now,
            ));
        }
    }
    if let Err(retry) = state.limiters.app.check(app_id, now) {
        state.metrics.record_rate_limited(rate_scope::APP);
        return Err(too_many_requests(
            "app_rate_limit_exceeded",
            app_id,
            device_id,
            retry,
            now,
        ));
    }
    Ok(())
}

fn too_many_requests(
    reason: &str,
    app_id: &str,
    device_id: Option<&str>,
    retry: RetryAfter,
    now: Millis,
) -> DeviceError {
    let mut err = DeviceError::bad_request(DeviceErrorCode::TooManyRequests, "Too many requests")
        .with_status(429)
        .with("reason", reason)
        .with("app_id", app_id);
    if let Some(device_id) = device_id {
        err = err.with("device_id", device_id);
    }
    let reset_at = now.saturating_add(i64::try_from(retry.0).unwrap_or(i64::MAX / 2000) * 1000);
    err.with("rateLimitResetAt", reset_at)
        .with("retryAfterSeconds", retry.0)
}

async fn health() -> impl IntoResponse {
    axum::Json(json!({"status": "ok"}))
}

/// Reads a device body with the configured cap, as JSON.
async fn read_json(state: &AppState, body: Body) -> Result<Value, DeviceError> {
    parse_json(&read_bytes(state, body).await?)
}

/// Reads a device body with the configured cap.
async fn read_bytes(state: &AppState, body: Body) -> Result<Bytes, DeviceError> {
    axum::body::to_bytes(body, state.config.device_body_limit)
        .await
        .map_err(|err| {
            if crate::listener::is_body_too_slow(&err) {
                return DeviceError::bad_request(
                    DeviceErrorCode::BodyTimeout,
                    "The request body arrived slower than the minimum transfer rate",
                )
                .with_status(408);
            }
            DeviceError::bad_request(
                DeviceErrorCode::BodyTooLarge,
                format!(
                    "Request body is larger than {} bytes or could not be read",
                    state.config.device_body_limit
                ),
            )
            .with_status(413)
        })
}

/// What an update check tells the device registry, borrowed from the request.
fn update_sighting_fields<'a>(
    req: &'a UpdateRequest<'_>,
    versions: &'a CheckVersions,
    outcome: &'a str,
    offered: Option<&'a str>,
) -> SightingFields<'a> {
    SightingFields {
        app_id: &req.app_id,
        device_id: &req.device_id,
        platform: req.platform.as_str(),
        plugin_version: Some(versions.plugin.as_str()),
        version_os: req.version_os.as_deref(),
        version_build: Some(versions.build.as_str()),
        version_code: req.version_code.as_deref(),
        version_name: Some(&req.version_name),
        custom_id: Some(&*req.custom_id).filter(|c| !c.is_empty()),
        is_prod: req.is_prod,
        is_emulator: req.is_emulator,
        default_channel: req.default_channel.as_deref(),
        key_id: req.key_id.as_deref(),
        install_source: req.install_source.as_deref(),
        last_offered_version: offered,
        last_update_outcome: Some(outcome),
    }
}

/// The two versions of a check as the registry stores them (their text),
/// written without allocating.
struct CheckVersions {
    plugin: VersionText,
    build: VersionText,
}

impl CheckVersions {
    fn of(req: &UpdateRequest<'_>) -> Self {
        CheckVersions {
            plugin: VersionText::of(&req.plugin_version),
            build: VersionText::of(&req.version_build),
        }
    }
}

/// `semver::Version::to_string()` in a fixed buffer (a longer one, which
/// no device sends, on the heap).
enum VersionText {
    Inline { buf: [u8; 48], len: usize },
    Heap(String),
}

impl VersionText {
    fn of(version: &semver::Version) -> Self {
        use std::fmt::Write;
        struct Fixed {
            buf: [u8; 48],
            len: usize,
        }
        impl Write for Fixed {
            fn write_str(&mut self, piece: &str) -> std::fmt::Result {
                let end = self.len + piece.len();
                let slot = self.buf.get_mut(self.len..end).ok_or(std::fmt::Error)?;
                slot.copy_from_slice(piece.as_bytes());
                self.len = end;
                Ok(())
            }
        }
        let mut fixed = Fixed {
            buf: [0; 48],
            len: 0,
        };
        match write!(fixed, "{version}") {
            Ok(()) => VersionText::Inline {
                buf: fixed.buf,
                len: fixed.len,
            },
            Err(_) => VersionText::Heap(version.to_string()),
        }
    }

    fn as_str(&self) -> &str {
        match self {
            // Whole `&str` pieces were copied: always UTF-8.
            VersionText::Inline { buf, len } => std::str::from_utf8(&buf[..*len]).unwrap_or(""),
            VersionText::Heap(text) => text,
        }
    }
}

fn owned_sighting(fields: &SightingFields<'_>, now: Millis) -> DeviceSighting {
    let owned = |text: Option<&str>| text.map(str::to_string);
    DeviceSighting {
        app_id: fields.app_id.to_string(),
        device_id: fields.device_id.to_string(),
        platform: fields.platform.to_string(),
        plugin_version: owned(fields.plugin_version),
        version_os: owned(fields.version_os),
        version_build: owned(fields.version_build),
        version_code: owned(fields.version_code),
        version_name: owned(fields.version_name),
        custom_id: owned(fields.custom_id),
        is_prod: fields.is_prod,
        is_emulator: fields.is_emulator,
        default_channel: owned(fields.default_channel),
        key_id: owned(fields.key_id),
        install_source: owned(fields.install_source),
        last_offered_version: owned(fields.last_offered_version),
        last_update_outcome: owned(fields.last_update_outcome),
        seen_at: now,
        observed: Observed::all(ObservedAt::update_check(now)),
    }
}

/// An answer body serialised into this thread's reused buffer, then copied
/// once into the response (one allocation of the exact size).
fn json_answer(status: StatusCode, body: &Value) -> Response {
    thread_local! {
        static ANSWER_BUFFER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    let bytes = ANSWER_BUFFER.with(|buffer| {
        let mut buffer = buffer.borrow_mut();
        buffer.clear();
        serde_json::to_writer(&mut *buffer, body).map(|()| Bytes::copy_from_slice(&buffer))
    });
    match bytes {
        Ok(bytes) => {
            let content_type = HeaderValue::from_static("application/json");
            (status, [(header::CONTENT_TYPE, content_type)], bytes).into_response()
        }
        Err(err) => {
            tracing::error!(error = %err, "device answer could not be serialized");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

async fn updates(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    let result = async {
        // Parsed straight from the text: its strings stay borrowed from it.
        let bytes = read_bytes(&state, body).await?;
        let req = parse_update_bytes(&bytes)?;
        admit(&state, &req.app_id, Some(&req.device_id))?;
        let release = state.releases.get(&req.app_id);
        let base_url = state.base_url(&headers);
        let mut answer = answer_update(&req, &release, &base_url);
        state
            .downloads
            .finish_answer_links(&mut answer.body, &base_url);
        if release.app.is_some() {
            let now = state.clock.now();
            let versions = CheckVersions::of(&req);
            let fields = update_sighting_fields(
                &req,
                &versions,
                answer.outcome.as_str(),
                answer.offered_version.as_deref(),
            );
            state
                .registry
                .note_with(&fields, now, || owned_sighting(&fields, now));
        }
        let known_app = release.app.is_some().then(|| req.app_id.to_string());
        Ok::<_, DeviceError>((answer.body, answer.outcome, known_app))
    }
    .await;
    // The outcome rides along as an extension for the metrics middleware.
    let (mut response, check) = match result {
        Ok((body, outcome, known_app)) => {
            let mut response = json_answer(StatusCode::OK, &body);
            if let Some(app) = known_app {
                response
                    .extensions_mut()
                    .insert(crate::metrics::AppLabel(app.into()));
            }
            (response, UpdateCheckOutcome::of_answer(outcome))
        }
        Err(err) => {
            let check = UpdateCheckOutcome::rejected(err.code, err.status);
            (DeviceResponse::update_check(err), check)
        }
    };
    response.extensions_mut().insert(check);
    response
}

async fn manifest_size(State(state): State<AppState>, body: Body) -> Response {
    let result = async {
        let body = read_json(&state, body).await?;
        let req = parse_update_request(&body)?;
        admit(&state, &req.app_id, Some(&req.device_id))?;
        let release = state.releases.get(&req.app_id);
        Ok::<_, DeviceError>(answer_manifest_size(&req, &body, &release).body)
    }
    .await;
    match result {
        Ok(body) => axum::Json(body).into_response(),
        Err(err) => DeviceResponse::update_check(err),
    }
}

async fn stats(State(state): State<AppState>, body: Body) -> Response {
    let result = async {
        // Parsed straight from the text: no `Value` per event on the hot path.
        let body = read_bytes(&state, body).await?;
        let batch = parse_stats_bytes(&body, state.clock.now())?;
        drop(body);
        if batch.items.is_empty() {
            return Ok(json_with_status(
                200,
                json!({"status": "ok", "results": []}),
            ));
        }
        if state.releases.get(&batch.app_id).app.is_none() {
            return Err(DeviceError::app_not_found(&batch.app_id));
        }
        // A batch comes from one device: the first accepted event's.
        let device_id = batch
            .items
            .iter()
            .find_map(|item| item.as_ref().ok())
            .map(|parsed| parsed.event.device_id.as_str());
        admit(&state, &batch.app_id, device_id)?;
        // The answer only depends on which items were accepted; it is sent
        // once they are committed.
        let (status, answer) = stats_answer(&batch);
        let answer = serde_json::to_vec(&answer).map_err(|err| {
            tracing::error!(error = %err, "stats answer could not be serialized");
            DeviceError::bad_request(
                DeviceErrorCode::InternalError,
                "The answer could not be written",
            )
            .with_status(500)
        })?;
        let (events, sightings): (Vec<_>, Vec<_>) = batch
            .items
            .into_iter()
            .filter_map(Result::ok)
            .map(|parsed| (parsed.event, parsed.sighting))
            .unzip();
        if !events.is_empty() {
            if let Some(low) = state.write_health.refusal() {
                // 503 + Retry-After: the device keeps the batch and resends it.
                state.metrics.record_write_refused_low_disk();
                return Err(
                    DeviceError::bad_request(DeviceErrorCode::LowDiskSpace, low.message())
                        .with_status(503)
                        .with("retryAfterSeconds", LOW_DISK_RETRY_AFTER_SECS),
                );
            }
            let event_count = events.len();
            let waiting = state.metrics.stats_waiting();
            let submitted = state.stats.submit(events, sightings).await;
            drop(waiting);
            match submitted {
                Ok(()) => {
                    state.metrics.record_stats_events_committed(event_count);
                    state
                        .metrics
                        .record_app_stats_events(&batch.app_id, event_count);
                }
                Err(StatsSubmitError::Busy) => {
                    state.metrics.record_stats_rejected_busy();
                    return Err(DeviceError::bad_request(
                        DeviceErrorCode::TooManyRequests,
                        "Stats ingest is busy; retry after the given delay",
                    )
                    .with_status(429)
                    .with("retryAfterSeconds", 1));
                }
                Err(StatsSubmitError::Stopped) => {
                    return Err(DeviceError::bad_request(
                        DeviceErrorCode::ServiceUnavailable,
                        "The server is shutting down; retry shortly",
                    )
                    .with_status(503)
                    .with("retryAfterSeconds", 1));
                }
                Err(StatsSubmitError::Store(err)) => {
                    state
                        .metrics
                        .record_database_error(db_operation::STATS_COMMIT);
                    tracing::error!(error = %err, "stats could not be stored");
                    return Err(DeviceError::bad_request(
                        DeviceErrorCode::StorageError,
                        "Stats could not be stored; retry shortly",
                    )
                    .with_status(503)
                    .with("retryAfterSeconds", crate::error::DATABASE_RETRY_AFTER_SECS));
                }
            }
        }
        Ok(json_text_with_status(status, answer))
    }
    .await;
    result.unwrap_or_else(|err| DeviceResponse(err).into_response())
}

/// A response with already serialized JSON, as `json_with_status` would send it.
fn json_text_with_status(status: u16, json: Vec<u8>) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    let content_type = HeaderValue::from_static("application/json");
    (status, [(header::CONTENT_TYPE, content_type)], json).into_response()
}

/// Applies what a channel_self answer asks of storage, then answers.
async fn apply_channel_answer(
    state: &AppState,
    app_id: &str,
    device_id: &str,
    answer: ChannelSelfAnswer,
) -> Response {
    let now = state.clock.now();
    let stored = match answer.effect {
        OverrideEffect::None => Ok(()),
        OverrideEffect::Set { channel_id } => state
            .store
            .set_override(app_id, device_id, channel_id, OverrideSource::Device, now)
            .await
            .map(|_| ()),
        OverrideEffect::Delete => state
            .store
            .delete_override(app_id, device_id)
            .await
            .map(|_| ()),
    };
    let changed = !matches!(answer.effect, OverrideEffect::None);
    if let Err(err) = stored {
        state
            .metrics
            .record_database_error(db_operation::CHANNEL_OVERRIDE);
        tracing::error!(error = %err, "channel override could not be stored");
        return json_with_status(
            200,
            json!({"error": "override_not_allowed", "message": "Cannot do channel override"}),
        );
    }
    if changed {
        if let Err(err) = state.releases.refresh(app_id).await {
            state
                .metrics
                .record_database_error(db_operation::RELEASE_RELOAD);
            tracing::error!(error = %err, app_id, "release refresh failed after a channel override");
        }
    }
    json_with_status(answer.status, answer.body)
}

async fn channel_call(
    state: &AppState,
    req: Result<ChannelSelfRequest<'_>, DeviceError>,
    method: ChannelSelfMethod,
) -> Response {
    let req = match req {
        Ok(req) => req,
        Err(err) => return DeviceResponse(err).into_response(),
    };
    if let Err(err) = admit(state, &req.app_id, Some(&req.device_id)) {
        return DeviceResponse(err).into_response();
    }
    let release = state.releases.get(&req.app_id);
    let answer = match method {
        ChannelSelfMethod::Set => channel_self::answer_channel_set(&req, &release),
        ChannelSelfMethod::Get => channel_self::answer_channel_get(&req, &release),
        ChannelSelfMethod::Unset => channel_self::answer_channel_unset(&req, &release),
    };
    apply_channel_answer(state, &req.app_id, &req.device_id, answer).await
}

/// POST and PUT: the body parsed straight from its text.
async fn channel_body_call(state: AppState, body: Body, method: ChannelSelfMethod) -> Response {
    match read_bytes(&state, body).await {
        Ok(bytes) => channel_call(&state, parse_channel_self_bytes(&bytes, method), method).await,
        Err(err) => DeviceResponse(err).into_response(),
    }
}

async fn channel_set(State(state): State<AppState>, body: Body) -> Response {
    channel_body_call(state, body, ChannelSelfMethod::Set).await
}

async fn channel_get(State(state): State<AppState>, body: Body) -> Response {
    channel_body_call(state, body, ChannelSelfMethod::Get).await
}

async fn channel_unset(
    State(state): State<AppState>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Response {
    let body = query_to_body(&pairs);
    let method = ChannelSelfMethod::Unset;
    channel_call(&state, parse_channel_self_request(&body, method), method).await
}

async fn channel_list(
    State(state): State<AppState>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Response {
    match parse_channel_list_query(&pairs) {
        Ok(q) => {
            if let Err(err) = admit(&state, &q.app_id, q.device_id.as_deref()) {
                return DeviceResponse(err).into_response();
            }
            let release = state.releases.get(&q.app_id);
            let answer = channel_self::answer_channel_list(&q, &release);
            json_with_status(answer.status, answer.body)
        }
        Err(err) => DeviceResponse(err).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use updraft_core::request::parse_update_bytes;

    /// The sighting as the handler built it before it was borrowed.
    fn reference_sighting(
        req: &UpdateRequest<'_>,
        outcome: &str,
        offered: Option<&str>,
        now: Millis,
    ) -> DeviceSighting {
        DeviceSighting {
            app_id: req.app_id.to_string(),
            device_id: req.device_id.to_string(),
            platform: req.platform.as_str().to_string(),
            plugin_version: Some(req.plugin_version.to_string()),
            version_os: req.version_os.as_deref().map(str::to_string),
            version_build: Some(req.version_build.to_string()),
            version_code: req.version_code.as_deref().map(str::to_string),
            version_name: Some(req.version_name.to_string()),
            custom_id: Some(req.custom_id.to_string()).filter(|c| !c.is_empty()),
            is_prod: req.is_prod,
            is_emulator: req.is_emulator,
            default_channel: req.default_channel.as_deref().map(str::to_string),
            key_id: req.key_id.as_deref().map(str::to_string),
            install_source: req.install_source.as_deref().map(str::to_string),
            last_offered_version: offered.map(str::to_string),
            last_update_outcome: Some(outcome.to_string()),
            seen_at: now,
            observed: Observed::all(ObservedAt::update_check(now)),
        }
    }

    #[test]
    fn the_borrowed_sighting_is_the_one_the_handler_built() {
        let long_pre = format!("1.0.0-{}", "a".repeat(60));
        let bodies = [
            json!({"platform": "android", "device_id": "6E2C0C9A-3F5B-4C8E-9A43-1F0F4B2D7C11",
                "app_id": "com.example.app", "version_build": "1.2", "version_name": "builtin",
                "plugin_version": "v8.51.14", "custom_id": "  u-1 ", "install_source": " TestFlight ",
                "version_os": "14", "version_code": "7", "defaultChannel": "beta", "key_id": "k1"}),
            json!({"platform": "ios", "device_id": "6e2c0c9a-3f5b-4c8e-9a43-1f0f4b2d7c11",
                "app_id": "com.example.app", "version_build": "1.0.0-rc.1+b.7",
                "version_name": "1.0.3", "plugin_version": "7.0.0-beta.2", "custom_id": ""}),
            json!({"platform": "electron", "device_id": "6e2c0c9a-3f5b-4c8e-9a43-1f0f4b2d7c11",
                "app_id": "com.example.app", "version_build": long_pre,
                "version_name": "x", "plugin_version": "8.0.0"}),
        ];
        for body in bodies {
            let text = body.to_string();
            let req = parse_update_bytes(text.as_bytes()).unwrap();
            for (outcome, offered) in [("get", Some("1.0.4")), ("no_new_version_available", None)] {
                let versions = CheckVersions::of(&req);
                let fields = update_sighting_fields(&req, &versions, outcome, offered);
                let built = owned_sighting(&fields, 42);
                assert_eq!(
                    built,
                    reference_sighting(&req, outcome, offered, 42),
                    "{text}"
                );
                assert_eq!(SightingFields::of(&built), fields);
            }
        }
    }

    #[test]
    fn version_text_is_to_string_without_the_heap_for_device_versions() {
        for text in [
            "0.0.0",
            "8.51.14",
            "1.0.0-rc.1+build.5",
            "18446744073709551615.0.0",
        ] {
            let version = semver::Version::parse(text).unwrap();
            let written = VersionText::of(&version);
            assert!(matches!(written, VersionText::Inline { .. }), "{text}");
            assert_eq!(written.as_str(), version.to_string());
        }
        let long = semver::Version::parse(&format!("1.0.0-{}", "a".repeat(60))).unwrap();
        assert_eq!(VersionText::of(&long).as_str(), long.to_string());
    }
}
