//! Release safety commands: a channel's rollout details, history, rollback and
//! the control loop's decisions; scheduled releases; native compatibility.

use crate::app_id::resolve_app_id;
use crate::args::{BundleCompatibilityArgs, ScheduleCommand};
use crate::client::ApiClient;
use crate::error::{CliError, LocalCode};
use crate::native::{self, Scan, ScanOptions};
use crate::output::Outcome;
use crate::render;
use std::path::Path;
use updraft_api::{
    ChannelView, CompatibilityRequest, CompatibilityView, CreateSchedule, DecisionList, ErrorCode,
    HistoryList, ScheduleList, ScheduleView,
};
use updraft_core::model::NativePackage;

/// What to do about an incompatible bundle, in the CLI's terms.
const ACCEPT_ADVICE: &str = "pass --accept-incompatible to release it anyway";

/// A refusal for native incompatibility, with the way round it for people.
/// The server's own advice names the API field (`accept_incompatible`); it is
/// replaced by the CLI flag rather than repeated.
pub fn explain_incompatible(error: CliError) -> CliError {
    if !error.is(&ErrorCode::IncompatibleBundle) {
        return error;
    }
    let finding = match error.message.rsplit_once("; ") {
        Some((finding, advice)) if advice.contains("accept_incompatible") => finding,
        _ => error.message.as_str(),
    };
    let message = format!("{finding}; {ACCEPT_ADVICE} (details: `updraft bundle compatibility`)");
    CliError::new(error.code, message)
}

/// The error of `bundle compatibility` for a report that says incompatible;
/// `None` when compatible or when the live bundle's packages are unknown
/// (nothing to compare, so nothing is refused).
pub fn incompatibility_error(report: &CompatibilityView, channel: &str) -> Option<CliError> {
    if report.compatible || !report.live_known {
        return None;
    }
    let subject = match &report.bundle {
        Some(bundle) => format!("bundle {bundle}"),
        None => "this project".to_string(),
    };
    let live = &report.live_bundle;
    let differing: Vec<String> = report
        .packages
        .iter()
        .filter(|package| !package.compatible)
        .map(|package| match &package.reason {
            Some(reason) => format!("{} ({reason})", package.name),
            None => package.name.clone(),
        })
        .collect();
    let differing = if differing.is_empty() {
        String::new()
    } else {
        format!(": {}", differing.join(", "))
    };
    Some(CliError::new(
        ErrorCode::IncompatibleBundle,
        format!(
            "{subject} is not compatible with channel {channel}'s live bundle {live}{differing}; {ACCEPT_ADVICE}"
        ),
    ))
}

/// The native packages to send with a new bundle, and a warning when unknown.
/// `ignore` (`--ignore-metadata-check`) skips the scan: the packages stay unknown, silently.
pub fn upload_native_packages(
    ignore: bool,
    package_json: Option<&str>,
    node_modules: Option<&str>,
    work_dir: &Path,
) -> Result<(Option<Vec<NativePackage>>, Option<String>), CliError> {
    if ignore {
        return Ok((None, None));
    }
    let options = ScanOptions::from_flags(package_json, node_modules, work_dir);
    match native::scan(&options, work_dir)? {
        Scan::Packages(packages) => Ok((Some(packages), None)),
        Scan::Unknown(why) => Ok((None, Some(native::unknown_warning(&why)))),
    }
}

pub async fn channel_show(
    client: &ApiClient,
    app_id: &str,
    channel: &str,
) -> Result<Outcome, CliError> {
    let view = client
        .get::<ChannelView>(&["apps", app_id, "channels", channel], &[])
        .await?;
    let text = render::channel_details(&view.value);
    Ok(Outcome::new(view.json, text))
}

fn limit_query(limit: Option<u32>) -> Vec<(&'static str, String)> {
    limit
        .map(|limit| vec![("limit", limit.to_string())])
        .unwrap_or_default()
}

pub async fn channel_history(
    client: &ApiClient,
    app_id: &str,
    channel: &str,
    limit: Option<u32>,
) -> Result<Outcome, CliError> {
    let list = client
        .get::<HistoryList>(
            &["apps", app_id, "channels", channel, "history"],
            &limit_query(limit),
        )
        .await?;
    let text = render::history_table(&list.value.history);
    Ok(Outcome::new(list.json, text))
}

