//! Release safety commands: a channel's rollout details, history, rollback and
//! the control loop's decisions; scheduled releases; native compatibility.

use crate::app_id::resolve_app_id;
use crate::args::{BundleCompatibilityArgs, ScheduleCommand};
use crate::client::ApiClient;
use crate::error::CliError;
use crate::native::{self, Scan, ScanOptions};
use crate::output::Outcome;
use crate::render;
use serde_json::{json, Value};
use std::path::Path;
use updraft_core::model::NativePackage;

/// A refusal for native incompatibility, with the way round it for people.
pub fn explain_incompatible(error: CliError) -> CliError {
    if error.code == "incompatible_bundle" {
        let message = format!(
            "{} (check with `updraft bundle compatibility`; pass --accept-incompatible to release it anyway)",
            error.message
        );
        CliError::new(error.code, message)
    } else {
        error
    }
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
        .get(&["apps", app_id, "channels", channel], &[])
        .await?;
    let text = render::channel_details(&view);
    Ok(Outcome::new(view, text))
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
        .get(
            &["apps", app_id, "channels", channel, "history"],
            &limit_query(limit),
        )
        .await?;
    let text = render::history_table(&list);
    Ok(Outcome::new(list, text))
}

pub async fn channel_rollback(
    client: &ApiClient,
    app_id: &str,
    channel: &str,
    to: Option<&str>,
) -> Result<Outcome, CliError> {
    let body = match to {
        Some(version) => json!({"to": version}),
        None => json!({}),
    };
    let updated = client
        .post(&["apps", app_id, "channels", channel, "rollback"], &body)
        .await?;
    let bundle = render::cell(&updated, "bundle");
    let text =
        format!("Rolled channel {channel} of {app_id} back: it serves {bundle} to every device.");
    Ok(Outcome::new(updated, text))
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
        .get(&["apps", app_id, "rollouts", "decisions"], &query)
        .await?;
    let text = render::decisions_table(&list);
    Ok(Outcome::new(list, text))
}

pub async fn schedule(
    client: &ApiClient,
    command: ScheduleCommand,
    work_dir: &Path,
) -> Result<Outcome, CliError> {
    match command {
        ScheduleCommand::Add(args) => {
            let app_id = resolve_app_id(args.app_id.as_deref(), work_dir)?;
            let body = args.request_body(crate::time::now_millis());
            let created = client
                .post(&["apps", &app_id, "schedules"], &body)
                .await
                .map_err(explain_incompatible)?;
            let text = format!(
                "Scheduled #{}: {} on channel {} of {app_id} at {}.",
                render::cell(&created, "id"),
                render::schedule_action(&created),
                args.channel,
                render::time_cell(&created, "run_at"),
            );
            Ok(Outcome::new(created, text))
        }
        ScheduleCommand::List { app_id } => {
            let app_id = resolve_app_id(app_id.as_deref(), work_dir)?;
            let list = client.get(&["apps", &app_id, "schedules"], &[]).await?;
            let text = render::schedules_table(&list);
            Ok(Outcome::new(list, text))
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
        Some(version) => client.get(&path, &[("bundle", version.clone())]).await?,
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
                        "native_packages_unknown",
                        format!(
                        "cannot read this project's native packages: {why} (run it in the app's \
                             project after npm install, give --package-json / --node-modules, or \
                             check a stored bundle with --bundle)"
                    ),
                    ))
                }
            };
            client
                .post(&path, &json!({"native_packages": packages}))
                .await?
        }
    };
    let text = render::compatibility_report(&report, &args.channel);
    Ok(Outcome::new(report, text))
}

/// The channel as the API shows it, for merging targeting criteria.
pub async fn current_channel(
    client: &ApiClient,
    app_id: &str,
    channel: &str,
) -> Result<Value, CliError> {
    client
        .get(&["apps", app_id, "channels", channel], &[])
        .await
}