pub async fn channel_rollback(
    client: &ApiClient,
    app_id: &str,
    channel: &str,
    to: Option<&str>,
    force: bool,
) -> Result<Outcome, CliError> {
    let body = crate::requests::rollback_request(to);
    let path = ["apps", app_id, "channels", channel, "rollback"];
    let updated = crate::commands::with_downgrade_guard(force, body, |body| async move {
        client.post::<ChannelView>(&path, &body).await
    })
    .await?;
    let bundle = render::text_cell(&updated.value.bundle);
    let text =
        format!("Rolled channel {channel} of {app_id} back: it serves {bundle} to every device.");
    Ok(Outcome::new(updated.json, text))
}

pub async fn channel_decisions(
    client: &ApiClient,
    app_id: &str,
    channel: &str,
    limit: Option<u32>,
) -> Result<Outcome, CliError> {
    let mut query = vec![("channel", channel.to_string())];
    query.extend(limit_query(limit));
    let list = client
        .get::<DecisionList>(&["apps", app_id, "rollouts", "decisions"], &query)
        .await?;
    let text = render::decisions_table(&list.value);
    Ok(Outcome::new(list.json, text))
}

pub async fn schedule(
    client: &ApiClient,
    command: ScheduleCommand,
    work_dir: &Path,
) -> Result<Outcome, CliError> {
    match command {
        ScheduleCommand::Add(args) => {
            let app_id = resolve_app_id(args.app_id.as_deref(), work_dir)?;
            let body: CreateSchedule = args.request_body(crate::time::now_millis());
            let created = client
                .post::<ScheduleView>(&["apps", &app_id, "schedules"], &body)
                .await
                .map_err(explain_incompatible)?;
            let schedule = &created.value;
            let text = format!(
                "Scheduled #{}: {} on channel {} of {app_id} at {}.",
                schedule.id,
                render::schedule_action(schedule),
                args.channel,
                render::time_text(&schedule.run_at),
            );
            Ok(Outcome::new(created.json, text))
        }
        ScheduleCommand::List { app_id } => {
            let app_id = resolve_app_id(app_id.as_deref(), work_dir)?;
            let list = client
                .get::<ScheduleList>(&["apps", &app_id, "schedules"], &[])
                .await?;
            let text = render::schedules_table(&list.value);
            Ok(Outcome::new(list.json, text))
        }
        ScheduleCommand::Cancel { id, app_id } => {
            let app_id = resolve_app_id(app_id.as_deref(), work_dir)?;
            let id_text = id.to_string();
            client
                .delete(&["apps", &app_id, "schedules", &id_text])
                .await?;
            Ok(Outcome::status_ok(format!(
                "Cancelled scheduled change #{id} of {app_id}."
            )))
        }
    }
}

pub async fn compatibility(
    client: &ApiClient,
    args: &BundleCompatibilityArgs,
    work_dir: &Path,
) -> Result<Outcome, CliError> {
    let app_id = resolve_app_id(args.app_id.as_deref(), work_dir)?;
    let path = [
        "apps",
        app_id.as_str(),
        "channels",
        &args.channel,
        "compatibility",
    ];
    let report = match &args.bundle {
        Some(version) => {
            client
                .get::<CompatibilityView>(&path, &[("bundle", version.clone())])
                .await?
        }
        None => {
            let options = ScanOptions::from_flags(
                args.package_json.as_deref(),
                args.node_modules.as_deref(),
                work_dir,
            );
            let packages = match native::scan(&options, work_dir)? {
                Scan::Packages(packages) => packages,
                Scan::Unknown(why) => {
                    return Err(CliError::new(
                        LocalCode::NativePackagesUnknown,
                        format!(
                        "cannot read this project's native packages: {why} (run it in the app's \
                             project after npm install, give --package-json / --node-modules, or \
                             check a stored bundle with --bundle)"
                    ),
                    ))
                }
            };
            client
                .post::<CompatibilityView>(
                    &path,
                    &CompatibilityRequest {
                        native_packages: packages,
                    },
                )
                .await?
        }
    };
    let text = render::compatibility_report(&report.value, &args.channel);
    let failure = incompatibility_error(&report.value, &args.channel);
    let outcome = Outcome::new(report.json, text);
    Ok(match failure {
        Some(failure) => outcome.with_failure(failure),
        None => outcome,
    })
}

/// The channel as the API shows it, for merging targeting criteria.
pub async fn current_channel(
    client: &ApiClient,
    app_id: &str,
    channel: &str,
) -> Result<ChannelView, CliError> {
    client
        .get::<ChannelView>(&["apps", app_id, "channels", channel], &[])
        .await
        .map(|answer| answer.value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::CliCode;
    use serde_json::json;

    #[test]
    fn incompatible_refusal_gives_the_advice_once_in_cli_terms() {
        let server = CliError::new(
            ErrorCode::IncompatibleBundle,
            "bundle 1.1.0 is not compatible with the native packages of channel production's live \
             bundle 1.0.0: @capacitor/camera 6.0.0 → 7.0.0 (version_mismatch); \
             pass accept_incompatible to put it live anyway",
        );
        let explained = explain_incompatible(server);
        assert_eq!(explained.code, CliCode::Api(ErrorCode::IncompatibleBundle));
        assert_eq!(
            explained.message,
            "bundle 1.1.0 is not compatible with the native packages of channel production's live \
             bundle 1.0.0: @capacitor/camera 6.0.0 → 7.0.0 (version_mismatch); pass \
             --accept-incompatible to release it anyway (details: `updraft bundle compatibility`)"
        );
        assert!(!explained.message.contains("accept_incompatible"));
        // A server sentence without API advice keeps all of its text.
        let plain =
            explain_incompatible(CliError::new(ErrorCode::IncompatibleBundle, "a; b differ"));
        assert_eq!(
            plain.message,
            format!("a; b differ; {ACCEPT_ADVICE} (details: `updraft bundle compatibility`)")
        );
        // Other errors pass through untouched.
        let other = CliError::new(ErrorCode::BundleNotFound, "x; pass accept_incompatible");
        assert_eq!(explain_incompatible(other.clone()), other);
    }

    /// A report as the server sends it; fields the test leaves out take
    /// what an answer without them would mean.
    fn report(value: serde_json::Value) -> CompatibilityView {
        let mut full = json!({"channel": "c", "bundle_known": true});
        if let (Some(full), Some(given)) = (full.as_object_mut(), value.as_object()) {
            full.extend(given.clone());
        }
        serde_json::from_value(full).unwrap()
    }

    #[test]
    fn compatibility_fails_only_for_a_known_incompatible_live_bundle() {
        let incompatible = json!({"bundle": "1.1.0", "live_bundle": "1.0.0", "compatible": false,
            "live_known": true, "bundle_known": true, "packages": [
                {"name": "@capacitor/camera", "bundle_version": "7.0.0", "live_version": "6.0.0",
                 "compatible": false, "reason": "version_mismatch"},
                {"name": "@capacitor/app", "bundle_version": "6.0.0", "live_version": "6.0.0",
                 "compatible": true, "reason": null}]});
        let error = incompatibility_error(&report(incompatible), "production").unwrap();
        assert_eq!(error.code, CliCode::Api(ErrorCode::IncompatibleBundle));
        assert_eq!(
            error.message,
            format!(
                "bundle 1.1.0 is not compatible with channel production's live bundle 1.0.0: \
                 @capacitor/camera (version_mismatch); pass --accept-incompatible to release it \
                 anyway"
            )
        );
        let project = json!({"bundle": null, "live_bundle": "2.0.0", "compatible": false,
            "live_known": true, "packages": [{"name": "@capacitor/nfc", "compatible": false,
            "reason": "new_plugin"}]});
        assert!(incompatibility_error(&report(project), "beta")
            .unwrap()
            .message
            .starts_with("this project is not compatible with channel beta's live bundle 2.0.0: @capacitor/nfc (new_plugin);"));

        let compatible = json!({"bundle": "1.1.0", "live_bundle": "1.0.0", "compatible": true,
            "live_known": true, "packages": []});
        assert_eq!(
            incompatibility_error(&report(compatible), "production"),
            None
        );
        let live_unknown = json!({"bundle": "1.1.0", "live_bundle": "builtin", "compatible": false,
            "live_known": false, "packages": []});
        assert_eq!(
            incompatibility_error(&report(live_unknown), "production"),
            None
        );
    }
}
